"""Sample ids: their normal form and the one comparison that every alignment check uses."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import SampleMismatchError

__all__ = ["compare_ids", "ids_kind", "normalise_ids"]


def normalise_ids(ids: Any, n: int, what: str = "sample ids") -> np.ndarray:
    """Ids as a 1-D int64 or unicode array of length ``n`` (``n=-1``: any length)."""
    if hasattr(ids, "detach") and hasattr(ids, "cpu"):
        ids = ids.detach().cpu().numpy()
    arr = np.asarray(ids)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{what} must be 1-D with one id per sample ({n}), got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "U":
        return arr
    if arr.dtype.kind == "S":
        return arr.astype(str)
    if arr.dtype.kind == "O" and all(isinstance(x, str) for x in arr.tolist()):
        return arr.astype(str)
    raise TypeError(f"{what} must be integers or strings, got dtype {arr.dtype}")


def ids_kind(ids: np.ndarray) -> str:
    """``"int"`` or ``"str"``: the kind recorded in a manifest."""
    return "int" if ids.dtype.kind == "i" else "str"


def compare_ids(
    expected: np.ndarray, given: np.ndarray, what: str, *, first_row: int = 0, fix: str = ""
) -> None:
    """Raise :class:`SampleMismatchError` unless ``given`` equals ``expected`` (same count, kind, values, order).

    ``what`` names the two sides (e.g. ``"between a/x and b/y"``); the message gives the first differing row,
    counted from ``first_row``, the two ids there, and ``fix`` (what to do about it).
    """
    tail = f" {fix}" if fix else ""
    if expected.shape != given.shape:
        raise SampleMismatchError(
            f"sample counts differ {what}: {expected.shape[0]} samples vs {given.shape[0]} samples.{tail}"
        )
    if expected.dtype.kind != given.dtype.kind or not np.array_equal(expected, given):
        k = int(np.argmax(expected != given)) if expected.dtype.kind == given.dtype.kind else 0
        raise SampleMismatchError(
            f"sample ids differ {what}: first at row {first_row + k} "
            f"({expected[k].item()!r} vs {given[k].item()!r}).{tail}"
        )
