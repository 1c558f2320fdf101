"""On-disk activation store: shards plus a manifest, atomic writes, resumable, verified on read.

Layout, one folder per model and layer::

    root/<model>/<layer>/
        manifest.json        shapes, dtype, settings, per-shard rows / bytes / sha256, completion flag
        shard-000000.npy     (rows, *sample_shape) activations, plain .npy (np.load(mmap_mode="r") works)
        ids-000000.npy       (rows,) sample ids of the same rows (int64 or unicode)
        ...

Every file is written to a temporary name in the same folder and renamed into place (``os.replace``), and
the manifest is rewritten the same way after each shard: the manifest is the single source of truth, so a
process killed at any point leaves either the previous or the next consistent state, never a half-written
file that is believed. A shard or ids file listed in the manifest whose size or sha256 differs is reported
as :class:`CorruptShardError` naming the file. The manifest is data only: every field is checked on read, its
file entries must be plain names inside the layer folder (an absolute or ``../`` path, or a shard that is a symlink
out of the folder, is refused), and shards are loaded with ``allow_pickle=False``. A writer resuming a layer whose
committed shards are corrupted warns naming them and writes them (and the shards after them) again.

One writer per layer: a :class:`ShardWriter` holds an exclusive ``flock`` on ``root/<model>/.<layer>.lock``
until it is closed (or its process dies, which releases the lock), and a second writer of the same layer, in
this process or another, gets :class:`LayerLockedError` instead of interleaving shards. Deleting a layer
(:meth:`ActivationStore.delete`, ``overwrite=True``) takes the same lock first and deletes nothing while it is
held. Readers do not lock: they trust only what the manifest lists. On platforms without ``fcntl`` (Windows)
there is no lock.

This module does not import torch.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import mmap
import os
import platform
import socket
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ccalens.core.stats import SufficientStats

__all__ = [
    "ActivationStore",
    "CorruptShardError",
    "LayerInfo",
    "LayerLockedError",
    "SampleMismatchError",
    "ShardWriter",
    "StoreMismatchError",
    "aligned_batches",
    "check_compatible",
    "chunk_bounds",
    "stats_from_store",
]

FORMAT = "ccalens-activations"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DEFAULT_SHARD_BYTES = 64 * 1024 * 1024

Verify = Literal["once", "always", "never"]
Key = tuple[str, str]


class CorruptShardError(OSError):
    """A shard or ids file is missing, truncated, unreadable or fails its checksum. ``path`` names it."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"corrupted activation shard {self.path}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across Dask workers
        return (type(self), (self.path, self.reason))


class LayerLockedError(RuntimeError):
    """Another writer (this process or another) is writing the same layer."""


class _WriterLock:
    """Exclusive, non-blocking ``flock`` on a layer's lock file, released by :meth:`release` or process exit."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self._fd: int | None = None
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_NOFOLLOW: a lock file planted as a symlink must not truncate its target
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            kind = "is a symlink (not followed)" if path.is_symlink() else f"cannot be opened ({exc.strerror})"
            raise OSError(exc.errno, f"lock file {path} of {what} {kind}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LayerLockedError(
                f"{what} is being written by another writer ({holder}); wait for it to finish, or close it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class StoreMismatchError(ValueError):
    """Resuming or appending with settings (shape, dtype, model weights...) that differ from the store's."""


class SampleMismatchError(ValueError):
    """Sample ids (or their order or count) differ between representations that must be aligned."""


@dataclass(frozen=True)
class LayerInfo:
    """Summary of one stored layer."""

    model: str
    layer: str
    n_samples: int
    sample_shape: tuple[int, ...]
    dtype: np.dtype
    complete: bool
    n_shards: int
    path: Path


# ------------------------------------------------------------------------------------------- file helpers
def _check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    bad = [c for c in ("/", "\\", "\0") if c in value]
    if bad or value.startswith(".") or value != value.strip():
        raise ValueError(
            f"{what} {value!r} cannot be used as a folder name (no '/', '\\', NUL, leading '.' or "
            "surrounding spaces)"
        )
    return value


def _entry_name(value: Any) -> bool:
    """Whether a manifest's file entry is a plain file name (no folder part, not absolute, not hidden)."""
    return (
        isinstance(value, str)
        and bool(value)
        and not any(c in value for c in ("/", "\\", "\0"))
        and not value.startswith(".")
        and os.path.basename(value) == value
    )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _validate_manifest(manifest: Any, path: Path) -> dict[str, Any]:
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
            if not _entry_name(entry.get(key)):
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


def _write_manifest_file(folder: Path, manifest: dict[str, Any], fsync: bool) -> None:
    """Atomically replace ``folder/manifest.json`` (the commit point of every change to a layer)."""
    manifest["updated"] = _now()
    text = json.dumps(manifest, indent=1, sort_keys=True).encode()
    _atomic_write(folder / MANIFEST, [text], fsync)
    if fsync:
        _fsync_dir(folder)


