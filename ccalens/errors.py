"""Errors that mean "the user must change something" (a file, an argument, a config key, an install).

The command line prints them as one line, ``ccalens COMMAND: error: <message>``, and exits with status 2 (a
traceback only with ``--debug``). Their messages name the file, key or argument and what was expected.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["OPTIONAL_EXTRAS", "MissingDependencyError", "UnknownKeyError", "UserInputError", "install_hint", "require"]

# top-level module -> the extra of ``pip install "ccalens[EXTRA]"`` that brings it
OPTIONAL_EXTRAS: dict[str, str] = {
    "torch": "torch",
    "torchvision": "torch",
    "dask": "dask",
    "distributed": "dask",
    "matplotlib": "experiments",
    "sklearn": "experiments",
}


class UserInputError(ValueError):
    """Bad input from the user: a feature file, an argument or a config value (the message says which)."""


class UnknownKeyError(UserInputError, KeyError):
    """A name (an array in a container, a config key) that is not there; also a KeyError for older callers."""

    def __str__(self) -> str:  # KeyError would quote the message
        return ValueError.__str__(self)


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message says which extra to install."""


def install_hint(module: str) -> str | None:
    """``pip install "ccalens[EXTRA]"`` for an optional top-level ``module``, or None if it is not optional."""
    extra = OPTIONAL_EXTRAS.get(module.partition(".")[0])
    return None if extra is None else f'pip install "ccalens[{extra}]"'


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional ``module`` or raise :class:`MissingDependencyError` saying what needs it
    (``purpose``, e.g. ``"reading model.pt"``) and which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = install_hint(module) or f"pip install {module}"
        raise MissingDependencyError(f"{purpose} needs {module}, which is not installed: {hint}") from exc
