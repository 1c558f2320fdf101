"""The store as a catalogue: ``root/<model>/<layer>/`` folders, what is stored, and per-layer entry points.

:class:`ActivationStore` maps ``(model, layer)`` to a layer folder and hands that folder to the reader
(:mod:`.reader`) and the writer (:mod:`.writer`); it holds the store-wide settings (verify policy, fsync) and
the checksum cache shared by its readers and writers.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CorruptShardError
from .files import WriterLock, check_name, layer_lock
from .ids import normalise_ids
from .manifest import MANIFEST, read_manifest
from .reader import (
    LayerReader,
    ShardChecker,
    Verify,
    check_verify,
    chunk_bounds,
    delete_layer_files,
    repair_layer,
    require_complete,
)
from .writer import ShardWriter

__all__ = ["ActivationStore", "Key", "LayerInfo"]

Key = tuple[str, str]


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
        self.root = Path(root)
        self.verify_policy: Verify = check_verify(verify)
        self.fsync = bool(fsync)
        self.checker = ShardChecker()

    def __repr__(self) -> str:
        return f"ActivationStore({str(self.root)!r})"

    def __getstate__(self) -> dict[str, Any]:  # sent to Dask workers without the verification cache
        return {"root": self.root, "verify_policy": self.verify_policy, "fsync": self.fsync}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.root = state["root"]
        self.verify_policy = state["verify_policy"]
        self.fsync = state["fsync"]
        self.checker = ShardChecker()

    # ---------------------------------------------------------------- layout and metadata
    def layer_dir(self, model: str, layer: str) -> Path:
        """Folder of one model's layer."""
        return self.root / check_name(model, "model") / check_name(layer, "layer")

    def label(self, model: str, layer: str) -> str:
        """``"model/layer in root"``: how messages name a layer."""
        return f"{model}/{layer} in {self.root}"

    def models(self) -> list[str]:
        """Models that have at least one layer in the store, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and any(p.glob(f"*/{MANIFEST}")))

    def layers(self, model: str) -> list[str]:
        """Stored layers of ``model``, sorted."""
        folder = self.root / check_name(model, "model")
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
        try:
            return read_manifest(self.layer_dir(model, layer))
        except FileNotFoundError:
            stored = ", ".join(f"{m}/{lay}" for m, lay in self.keys()) or "nothing"
            raise KeyError(f"no layer {layer!r} of model {model!r} in {self.root} (it holds: {stored})") from None

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

    def lock_layer(self, model: str, layer: str) -> WriterLock:
        """The exclusive writer lock of a layer (:class:`LayerLockedError` if another writer holds it)."""
        return layer_lock(self.layer_dir(model, layer), self.label(model, layer))

    def delete(self, model: str, layer: str) -> None:
        """Remove a stored layer (manifest first, so a half-deleted layer is never read as valid).

        Takes the layer's writer lock first: while another writer holds it, :class:`LayerLockedError` is
        raised and nothing is deleted.
        """
        folder = self.layer_dir(model, layer)
        if not folder.is_dir():
            return
        lock = self.lock_layer(model, layer)
        try:
            delete_layer_files(folder)
        finally:
            lock.release()

    def repair(self, model: str, layer: str) -> dict[str, Any]:
        """Cut a layer back before its first corrupted shard (with a warning); the caller holds its lock."""
        manifest = self.manifest(model, layer)
        return repair_layer(
            self.layer_dir(model, layer), manifest, self.checker, self.verify_policy, self.fsync, f"{model}/{layer}"
        )

    # ---------------------------------------------------------------- writing
    def writer(
        self,
        model: str,
        layer: str,
        *,
        sample_shape: Sequence[int] | None,
        dtype: Any,
        shard_rows: int | None = None,
        settings: dict[str, Any] | None = None,
        overwrite: bool = False,
        lock: WriterLock | None = None,
    ) -> ShardWriter:
        """A :class:`ShardWriter` that creates the layer, or resumes it if a compatible one exists."""
        return ShardWriter(
            self.layer_dir(model, layer),
            sample_shape=sample_shape,
            dtype=dtype,
            shard_rows=shard_rows,
            settings=settings,
            overwrite=overwrite,
            lock=lock,
            fsync=self.fsync,
            verify=self.verify_policy,
            checker=self.checker,
            where=self.label(model, layer),
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
        ids = normalise_ids(ids, arr.shape[0])
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
    def resolve_verify(self, verify: Verify | None) -> Verify:
        v = self.verify_policy if verify is None else verify
        if v not in ("once", "always", "never"):
            raise ValueError(f"verify must be 'once', 'always', 'never' or None, got {v!r}")
        return v

    def reader(
        self, model: str, layer: str, *, verify: Verify | None = None, allow_incomplete: bool = False
    ) -> LayerReader:
        """A :class:`LayerReader` of a stored layer (row ranges, memory-mapped shard by shard)."""
        manifest = self.manifest(model, layer)
        return LayerReader(
            self.layer_dir(model, layer),
            verify=self.resolve_verify(verify),
            checker=self.checker,
            allow_incomplete=allow_incomplete,
            label=self.label(model, layer),
            manifest=manifest,
        )

    def sample_ids(self, model: str, layer: str, *, allow_incomplete: bool = False) -> np.ndarray:
        """``(n,)`` sample ids of a stored layer, in storage order."""
        return self.reader(model, layer, allow_incomplete=allow_incomplete).all_ids()

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
        reader = self.reader(model, layer, verify=verify, allow_incomplete=allow_incomplete)
        bounds = chunk_bounds([reader.starts], reader.n, batch_size)
        for start, stop in itertools.pairwise(bounds):
            if with_ids:
                yield reader.read(start, stop), reader.read_ids(start, stop)
            else:
                yield reader.read(start, stop)

    def load(self, model: str, layer: str, *, allow_incomplete: bool = False) -> np.ndarray:
        """The whole stored layer as one in-memory array ``(n, *sample_shape)`` (small layers only)."""
        reader = self.reader(model, layer, allow_incomplete=allow_incomplete)
        return np.array(reader.read(0, reader.n)) if reader.n else np.empty((0, *reader.sample_shape), reader.dtype)

    def verify(self, model: str | None = None, layer: str | None = None) -> list[Path]:
        """Check every listed file's sha256; returns the files checked or raises naming every bad one."""
        keys = self.keys() if model is None else [(model, lay) for lay in ([layer] if layer else self.layers(model))]
        checked: list[Path] = []
        bad: list[CorruptShardError] = []
        for m, lay in keys:
            manifest = self.manifest(m, lay)
            folder = self.layer_dir(m, lay)
            bad += [exc for _, exc in self.checker.corrupt(folder, manifest, "always")]
            for entry in manifest["shards"]:
                checked += [folder / entry["file"], folder / entry["ids_file"]]
        if len(bad) == 1:
            raise bad[0]
        if bad:
            lines = "\n  ".join(str(e) for e in bad)
            raise CorruptShardError(bad[0].path, f"and {len(bad) - 1} more file(s) are corrupted:\n  {lines}")
        return checked

    def require_complete(self, model: str, layer: str, allow_incomplete: bool = False) -> None:
        """ValueError (how to resume) if the layer is incomplete and ``allow_incomplete`` is False."""
        require_complete(self.manifest(model, layer), self.label(model, layer), allow_incomplete)
