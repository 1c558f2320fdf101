"""Writing one layer into its folder: rows buffered into shards, each committed by a manifest rewrite; resume.

A :class:`ShardWriter` takes a layer folder (``root/<model>/<layer>``), not the store. It holds the layer's
exclusive lock (:func:`.files.layer_lock`) from before anything is read or deleted until it ends.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SampleMismatchError
from .files import WriterLock, layer_lock, lock_path, write_npy
from .ids import compare_ids, ids_kind, normalise_ids
from .manifest import DEFAULT_SHARD_BYTES, MANIFEST, check_compatible, new_manifest, read_manifest, write_manifest
from .reader import ShardChecker, Verify, delete_layer_files, repair_layer

__all__ = ["ShardWriter"]


class ShardWriter:
    """Appends rows of the layer in ``folder`` into shards; resumes a compatible interrupted layer.

    Rows are addressed by their global position: :meth:`write` ``(start, array, ids)`` stores rows
    ``start .. start + len(array)``. Rows already committed by an earlier (interrupted) run are not
    written again, but their ids are checked against the stored ones, so resuming with data in another
    order is an error rather than silent misalignment. Use as a context manager: leaving the block
    normally flushes the last partial shard and marks the layer complete; leaving it with an exception
    keeps only the shards already committed (the buffered rows are dropped), ready to resume.

    The layer's lock is taken before anything is read or deleted (``lock`` hands over one already taken with
    :func:`.files.layer_lock`; the writer releases it when it ends). On resume the committed shards are checked
    (per ``verify``); corrupted ones, and those after them, are dropped with a warning and must be written again.
    ``sample_shape`` and ``dtype`` may be None when the layer exists (resume): the stored ones are used.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        sample_shape: Sequence[int] | None,
        dtype: Any,
        shard_rows: int | None = None,
        settings: dict[str, Any] | None = None,
        overwrite: bool = False,
        lock: WriterLock | None = None,
        fsync: bool = True,
        verify: Verify = "once",
        checker: ShardChecker | None = None,
        where: str | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.model, self.layer = self.folder.parent.name, self.folder.name
        self.fsync = fsync
        self.verify: Verify = verify
        self.checker = checker if checker is not None else ShardChecker()
        self.where = where or f"{self.model}/{self.layer} in {self.folder.parent.parent}"
        if lock is not None and lock.path != lock_path(self.folder):
            raise ValueError(f"lock {lock.path} is not the lock of {self.model}/{self.layer}")
        # taken (or handed over, already taken) before anything is read, deleted or written
        self._lock = lock if lock is not None else layer_lock(self.folder, self.where)
        try:
            self._open(sample_shape, dtype, shard_rows, settings, overwrite)
        except BaseException:
            self._lock.release()
            raise

    def _open(
        self,
        sample_shape: Sequence[int] | None,
        dtype: Any,
        shard_rows: int | None,
        settings: dict[str, Any] | None,
        overwrite: bool,
    ) -> None:
        if overwrite and self.folder.is_dir():
            delete_layer_files(self.folder)  # under the lock taken in __init__
        existing = read_manifest(self.folder) if (self.folder / MANIFEST).exists() else None
        if sample_shape is None or dtype is None:
            if existing is None:
                raise ValueError(f"{self.where} is not stored yet: sample_shape and dtype are required")
            sample_shape = existing["sample_shape"] if sample_shape is None else sample_shape
            dtype = existing["dtype"] if dtype is None else dtype
        self.sample_shape = tuple(int(s) for s in sample_shape)
        if any(s < 0 for s in self.sample_shape):
            raise ValueError(f"sample_shape must be non-negative, got {self.sample_shape}")
        self.dtype = np.dtype(dtype)
        if self.dtype.kind not in "fiub" or self.dtype.hasobject:
            raise TypeError(f"dtype must be a numeric dtype, got {self.dtype}")
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
                self.where,
                sample_shape=self.sample_shape,
                dtype=self.dtype,
                shard_rows=self.shard_rows,
                settings=self.settings,
            )
            label = f"{self.model}/{self.layer}"
            self.manifest = repair_layer(self.folder, existing, self.checker, self.verify, self.fsync, label)
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.manifest = new_manifest(
                self.model, self.layer, self.sample_shape, self.dtype, self.shard_rows, self.settings
            )
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
        write_manifest(self.folder, self.manifest, self.fsync)

    def _stored_ids(self, start: int, stop: int) -> np.ndarray:
        parts = []
        row = start
        while row < stop:
            i = int(np.searchsorted(self._starts, row, side="right")) - 1
            if self._ids_cache is None or self._ids_cache[0] != i:
                self._ids_cache = (i, self.checker.ids(self.folder, self.manifest, i, self.verify))
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
        ids = normalise_ids(ids, n)
        if self.manifest["ids_kind"] not in (None, ids_kind(ids)):
            raise SampleMismatchError(
                f"{self.model}/{self.layer} stores {self.manifest['ids_kind']} sample ids, got {ids_kind(ids)} ids"
            )
        stop = start + n
        if not 0 <= start <= self.n_rows:
            raise ValueError(f"rows must be written in order: next row is {self.n_rows}, got start={start}")
        # rows already committed (by this or an interrupted earlier run): check their ids, do not rewrite
        overlap = max(0, min(stop, self.n_committed) - start)
        if overlap > 0:
            compare_ids(
                self._stored_ids(start, start + overlap),
                ids[:overlap],
                f"between the store (from an earlier run) and this run's data in {self.model}/{self.layer}",
                first_row=start,
                fix="The data order changed since the interrupted run; resume with the same data in the same "
                "order or pass overwrite=True.",
            )
        if start + overlap < stop and start + overlap != self.n_rows:
            raise ValueError(
                f"rows must be written in order: next row is {self.n_rows}, got rows {start + overlap}..{stop}"
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
                f"array for {self.model}/{self.layer} must have shape {(n, *self.sample_shape)}, got {arr.shape}"
            )
        arr, ids = arr[overlap:], ids[overlap:]
        if self.manifest["ids_kind"] is None:
            self.manifest["ids_kind"] = ids_kind(ids)
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
        nbytes, sha = write_npy(self.folder / shard_name, self._buffer[: self._buffered], self.fsync)
        ids = np.concatenate(self._buffer_ids)
        ids_bytes, ids_sha = write_npy(self.folder / ids_name, ids, self.fsync)
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