def _npy_header(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(arr))
    return buf.getvalue()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, parts: Sequence[Any], fsync: bool) -> None:
    """Write the byte-like ``parts`` to ``path`` via a temporary file in the same folder and a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            for part in parts:
                fh.write(part)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_npy(path: Path, arr: np.ndarray, fsync: bool) -> tuple[int, str]:
    """Atomically write ``arr`` as .npy; returns (file size in bytes, sha256 of the whole file)."""
    arr = np.ascontiguousarray(arr)
    header = _npy_header(arr)
    digest = hashlib.sha256(header)
    data = memoryview(arr).cast("B") if arr.nbytes else b""
    digest.update(data)
    _atomic_write(path, [header, data], fsync)
    return len(header) + arr.nbytes, digest.hexdigest()


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return hashlib.sha256(b"").hexdigest()
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return hashlib.sha256(mm).hexdigest()  # hashlib releases the GIL on large buffers


def _normalise_ids(ids: Any, n: int, what: str = "sample ids") -> np.ndarray:
    """Ids as a 1-D int64 or unicode array of length ``n``."""
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


def _ids_kind(ids: np.ndarray) -> str:
    return "int" if ids.dtype.kind == "i" else "str"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------- the store
class ActivationStore:
    """Activations of models' layers on disk: ``root/<model>/<layer>/`` with shards and a manifest.

    Args:
        root: folder of the store (created on first write).
        verify: checksum policy when reading shards: ``"once"`` (default: sha256 of each shard the first
            time this object reads it), ``"always"`` (every read) or ``"never"`` (sizes, shapes and dtypes
            are still checked).
        fsync: flush files to the device before each rename (durable against power loss; default True).
    """

    def __init__(self, root: str | os.PathLike[str], *, verify: Verify = "once", fsync: bool = True) -> None:
        if verify not in ("once", "always", "never"):
            raise ValueError(f"verify must be 'once', 'always' or 'never', got {verify!r}")
        self.root = Path(root)
        self.verify_policy: Verify = verify
        self.fsync = bool(fsync)
        self._verified: set[tuple[str, int, int]] = set()

    def __repr__(self) -> str:
        return f"ActivationStore({str(self.root)!r})"

    def __getstate__(self) -> dict[str, Any]:  # sent to Dask workers without the verification cache
        return {"root": self.root, "verify_policy": self.verify_policy, "fsync": self.fsync}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.root = state["root"]
        self.verify_policy = state["verify_policy"]
        self.fsync = state["fsync"]
        self._verified = set()

    # ---------------------------------------------------------------- layout and metadata
    def layer_dir(self, model: str, layer: str) -> Path:
        """Folder of one model's layer."""
        return self.root / _check_name(model, "model") / _check_name(layer, "layer")

    def models(self) -> list[str]:
        """Models that have at least one layer in the store, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and any(p.glob(f"*/{MANIFEST}")))

    def layers(self, model: str) -> list[str]:
        """Stored layers of ``model``, sorted."""
        folder = self.root / _check_name(model, "model")
        if not folder.is_dir():
            return []
        return sorted(p.parent.name for p in folder.glob(f"*/{MANIFEST}"))

    def keys(self) -> list[Key]:
        """Every stored ``(model, layer)``."""
        return [(m, layer) for m in self.models() for layer in self.layers(m)]

    def __contains__(self, key: object) -> bool:
        if not (isinstance(key, tuple) and len(key) == 2):
            return False
        return (self.layer_dir(*key) / MANIFEST).is_file()

    def manifest(self, model: str, layer: str) -> dict[str, Any]:
        """The parsed manifest of a stored layer (raises ``KeyError`` listing what is stored if absent)."""
        path = self.layer_dir(model, layer) / MANIFEST
        try:
            text = path.read_text()
        except FileNotFoundError:
            stored = ", ".join(f"{m}/{lay}" for m, lay in self.keys()) or "nothing"
            raise KeyError(
                f"no layer {layer!r} of model {model!r} in {self.root} (it holds: {stored})"
            ) from None
        try:
            manifest = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise CorruptShardError(path, f"manifest is not valid JSON ({exc})") from None
        return _validate_manifest(manifest, path)

    def info(self, model: str, layer: str) -> LayerInfo:
        """Samples, shape, dtype, completion and shard count of a stored layer."""
        m = self.manifest(model, layer)
        return LayerInfo(
            model=model,
            layer=layer,
            n_samples=int(m["n_samples"]),
            sample_shape=tuple(m["sample_shape"]),
            dtype=np.dtype(m["dtype"]),
            complete=bool(m["complete"]),
            n_shards=len(m["shards"]),
            path=self.layer_dir(model, layer),
        )

    def delete(self, model: str, layer: str) -> None:
        """Remove a stored layer (manifest first, so a half-deleted layer is never read as valid).

        Takes the layer's writer lock first: while another writer holds it, :class:`LayerLockedError` is
        raised and nothing is deleted.
        """
        folder = self.layer_dir(model, layer)
        if not folder.is_dir():
            return
        lock = self._lock_layer(model, layer)
        try:
            self._delete_files(model, layer)
        finally:
            lock.release()

    def _lock_layer(self, model: str, layer: str) -> _WriterLock:
        """The exclusive writer lock of a layer (:class:`LayerLockedError` if another writer holds it)."""
        folder = self.layer_dir(model, layer)
        return _WriterLock(folder.parent / f".{layer}.lock", f"{model}/{layer} in {self.root}")

    def _delete_files(self, model: str, layer: str) -> None:
        """Remove a layer's folder; the caller holds its lock."""
        folder = self.layer_dir(model, layer)
        (folder / MANIFEST).unlink(missing_ok=True)
        if folder.is_dir():
            for p in folder.iterdir():
                p.unlink()
            folder.rmdir()

    def _repair(self, model: str, layer: str, manifest: dict[str, Any]) -> dict[str, Any]:
        """Check the committed shards of a layer (sizes, and checksums per the verify policy); if some are corrupt,
        warn naming them and cut the layer back to the shards before the first bad one, incomplete, so that the
        next write extracts the rest again. The caller holds the layer's lock. Returns the (new) manifest."""
        folder = self.layer_dir(model, layer)
        verify = self.verify_policy
        bad: list[tuple[int, CorruptShardError]] = []
        for i in range(len(manifest["shards"])):
            for loader in (self._shard, self._shard_ids):
                try:
                    loader(folder, manifest, i, verify)
                except CorruptShardError as exc:
                    bad.append((i, exc))
        if not bad:
            return manifest
        first = bad[0][0]
        kept = manifest["shards"][:first]
        dropped = manifest["shards"][first:]
        n_kept = sum(int(s["rows"]) for s in kept)
        details = "; ".join(f"{exc.path.name} is corrupted ({exc.reason})" for _, exc in bad)
        warnings.warn(
            f"{model}/{layer}: {details}. Rows {n_kept}..{manifest['n_samples']} (shards {first} onwards) are "
            "extracted again.",
            UserWarning,
            stacklevel=3,
        )
        manifest = {**manifest, "shards": kept, "n_samples": n_kept, "complete": False}
        _write_manifest_file(folder, manifest, self.fsync)  # commit the cut first, then remove the files
        for entry in dropped:
            for key in ("file", "ids_file"):
                path = folder / entry[key]  # a plain name (checked): inside the folder; a symlink goes, not its target
                if path.is_symlink() or path.is_file():
                    path.unlink(missing_ok=True)
        return manifest

    # ---------------------------------------------------------------- writing
    def writer(
        self,
        model: str,
        layer: str,
        *,
        sample_shape: Sequence[int],
        dtype: Any,
        shard_rows: int | None = None,
        settings: dict[str, Any] | None = None,
        overwrite: bool = False,
    ) -> ShardWriter:
        """A :class:`ShardWriter` that creates the layer, or resumes it if a compatible one exists."""
        return ShardWriter(
            self,
            model,
            layer,
            sample_shape=sample_shape,
            dtype=dtype,
            shard_rows=shard_rows,
            settings=settings,
            overwrite=overwrite,
        )

    def write_array(
        self,
        model: str,
        layer: str,
        array: Any,
        sample_ids: Any = None,
        *,
        shard_rows: int | None = None,
        settings: dict[str, Any] | None = None,
        overwrite: bool = False,
    ) -> LayerInfo:
        """Store an in-memory array ``(n, *sample_shape)`` (ids default to ``0..n-1``) as a complete layer."""
        arr = np.asarray(array)
        if arr.ndim < 1 or arr.shape[0] == 0:
            raise ValueError(f"array must have at least one sample along axis 0, got shape {arr.shape}")
        ids = np.arange(arr.shape[0]) if sample_ids is None else sample_ids
        ids = _normalise_ids(ids, arr.shape[0])
        with self.writer(
            model,
            layer,
            sample_shape=arr.shape[1:],
            dtype=arr.dtype,
            shard_rows=shard_rows,
            settings=settings,
            overwrite=overwrite,
        ) as w:
            w.write(0, arr, ids)
        return self.info(model, layer)

    # ---------------------------------------------------------------- reading
    def _check_shard_file(self, path: Path, nbytes: int, sha256: str, verify: Verify) -> None:
        if path.is_symlink():
            target = path.resolve()
            if target.parent != path.parent.resolve():
                raise CorruptShardError(path, f"is a symlink to {target}, outside the layer folder")
        try:
            st = path.stat()
        except FileNotFoundError:
            raise CorruptShardError(path, "file is missing") from None
        if st.st_size != nbytes:
            raise CorruptShardError(
                path, f"size is {st.st_size} bytes, the manifest says {nbytes} (truncated?)"
            )
        token = (str(path), st.st_mtime_ns, st.st_size)
        if verify == "never" or (verify == "once" and token in self._verified):
            return
        actual = _file_sha256(path)
        if actual != sha256:
            raise CorruptShardError(path, f"sha256 is {actual}, the manifest says {sha256}")
        self._verified.add(token)

    def _open_npy(
        self, path: Path, nbytes: int, sha256: str, verify: Verify, shape: tuple[int, ...], dtype: Any
    ):
        self._check_shard_file(path, nbytes, sha256, verify)
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise CorruptShardError(path, f"cannot be read as .npy ({exc})") from None
        if arr.shape != shape or arr.dtype != np.dtype(dtype):
            raise CorruptShardError(
                path, f"holds {arr.dtype}{list(arr.shape)}, the manifest says {np.dtype(dtype)}{list(shape)}"
            )
        return arr

    def _shard(self, folder: Path, manifest: dict[str, Any], index: int, verify: Verify) -> np.ndarray:
        entry = manifest["shards"][index]
        shape = (int(entry["rows"]), *manifest["sample_shape"])
        return self._open_npy(
            folder / entry["file"], entry["bytes"], entry["sha256"], verify, shape, manifest["dtype"]
        )

    def _shard_ids(self, folder: Path, manifest: dict[str, Any], index: int, verify: Verify) -> np.ndarray:
        entry = manifest["shards"][index]
        path = folder / entry["ids_file"]
        self._check_shard_file(path, entry["ids_bytes"], entry["ids_sha256"], verify)
        try:
            ids = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise CorruptShardError(path, f"cannot be read as .npy ({exc})") from None
        if ids.shape != (int(entry["rows"]),):
            raise CorruptShardError(
                path, f"holds {ids.shape[0] if ids.ndim else 0} ids for {entry['rows']} rows"
            )
        return ids

    def _resolve_verify(self, verify: Verify | None) -> Verify:
        v = self.verify_policy if verify is None else verify
        if v not in ("once", "always", "never"):
            raise ValueError(f"verify must be 'once', 'always', 'never' or None, got {v!r}")
        return v

    def _require_complete(
        self, model: str, layer: str, manifest: dict[str, Any], allow_incomplete: bool
    ) -> None:
        if not manifest["complete"] and not allow_incomplete:
            raise ValueError(
                f"{model}/{layer} in {self.root} is incomplete ({manifest['n_samples']} samples stored; the "
                "extraction was interrupted). Run the same extraction again to resume it, or pass "
                "allow_incomplete=True to read what is there."
            )

    def sample_ids(self, model: str, layer: str, *, allow_incomplete: bool = False) -> np.ndarray:
        """``(n,)`` sample ids of a stored layer, in storage order."""
        manifest = self.manifest(model, layer)
        self._require_complete(model, layer, manifest, allow_incomplete)
        folder = self.layer_dir(model, layer)
        parts = [
            self._shard_ids(folder, manifest, i, self.verify_policy) for i in range(len(manifest["shards"]))
        ]
        if not parts:
            return np.empty(0, dtype=np.int64)
        return np.concatenate(parts)

    def iter_batches(
        self,
        model: str,
        layer: str,
        batch_size: int | None = None,
        *,
        with_ids: bool = False,
        verify: Verify | None = None,
        allow_incomplete: bool = False,
    ) -> Iterator[Any]:
        """Yield ``(rows, *sample_shape)`` arrays read shard by shard (memory-mapped, read-only).

        ``batch_size=None`` yields one array per shard (a view of the mapped file, no copy); an integer
        yields batches of that many rows (the last may be shorter; a batch spanning two shards is a copy).
        ``with_ids=True`` yields ``(array, ids)`` pairs.
        """
        reader = _LayerReader(
            self, model, layer, verify=self._resolve_verify(verify), allow_incomplete=allow_incomplete
        )
        bounds = chunk_bounds([reader.starts], reader.n, batch_size)
        for start, stop in itertools.pairwise(bounds):
            if with_ids:
                yield reader.read(start, stop), reader.read_ids(start, stop)
            else:
                yield reader.read(start, stop)

    def load(self, model: str, layer: str, *, allow_incomplete: bool = False) -> np.ndarray:
        """The whole stored layer as one in-memory array ``(n, *sample_shape)`` (small layers only)."""
        reader = _LayerReader(
            self, model, layer, verify=self.verify_policy, allow_incomplete=allow_incomplete
        )
        return (
            np.array(reader.read(0, reader.n))
            if reader.n
            else np.empty((0, *reader.sample_shape), reader.dtype)
        )

    def verify(self, model: str | None = None, layer: str | None = None) -> list[Path]:
        """Check every listed file's sha256; returns the files checked or raises naming every bad one."""
        keys = (
            self.keys()
            if model is None
            else [(model, lay) for lay in ([layer] if layer else self.layers(model))]
        )
        checked: list[Path] = []
        bad: list[CorruptShardError] = []
        for m, lay in keys:
            manifest = self.manifest(m, lay)
            folder = self.layer_dir(m, lay)
            for i in range(len(manifest["shards"])):
                for loader in (self._shard, self._shard_ids):
                    try:
                        loader(folder, manifest, i, "always")
                    except CorruptShardError as exc:
                        bad.append(exc)
                entry = manifest["shards"][i]
                checked += [folder / entry["file"], folder / entry["ids_file"]]
        if len(bad) == 1:
            raise bad[0]
        if bad:
            lines = "\n  ".join(str(e) for e in bad)
            raise CorruptShardError(bad[0].path, f"and {len(bad) - 1} more file(s) are corrupted:\n  {lines}")
        return checked


