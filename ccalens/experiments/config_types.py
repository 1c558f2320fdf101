"""Type check of an experiment config: a key that the shipped configs also use, or a field of the dataclass a
table becomes (``[training]`` -> TrainConfig, ...), must hold the same kind of TOML value (a table, a string, a
number, a boolean, an array of ...), so that ``epochs = "ten"`` or ``sanity = 5`` is refused up front with a
message naming the key, not deep inside a stage."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import tomllib
from collections.abc import Mapping
from importlib import resources
from typing import Any

from ccalens.errors import UserInputError

__all__ = ["check_config_types"]

Path_ = tuple[str, ...]
_ITEM = "[]"  # path component of an array's elements
# tables whose keys are fields of a dataclass: its annotations give the expected kinds
_TRAIN = "ccalens.models.training:TrainConfig"
_RETRAIN = "ccalens.experiments.common:RetrainConfig"
_PROJECTION = "ccalens.experiments.projection:ProjectionConfig"
_TABLE_DATACLASSES: tuple[tuple[Path_, str], ...] = (
    (("training",), _TRAIN),
    (("projection",), _PROJECTION),
    (("cross_sensor",), _PROJECTION),
    (("fusion",), "ccalens.experiments.fusion:FusionConfig"),
    (("projection", "retrain_hparams"), _TRAIN),
    (("projection", "retrain_hparams"), _RETRAIN),
    (("cross_sensor", "retrain_hparams"), _TRAIN),
    (("cross_sensor", "retrain_hparams"), _RETRAIN),
)


def _kind(value: Any, element: bool = False) -> str:
    """The kind of a TOML value. A number is ``"a number"``, except a list element holding an integer
    (``seeds``, ``hidden``, ``k_values`` list counts): ``"an integer"``."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int) and element:
        return "an integer"
    if isinstance(value, int | float):
        return "a number"  # scalars: integers and floats are interchangeable (n_val = 3310 or 0.25)
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    return "a date/time"


_PLURAL = {"an integer": "integers", "a number": "numbers", "a string": "strings", "a boolean": "booleans",
           "a table": "tables", "a list": "lists", "a date/time": "dates"}


def _accepts(expected: frozenset[str], kind: str) -> bool:
    return kind in expected or (kind == "an integer" and "a number" in expected)


def _walk(value: Any, path: Path_, into: dict[Path_, set[str]]) -> None:
    into.setdefault(path, set()).add(_kind(value, element=bool(path) and path[-1] == _ITEM))
    if isinstance(value, Mapping):
        for key, item in value.items():
            _walk(item, (*path, str(key)), into)
    elif isinstance(value, list | tuple):
        for item in value:
            _walk(item, (*path, _ITEM), into)


_SCALAR_ANNOTATIONS = {"int": "a number", "float": "a number", "str": "a string", "bool": "a boolean"}
_ELEMENT_ANNOTATIONS = {**_SCALAR_ANNOTATIONS, "int": "an integer"}


def _annotation_kinds(annotation: str, path: Path_, into: dict[Path_, set[str]]) -> bool:
    """Record the kinds a field annotated ``annotation`` (``"int | None"``, ``"tuple[int, ...]"``) accepts at
    ``path``; False if the annotation is not one of these simple forms (then the field is not checked)."""
    kinds: dict[Path_, set[str]] = {}
    for part in (p.strip() for p in annotation.split("|")):
        if part == "None":
            continue
        if part in _SCALAR_ANNOTATIONS:
            kinds.setdefault(path, set()).add(_SCALAR_ANNOTATIONS[part])
        elif part.split("[")[0] in ("tuple", "list", "Sequence") and part.endswith("]"):
            kinds.setdefault(path, set()).add("a list")
            inner = part[part.index("[") + 1 : -1].split(",")[0].strip()
            if inner in _ELEMENT_ANNOTATIONS:
                kinds.setdefault((*path, _ITEM), set()).add(_ELEMENT_ANNOTATIONS[inner])
        else:
            return False
    for where, found in kinds.items():
        into.setdefault(where, set()).update(found)
    return True


