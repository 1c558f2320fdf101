"""Type check of an experiment config: a key that the shipped configs also use must hold the same kind of TOML
value (a table, a string, a number, a boolean, an array of ...), so that ``epochs = "ten"`` or ``sanity = 5`` is
refused up front with a message naming the key, not deep inside a stage."""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from importlib import resources
from typing import Any

from ccalens.errors import UserInputError

__all__ = ["check_config_types"]

Path_ = tuple[str, ...]
_ITEM = "[]"  # path component of an array's elements


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"  # TOML integers and floats are interchangeable in the configs (n_val = 3310 or 0.25)
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return "a date/time"


def _walk(value: Any, path: Path_, into: dict[Path_, set[str]]) -> None:
    into.setdefault(path, set()).add(_kind(value))
    if isinstance(value, Mapping):
        for key, item in value.items():
            _walk(item, (*path, str(key)), into)
    elif isinstance(value, list):
        for item in value:
            _walk(item, (*path, _ITEM), into)


@functools.cache
def _shipped_kinds() -> dict[Path_, frozenset[str]]:
    """Kinds of value at each key path of the configs shipped in ``ccalens/experiments/configs``."""
    found: dict[Path_, set[str]] = {}
    folder = resources.files("ccalens.experiments") / "configs"
    for entry in folder.iterdir():
        if entry.name.endswith(".toml"):
            _walk(tomllib.loads(entry.read_text(encoding="utf-8")), (), found)
    return {path: frozenset(kinds) for path, kinds in found.items()}


def _name(path: Path_) -> str:
    keys = [k for k in path if k != _ITEM]
    items = "an element of " * (len(path) - len(keys))
    if len(keys) == 1:
        return f"{items}{keys[0]}"
    return f"{items}[{'.'.join(keys[:-1])}] {keys[-1]}"


def _describe(value: Any) -> str:
    """``"string 'ten'"``, ``"number 5"``..."""
    noun = _kind(value).split(" ", 1)[1]
    return f"{noun} {repr(value)[:60]}"


def check_config_types(cfg: Mapping[str, Any], source: str) -> None:
    """Raise :class:`UserInputError` naming ``source`` (the config file) and the key if a value of ``cfg`` has
    another kind than the shipped configs give the same key; keys they do not use are not checked."""
    shipped = _shipped_kinds()

    def check(value: Any, path: Path_) -> None:
        expected = shipped.get(path)
        if expected is None:
            return
        if _kind(value) not in expected:
            what = " or ".join(sorted(expected))
            if path[-1] != _ITEM and "a table" in expected and len(path) == 1:
                what = f"a table ([{path[0]}])"
            raise UserInputError(f"config {source}: {_name(path)} must be {what}, got the {_describe(value)}")
        if isinstance(value, Mapping):
            for key, item in value.items():
                check(item, (*path, str(key)))
        elif isinstance(value, list):
            for item in value:
                check(item, (*path, _ITEM))

    for key, value in cfg.items():
        check(value, (str(key),))
