"""Atomic file writes (temporary file in the same folder + ``os.replace``): nothing half-written on disk."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["atomic_write", "save_json_atomic", "save_npz_atomic", "save_torch_atomic"]


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(f)`` on a temporary binary file next to ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_npz_atomic(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """``np.savez_compressed`` to ``path`` atomically."""
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def save_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """JSON (indented, UTF-8) to ``path`` atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False)
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def save_torch_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` to ``path`` atomically."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))
