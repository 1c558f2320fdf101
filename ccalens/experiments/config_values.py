"""Reading one TOML table strictly: each value coerced to its field's type hint or a one-line
:class:`~ccalens.errors.UserInputError` naming the table and the key (used by :mod:`ccalens.experiments.config`)."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from ccalens.core.validation import SvccaRule
from ccalens.errors import UnknownKeyError, UserInputError

__all__ = [
    "check_bootstrap",
    "check_one_of",
    "check_positive",
    "check_svcca_rule",
    "coerce",
    "describe",
    "read_table",
    "sub_table",
    "type_name",
]


def type_name(hint: Any) -> str:
    """How an error message names the expected type of ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(names)
    if origin is tuple:
        return f"a list of {_PLURAL[args[0]]}" if args[0] in _PLURAL else "a list of pairs of strings"
    if origin is dict:
        return "a table of strings"
    return {int: "a number (an integer)", float: "a number", bool: "a boolean", str: "a string"}[hint]


_PLURAL = {int: "integers", float: "numbers", str: "strings"}


def describe(value: Any) -> str:
    """``"the number 5"``, ``"the string 'many'"``, ``"the list [0, 1.5]"``: what a TOML value was."""
    if isinstance(value, bool):
        kind = "boolean"
    elif isinstance(value, int | float):
        kind = "number"
    elif isinstance(value, str):
        kind = "string"
    elif isinstance(value, Mapping):
        kind = "table"
    elif isinstance(value, list | tuple):
        kind = "list"
    else:
        kind = "date/time"
    text = repr(value)
    return f"the {kind} {text if len(text) <= 60 else text[:57] + '...'}"


def coerce(hint: Any, value: Any) -> tuple[bool, Any]:
    """``(True, value as hint)`` when ``value`` (from TOML) is of the type ``hint``, else ``(False, None)``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return True, None
        for arg in args:
            if arg is type(None):
                continue
            ok, got = coerce(arg, value)
            if ok:
                return True, got
        return False, None
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return False, None
        inner = args[0]
        items = []
        for item in value:
            ok, got = coerce(inner, item)
            if not ok:
                return False, None
            items.append(got)
        return True, tuple(items)
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in value.items()):
            return False, None
        return True, dict(value)
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    if hint is str:
        return isinstance(value, str), value
    raise TypeError(f"no TOML reading of the type {hint!r}")  # pragma: no cover - a programming error


def sub_table(raw: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The table ``[name]`` of ``raw`` (None when absent), checked to be a table."""
    if name not in raw:
        return None
    value = raw[name]
    if not isinstance(value, Mapping):
        raise UserInputError(f"{name} must be a table ([{name}]), got {describe(value)}")
    return dict(value)


def read_table(cls: type, table: str, values: Mapping[str, Any], *, skip: tuple[str, ...] = (),
          extra: Mapping[str, Any] | None = None) -> Any:
    """``cls(**values, **extra)`` after rejecting keys that are not fields of ``cls`` (or are in ``skip``) and
    values of the wrong type, each error naming ``[table]`` and the key; ``cls``'s own checks are prefixed with
    ``[table]``."""
    hints = typing.get_type_hints(cls)
    allowed = sorted(f.name for f in dataclasses.fields(cls) if f.name not in skip)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in allowed:
            raise UnknownKeyError(f"[{table}] unknown key {key!r}; expected one of {allowed}")
        ok, got = coerce(hints[key], value)
        if not ok:
            raise UserInputError(f"[{table}] {key} must be {type_name(hints[key])}, got {describe(value)}")
        kwargs[key] = got
    try:
        return cls(**kwargs, **(extra or {}))
    except (ValueError, TypeError) as e:
        message = str(e)
        raise UserInputError(message if message.startswith("[") else f"[{table}] {message}") from e


def check_one_of(table: str, key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserInputError(f"[{table}] {key} must be one of {list(choices)}, got {value!r}")


def check_bootstrap(table: str, value: int) -> None:
    """``bootstrap``: 0 (no interval) or a number of bootstrap replicates >= 2."""
    if value < 0 or value == 1:
        raise UserInputError(f"[{table}] bootstrap must be 0 (no interval) or a number of replicates >= 2, got {value}")


def check_positive(table: str, **values: int | None) -> None:
    for key, value in values.items():
        if value is not None and value < 1:
            raise UserInputError(f"[{table}] {key} must be >= 1, got {value}")


def check_svcca_rule(table: str, keep: str, threshold: float) -> None:
    try:
        SvccaRule(keep, threshold)
    except ValueError as err:
        raise UserInputError(f"[{table}] {err}") from None
