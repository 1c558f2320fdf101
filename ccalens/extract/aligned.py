"""Aligned streaming of stored layers: one plan (checked ids, chunk boundaries) for every consumer.

:func:`plan_aligned` checks that the layers hold the same samples in the same order and chooses the row chunks;
:func:`aligned_batches` and :func:`stats_from_store` read the chunks in this process, and
:mod:`.distributed` sends the same plan's chunks to Dask tasks (:meth:`AlignedPlan.chunk_stats`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ccalens.core.stats import SufficientStats

from .ids import compare_ids
from .reader import LayerReader, Verify, chunk_bounds

if TYPE_CHECKING:  # pragma: no cover
    from .catalogue import ActivationStore

__all__ = [
    "STATS_CHUNK_BYTES",
    "AlignedPlan",
    "aligned_batches",
    "apply_transform",
    "normalise_keys",
    "normalise_transforms",
    "plan_aligned",
    "stats_chunk_rows",
    "stats_from_store",
]

Key = tuple[str, str]
Transform = Callable[[np.ndarray], np.ndarray]

# float64 work buffer of the engine per chunk (rows x total features x 8 bytes) when batch_size is None
STATS_CHUNK_BYTES = 128 * 1024 * 1024


def stats_chunk_rows(readers: Sequence[LayerReader]) -> int:
    """Rows per chunk so that the engine's float64 buffer stays near :data:`STATS_CHUNK_BYTES`."""
    features = sum(int(np.prod(r.sample_shape, dtype=np.int64)) for r in readers)
    return max(256, STATS_CHUNK_BYTES // (8 * max(1, features)))


def normalise_keys(keys: Any) -> list[Key]:
    if isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys):
        keys = [keys]
    try:
        out = [tuple(k) for k in keys]
    except TypeError:
        raise TypeError(f"keys must be a list of (model, layer) pairs, got {keys!r}") from None
    if not out or not all(len(k) == 2 and all(isinstance(s, str) for s in k) for k in out):
        raise TypeError(f"keys must be a non-empty list of (model, layer) string pairs, got {keys!r}")
    return out  # type: ignore[return-value]


def normalise_transforms(transform: Any, n_keys: int) -> list[Transform | None]:
    """One transform (or None) per key from None, a callable, or a sequence of them."""
    if transform is None or callable(transform):
        return [transform] * n_keys
    ts = list(transform)
    if len(ts) != n_keys or not all(t is None or callable(t) for t in ts):
        raise TypeError(
            f"transform must be None, a callable, or one callable/None per key ({n_keys}), got {transform!r}"
        )
    return ts


def apply_transform(arr: np.ndarray, key: Key, transform: Transform | None) -> np.ndarray:
    """``(rows, features)`` for the statistics: the transform's output, or a clear error for conv maps."""
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


@dataclass
class AlignedPlan:
    """Stored layers checked to hold the same samples in the same order, and the row chunks to read them by.

    Picklable (the store travels without its checksum cache), so Dask tasks read their chunk from it.
    """

    store: ActivationStore
    keys: list[Key]
    verify: Verify
    n_samples: int
    bounds: np.ndarray

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"{m}/{lay}" for m, lay in self.keys)

    @property
    def chunks(self) -> list[tuple[int, int]]:
        return [(int(lo), int(hi)) for lo, hi in itertools.pairwise(self.bounds)]

    def readers(self) -> list[LayerReader]:
        return [self.store.reader(m, lay, verify=self.verify) for m, lay in self.keys]

    def read_rows(self, index: int, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of layer ``keys[index]`` (a reader opened and closed for this read)."""
        reader = self.store.reader(*self.keys[index], verify=self.verify)
        try:
            return reader.read(start, stop)
        finally:
            reader.close()

    def chunk_stats(self, start: int, stop: int, transforms: Sequence[Transform | None]) -> SufficientStats:
        """Statistics of rows ``start:stop`` of every layer (the map step of the Dask path)."""
        blocks = [
            apply_transform(self.read_rows(i, start, stop), key, t)
            for i, (key, t) in enumerate(zip(self.keys, transforms, strict=True))
        ]
        return SufficientStats.from_arrays(*blocks, names=self.names)


def plan_aligned(
    store: ActivationStore,
    keys: Any,
    batch_size: int | None = None,
    *,
    verify: Verify | None = None,
    max_rows: int | None = None,
    for_stats: bool = False,
) -> AlignedPlan:
    """Check that the stored layers ``keys`` hold the same sample ids in the same order (a
    :class:`SampleMismatchError` names the first differing row) and choose the chunks: shard-aligned (at most
    ``max_rows`` rows; ``for_stats=True``: rows that keep the engine's float64 buffer near
    :data:`STATS_CHUNK_BYTES`) or ``batch_size`` rows."""
    keys = normalise_keys(keys)
    v = store.resolve_verify(verify)
    readers = [store.reader(m, lay, verify=v) for m, lay in keys]
    try:
        first = readers[0]
        ref = first.all_ids()
        for key, reader in zip(keys[1:], readers[1:], strict=True):
            compare_ids(
                ref,
                reader.all_ids(),
                f"between {keys[0][0]}/{keys[0][1]} and {key[0]}/{key[1]}",
                fix="Representations must hold the same samples in the same order: extract both with the same "
                "data in the same order (no shuffling).",
            )
        if for_stats:
            max_rows = stats_chunk_rows(readers)
        bounds = chunk_bounds([r.starts for r in readers], first.n, batch_size, max_rows=max_rows)
    finally:
        for r in readers:
            r.close()
    return AlignedPlan(store=store, keys=keys, verify=v, n_samples=first.n, bounds=bounds)


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
    plan = plan_aligned(store, keys, batch_size, verify=verify, max_rows=max_rows)
    yield from _read_plan(plan, normalise_transforms(transform, len(plan.keys)), with_ids, progress)


def _read_plan(
    plan: AlignedPlan, transforms: Sequence[Transform | None], with_ids: bool, progress: bool
) -> Iterator[tuple[np.ndarray, ...]]:
    readers = plan.readers()
    pairs: Iterable[tuple[int, int]] = plan.chunks
    if progress:
        from tqdm.auto import tqdm

        pairs = tqdm(pairs, total=len(plan.bounds) - 1, desc="reading store", unit="chunk")
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
    keys = normalise_keys(keys)
    transforms = normalise_transforms(transform, len(keys))
    plan = plan_aligned(store, keys, batch_size, verify=verify, for_stats=True)
    stats = SufficientStats()
    for batch in _read_plan(plan, [None] * len(keys), False, progress):
        blocks = [apply_transform(b, k, t) for b, k, t in zip(batch, plan.keys, transforms, strict=True)]
        stats.update(*blocks, names=plan.names)
    if stats.n_samples == 0:
        raise ValueError(f"no samples stored for {plan.names}")
    return stats
