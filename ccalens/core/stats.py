"""Mergeable sufficient statistics: the one engine behind every linear similarity measure.

For L representations of the same n samples, ``X_1: (n, d_1) ... X_L: (n, d_L)``, the statistics are
n, the means and the co-moment matrix ``S = Zc' Zc`` of the column-stacked, centred data
``Zc = [X_1 - mean_1, ..., X_L - mean_L]`` (``sum(d_l)`` square). Block ``(i, j)`` of S is
``S_ij = Xc_i' Xc_j``; CCA, SVCCA, PWCCA, linear CKA and Procrustes are functions of these blocks.

The statistics are additive across batches of samples: two sets of statistics merge exactly with the
pairwise update of Chan, Golub and LeVeque (1979),

    n = n_a + n_b,   delta = mean_b - mean_a,
    mean = mean_a + delta * n_b / n,
    S = S_a + S_b + (n_a n_b / n) delta delta',

so the same code serves arrays in memory, minibatches during training, shards on disk and Dask chunks.

Each batch's co-moment is computed from the data shifted by a provisional per-feature offset (the mean of
the first batch's leading rows, kept for the later batches; see :func:`_provisional_offset`):
``Zc' Zc = (Z - c)' (Z - c) - n (m - c)(m - c)'``. With ``c`` close to the mean the raw products of the
shifted data suffer no cancellation, so the error does not depend on how far the features sit from 0.
Features whose mean lies within a standard deviation of 0 keep offset 0: raw products lose at most a bit
there, and a representation with only such features enters the products without a copy.
Products and accumulation are in float64 whatever the input dtype, except for the statistics of
:func:`second_moment_statistics` (float32 products of float32 input, for linear CKA only; see there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._files import atomic_write
from .threads import blas_threads, run_tasks
from .validation import check_paired, default_names

__all__ = ["SufficientStats"]

# Rows per chunk are chosen so that one centred float64 chunk holds about this many elements (256 MB).
_CHUNK_ELEMENTS = 1 << 25
# Below this many flops (a few milliseconds of work) a thread pool costs more than it saves.
_PARALLEL_MIN_FLOPS = 1e8
# ... and below this many elements, a parallel shift of the rows.
_PARALLEL_MIN_ELEMENTS = 1 << 20
# Rows are shifted and summed this many elements at a time (256 KB of float64: in cache for the sum).
_SUM_ELEMENTS = 1 << 15
# The offset is a feature's first value where that lies within this many ulps of its mean (constant features).
_SNAP_ULPS = 64
# The first batch's offset is the mean of its leading rows ...
_OFFSET_ROWS = 256
# ... and a batch is shifted anew if (offset - mean)^2 exceeds this many variances (about 2 bits lost).
_MAX_OFFSET_ERROR = 4.0
# Float32 products (sgemm on float32 chunks of _FLOAT32_CHUNK_ROWS rows shifted by float32 offsets, each chunk's
# products added to the float64 accumulator): against the float64 products of the same float32 values (n = 20,000,
# p = 24, q = 16, offsets 0..1e3 std) the canonical correlations differ by up to 2e-6 (1,024-row chunks) at
# covariance condition 1, and 3e-5 (64-row chunks) to 8e-5 (8,192) at condition 1e6, far above issue #12.5's 1e-6:
# the CCA family's error grows with the condition number. Linear CKA, a ratio of Frobenius norms, does not: within
# 9e-8 of the float64 value on the same corpus (offsets up to 1e3 std, conditions up to 1e6) at 1,024 to 16,384
# rows per chunk. So only second_moment_statistics (linear CKA's) multiply in float32.
_FLOAT32_CHUNK_ROWS = 16384


def _makespan(costs: list[float], workers: int) -> float:
    """Finishing time of greedy largest-first scheduling of ``costs`` on ``workers``."""
    loads = [0.0] * workers
    for c in sorted(costs, reverse=True):
        loads[loads.index(min(loads))] += c
    return max(loads)


def _column_tiles(sizes: Sequence[int], workers: int) -> list[tuple[int, int, int]]:
    """Column tiles ``(block, lo, hi)`` of the stacked features, for the upper triangle of tile products.

    Representations stay whole unless greedy scheduling of their block products would leave a worker
    idle more than 10% of the time; then the widest tile is halved (never below 128 columns, so that each
    product keeps single-thread BLAS efficiency) until the schedule is balanced.
    """
    tiles = [(b, 0, d) for b, d in enumerate(sizes)]
    if workers <= 1:
        return tiles
    while True:
        widths = [hi - lo for _, lo, hi in tiles]
        costs = [widths[a] * widths[b] * (1 if a == b else 2) for a in range(len(tiles)) for b in range(a, len(tiles))]
        if _makespan(costs, workers) <= 1.1 * sum(costs) / workers:
            return tiles
        widest = int(np.argmax(widths))
        block, lo, hi = tiles[widest]
        if hi - lo < 256:
            return tiles
        mid = (lo + hi) // 2
        tiles[widest : widest + 1] = [(block, lo, mid), (block, mid, hi)]


def _check_underflow(blocks: Sequence[np.ndarray], comoment: np.ndarray, names: Sequence[str]) -> None:
    """A feature whose values vary but whose variance reads 0 underflowed (its squares fell below the smallest
    float64): say so, naming the representation, rather than letting it pass for a constant feature. Runs only
    when some variance is exactly 0 (no cost otherwise)."""
    diagonal = np.diag(comoment)
    if not np.any(diagonal == 0):
        return
    start = 0
    for block, name in zip(blocks, names, strict=True):
        width = block.shape[1]
        zero = np.flatnonzero(diagonal[start : start + width] == 0)
        start += width
        if zero.size == 0 or block.shape[0] < 2:
            continue
        columns = np.asarray(block[:, zero], dtype=np.float64)
        varying = np.ptp(columns, axis=0) > 0
        if varying.any():
            largest = float(np.abs(columns[:, varying]).max())
            raise ValueError(
                f"{name}: {int(varying.sum())} feature(s) vary but their variance underflows to 0 in float64 "
                f"(values of at most {largest:.3g}: their squares fall below {np.finfo(np.float64).tiny:.3g}); "
                "every measure is scale invariant, so rescale the data first (e.g. X / np.abs(X).max())"
            )


def _block_products(
    blocks: Sequence[np.ndarray], out: np.ndarray, *, accumulate: bool = False, minus: np.ndarray | None = None
) -> None:
    """``out (=/+=) Z' Z``, then ``out -= minus minus'`` if ``minus`` is given, for the column-stacked blocks ``Z``
    (float64 ``out``), without stacking them.

    The upper triangle of tile products (syrk on the diagonal, gemm off it) runs as independent tasks, one BLAS
    thread each (:mod:`ccalens.core.threads`); each task also subtracts its tile of the rank-one correction while
    the product is in cache, and writes its mirror image, so ``out`` is exactly symmetric (``v_i v_j == v_j v_i``
    exactly).
    """
    sizes = [blk.shape[1] for blk in blocks]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    total = offsets[-1]
    workers = blas_threads() if blocks[0].shape[0] * total * total > _PARALLEL_MIN_FLOPS else 1
    tiles = _column_tiles(sizes, workers)
    pairs = [(a, b) for a in range(len(tiles)) for b in range(a, len(tiles))]

    def product(a: int, b: int) -> Callable[[], None]:
        (ba, la, ha), (bb, lb, hb) = tiles[a], tiles[b]
        rows = slice(offsets[ba] + la, offsets[ba] + ha)
        cols = slice(offsets[bb] + lb, offsets[bb] + hb)

        def task() -> None:
            left = blocks[ba][:, la:ha]
            tile = out[rows, cols]
            with np.errstate(all="ignore"):  # NaN/Inf input is reported from the sums, by name
                prod = left.T @ (left if a == b else blocks[bb][:, lb:hb])  # syrk on the diagonal tiles
                if accumulate:
                    tile += prod
                if minus is not None:
                    np.subtract(tile if accumulate else prod, np.multiply.outer(minus[rows], minus[cols]), out=tile)
                elif not accumulate:
                    tile[...] = prod
            if a != b:
                out[cols, rows] = tile.T

        return task

    def cost(ab: tuple[int, int]) -> int:
        (_, la, ha), (_, lb, hb) = tiles[ab[0]], tiles[ab[1]]
        return (ha - la) * (hb - lb) * (1 if ab[0] == ab[1] else 2)

    pairs.sort(key=cost, reverse=True)  # largest first: the pool's greedy scheduling then balances the workers
    run_tasks([product(a, b) for a, b in pairs], workers=workers)


def _leading_mean(blocks: Sequence[np.ndarray]) -> np.ndarray:
    """A first offset from the first :data:`_OFFSET_ROWS` rows of the stacked blocks: their mean, or 0 for a feature
    whose mean there lies within one standard deviation of 0 (raw products lose at most a bit: no shift needed).
    """
    with np.errstate(all="ignore"):  # NaN/Inf are reported from the products, by name
        lead = [blk[:_OFFSET_ROWS] for blk in blocks]  # views: the moments are taken in float64 without a copy
        mean = np.concatenate([x.mean(axis=0, dtype=np.float64) for x in lead])
        var = np.concatenate([x.var(axis=0, dtype=np.float64) for x in lead])
        return np.where((mean * mean <= var) & np.isfinite(var), 0.0, mean)


def _provisional_offset(first_row: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Per-feature offset subtracted before the raw products: ``estimate`` (a mean), or the first row's value
    where it lies within rounding of the estimate.

    The shifted data are then centred up to the estimate's error, so the co-moment suffers no cancellation
    whatever the offset of the features; a constant feature gets the offset of its value exactly, so its
    shifted column, co-moment row and mean are exact (0, 0 and its value).
    """
    with np.errstate(all="ignore"):  # NaN/Inf are reported from the products, by name
        close = np.abs(first_row - estimate) <= _SNAP_ULPS * np.finfo(np.float64).eps * np.abs(estimate)
    return np.where(close, first_row, estimate)


