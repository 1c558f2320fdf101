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
All accumulation is in float64 whatever the input dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .threads import blas_threads, run_tasks
from .validation import check_paired, default_names

__all__ = ["SufficientStats"]

# Rows per chunk are chosen so that one centred float64 chunk holds about this many elements (256 MB).
_CHUNK_ELEMENTS = 1 << 25
# Below this many flops (a few milliseconds of work) a thread pool costs more than it saves.
_PARALLEL_MIN_FLOPS = 1e8


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


def _block_products(
    blocks: Sequence[np.ndarray], out: np.ndarray, *, shift: np.ndarray | None = None, accumulate: bool = False
) -> None:
    """``out (=/+=) Z' Z - shift shift'`` for the column-stacked float64 blocks ``Z``, without stacking them.

    The upper triangle of tile products (syrk on the diagonal, gemm off it), each minus its tile of
    ``shift shift'``, runs as independent tasks, one BLAS thread each (:mod:`ccalens.core.threads`); each
    task also writes its mirror image, so ``out`` is exactly symmetric (``v_i v_j == v_j v_i`` exactly).
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
            with np.errstate(all="ignore"):  # NaN/Inf input is reported from the sums, by name
                prod = left.T @ (left if a == b else blocks[bb][:, lb:hb])  # syrk on the diagonal tiles
                if shift is not None:
                    prod -= np.multiply.outer(shift[rows], shift[cols])
            if accumulate:
                out[rows, cols] += prod
            else:
                out[rows, cols] = prod
            if a != b:
                if accumulate:
                    out[cols, rows] += prod.T
                else:
                    out[cols, rows] = prod.T

        return task

    def cost(ab: tuple[int, int]) -> int:
        (_, la, ha), (_, lb, hb) = tiles[ab[0]], tiles[ab[1]]
        return (ha - la) * (hb - lb) * (1 if ab[0] == ab[1] else 2)

    pairs.sort(key=cost, reverse=True)  # largest first: the pool's greedy scheduling then balances the workers
    run_tasks([product(a, b) for a, b in pairs], workers=workers)


def _column_sums(blocks: Sequence[np.ndarray]) -> np.ndarray:
    """Float64 column sums of the stacked blocks, one task per block (NaN/Inf propagate, silently)."""

    def task(blk: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return blk.sum(axis=0, dtype=np.float64)

    workers = None if sum(blk.size for blk in blocks) > 1e6 else 1
    return np.concatenate(run_tasks([lambda blk=blk: task(blk) for blk in blocks], workers=workers))


def _direct_comoment(blocks: Sequence[np.ndarray], means: np.ndarray) -> np.ndarray | None:
    """``Zc' Zc = Z' Z - n m m'`` from raw products of float64 blocks, without copying the data.

    Returns None when cancellation would cost more than 6 significant digits on some feature
    (mean^2 > 1e6 variance): the caller then uses the centred path. Exactly constant features (raw
    product 0) are fine.
    """
    n = blocks[0].shape[0]
    total = means.shape[0]
    shift = np.sqrt(float(n)) * means
    out = np.empty((total, total), dtype=np.float64)
    _block_products(blocks, out, shift=shift)
    centred_diag = np.diag(out)
    raw_diag = centred_diag + shift * shift
    if np.any(raw_diag > 1e6 * np.maximum(centred_diag, 0.0)):
        return None
    return out


def _centred_comoment(blocks: Sequence[np.ndarray], means: np.ndarray, chunk_rows: int) -> np.ndarray:
    """``Zc' Zc`` of the column-stacked blocks centred by ``means``, in float64, chunk by chunk.

    Each chunk is centred into one preallocated float64 buffer (no stacked copy of the data), and its
    block products are accumulated by :func:`_block_products`. Returns the full symmetric matrix.
    """
    n = blocks[0].shape[0]
    sizes = [blk.shape[1] for blk in blocks]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    total = offsets[-1]
    rows = max(1, min(n, chunk_rows))
    buf = np.empty((rows, total), dtype=np.float64)
    acc = np.zeros((total, total), dtype=np.float64)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        chunk = buf[: stop - start]
        views = []
        for blk, lo, hi in zip(blocks, offsets[:-1], offsets[1:], strict=True):
            np.subtract(blk[start:stop], means[lo:hi], out=chunk[:, lo:hi], casting="unsafe")
            views.append(chunk[:, lo:hi])
        _block_products(views, acc, accumulate=True)
    return acc


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
    """

    sizes: tuple[int, ...] | None = None
    n_samples: int = 0
    mean: np.ndarray | None = field(default=None, repr=False)
    comoment: np.ndarray | None = field(default=None, repr=False)

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
        # the NaN/Inf scan rides on the column sums the means need anyway; a full scan runs only to name the culprit
        checked = check_paired(*blocks, names=names, min_samples=1, check_finite=False)
        sizes = tuple(int(b.shape[1]) for b in checked)
        if self.sizes is None:
            self.sizes = sizes
        elif sizes != self.sizes:
            raise ValueError(f"batch feature counts {sizes} differ from the earlier batches' {self.sizes}")
        n_b = checked[0].shape[0]
        sums = _column_sums(checked)
        if not np.isfinite(sums).all():
            check_paired(*checked, names=names or default_names(len(checked)), min_samples=1)
            raise ValueError("feature values are too large: their sums overflow float64")
        mean_b = sums / n_b
        comoment_b = None
        if all(blk.dtype == np.float64 for blk in checked):  # raw products, centred afterwards
            comoment_b = _direct_comoment(checked, mean_b)
        if comoment_b is None:  # float32/16 input, or large offsets: centre chunk by chunk in float64
            chunk_rows = max(256, _CHUNK_ELEMENTS // sum(sizes))
            comoment_b = _centred_comoment(checked, mean_b, chunk_rows)
        self._merge_in(n_b, mean_b, comoment_b, owned=True)
        return self

    def _merge_in(self, n_b: int, mean_b: np.ndarray, comoment_b: np.ndarray, *, owned: bool = False) -> None:
        """Add statistics of another sample set; ``owned=True`` lets self keep the given arrays (no copy)."""
        if self.n_samples == 0:
            if owned:
                self.n_samples, self.mean, self.comoment = n_b, mean_b, comoment_b
            else:
                self.n_samples, self.mean, self.comoment = n_b, mean_b.copy(), comoment_b.copy()
            return
        assert self.mean is not None and self.comoment is not None
        n_a = self.n_samples
        n = n_a + n_b
        delta = mean_b - self.mean
        self.comoment += comoment_b
        # rank-one correction (n_a n_b / n) delta delta', as v v' with v = sqrt(n_a n_b / n) delta so that it
        # stays exactly symmetric
        v = np.sqrt(n_a * n_b / n) * delta
        self.comoment += np.multiply.outer(v, v)
        self.mean += delta * (n_b / n)
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
        assert other.mean is not None and other.comoment is not None
        merged._merge_in(other.n_samples, other.mean, other.comoment)
        return merged

    def __add__(self, other: SufficientStats) -> SufficientStats:
        return self.merge(other)

    def copy(self) -> SufficientStats:
        return SufficientStats(
            sizes=self.sizes,
            n_samples=self.n_samples,
            mean=None if self.mean is None else self.mean.copy(),
            comoment=None if self.comoment is None else self.comoment.copy(),
        )

    # ---------------------------------------------------------------- reading
    @property
    def n_representations(self) -> int:
        return 0 if self.sizes is None else len(self.sizes)

    def _require(self, min_samples: int = 2) -> None:
        if self.n_samples < min_samples:
            raise ValueError(f"need at least {min_samples} samples, these statistics have {self.n_samples}")

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
        self._require(2)
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
        )

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write to ``path`` (.npz) atomically: a temporary file in the same folder, then a rename."""
        import os
        import tempfile

        self._require(1)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(
                    fh,
                    sizes=np.asarray(self.sizes, dtype=np.int64),
                    n_samples=np.asarray(self.n_samples, dtype=np.int64),
                    mean=self.mean,
                    comoment=self.comoment,
                )
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> SufficientStats:
        with np.load(path) as f:
            return cls(
                sizes=tuple(int(s) for s in f["sizes"]),
                n_samples=int(f["n_samples"]),
                mean=f["mean"].astype(np.float64),
                comoment=f["comoment"].astype(np.float64),
            )
