"""Files: reading feature arrays (.npy, .npz, .pt, .csv) and writing every artefact atomically.

Writes go to a temporary file in the target folder, are fsync'ed, then renamed with ``os.replace``, so a reader
never sees a half-written file, even if the run is killed mid-write."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "load_features",
    "save_npz",
    "save_torch",
    "to_jsonable",
    "write_csv",
    "write_json",
]

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


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(f)`` on a temporary binary file next to ``path``, fsync it, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (parent folders are created)."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples, paths and dataclass-like objects to plain JSON types.

    Non-finite floats become ``None`` (strict JSON has no NaN).
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, list | tuple | set):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer | int):
        return int(obj)
    if isinstance(obj, np.floating | float):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, str):
        return obj
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON")


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` (after :func:`to_jsonable`) as indented strict JSON, atomically."""
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def write_csv(
    path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> Path:
    """Write a list of flat dicts as CSV (header = ``columns`` or the keys in first-seen order), atomically."""
    rows = [dict(r) for r in rows]
    if columns is None:
        seen: dict[str, None] = {}
        for r in rows:
            for key in r:
                seen.setdefault(key, None)
        columns = list(seen)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _csv_cell(r.get(k)) for k in columns})
    return atomic_write_text(path, buf.getvalue())


def _csv_cell(value: Any) -> Any:
    value = to_jsonable(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return "" if value is None else value


def save_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> Path:
    """``np.savez_compressed`` to ``path`` atomically."""
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def save_torch(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save`` to ``path`` atomically (torch imported here only)."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))
