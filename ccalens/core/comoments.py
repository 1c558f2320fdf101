"""The co-moment products behind :class:`~ccalens.core.stats.SufficientStats`: each batch's ``(Z - c)' (Z - c)``
shifted by a provisional per-feature offset ``c`` (:func:`provisional_offset`), in float64 (or float32 chunks
accumulated in float64), tiled over threads (:func:`column_tiles`), with the underflow check of tiny features."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .device import column_ranges, is_tensor, leading_moments
from .threads import blas_threads, run_tasks

__all__ = [
    "CHUNK_ELEMENTS",
    "FLOAT32_CHUNK_ROWS",
    "MAX_OFFSET_ERROR",
    "block_products",
    "check_underflow",
    "column_tiles",
    "leading_mean",
    "offset_from_moments",
    "provisional_offset",
    "shifted_comoment",
]

# Rows per chunk are chosen so that one centred float64 chunk holds about this many elements (256 MB).
CHUNK_ELEMENTS = 1 << 25
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
MAX_OFFSET_ERROR = 4.0
# Float32 products (sgemm on float32 chunks of FLOAT32_CHUNK_ROWS rows shifted by float32 offsets, each chunk's
# products added to the float64 accumulator): against the float64 products of the same float32 values (n = 20,000,
# p = 24, q = 16, offsets 0..1e3 std) the canonical correlations differ by up to 2e-6 (1,024-row chunks) at
# covariance condition 1, and 3e-5 (64-row chunks) to 8e-5 (8,192) at condition 1e6, far above issue #12.5's 1e-6:
# the CCA family's error grows with the condition number. Linear CKA, a ratio of Frobenius norms, does not: within
# 9e-8 of the float64 value on the same corpus (offsets up to 1e3 std, conditions up to 1e6) at 1,024 to 16,384
# rows per chunk. So only second_moment_statistics (linear CKA's) multiply in float32.
FLOAT32_CHUNK_ROWS = 16384


def _makespan(costs: list[float], workers: int) -> float:
    """Finishing time of greedy largest-first scheduling of ``costs`` on ``workers``."""
    loads = [0.0] * workers
    for c in sorted(costs, reverse=True):
        loads[loads.index(min(loads))] += c
    return max(loads)


def column_tiles(sizes: Sequence[int], workers: int) -> list[tuple[int, int, int]]:
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


def check_underflow(blocks: Sequence[np.ndarray], comoment: np.ndarray, names: Sequence[str]) -> None:
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
        ranges, magnitudes = column_ranges(block, zero)
        varying = ranges > 0
        if varying.any():
            largest = float(magnitudes[varying].max())
            raise ValueError(
                f"{name}: {int(varying.sum())} feature(s) vary but their variance underflows to 0 in float64 "
                f"(values of at most {largest:.3g}: their squares fall below {np.finfo(np.float64).tiny:.3g}); "
                "every measure is scale invariant, so rescale the data first (e.g. X / np.abs(X).max())"
            )


def block_products(
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
    tiles = column_tiles(sizes, workers)
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


def leading_mean(blocks: Sequence[np.ndarray]) -> np.ndarray:
    """A first offset from the first :data:`_OFFSET_ROWS` rows of the stacked blocks: their mean, or 0 for a feature
    whose mean there lies within one standard deviation of 0 (raw products lose at most a bit: no shift needed).
    """
    if is_tensor(blocks[0]):  # moments on the tensors' device
        return offset_from_moments(*leading_moments(blocks, _OFFSET_ROWS))
    with np.errstate(all="ignore"):  # NaN/Inf are reported from the products, by name
        lead = [blk[:_OFFSET_ROWS] for blk in blocks]  # views: the moments are taken in float64 without a copy
        mean = np.concatenate([x.mean(axis=0, dtype=np.float64) for x in lead])
        var = np.concatenate([x.var(axis=0, dtype=np.float64) for x in lead])
    return offset_from_moments(mean, var)


def offset_from_moments(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """The first offset from the leading rows' means and variances ``(d,)``: the mean, or 0 where it lies within one
    standard deviation of 0."""
    with np.errstate(all="ignore"):
        return np.where((mean * mean <= var) & np.isfinite(var), 0.0, mean)


def provisional_offset(first_row: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Per-feature offset subtracted before the raw products: ``estimate`` (a mean), or the first row's value
    where it lies within rounding of the estimate.

    The shifted data are then centred up to the estimate's error, so the co-moment suffers no cancellation
    whatever the offset of the features; a constant feature gets the offset of its value exactly, so its
    shifted column, co-moment row and mean are exact (0, 0 and its value).
    """
    with np.errstate(all="ignore"):  # NaN/Inf are reported from the products, by name
        close = np.abs(first_row - estimate) <= _SNAP_ULPS * np.finfo(np.float64).eps * np.abs(estimate)
    return np.where(close, first_row, estimate)


def shifted_comoment(
    blocks: Sequence[np.ndarray], offset: np.ndarray, *, dtype: type[np.floating], chunk_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """The co-moment about the mean, ``(Z - offset)' (Z - offset) - n d d'`` (``d = mean - offset``), and the column
    sums of ``Z - offset``, accumulated in float64, chunk by chunk.

    ``Z`` are the column-stacked blocks. A block whose offset is 0 and whose dtype is ``dtype`` enters the
    products as it is (row slices, no copy). The others are shifted, one chunk of rows at a time, into one
    preallocated buffer of ``dtype`` (no stacked copy of the data) by one task per row slab, which also sums the
    rows it has just written while they are in cache (exact for a column that the offset zeroes, free of the
    offset's size). The chunk's products are then added by :func:`block_products`, which also subtracts the
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
        block_products(views, acc, accumulate=start > 0, minus=v)
    return acc, total_sums