def _dataclass_kinds(spec: str, table: Path_, into: dict[Path_, set[str]]) -> bool:
    """Record the kinds of the fields of the dataclass ``"module:Class"`` under ``table``; False, and nothing
    recorded, if it cannot be imported (torch missing: the stage that needs it says so)."""
    module, _, name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except ImportError:
        return False
    for f in dataclasses.fields(cls):
        annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        if not _annotation_kinds(annotation, (*table, f.name), into) and f.default not in (None, dataclasses.MISSING):
            _walk(f.default, (*table, f.name), into)
    return True


@functools.cache
def _toml_kinds() -> dict[Path_, frozenset[str]]:
    """Kinds of value at each key path of the configs shipped in ``ccalens/experiments/configs``."""
    found: dict[Path_, set[str]] = {}
    folder = resources.files("ccalens.experiments") / "configs"
    for entry in folder.iterdir():
        if entry.name.endswith(".toml"):
            _walk(tomllib.loads(entry.read_text(encoding="utf-8")), (), found)
    return {path: frozenset(kinds) for path, kinds in found.items()}


_complete: dict[Path_, frozenset[str]] = {}  # the shipped kinds, once every dataclass could be imported


def _shipped_kinds() -> dict[Path_, frozenset[str]]:
    """Kinds of the shipped configs' values and of the fields of the dataclasses that tables become (kept
    once all of those could be imported; until then computed afresh, without the missing ones)."""
    if _complete:
        return _complete
    found: dict[Path_, set[str]] = {path: set(kinds) for path, kinds in _toml_kinds().items()}
    imported = [_dataclass_kinds(spec, table, found) for table, spec in _TABLE_DATACLASSES]
    kinds = {path: frozenset(k) for path, k in found.items()}
    if all(imported):
        _complete.update(kinds)
    return kinds


def _name(path: Path_) -> str:
    """``threads``, ``[training] seeds``, ``an element of [fusion] pairs``."""
    keys = [k for k in path if k != _ITEM]
    items = "an element of " * (len(path) - len(keys))
    if len(keys) == 1:
        return f"{items}{keys[0]}"
    return f"{items}[{'.'.join(keys[:-1])}] {keys[-1]}"


def _expected(path: Path_, kinds: frozenset[str], shipped: Mapping[Path_, frozenset[str]]) -> str:
    """``"a number"``, ``"a table ([data])"``, ``"a list of integers"``..."""
    if kinds == {"a table"} and len(path) == 1:
        return f"a table ([{path[0]}])"
    texts = []
    for kind in sorted(kinds):
        items = shipped.get((*path, _ITEM)) if kind == "a list" else None
        texts.append(f"a list of {' or '.join(_PLURAL[k] for k in sorted(items))}" if items else kind)
    return " or ".join(texts)


def check_config_types(cfg: Mapping[str, Any], source: str) -> None:
    """Raise :class:`UserInputError` naming ``source`` (the config file) and the key if a value of ``cfg`` has
    another kind than the shipped configs, or the field of the dataclass the table becomes, give the same key;
    other keys are not checked. A list whose elements are of the wrong kind is reported as a whole."""
    shipped = _shipped_kinds()

    def check(value: Any, path: Path_) -> None:
        expected = shipped.get(path)
        if expected is None:
            return
        items = shipped.get((*path, _ITEM))
        wrong = not _accepts(expected, _kind(value, element=path[-1] == _ITEM))
        if not wrong and isinstance(value, list) and items is not None:
            wrong = not all(_accepts(items, _kind(item, element=True)) for item in value)
        if wrong:
            raise UserInputError(f"config {source}: {_name(path)} must be {_expected(path, expected, shipped)}, "
                                 f"got the {_kind(value).split(' ', 1)[1]} {repr(value)[:60]}")
        if isinstance(value, Mapping):
            for key, item in value.items():
                check(item, (*path, str(key)))
        elif isinstance(value, list):
            for item in value:
                check(item, (*path, _ITEM))

    for key, value in cfg.items():
        check(value, (str(key),))
