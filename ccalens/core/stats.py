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
the first batch's leading rows, kept for the later batches; see :func:`~ccalens.core.comoments.provisional_offset`):
``Zc' Zc = (Z - c)' (Z - c) - n (m - c)(m - c)'``. With ``c`` close to the mean the raw products of the
shifted data suffer no cancellation, so the error does not depend on how far the features sit from 0.
Features whose mean lies within a standard deviation of 0 keep offset 0: raw products lose at most a bit
there, and a representation with only such features enters the products without a copy.
Products and accumulation are in float64 whatever the input dtype, except for the statistics of
:func:`second_moment_statistics` (float32 products of float32 input, for linear CKA only; see there).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._files import atomic_write
from .comoments import (
    CHUNK_ELEMENTS,
    FLOAT32_CHUNK_ROWS,
    MAX_OFFSET_ERROR,
    check_underflow,
    leading_mean,
    provisional_offset,
    shifted_comoment,
)
from .device import check_finite_tensors, check_tensors, device_comoment, is_tensor
from .device import first_row as device_first_row
from .validation import check_paired, default_names

__all__ = ["SufficientStats", "add_merge_correction"]

def add_merge_correction(
    comoment: np.ndarray, n_a: int, n_b: int, delta: np.ndarray, delta_right: np.ndarray | None = None
) -> None:
    """Chan, Golub and LeVeque's rank-one term of merging two sample sets, added in place:
    ``comoment += (n_a n_b / n) conj(delta) delta_right^T`` with ``delta`` the difference of the two sets' means
    ``(..., p)`` (``delta_right (..., q)``: of the other representation, for a cross block; default ``delta``),
    batched over leading axes (DFT-CCA's frequencies) and real or complex. Formed as ``conj(v) w^T`` with
    ``v = sqrt(n_a n_b / n) delta``, so a diagonal block stays exactly Hermitian. ``comoment: (..., p, q)``."""
    scale = np.sqrt(n_a * n_b / (n_a + n_b))
    v = scale * delta
    w = v if delta_right is None else scale * delta_right
    left = np.conj(v) if np.iscomplexobj(v) else v
    comoment += left[..., :, None] * w[..., None, :]


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
        on_device = all(is_tensor(b) for b in blocks)  # torch tensors stay on their device (ccalens.core.device)
        if on_device:
            checked = check_tensors(blocks, names or self.names or default_names(len(blocks)))
        else:
            checked = check_paired(*blocks, names=names, min_samples=1, check_finite=False)
        sizes = tuple(int(b.shape[1]) for b in checked)
        if self.sizes is None:
            self.sizes = sizes
            self.names = tuple(names or default_names(len(checked)))
        elif sizes != self.sizes:
            raise ValueError(f"batch feature counts {sizes} differ from the earlier batches' {self.sizes}")
        n_b = checked[0].shape[0]
        names = names or self.names or default_names(len(checked))
        if on_device:
            first_row = device_first_row(checked)
            float32 = self._float32_products and all(str(blk.dtype) == "torch.float32" for blk in checked)
        else:
            first_row = np.concatenate([blk[0].astype(np.float64) for blk in checked])
            float32 = self._float32_products and all(blk.dtype == np.float32 for blk in checked)
        if self.n_samples == 0:  # the provisional offset: the mean of this first batch's leading rows
            offset = provisional_offset(first_row, leading_mean(checked))
        else:  # later batches keep it, so that the means are compared without rounding (see _current_offset)
            offset = self._current_offset(first_row)
            float32 = float32 and np.array_equal(offset.astype(np.float32), offset)
        if float32 and self.n_samples == 0:
            offset = offset.astype(np.float32).astype(np.float64)  # float32 data are shifted by float32 values
        comoment_b, shifted_mean = self._batch_comoment(checked, offset, float32, names)
        check_underflow(checked, comoment_b, names)
        far = n_b * shifted_mean**2 > MAX_OFFSET_ERROR * np.maximum(np.diag(comoment_b), 0.0)
        if far.any():
            # the offset lies far from this batch's mean (an outlier among the leading rows, a drifting stream):
            # it would cost digits, so once more, shifted by the batch's mean
            offset = provisional_offset(first_row, offset + shifted_mean)
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
        chunk_rows = max(256, CHUNK_ELEMENTS // width)
        if float32:  # the float32 rounding of a chunk's products grows with its rows: at most FLOAT32_CHUNK_ROWS
            chunk_rows = min(chunk_rows, FLOAT32_CHUNK_ROWS)
        dtype = np.float32 if float32 else np.float64
        # about the batch mean (raw products minus n d d', d = mean - offset); non-finite values are reported just
        # below, by name
        products = device_comoment if is_tensor(blocks[0]) else shifted_comoment
        comoment, sums = products(blocks, offset, dtype=dtype, chunk_rows=chunk_rows)
        shifted_mean = sums / n_b
        bad = ~np.isfinite(np.diag(comoment)) | ~np.isfinite(shifted_mean)
        if bad.any():
            if is_tensor(blocks[0]):  # reduced on the device: only the first bad entry is read
                check_finite_tensors(blocks, tuple(names))
            else:
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
            self._offset = provisional_offset(first_row, np.where(small, 0.0, self.mean))
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
        add_merge_correction(self.comoment, n_a, n_b, delta)
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

    Chunks of :data:`FLOAT32_CHUNK_ROWS` rows, shifted by float32 provisional offsets (an exact subtraction near
    the mean), are multiplied by sgemm and each chunk's products accumulated in float64: twice the speed of
    float64 products, with co-moment entries within float32 rounding. Linear CKA, a ratio of Frobenius norms,
    then stays within 1e-7 of its float64 value whatever the condition number; canonical correlations would not
    (their error grows with it), so these statistics never leave the linear CKA call that made them.
    """
    stats = SufficientStats()
    stats._float32_products = True
    return stats.update(*arrays, names=names)