# ------------------------------------------------------------------------------------------- writer
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


class ShardWriter:
    """Appends rows of one layer into shards; resumes a compatible interrupted layer.

    Rows are addressed by their global position: :meth:`write` ``(start, array, ids)`` stores rows
    ``start .. start + len(array)``. Rows already committed by an earlier (interrupted) run are not
    written again, but their ids are checked against the stored ones, so resuming with data in another
    order is an error rather than silent misalignment. Use as a context manager: leaving the block
    normally flushes the last partial shard and marks the layer complete; leaving it with an exception
    keeps only the shards already committed (the buffered rows are dropped), ready to resume.

    The layer's lock is taken before anything is read or deleted (``lock`` hands over one already taken with
    ``store._lock_layer``; the writer releases it when it ends). On resume the committed shards are checked
    (per the store's verify policy); corrupted ones, and those after them, are dropped with a warning and
    must be written again.
    """

    def __init__(
        self,
        store: ActivationStore,
        model: str,
        layer: str,
        *,
        sample_shape: Sequence[int],
        dtype: Any,
        shard_rows: int | None = None,
        settings: dict[str, Any] | None = None,
        overwrite: bool = False,
        lock: _WriterLock | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.layer = layer
        self.folder = store.layer_dir(model, layer)
        if lock is not None and lock.path != self.folder.parent / f".{layer}.lock":
            raise ValueError(f"lock {lock.path} is not the lock of {model}/{layer}")
        # taken (or handed over, already taken) before anything is read, deleted or written
        self._lock = lock if lock is not None else store._lock_layer(model, layer)
        try:
            self._open(sample_shape, dtype, shard_rows, settings, overwrite)
        except BaseException:
            self._lock.release()
            raise

    def _open(
        self,
        sample_shape: Sequence[int],
        dtype: Any,
        shard_rows: int | None,
        settings: dict[str, Any] | None,
        overwrite: bool,
    ) -> None:
        store, model, layer = self.store, self.model, self.layer
        self.sample_shape = tuple(int(s) for s in sample_shape)
        if any(s < 0 for s in self.sample_shape):
            raise ValueError(f"sample_shape must be non-negative, got {self.sample_shape}")
        self.dtype = np.dtype(dtype)
        if self.dtype.kind not in "fiub" or self.dtype.hasobject:
            raise TypeError(f"dtype must be a numeric dtype, got {self.dtype}")
        manifest_path = self.folder / MANIFEST
        if overwrite and self.folder.is_dir():
            store._delete_files(model, layer)  # under the lock taken in __init__
        existing = store.manifest(model, layer) if manifest_path.exists() else None
        row_bytes = max(1, int(np.prod(self.sample_shape, dtype=np.int64)) * self.dtype.itemsize)
        if shard_rows is None:
            shard_rows = int(existing["shard_rows"]) if existing else max(1, DEFAULT_SHARD_BYTES // row_bytes)
        if not isinstance(shard_rows, (int, np.integer)) or isinstance(shard_rows, bool) or shard_rows < 1:
            raise ValueError(f"shard_rows must be a positive integer, got {shard_rows!r}")
        self.shard_rows = int(shard_rows)
        self.settings = json.loads(json.dumps(settings or {}, sort_keys=True, default=str))

        if existing is not None:
            check_compatible(
                existing,
                f"{model}/{layer} in {store.root}",
                sample_shape=self.sample_shape,
                dtype=self.dtype,
                shard_rows=self.shard_rows,
                settings=self.settings,
            )
            self.manifest = store._repair(model, layer, existing)
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.manifest = {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "model": model,
                "layer": layer,
                "sample_shape": list(self.sample_shape),
                "dtype": self.dtype.str,
                "ids_kind": None,
                "shard_rows": self.shard_rows,
                "settings": self.settings,
                "n_samples": 0,
                "complete": False,
                "shards": [],
                "created": _now(),
                "updated": _now(),
                "creator": {
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "python": platform.python_version(),
                    "numpy": np.__version__,
                },
            }
            self._write_manifest()
        self._remove_stale_files()
        self.n_committed = int(self.manifest["n_samples"])
        self._starts = np.cumsum([0] + [int(s["rows"]) for s in self.manifest["shards"]])
        self._buffer = np.empty((self.shard_rows, *self.sample_shape), dtype=self.dtype)
        self._buffer_ids: list[np.ndarray] = []
        self._buffered = 0
        self._ids_cache: tuple[int, np.ndarray] | None = None
        self._closed = False

    # ---------------------------------------------------------------- state
    @property
    def n_rows(self) -> int:
        """Rows written so far (committed + buffered)."""
        return self.n_committed + self._buffered

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    def _remove_stale_files(self) -> None:
        """Delete temporary files and shards that no manifest entry lists (left by a killed run)."""
        listed = (
            {MANIFEST}
            | {s["file"] for s in self.manifest["shards"]}
            | {s["ids_file"] for s in self.manifest["shards"]}
        )
        for p in self.folder.iterdir():
            stale_tmp = p.name.startswith(".") and p.name.endswith(".tmp")
            orphan = p.name.startswith(("shard-", "ids-")) and p.name not in listed
            if (stale_tmp or orphan) and p.is_file():
                p.unlink(missing_ok=True)

    def _write_manifest(self) -> None:
        _write_manifest_file(self.folder, self.manifest, self.store.fsync)

    def _stored_ids(self, start: int, stop: int) -> np.ndarray:
        parts = []
        row = start
        while row < stop:
            i = int(np.searchsorted(self._starts, row, side="right")) - 1
            if self._ids_cache is None or self._ids_cache[0] != i:
                self._ids_cache = (
                    i,
                    self.store._shard_ids(self.folder, self.manifest, i, self.store.verify_policy),
                )
            lo = int(self._starts[i])
            hi = min(stop, int(self._starts[i + 1]))
            parts.append(self._ids_cache[1][row - lo : hi - lo])
            row = hi
        return np.concatenate(parts)

    # ---------------------------------------------------------------- writing
    def write(self, start: int, array: Any, ids: Any) -> None:
        """Store rows ``start .. start + len(ids)``; ``array: (rows, *sample_shape)`` or None.

        ``array`` may be None only when every row is already committed (resume: ids are checked only).
        """
        if self._closed:
            raise RuntimeError(f"writer for {self.model}/{self.layer} is closed")
        n = int(np.shape(ids)[0]) if np.ndim(ids) else -1
        ids = _normalise_ids(ids, n)
        if self.manifest["ids_kind"] not in (None, _ids_kind(ids)):
            raise SampleMismatchError(
                f"{self.model}/{self.layer} stores {self.manifest['ids_kind']} sample ids, "
                f"got {_ids_kind(ids)} ids"
            )
        stop = start + n
        if not 0 <= start <= self.n_rows:
            raise ValueError(f"rows must be written in order: next row is {self.n_rows}, got start={start}")
        # rows already committed (by this or an interrupted earlier run): check their ids, do not rewrite
        overlap = max(0, min(stop, self.n_committed) - start)
        if overlap > 0:
            stored = self._stored_ids(start, start + overlap)
            given = ids[:overlap]
            if stored.dtype.kind != given.dtype.kind or not np.array_equal(stored, given):
                k = int(np.argmax(stored != given)) if stored.dtype.kind == given.dtype.kind else 0
                raise SampleMismatchError(
                    f"{self.model}/{self.layer}: sample id at row {start + k} is {given[k].item()!r} but "
                    f"the store (from an earlier run) has {stored[k].item()!r}. The data order changed since "
                    "the interrupted run; resume with the same data in the same order or pass overwrite=True."
                )
        if start + overlap < stop and start + overlap != self.n_rows:
            raise ValueError(
                f"rows must be written in order: next row is {self.n_rows}, "
                f"got rows {start + overlap}..{stop}"
            )
        if overlap >= n:
            return
        if self.complete:
            raise ValueError(
                f"{self.model}/{self.layer} is already complete with {self.n_committed} samples, but the "
                f"data yields more (row {self.n_committed} onwards); pass overwrite=True to extract again"
            )
        if array is None:
            raise ValueError(f"rows {self.n_committed}..{stop} are not stored yet: array is required")
        arr = np.asarray(array)
        if arr.shape != (n, *self.sample_shape):
            raise ValueError(
                f"array for {self.model}/{self.layer} must have shape {(n, *self.sample_shape)}, "
                f"got {arr.shape}"
            )
        arr, ids = arr[overlap:], ids[overlap:]
        if self.manifest["ids_kind"] is None:
            self.manifest["ids_kind"] = _ids_kind(ids)
        pos = 0
        while pos < len(ids):
            take = min(len(ids) - pos, self.shard_rows - self._buffered)
            self._buffer[self._buffered : self._buffered + take] = arr[pos : pos + take]
            self._buffer_ids.append(ids[pos : pos + take])
            self._buffered += take
            pos += take
            if self._buffered == self.shard_rows:
                self._flush()

    def _flush(self) -> None:
        if self._buffered == 0:
            return
        index = len(self.manifest["shards"])
        shard_name, ids_name = f"shard-{index:06d}.npy", f"ids-{index:06d}.npy"
        nbytes, sha = _write_npy(self.folder / shard_name, self._buffer[: self._buffered], self.store.fsync)
        ids = np.concatenate(self._buffer_ids)
        ids_bytes, ids_sha = _write_npy(self.folder / ids_name, ids, self.store.fsync)
        self.manifest["shards"].append(
            {
                "file": shard_name,
                "rows": self._buffered,
                "bytes": nbytes,
                "sha256": sha,
                "ids_file": ids_name,
                "ids_bytes": ids_bytes,
                "ids_sha256": ids_sha,
            }
        )
        self.manifest["n_samples"] = self.n_committed + self._buffered
        self._write_manifest()  # the commit point
        self.n_committed += self._buffered
        self._starts = np.append(self._starts, self.n_committed)
        self._buffered = 0
        self._buffer_ids = []

    def close(self, complete: bool = True) -> None:
        """Flush the last partial shard; with ``complete=True`` also mark the layer complete. Releases the lock."""
        if self._closed:
            return
        try:
            self._flush()
            if complete and not self.complete:
                if self.n_committed == 0:
                    raise ValueError(f"no samples were written to {self.model}/{self.layer}")
                self.manifest["complete"] = True
                self._write_manifest()
        finally:
            self._closed = True
            self._buffer = np.empty((0, *self.sample_shape), dtype=self.dtype)
            self._lock.release()

    def finish(self, n_total: int) -> None:
        """Close as complete after checking that the run produced exactly ``n_total`` rows."""
        if self.complete and n_total != self.n_committed:
            raise SampleMismatchError(
                f"{self.model}/{self.layer} is complete with {self.n_committed} samples but the data yielded "
                f"{n_total}; pass overwrite=True to extract again"
            )
        if n_total != self.n_rows:
            raise SampleMismatchError(
                f"{self.model}/{self.layer} received {self.n_rows} rows but the data yielded {n_total}"
            )
        self.close(complete=True)

    def abort(self) -> None:
        """Drop buffered rows; keep committed shards for a later resume. Releases the lock."""
        self._buffered = 0
        self._buffer_ids = []
        self._closed = True
        self._lock.release()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close(complete=True)
        else:
            self.abort()


# ------------------------------------------------------------------------------------------- reading
class _LayerReader:
    """Random access to row ranges of one stored layer, one memory-mapped shard at a time."""

    def __init__(
        self, store: ActivationStore, model: str, layer: str, *, verify: Verify, allow_incomplete: bool
    ) -> None:
        self.store = store
        self.model, self.layer = model, layer
        self.manifest = store.manifest(model, layer)
        store._require_complete(model, layer, self.manifest, allow_incomplete)
        self.folder = store.layer_dir(model, layer)
        self.verify = verify
        self.starts = np.cumsum([0] + [int(s["rows"]) for s in self.manifest["shards"]])
        self.n = int(self.starts[-1])
        self.sample_shape = tuple(self.manifest["sample_shape"])
        self.dtype = np.dtype(self.manifest["dtype"])
        self._open: tuple[int, np.ndarray] | None = None
        self._open_ids: tuple[int, np.ndarray] | None = None

    def _shard(self, i: int) -> np.ndarray:
        if self._open is None or self._open[0] != i:
            self._open = None  # drop (unmap) the previous shard before mapping the next
            self._open = (i, self.store._shard(self.folder, self.manifest, i, self.verify))
        return self._open[1]

    def _ids(self, i: int) -> np.ndarray:
        if self._open_ids is None or self._open_ids[0] != i:
            self._open_ids = (i, self.store._shard_ids(self.folder, self.manifest, i, self.verify))
        return self._open_ids[1]

    def _read(self, start: int, stop: int, get: Callable[[int], np.ndarray]) -> np.ndarray:
        if not 0 <= start <= stop <= self.n:
            raise IndexError(f"rows {start}:{stop} out of range for {self.n} samples")
        parts = []
        row = start
        while row < stop or not parts:
            i = min(int(np.searchsorted(self.starts, row, side="right")) - 1, len(self.starts) - 2)
            lo, hi = int(self.starts[i]), min(stop, int(self.starts[i + 1]))
            parts.append(get(i)[row - lo : hi - lo])
            row = hi
            if start == stop:
                break
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (a read-only memory-mapped view when they lie in one shard)."""
        return self._read(start, stop, self._shard)

    def read_ids(self, start: int, stop: int) -> np.ndarray:
        return self._read(start, stop, self._ids)

    def close(self) -> None:
        self._open = None
        self._open_ids = None


def chunk_bounds(
    shard_starts: Iterable[np.ndarray], n: int, batch_size: int | None = None, max_rows: int | None = None
) -> np.ndarray:
    """Row boundaries ``[0, ..., n]`` of the chunks to read.

    With ``batch_size=None`` the chunks are the union of every layer's shard boundaries, so each chunk lies
    inside one shard of every layer (no copies), split further into pieces of at most ``max_rows``;
    otherwise fixed chunks of ``batch_size`` rows.
    """
    if batch_size is not None:
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        bounds = np.arange(0, n, int(batch_size), dtype=np.int64)
    else:
        bounds = np.unique(np.concatenate([np.asarray(s, dtype=np.int64) for s in shard_starts] + [[0]]))
        bounds = bounds[bounds < n]
        if max_rows is not None:
            ends = np.append(bounds[1:], n)
            bounds = np.concatenate(
                [np.arange(lo, hi, max_rows, dtype=np.int64) for lo, hi in zip(bounds, ends, strict=True)]
            )
    return np.append(bounds, n).astype(np.int64)


# float64 work buffer of the engine per chunk (rows x total features x 8 bytes) when batch_size is None
STATS_CHUNK_BYTES = 128 * 1024 * 1024


def stats_chunk_rows(readers: Sequence[_LayerReader]) -> int:
    """Rows per chunk so that the engine's float64 buffer stays near :data:`STATS_CHUNK_BYTES`."""
    features = sum(int(np.prod(r.sample_shape, dtype=np.int64)) for r in readers)
    return max(256, STATS_CHUNK_BYTES // (8 * max(1, features)))


def _normalise_keys(keys: Any) -> list[Key]:
    if isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys):
        keys = [keys]
    try:
        out = [tuple(k) for k in keys]
    except TypeError:
        raise TypeError(f"keys must be a list of (model, layer) pairs, got {keys!r}") from None
    if not out or not all(len(k) == 2 and all(isinstance(s, str) for s in k) for k in out):
        raise TypeError(f"keys must be a non-empty list of (model, layer) string pairs, got {keys!r}")
    return out  # type: ignore[return-value]


def _check_aligned(store: ActivationStore, keys: Sequence[Key], readers: Sequence[_LayerReader]) -> None:
    """Raise :class:`SampleMismatchError` naming the first difference in counts or ids."""
    first = readers[0]
    ref = store.sample_ids(*keys[0])
    for key, reader in zip(keys[1:], readers[1:], strict=True):
        if reader.n != first.n:
            raise SampleMismatchError(
                f"{key[0]}/{key[1]} has {reader.n} samples but {keys[0][0]}/{keys[0][1]} has {first.n}: "
                "representations must hold the same samples in the same order"
            )
        ids = store.sample_ids(*key)
        if ids.dtype.kind != ref.dtype.kind or not np.array_equal(ids, ref):
            k = int(np.argmax(ids != ref)) if ids.dtype.kind == ref.dtype.kind else 0
            raise SampleMismatchError(
                f"sample ids differ between {keys[0][0]}/{keys[0][1]} and {key[0]}/{key[1]}: first at "
                f"row {k} ({ref[k].item()!r} vs {ids[k].item()!r}). Extract both with the same data in the "
                "same order (no shuffling)."
            )


def _apply_transform(
    arr: np.ndarray, key: Key, transform: Callable[[np.ndarray], np.ndarray] | None
) -> np.ndarray:
    if transform is not None:
        arr = transform(arr)
    elif arr.ndim > 2:
        raise ValueError(
            f"{key[0]}/{key[1]} stores samples of shape {arr.shape[1:]} (a conv map?); the statistics need "
            "(n, features): pass transform=, e.g. lambda a: a.reshape(len(a), -1) to flatten, or "
            "lambda a: a.mean(axis=(2, 3)) to pool"
        )
    elif arr.ndim == 1:
        arr = arr[:, None]
    return arr


def _transforms(transform: Any, n_keys: int) -> list[Callable[[np.ndarray], np.ndarray] | None]:
    if transform is None or callable(transform):
        return [transform] * n_keys
    ts = list(transform)
    if len(ts) != n_keys or not all(t is None or callable(t) for t in ts):
        raise TypeError(
            f"transform must be None, a callable, or one callable/None per key ({n_keys}), got {transform!r}"
        )
    return ts


def aligned_batches(
    store: ActivationStore,
    keys: Sequence[Key],
    batch_size: int | None = None,
    *,
    with_ids: bool = False,
    verify: Verify | None = None,
    transform: Any = None,
    progress: bool = False,
    max_rows: int | None = None,
) -> Iterator[tuple[np.ndarray, ...]]:
    """Iterate over stored layers in lockstep: tuples ``(X_1 batch, ..., X_L batch)`` of the same rows.

    The sample ids of every layer are compared with the first one's before anything is read (a
    :class:`SampleMismatchError` names the first differing row). ``transform`` (a callable, or one per key)
    maps each raw batch ``(rows, *sample_shape)``; without it, batches keep their stored shape.
    ``with_ids=True`` appends the ids of the rows as the last element of each tuple. ``max_rows`` caps
    the rows of a chunk when ``batch_size`` is None (default: whole shard-aligned chunks).
    """
    keys = _normalise_keys(keys)
    v = store._resolve_verify(verify)
    readers = [_LayerReader(store, m, lay, verify=v, allow_incomplete=False) for m, lay in keys]
    _check_aligned(store, keys, readers)
    transforms = _transforms(transform, len(keys))
    bounds = chunk_bounds([r.starts for r in readers], readers[0].n, batch_size, max_rows=max_rows)
    pairs: Iterable[tuple[int, int]] = itertools.pairwise(bounds)
    if progress:
        from tqdm.auto import tqdm

        pairs = tqdm(pairs, total=len(bounds) - 1, desc="reading store", unit="chunk")
    try:
        for start, stop in pairs:
            out = [
                r.read(start, stop) if t is None else t(r.read(start, stop))
                for r, t in zip(readers, transforms, strict=True)
            ]
            if with_ids:
                out.append(readers[0].read_ids(start, stop))
            yield tuple(out)
    finally:
        for r in readers:
            r.close()


def stats_from_store(
    store: ActivationStore,
    keys: Sequence[Key],
    *,
    batch_size: int | None = None,
    transform: Any = None,
    verify: Verify | None = None,
    progress: bool = True,
) -> SufficientStats:
    """Streaming :class:`SufficientStats` of stored layers ``[(model, layer), ...]`` (checked aligned).

    Reads one chunk of rows at a time (by default shard-aligned chunks whose float64 work buffer is about
    128 MB; ``batch_size`` rows otherwise), so memory stays bounded by about one shard per layer plus that
    buffer, whatever the number of samples. Representation ``i`` of the result is ``keys[i]``. Samples
    with more than one axis (conv maps ``(C, H, W)``) need ``transform`` (a callable or one per key)
    returning ``(rows, features)``.
    """
    keys = _normalise_keys(keys)
    transforms = _transforms(transform, len(keys))
    stats = SufficientStats()
    names = tuple(f"{m}/{lay}" for m, lay in keys)
    probe = [_LayerReader(store, m, lay, verify="never", allow_incomplete=True) for m, lay in keys]
    max_rows = stats_chunk_rows(probe)
    batches = aligned_batches(store, keys, batch_size, verify=verify, progress=progress, max_rows=max_rows)
    for batch in batches:
        blocks = [_apply_transform(b, k, t) for b, k, t in zip(batch, keys, transforms, strict=True)]
        stats.update(*blocks, names=names)
    if stats.n_samples == 0:
        raise ValueError(f"no samples stored for {names}")
    return stats
