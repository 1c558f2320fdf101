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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.linalg import blas

from .validation import check_paired, default_names

__all__ = ["SufficientStats"]

# Rows per chunk are chosen so that one centred float64 chunk holds about this many elements (256 MB).
_CHUNK_ELEMENTS = 1 << 25


def _direct_comoment(blocks: Sequence[np.ndarray], means: np.ndarray) -> np.ndarray | None:
    """``Zc' Zc`` as raw products ``Z' Z - n m m'``, block by block, without copying the data.

    Only for float64 input (float32/16 must be widened first). Returns None when cancellation would
    cost more than 6 significant digits on some feature (mean^2 > 1e6 variance): the caller then uses
    the centred path. Exactly constant features (raw product 0) are fine.
    """
    n = blocks[0].shape[0]
    sizes = [b.shape[1] for b in blocks]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    total = int(offsets[-1])
    out = np.empty((total, total), dtype=np.float64)
    for a, (ba, la, ha) in enumerate(zip(blocks, offsets[:-1], offsets[1:], strict=True)):
        for b, (bb, lb, hb) in enumerate(zip(blocks, offsets[:-1], offsets[1:], strict=True)):
            if b < a:
                continue
            product = ba.T @ bb  # syrk (exactly symmetric) on the diagonal blocks, gemm off it
            out[la:ha, lb:hb] = product
            if b > a:
                out[lb:hb, la:ha] = product.T
    raw_diag = np.diag(out).copy()
    out -= np.outer(means * n, means)  # m_i m_j == m_j m_i exactly: the result stays symmetric
    centred_diag = np.diag(out)
    if np.any(raw_diag > 1e6 * np.maximum(centred_diag, 0.0)):
        return None
    return out


def _centred_comoment(blocks: Sequence[np.ndarray], means: np.ndarray, chunk_rows: int) -> np.ndarray:
    """``Zc' Zc`` of the column-stacked blocks centred by ``means``, in float64, chunk by chunk.

    Each chunk is centred into one preallocated float64 buffer (no stacked copy of the data) and
    accumulated with a symmetric rank-k update (BLAS ``dsyrk``), the same kernel numpy uses for
    ``Z.T @ Z``. Returns the full symmetric matrix.
    """
    n = blocks[0].shape[0]
    sizes = [b.shape[1] for b in blocks]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    total = int(offsets[-1])
    rows = max(1, min(n, chunk_rows))
    buf = np.empty((rows, total), dtype=np.float64)
    acc = np.zeros((total, total), dtype=np.float64, order="F")
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        chunk = buf[: stop - start]
        for b, lo, hi in zip(blocks, offsets[:-1], offsets[1:], strict=True):
            np.subtract(b[start:stop], means[lo:hi], out=chunk[:, lo:hi], casting="unsafe")
        # chunk.T is Fortran-ordered (total x rows): acc += chunk.T @ chunk, upper triangle only.
        acc = blas.dsyrk(1.0, chunk.T, beta=1.0, c=acc, trans=0, lower=0, overwrite_c=1)
    # mirror the upper triangle into the lower one, in place
    lower = np.tril_indices(total, -1)
    acc[lower] = acc.T[lower]
    return np.ascontiguousarray(acc)


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
        sums = [b.sum(axis=0, dtype=np.float64) for b in checked]
        if not all(np.isfinite(s).all() for s in sums):
            check_paired(*checked, names=names or default_names(len(checked)), min_samples=1)
            raise ValueError("feature values are too large: their sums overflow float64")
        mean_b = np.concatenate(sums) / n_b
        total = sum(sizes)
        chunk_rows = max(256, _CHUNK_ELEMENTS // total)
        comoment_b = None
        if all(b.dtype == np.float64 for b in checked):
            comoment_b = _direct_comoment(checked, mean_b)
        if comoment_b is None:
            comoment_b = _centred_comoment(checked, mean_b, chunk_rows)
        self._merge_in(n_b, mean_b, comoment_b)
        return self

    def _merge_in(self, n_b: int, mean_b: np.ndarray, comoment_b: np.ndarray) -> None:
        if self.n_samples == 0:
            self.n_samples, self.mean, self.comoment = n_b, mean_b.copy(), comoment_b.copy()
            return
        assert self.mean is not None and self.comoment is not None
        n_a = self.n_samples
        n = n_a + n_b
        delta = mean_b - self.mean
        self.comoment += comoment_b
        scale = n_a * n_b / n
        # rank-one correction; the co-moment is symmetric so its C-order buffer is a valid F-order one.
        out = blas.dger(scale, delta, delta, a=self.comoment.T, overwrite_a=1)
        if not np.shares_memory(out, self.comoment):  # pragma: no cover - BLAS made a copy
            self.comoment = np.ascontiguousarray(out.T)
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
