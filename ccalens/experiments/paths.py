"""Names and paths of the experiment runner's output folder: every name that comes from a config and becomes
part of a file name is checked against a conservative pattern, and every path the runner writes or reads under
``--out`` is checked to resolve inside it (after following symbolic links).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

__all__ = ["SAFE_NAME_PATTERN", "check_inside", "check_name", "out_path"]

# letters, digits, '_', '-', '.'; no leading dot (hidden files, '.' and '..'); at most 100 characters
SAFE_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")


def check_name(name: Any, what: str) -> str:
    """Return ``name`` if it may become (part of) a file name, else raise a one-line ValueError naming ``what``.

    Allowed: 1 to 100 characters among letters, digits, ``_``, ``-`` and ``.``, not starting with a dot; so no
    absolute paths, no ``..``, no separators, no hidden files.
    """
    if not isinstance(name, str):
        raise ValueError(f"{what} must be a string, got {type(name).__name__} {name!r}")
    if SAFE_NAME_PATTERN.fullmatch(name) is None:
        raise ValueError(
            f"{what} {name!r} cannot be used in a file name: use 1-100 letters, digits, '_', '-' or '.', "
            "not starting with '.'"
        )
    return name


def check_inside(root: str | os.PathLike[str], path: str | os.PathLike[str], what: str = "path") -> Path:
    """Return ``path`` if it resolves (symbolic links followed) inside the folder ``root``, else raise ValueError.

    ``path`` need not exist yet; the parts that do exist are resolved, so a planted link pointing elsewhere is caught.
    """
    root_resolved = Path(root).resolve()
    resolved = Path(path).resolve()
    if resolved != root_resolved and not resolved.is_relative_to(root_resolved):
        raise ValueError(f"{what} {os.fspath(path)} resolves to {resolved}, outside the output folder {root_resolved}")
    return Path(path)


def out_path(out: str | os.PathLike[str], *parts: str) -> Path:
    """``out / parts[0] / parts[1] ...`` after checking each part with :func:`check_name` and the result with
    :func:`check_inside` (the one gate for the runner's paths under ``--out``)."""
    for part in parts:
        check_name(part, "file name")
    return check_inside(out, Path(out).joinpath(*parts), "output path")
