"""The manifest of a stored layer: its fields, their validation, its atomic rewrite, compatibility checks.

The manifest (``<layer folder>/manifest.json``) is the single source of truth of a layer: shapes, dtype,
settings, per-shard rows / bytes / sha256 and the completion flag. It is data only: every field is checked on
read and its file entries must be plain names inside the layer folder.
"""

from __future__ import annotations

import json
import os
import platform
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CorruptShardError, StoreMismatchError
from .files import atomic_write, entry_name, fsync_dir, now

__all__ = [
    "DEFAULT_SHARD_BYTES",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "check_compatible",
    "new_manifest",
    "read_manifest",
    "validate_manifest",
    "write_manifest",
]

FORMAT = "ccalens-activations"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DEFAULT_SHARD_BYTES = 64 * 1024 * 1024


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def validate_manifest(manifest: Any, path: Path) -> dict[str, Any]:
    """Check every field a reader uses (types, ranges, file names inside the layer folder); the manifest is only
    data: nothing in it is executed or followed outside the layer. Raises :class:`CorruptShardError` naming the
    manifest and the field."""

    def bad(reason: str) -> CorruptShardError:
        return CorruptShardError(path, reason)

    if not isinstance(manifest, dict):
        raise bad(f"the manifest must be a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != FORMAT:
        raise bad(f"not a {FORMAT} manifest")
    version = manifest.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad(f"'version' must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path} has format version {version}; this ccalens reads <= {FORMAT_VERSION}")
    for key in ("sample_shape", "dtype", "shard_rows", "settings", "n_samples", "complete", "shards"):
        if key not in manifest:
            raise bad(f"the manifest has no {key!r}")
    shape = manifest["sample_shape"]
    if not isinstance(shape, list) or not all(_is_count(s) for s in shape):
        raise bad(f"'sample_shape' must be a list of non-negative integers, got {shape!r}")
    dtype = manifest["dtype"]
    try:
        ok = isinstance(dtype, str) and np.dtype(dtype).kind in "fiub" and not np.dtype(dtype).hasobject
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise bad(f"'dtype' must be a numeric dtype string such as '<f4', got {dtype!r}")
    if not _is_count(manifest["shard_rows"]) or manifest["shard_rows"] < 1:
        raise bad(f"'shard_rows' must be a positive integer, got {manifest['shard_rows']!r}")
    if not isinstance(manifest["settings"], dict):
        raise bad(f"'settings' must be an object, got {manifest['settings']!r}")
    if manifest.get("ids_kind") not in (None, "int", "str"):
        raise bad(f"'ids_kind' must be null, 'int' or 'str', got {manifest.get('ids_kind')!r}")
    if not isinstance(manifest["complete"], bool):
        raise bad(f"'complete' must be true or false, got {manifest['complete']!r}")
    shards = manifest["shards"]
    if not isinstance(shards, list):
        raise bad(f"'shards' must be a list, got {type(shards).__name__}")
    total = 0
    for i, entry in enumerate(shards):
        if not isinstance(entry, dict):
            raise bad(f"shards[{i}] must be an object, got {entry!r}")
        for key in ("file", "ids_file"):
            if not entry_name(entry.get(key)):
                raise bad(
                    f"shards[{i}][{key!r}] must be a file name inside the layer folder (no folder part, "
                    f"not absolute, no leading '.'), got {entry.get(key)!r}"
                )
        for key in ("rows", "bytes", "ids_bytes"):
            if not _is_count(entry.get(key)):
                raise bad(f"shards[{i}][{key!r}] must be a non-negative integer, got {entry.get(key)!r}")
        for key in ("sha256", "ids_sha256"):
            if not _is_sha256(entry.get(key)):
                raise bad(f"shards[{i}][{key!r}] must be a sha256 (64 lowercase hex digits), got {entry.get(key)!r}")
        total += entry["rows"]
    if manifest["n_samples"] != total:
        raise bad(f"'n_samples' is {manifest['n_samples']!r} but the shards hold {total} rows")
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    """The validated manifest of the layer in ``folder`` (``FileNotFoundError`` if it has none)."""
    path = folder / MANIFEST
    text = path.read_text()
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CorruptShardError(path, f"manifest is not valid JSON ({exc})") from None
    return validate_manifest(manifest, path)


def write_manifest(folder: Path, manifest: dict[str, Any], fsync: bool) -> None:
    """Atomically replace ``folder/manifest.json`` (the commit point of every change to a layer)."""
    manifest["updated"] = now()
    text = json.dumps(manifest, indent=1, sort_keys=True).encode()
    atomic_write(folder / MANIFEST, [text], fsync)
    if fsync:
        fsync_dir(folder)


def new_manifest(
    model: str, layer: str, sample_shape: Sequence[int], dtype: np.dtype, shard_rows: int, settings: dict[str, Any]
) -> dict[str, Any]:
    """The manifest of an empty, incomplete layer."""
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": model,
        "layer": layer,
        "sample_shape": list(sample_shape),
        "dtype": dtype.str,
        "ids_kind": None,
        "shard_rows": shard_rows,
        "settings": settings,
        "n_samples": 0,
        "complete": False,
        "shards": [],
        "created": now(),
        "updated": now(),
        "creator": {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
    }


def check_compatible(
    manifest: dict[str, Any],
    where: str,
    *,
    sample_shape: Sequence[int] | None = None,
    dtype: Any = None,
    shard_rows: int | None = None,
    settings: dict[str, Any] | None = None,
) -> None:
    """Raise :class:`StoreMismatchError` if a layer's manifest differs from the given (non-None) values."""
    m = manifest
    fix = "pass overwrite=True to start again, or store under another model name"
    if sample_shape is not None and tuple(m["sample_shape"]) != tuple(sample_shape):
        raise StoreMismatchError(
            f"{where} holds samples of shape {tuple(m['sample_shape'])}, "
            f"this run gives {tuple(sample_shape)}; {fix}"
        )
    if dtype is not None and np.dtype(m["dtype"]) != np.dtype(dtype):
        raise StoreMismatchError(
            f"{where} holds dtype {np.dtype(m['dtype'])}, this run gives {np.dtype(dtype)}; {fix}"
        )
    if shard_rows is not None and int(m["shard_rows"]) != int(shard_rows):
        raise StoreMismatchError(
            f"{where} was written with shard_rows={m['shard_rows']}, this run uses {shard_rows}; {fix}"
        )
    if settings is not None:
        settings = json.loads(json.dumps(settings, sort_keys=True, default=str))
        stored = m["settings"]
        diff = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
        if diff:
            detail = "; ".join(f"{k}: stored {stored.get(k)!r}, now {settings.get(k)!r}" for k in diff)
            raise StoreMismatchError(f"{where} was written with other settings ({detail}); {fix}")