def _shifted_comoment(
    blocks: Sequence[np.ndarray], offset: np.ndarray, *, dtype: type[np.floating], chunk_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """The co-moment about the mean, ``(Z - offset)' (Z - offset) - n d d'`` (``d = mean - offset``), and the column
    sums of ``Z - offset``, accumulated in float64, chunk by chunk.

    ``Z`` are the column-stacked blocks. A block whose offset is 0 and whose dtype is ``dtype`` enters the
    products as it is (row slices, no copy). The others are shifted, one chunk of rows at a time, into one
    preallocated buffer of ``dtype`` (no stacked copy of the data) by one task per row slab, which also sums the
    rows it has just written while they are in cache (exact for a column that the offset zeroes, free of the
    offset's size). The chunk's products are then added by :func:`_block_products`, which also subtracts the
    rank-one correction ``n d d' = v v'`` (``v = sqrt(n) d``, exactly symmetric) tile by tile with the last chunk's
    products, when the sums are complete. ``dtype=float32`` (float32
    input only) keeps BLAS at float32 speed; ``chunk_rows`` then bounds the float32 rounding of each chunk's
    products (float64 blocks that need no shift are not chunked at all).
    Returns ``(co-moment (d, d), sums (d,))``.
    """
    n = blocks[0].shape[0]
    edges = np.concatenate([[0], np.cumsum([blk.shape[1] for blk in blocks])]).tolist()
    total = edges[-1]
    spans = list(zip(blocks, edges[:-1], edges[1:], strict=True))
    as_is = [blk.dtype == dtype and not offset[lo:hi].any() for blk, lo, hi in spans]
    shifted = [span for span, keep in zip(spans, as_is, strict=True) if not keep]
    width = sum(hi - lo for _, lo, hi in shifted)
    rows = n if not shifted and dtype == np.float64 else max(1, min(n, chunk_rows))
    buf = np.empty((rows, width), dtype=dtype)
    buf_edges = np.concatenate([[0], np.cumsum([hi - lo for _, lo, hi in shifted])]).tolist()
    shift = offset.astype(dtype)
    acc = np.empty((total, total), dtype=np.float64)  # the first chunk's products overwrite every entry
    workers = blas_threads() if rows * total > _PARALLEL_MIN_ELEMENTS else 1
    slab = -(-rows // workers)
    step = max(8, _SUM_ELEMENTS // total)  # rows shifted and summed at a time, in cache

    def shifter(start: int, stop: int) -> Callable[[], np.ndarray]:
        """Task: rows ``start:stop`` shifted into the buffer (from row ``start % rows``); the sums of all columns."""

        def task() -> np.ndarray:
            sums = np.zeros(total, dtype=np.float64)
            with np.errstate(all="ignore"):  # NaN/Inf input is reported from the products, by name
                for (blk, lo, hi), keep in zip(spans, as_is, strict=True):
                    if keep:
                        sums[lo:hi] = np.ones(stop - start, dtype=dtype) @ blk[start:stop]  # gemv
                for r0 in range(start, stop, step):
                    r1 = min(stop, r0 + step)
                    out = buf[r0 % rows : r0 % rows + r1 - r0]
                    for (blk, lo, hi), b0, b1 in zip(shifted, buf_edges[:-1], buf_edges[1:], strict=True):
                        np.subtract(blk[r0:r1], shift[lo:hi], out=out[:, b0:b1], casting="unsafe")
                        sums[lo:hi] += out[:, b0:b1].sum(axis=0, dtype=np.float64)
            return sums

        return task

    total_sums = np.zeros(total, dtype=np.float64)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        tasks = [shifter(a, min(stop, a + slab)) for a in range(start, stop, slab)]
        for sums in run_tasks(tasks, workers=workers):
            total_sums += sums
        chunk = buf[: stop - start]
        views, k = [], 0
        for blk, keep in zip(blocks, as_is, strict=True):
            if keep:
                views.append(blk[start:stop])
            else:
                views.append(chunk[:, buf_edges[k] : buf_edges[k + 1]])
                k += 1
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite sums are reported by the caller, by name
            v = np.sqrt(float(n)) * (total_sums / n) if stop == n else None
        _block_products(views, acc, accumulate=start > 0, minus=v)
    return acc, total_sums


@dataclass
class SufficientStats:
    """n, means and co-moment of one or more representations of the same samples.

    Use :meth:`update` with one batch of every representation at a time (same rows in the same
    order), :meth:`merge` to combine statistics computed elsewhere (another process, shard or Dask
    chunk), and :meth:`block` / :meth:`covariance` to read them.

    Attributes:
        sizes: features of each representation ``(d_1, ..., d_L)``.
        n_samples: samples seen so far.
        mean: ``(sum(d),)`` means of the stacked features.
        comoment: ``(sum(d), sum(d))`` sum of centred outer products (not divided by n - 1).
        names: the representations' names in error messages (those given to the first :meth:`update`,
            by default X, Y for a pair and ``representations[i]`` otherwise).
    """

    sizes: tuple[int, ...] | None = None
    n_samples: int = 0
    mean: np.ndarray | None = field(default=None, repr=False)
    comoment: np.ndarray | None = field(default=None, repr=False)
    names: tuple[str, ...] | None = field(default=None, repr=False, compare=False)
    # the mean as offset + shifted mean (see _current_offset); None where unknown
    _offset: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)
    _shifted_mean: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)
    # float32 products of float32 input (second_moment_statistics only: linear CKA's)
    _float32_products: bool = field(default=False, init=False, repr=False, compare=False)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_arrays(cls, *arrays: Any, names: tuple[str, ...] | None = None) -> SufficientStats:
        """Statistics of arrays held in memory: ``from_arrays(X, Y)`` or ``from_arrays(*layers)``."""
        return cls().update(*arrays, names=names)

    @classmethod
    def from_batches(cls, batches: Iterable[Any]) -> SufficientStats:
        """Statistics of an iterator of batches; each batch is a tuple ``(X_b, Y_b, ...)`` or one array."""
        stats = cls()
        for batch in batches:
            if isinstance(batch, (tuple, list)):
                stats.update(*batch)
            else:
                stats.update(batch)
        if stats.n_samples == 0:
            raise ValueError("batches was empty: no samples to compute statistics from")
        return stats

    # ---------------------------------------------------------------- accumulation
    def update(self, *blocks: Any, names: tuple[str, ...] | None = None) -> SufficientStats:
        """Add one batch: ``blocks[l]: (n_batch, d_l)``, the same samples in every block. Returns self."""
        if not blocks:
            raise ValueError("update needs at least one array")
        # NaN/Inf show in the products (see _batch_comoment); a full scan runs only to name the culprit
        checked = check_paired(*blocks, names=names, min_samples=1, check_finite=False)
        sizes = tuple(int(b.shape[1]) for b in checked)
        if self.sizes is None:
            self.sizes = sizes
            self.names = tuple(names or default_names(len(checked)))
        elif sizes != self.sizes:
            raise ValueError(f"batch feature counts {sizes} differ from the earlier batches' {self.sizes}")
        n_b = checked[0].shape[0]
        names = names or self.names or default_names(len(checked))
        first_row = np.concatenate([blk[0].astype(np.float64) for blk in checked])
        float32 = self._float32_products and all(blk.dtype == np.float32 for blk in checked)
        if self.n_samples == 0:  # the provisional offset: the mean of this first batch's leading rows
            offset = _provisional_offset(first_row, _leading_mean(checked))
        else:  # later batches keep it, so that the means are compared without rounding (see _current_offset)
            offset = self._current_offset(first_row)
            float32 = float32 and np.array_equal(offset.astype(np.float32), offset)
        if float32 and self.n_samples == 0:
            offset = offset.astype(np.float32).astype(np.float64)  # float32 data are shifted by float32 values
        comoment_b, shifted_mean = self._batch_comoment(checked, offset, float32, names)
        _check_underflow(checked, comoment_b, names)
        far = n_b * shifted_mean**2 > _MAX_OFFSET_ERROR * np.maximum(np.diag(comoment_b), 0.0)
        if far.any():
            # the offset lies far from this batch's mean (an outlier among the leading rows, a drifting stream):
            # it would cost digits, so once more, shifted by the batch's mean
            offset = _provisional_offset(first_row, offset + shifted_mean)
            if float32:
                offset = offset.astype(np.float32).astype(np.float64)
            comoment_b, shifted_mean = self._batch_comoment(checked, offset, float32, names)
        if self.n_samples == 0:
            self.n_samples, self.comoment = n_b, comoment_b
            self._offset, self._shifted_mean = offset, shifted_mean
            self.mean = offset + shifted_mean
        else:  # offsets near each other subtract exactly (and are equal unless the batch was shifted anew)
            assert self._offset is not None and self._shifted_mean is not None
            self._combine(n_b, (offset - self._offset) + (shifted_mean - self._shifted_mean), comoment_b)
        return self

    def _batch_comoment(
        self, blocks: Sequence[np.ndarray], offset: np.ndarray, float32: bool, names: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Co-moment ``(d, d)`` of one batch about its mean, and its mean minus ``offset`` ``(d,)``.

        NaN/Inf in the data, or values whose squares overflow, show in the diagonal: then a full scan names the
        representation and the value (:func:`check_paired`), or the overflow is reported by name.
        """
        n_b = blocks[0].shape[0]
        width = sum(b.shape[1] for b in blocks)
        chunk_rows = max(256, _CHUNK_ELEMENTS // width)
        if float32:  # the float32 rounding of a chunk's products grows with its rows: at most _FLOAT32_CHUNK_ROWS
            chunk_rows = min(chunk_rows, _FLOAT32_CHUNK_ROWS)
        dtype = np.float32 if float32 else np.float64
        # about the batch mean (raw products minus n d d', d = mean - offset); non-finite values are reported just
        # below, by name
        comoment, sums = _shifted_comoment(blocks, offset, dtype=dtype, chunk_rows=chunk_rows)
        shifted_mean = sums / n_b
        bad = ~np.isfinite(np.diag(comoment)) | ~np.isfinite(shifted_mean)
        if bad.any():
            check_paired(*blocks, names=tuple(names), min_samples=1)
            raise ValueError(
                f"{self._culprit(bad, names)} has values too large: their squares overflow float64 (rescale the "
                "features)"
            )
        return comoment, shifted_mean

    def _current_offset(self, first_row: np.ndarray) -> np.ndarray:
        """The provisional offset of the next batch, with ``_shifted_mean`` the current mean relative to it.

        The mean is kept as ``offset + shifted mean``: two numbers, so that a batch's mean is compared with the
        current one to full precision however far both lie from 0 (a rounded mean would cost ``eps * offset``).
        Statistics made otherwise (:meth:`merge`, :meth:`load`, or ``mean`` changed by hand) restart from the
        current mean.
        """
        assert self.mean is not None and self.comoment is not None
        if not self._mean_parts_valid():
            # as for a first batch: offset 0 for features whose mean lies within a standard deviation of 0
            with np.errstate(all="ignore"):
                small = self.mean**2 <= np.diag(self.comoment) / self.n_samples
            self._offset = _provisional_offset(first_row, np.where(small, 0.0, self.mean))
            self._shifted_mean = self.mean - self._offset  # exact: 0, or a difference of a few ulps at most
        assert self._offset is not None
        return self._offset

    def _mean_parts_valid(self) -> bool:
        """Whether ``_offset + _shifted_mean`` is the mean (not so after :meth:`load`, or ``mean`` set by hand)."""
        return (
            self._offset is not None
            and self._shifted_mean is not None
            and self.mean is not None
            and np.array_equal(self._offset + self._shifted_mean, self.mean)
        )

    def _culprit(self, bad: np.ndarray, names: Sequence[str]) -> str:
        """The name of the representation that owns the first flagged stacked feature."""
        assert self.sizes is not None
        index = int(np.searchsorted(np.cumsum(self.sizes), int(np.argmax(bad)), side="right"))
        return names[index]

    def _merge_in(self, other: SufficientStats) -> None:
        """Add the statistics of another (non-empty) sample set to these (non-empty) ones."""
        assert self.mean is not None and other.mean is not None and other.comoment is not None
        if self._mean_parts_valid() and other._mean_parts_valid():
            assert self._offset is not None and other._offset is not None and other._shifted_mean is not None
            # offsets near each other subtract exactly: delta keeps its digits however large the means
            delta = (other._offset - self._offset) + (other._shifted_mean - self._shifted_mean)
        else:
            delta = other.mean - self.mean
        self._combine(other.n_samples, delta, other.comoment)

    def _combine(self, n_b: int, delta: np.ndarray, comoment_b: np.ndarray) -> None:
        """Chan et al.'s update with statistics of ``n_b`` more samples whose mean is ``self.mean + delta``."""
        assert self.mean is not None and self.comoment is not None
        n_a = self.n_samples
        n = n_a + n_b
        self.comoment += comoment_b
        # rank-one correction (n_a n_b / n) delta delta', as v v' with v = sqrt(n_a n_b / n) delta so that it
        # stays exactly symmetric
        v = np.sqrt(n_a * n_b / n) * delta
        self.comoment += np.multiply.outer(v, v)
        if self._mean_parts_valid():
            assert self._offset is not None and self._shifted_mean is not None
            self._shifted_mean = self._shifted_mean + delta * (n_b / n)
            self.mean = self._offset + self._shifted_mean
        else:
            self._offset = self._shifted_mean = None
            self.mean = self.mean + delta * (n_b / n)
        self.n_samples = n

    def merge(self, other: SufficientStats) -> SufficientStats:
        """Statistics of the union of both sample sets (a new object; neither input changes)."""
        if not isinstance(other, SufficientStats):
            raise TypeError(f"other must be SufficientStats, got {type(other).__name__}")
        if self.n_samples == 0:
            return other.copy()
        if other.n_samples == 0:
            return self.copy()
        if self.sizes != other.sizes:
            raise ValueError(f"cannot merge statistics of feature sizes {self.sizes} and {other.sizes}")
        merged = self.copy()
        merged._merge_in(other)
        return merged

    def __add__(self, other: SufficientStats) -> SufficientStats:
        return self.merge(other)

    def copy(self) -> SufficientStats:
        """An independent copy (later updates of either leave the other unchanged)."""
        copied = SufficientStats(
            sizes=self.sizes,
            n_samples=self.n_samples,
            mean=None if self.mean is None else self.mean.copy(),
            comoment=None if self.comoment is None else self.comoment.copy(),
            names=self.names,
        )
        if self._offset is not None and self._shifted_mean is not None:
            copied._offset, copied._shifted_mean = self._offset.copy(), self._shifted_mean.copy()
        return copied

    # ---------------------------------------------------------------- reading
    @property
    def n_representations(self) -> int:
        return 0 if self.sizes is None else len(self.sizes)

    def name(self, i: int) -> str:
        """Name of representation ``i`` in error messages."""
        names = self.names or default_names(self.n_representations)
        return names[i] if -len(names) <= i < len(names) else f"representations[{i}]"

    def _require(self, min_samples: int = 2, *indices: int) -> None:
        if self.n_samples < min_samples:
            who = list(dict.fromkeys(self.name(i) for i in indices)) or ["these statistics"]
            verb = "needs" if len(who) == 1 and indices else "need"
            raise ValueError(f"{' and '.join(who)} {verb} at least {min_samples} samples, got {self.n_samples}")

    def _slice(self, i: int) -> slice:
        if self.sizes is None:
            raise ValueError("no data: call update() first")
        if not -len(self.sizes) <= i < len(self.sizes):
            raise IndexError(f"representation index {i} out of range for {len(self.sizes)} representations")
        i %= len(self.sizes)
        lo = sum(self.sizes[:i])
        return slice(lo, lo + self.sizes[i])

    def means(self, i: int) -> np.ndarray:
        """Mean of representation ``i``: ``(d_i,)``."""
        self._require(1)
        assert self.mean is not None
        return self.mean[self._slice(i)]

    def block(self, i: int, j: int) -> np.ndarray:
        """Co-moment block ``Xc_i' Xc_j``: ``(d_i, d_j)`` (a view; do not modify)."""
        self._require(1)
        assert self.comoment is not None
        return self.comoment[self._slice(i), self._slice(j)]

    def covariance(self, i: int, j: int | None = None) -> np.ndarray:
        """Sample covariance block ``Xc_i' Xc_j / (n - 1)``."""
        self._require(2, i, i if j is None else j)
        return self.block(i, i if j is None else j) / (self.n_samples - 1)

    def select(self, indices: Sequence[int]) -> SufficientStats:
        """Statistics of a subset of the representations, in the given order."""
        slices = [self._slice(i) for i in indices]
        idx = np.concatenate([np.arange(s.start, s.stop) for s in slices])
        assert self.mean is not None and self.comoment is not None
        return SufficientStats(
            sizes=tuple(s.stop - s.start for s in slices),
            n_samples=self.n_samples,
            mean=self.mean[idx].copy(),
            comoment=self.comoment[np.ix_(idx, idx)].copy(),
            names=tuple(self.name(i) for i in indices),
        )

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write to ``path`` (.npz) atomically: a temporary file in the same folder, then a rename.

        The file gets the permissions of any new file of the process (``0o666`` less the umask).
        """
        self._require(1)
        return atomic_write(path, lambda fh: np.savez(
            fh,
            sizes=np.asarray(self.sizes, dtype=np.int64),
            n_samples=np.asarray(self.n_samples, dtype=np.int64),
            mean=self.mean,
            comoment=self.comoment,
        ))

    @classmethod
    def load(cls, path: str | Path) -> SufficientStats:
        with np.load(path) as f:
            return cls(
                sizes=tuple(int(s) for s in f["sizes"]),
                n_samples=int(f["n_samples"]),
                mean=f["mean"].astype(np.float64),
                comoment=f["comoment"].astype(np.float64),
            )


def second_moment_statistics(*arrays: Any, names: tuple[str, ...] | None = None) -> SufficientStats:
    """Statistics for second-moment measures (linear CKA) only: float32 input is multiplied in float32.

    Chunks of :data:`_FLOAT32_CHUNK_ROWS` rows, shifted by float32 provisional offsets (an exact subtraction near
    the mean), are multiplied by sgemm and each chunk's products accumulated in float64: twice the speed of
    float64 products, with co-moment entries within float32 rounding. Linear CKA, a ratio of Frobenius norms,
    then stays within 1e-7 of its float64 value whatever the condition number; canonical correlations would not
    (their error grows with it), so these statistics never leave the linear CKA call that made them.
    """
    stats = SufficientStats()
    stats._float32_products = True
    return stats.update(*arrays, names=names)
