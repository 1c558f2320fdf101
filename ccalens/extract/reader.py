"""Reading one stored layer from its folder: shards checked against the manifest, row ranges, repair.

Everything here takes a layer folder (``root/<model>/<layer>``), never the store, so the catalogue
(:mod:`.catalogue`) and the writer (:mod:`.writer`) both build on it without an import circle.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import CorruptShardError
from .files import file_sha256
from .manifest import MANIFEST, read_manifest, write_manifest

__all__ = [
    "LayerReader",
    "ShardChecker",
    "Verify",
    "check_verify",
    "chunk_bounds",
    "delete_layer_files",
    "repair_layer",
    "require_complete",
]

Verify = Literal["once", "always", "never"]


def check_verify(verify: Any) -> Verify:
    if verify not in ("once", "always", "never"):
        raise ValueError(f"verify must be 'once', 'always' or 'never', got {verify!r}")
    return verify


class ShardChecker:
    """Opens the shard and ids files of layers, checking sizes, shapes, dtypes and (per ``verify``) sha256.

    Remembers the files whose checksum it verified (by path, mtime and size) so that ``verify="once"`` hashes
    each file once per checker.
    """

    def __init__(self) -> None:
        self.verified: set[tuple[str, int, int]] = set()

    def check_file(self, path: Path, nbytes: int, sha256: str, verify: Verify) -> None:
        if path.is_symlink():
            target = path.resolve()
            if target.parent != path.parent.resolve():
                raise CorruptShardError(path, f"is a symlink to {target}, outside the layer folder")
        try:
            st = path.stat()
        except FileNotFoundError:
            raise CorruptShardError(path, "file is missing") from None
        if st.st_size != nbytes:
            raise CorruptShardError(path, f"size is {st.st_size} bytes, the manifest says {nbytes} (truncated?)")
        token = (str(path), st.st_mtime_ns, st.st_size)
        if verify == "never" or (verify == "once" and token in self.verified):
            return
        actual = file_sha256(path)
        if actual != sha256:
            raise CorruptShardError(path, f"sha256 is {actual}, the manifest says {sha256}")
        self.verified.add(token)

    def shard(self, folder: Path, manifest: dict[str, Any], index: int, verify: Verify) -> np.ndarray:
        """Shard ``index``: ``(rows, *sample_shape)``, memory-mapped read-only."""
        entry = manifest["shards"][index]
        path = folder / entry["file"]
        shape = (int(entry["rows"]), *manifest["sample_shape"])
        self.check_file(path, entry["bytes"], entry["sha256"], verify)
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise CorruptShardError(path, f"cannot be read as .npy ({exc})") from None
        dtype = np.dtype(manifest["dtype"])
        if arr.shape != shape or arr.dtype != dtype:
            raise CorruptShardError(path, f"holds {arr.dtype}{list(arr.shape)}, the manifest says {dtype}{list(shape)}")
        return arr

    def ids(self, folder: Path, manifest: dict[str, Any], index: int, verify: Verify) -> np.ndarray:
        """Sample ids ``(rows,)`` of shard ``index``."""
        entry = manifest["shards"][index]
        path = folder / entry["ids_file"]
        self.check_file(path, entry["ids_bytes"], entry["ids_sha256"], verify)
        try:
            ids = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise CorruptShardError(path, f"cannot be read as .npy ({exc})") from None
        if ids.shape != (int(entry["rows"]),):
            raise CorruptShardError(path, f"holds {ids.shape[0] if ids.ndim else 0} ids for {entry['rows']} rows")
        return ids

    def corrupt(self, folder: Path, manifest: dict[str, Any], verify: Verify) -> list[tuple[int, CorruptShardError]]:
        """``(shard index, error)`` of every listed file that fails its checks."""
        bad = []
        for i in range(len(manifest["shards"])):
            for loader in (self.shard, self.ids):
                try:
                    loader(folder, manifest, i, verify)
                except CorruptShardError as exc:
                    bad.append((i, exc))
        return bad


def require_complete(manifest: dict[str, Any], label: str, allow_incomplete: bool) -> None:
    if not manifest["complete"] and not allow_incomplete:
        raise ValueError(
            f"{label} is incomplete ({manifest['n_samples']} samples stored; the "
            "extraction was interrupted). Run the same extraction again to resume it, or pass "
            "allow_incomplete=True to read what is there."
        )


class LayerReader:
    """Random access to row ranges of the layer in ``folder``, one memory-mapped shard at a time.

    ``label`` names the layer in messages (``"model/layer in root"``).
    """

    def __init__(
        self,
        folder: Path,
        *,
        verify: Verify,
        checker: ShardChecker,
        allow_incomplete: bool = False,
        label: str | None = None,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        self.folder = folder
        self.manifest = read_manifest(folder) if manifest is None else manifest
        require_complete(self.manifest, label or str(folder), allow_incomplete)
        self.verify = verify
        self.checker = checker
        self.starts = np.cumsum([0] + [int(s["rows"]) for s in self.manifest["shards"]])
        self.n = int(self.starts[-1])
        self.sample_shape = tuple(self.manifest["sample_shape"])
        self.dtype = np.dtype(self.manifest["dtype"])
        self._open: tuple[int, np.ndarray] | None = None
        self._open_ids: tuple[int, np.ndarray] | None = None

    def _shard(self, i: int) -> np.ndarray:
        if self._open is None or self._open[0] != i:
            self._open = None  # drop (unmap) the previous shard before mapping the next
            self._open = (i, self.checker.shard(self.folder, self.manifest, i, self.verify))
        return self._open[1]

    def _ids(self, i: int) -> np.ndarray:
        if self._open_ids is None or self._open_ids[0] != i:
            self._open_ids = (i, self.checker.ids(self.folder, self.manifest, i, self.verify))
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

    def all_ids(self) -> np.ndarray:
        """``(n,)`` ids of every row."""
        if self.n == 0:
            return np.empty(0, dtype=np.int64)
        return np.concatenate([self._ids(i) for i in range(len(self.starts) - 1)])

    def close(self) -> None:
        self._open = None
        self._open_ids = None


def delete_layer_files(folder: Path) -> None:
    """Remove a layer's folder, manifest first (a half-deleted layer is never read as valid); the caller holds
    its lock."""
    (folder / MANIFEST).unlink(missing_ok=True)
    if folder.is_dir():
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


def repair_layer(
    folder: Path, manifest: dict[str, Any], checker: ShardChecker, verify: Verify, fsync: bool, label: str
) -> dict[str, Any]:
    """Check the committed shards of a layer (sizes, and checksums per ``verify``); if some are corrupt, warn
    naming them and cut the layer back to the shards before the first bad one, incomplete, so that the next write
    extracts the rest again. The caller holds the layer's lock. Returns the (new) manifest."""
    bad = checker.corrupt(folder, manifest, verify)
    if not bad:
        return manifest
    first = bad[0][0]
    kept = manifest["shards"][:first]
    dropped = manifest["shards"][first:]
    n_kept = sum(int(s["rows"]) for s in kept)
    details = "; ".join(f"{exc.path.name} is corrupted ({exc.reason})" for _, exc in bad)
    warnings.warn(
        f"{label}: {details}. Rows {n_kept}..{manifest['n_samples']} (shards {first} onwards) are "
        "extracted again.",
        UserWarning,
        stacklevel=4,
    )
    manifest = {**manifest, "shards": kept, "n_samples": n_kept, "complete": False}
    write_manifest(folder, manifest, fsync)  # commit the cut first, then remove the files
    for entry in dropped:
        for key in ("file", "ids_file"):
            path = folder / entry[key]  # a plain name (checked): inside the folder; a symlink goes, not its target
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
    return manifest


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
