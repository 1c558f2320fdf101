"""Reading feature arrays from files (.npy, .npz, .pt, .csv) and writing results atomically."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["atomic_write", "load_features", "write_json"]

SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".csv", ".txt")


def _pick(mapping: dict[str, Any], key: str | None, path: Path) -> Any:
    if key is not None:
        if key not in mapping:
            raise KeyError(f"{path} has no array named {key!r}; it has {sorted(mapping)}")
        return mapping[key]
    if len(mapping) != 1:
        raise ValueError(f"{path} holds several arrays {sorted(mapping)}: choose one with --key / key=")
    return next(iter(mapping.values()))


def _load_csv(path: Path) -> np.ndarray:
    with open(path, newline="") as fh:
        sample = fh.read(4096)
        fh.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t ")
            delimiter = dialect.delimiter
        except csv.Error:
            delimiter = ","
        first = fh.readline()
    fields = [f for f in first.strip().split(delimiter) if f]
    try:
        [float(f) for f in fields]
        skip = 0
    except ValueError:
        skip = 1  # a header row
    return np.loadtxt(path, delimiter=None if delimiter == " " else delimiter, skiprows=skip, ndmin=2)


def load_features(path: str | Path, key: str | None = None) -> np.ndarray:
    """Load a feature array ``(n_samples, ...)`` from .npy, .npz, .pt/.pth (torch) or .csv/.txt.

    For containers (.npz, a .pt dict) ``key`` names the array; it may be omitted if there is only one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such feature file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return np.asarray(_pick({k: f[k] for k in f.files}, key, path))
    if suffix in (".pt", ".pth"):
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - torch is an optional extra
            raise ImportError(f"reading {path} needs torch: pip install 'ccalens[torch]'") from exc
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, dict):
            obj = _pick(obj, key, path)
        if not isinstance(obj, torch.Tensor):
            raise TypeError(f"{path} must hold a tensor (or a dict of tensors), got {type(obj).__name__}")
        return obj.detach().cpu().numpy()
    if suffix in (".csv", ".txt"):
        return _load_csv(path)
    raise ValueError(f"unsupported feature file {path}: expected one of {', '.join(SUFFIXES)}")


def atomic_write(path: str | Path, write: Callable[[IO[Any]], None], *, binary: bool = False) -> Path:
    """Write ``path`` through ``write(fh)`` into a temporary file in the same folder, then rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    """Atomic JSON write (numpy scalars and arrays converted)."""

    def default(o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"cannot write {type(o).__name__} as JSON")

    return atomic_write(path, lambda fh: json.dump(obj, fh, indent=2, default=default))
