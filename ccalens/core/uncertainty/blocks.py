"""Block statistics for the bootstrap: per-block co-moments merged with resampling weights.

The samples are split into B blocks and each block's sufficient statistics are computed once (one pass over
the data). A bootstrap replicate draws B blocks with replacement (multiplicities ``w_b``) and merges the
block statistics with those weights; nothing is read again. With block means ``m_b``, co-moments ``C_b`` and
sizes ``n_b``, the replicate has

    n = sum_b w_b n_b,   m = sum_b w_b n_b m_b / n,
    S = sum_b w_b C_b + sum_b w_b n_b (m_b - m)(m_b - m)'.

It is computed as ``S = sum_b w_b R_b - n (m - g)(m - g)'`` with ``R_b = C_b + n_b (m_b - g)(m_b - g)'``
(the block's co-moment about the global mean ``g``, the same algebra, stable because ``m - g`` is small):
one weighted sum of the precomputed ``R_b`` (lower triangles, batched over replicates as one matrix
product) and a rank-one correction. If the block statistics would need more than ``_PACKED_BUDGET`` bytes,
replicates are computed by a weighted product over the data (``Zc' diag(w) Zc``) instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.linalg

from .. import device
from ..stats import SufficientStats
from ..validation import check_paired, default_names

#: Default number of blocks: enough for the block bootstrap to be close to the i.i.d. one.
DEFAULT_BLOCKS = 256
#: Fewest blocks the default chooses when the memory budget would allow fewer (then replicates use the data).
_MIN_BLOCKS = 64
#: Largest memory (bytes) the per-block statistics may take; beyond it replicates use weighted data products.
_PACKED_BUDGET = 1 << 30

Partition = Literal["random", "contiguous"]


@dataclass
class Blocks:
    """Per-block statistics ready for weighted merges (see the module docstring).

    ``counts: (B,)`` samples per block; ``center: (D,)`` global mean g; ``offsets: (B, D)`` m_b - g;
    ``packed: (B, T)`` lower triangles of R_b (row by row) (T = D (D + 1) / 2), or None when ``data`` is used instead:
    ``data: (n, D)`` float64 data minus g (a NumPy array, or a torch tensor on its device) with ``row_block: (n,)``
    the block of each row.
    """

    sizes: tuple[int, ...]
    counts: np.ndarray
    center: np.ndarray
    offsets: np.ndarray
    packed: np.ndarray | None = None
    data: Any = None
    row_block: np.ndarray | None = None

    @property
    def n_blocks(self) -> int:
        return int(self.counts.shape[0])

    @property
    def width(self) -> int:
        return int(sum(self.sizes))

    def merge(self, weights: np.ndarray) -> Callable[[int], SufficientStats]:
        """The weighted merges of ``weights: (r, B)``: returns ``k -> statistics of replicate k``.

        The weighted sums of all r replicates are one matrix product, done here; each call then unpacks its
        replicate into new arrays (so calls may run side by side in threads).
        """
        weights = np.asarray(weights, dtype=np.float64)
        D = self.width
        n = weights @ self.counts  # (r,)
        if np.any(n < 2):
            raise ValueError("a replicate has fewer than 2 samples: use more (or larger) blocks")
        shift = (weights * self.counts) @ self.offsets / n[:, None]  # (r, D): m - g
        merged = weights @ self.packed if self.packed is not None else None  # (r, T)
        lower, mirror = _flat_triangles(D) if merged is not None else (None, None)

        def replicate(k: int) -> SufficientStats:
            if merged is not None:
                S = np.empty((D, D))
                flat = S.reshape(-1)
                flat[lower] = merged[k]
                flat[mirror] = merged[k]
            elif device.is_tensor(self.data):  # torch data: the product on its device, (D, D) to the host
                assert self.row_block is not None
                S = device.weighted_products(self.data, weights[k][self.row_block])
            else:
                assert self.data is not None and self.row_block is not None
                S = (self.data.T * weights[k][self.row_block]) @ self.data
                S = 0.5 * (S + S.T)
            v = np.sqrt(n[k]) * shift[k]
            raw = np.diagonal(S).copy()
            S -= np.multiply.outer(v, v)
            # a feature constant within the replicate keeps only the cancellation error of the subtraction
            # (weighted sums of B blocks: at most ~B eps of its raw second moment): it is exactly constant
            lost = np.diagonal(S) <= _CANCELLATION * weights.shape[1] * raw
            if lost.any():
                S[lost, :] = 0.0
                S[:, lost] = 0.0
            return SufficientStats(
                sizes=self.sizes, n_samples=round(float(n[k])), mean=self.center + shift[k], comoment=S
            )

        return replicate


#: Relative cancellation error per merged block of a replicate's diagonal co-moment (a few float64 epsilons).
_CANCELLATION = 4.0 * np.finfo(np.float64).eps


def _flat_triangles(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the lower triangle of a C-ordered ``(width, width)`` matrix, row by row, and of its mirror."""
    rows, cols = np.tril_indices(width)
    return rows * width + cols, cols * width + rows


def _pack_lower(matrix: np.ndarray, out: np.ndarray) -> None:
    """Copy the lower triangle of a C-ordered square ``matrix``, row by row, into ``out: (T,)``.

    Row i of the lower triangle is the contiguous slice ``matrix[i, :i + 1]``: a loop of slice copies is several
    times faster than a fancy-index gather.
    """
    start = 0
    for i in range(matrix.shape[0]):
        out[start : start + i + 1] = matrix[i, : i + 1]
        start += i + 1


def _pack_products(rows: np.ndarray, out: np.ndarray) -> None:
    """Lower triangle of ``rows' rows`` (float64 ``(m, D)``), row by row, into ``out: (T,)``."""
    # rows.T is Fortran-ordered (D, m): syrk's trans=0 gives rows' rows (Fortran order, upper triangle) without a
    # copy; its transpose is C-ordered with the same values in its lower triangle
    product = scipy.linalg.blas.dsyrk(1.0, rows.T, trans=0, lower=0)
    _pack_lower(product.T, out)


def checked_arrays(arrays: Sequence[Any]) -> list[Any]:
    """The data of a resampling method, validated: torch tensors (all of them) stay on their device, checked there
    (shapes, sample counts, NaN/Inf: :mod:`ccalens.core.device`); anything else becomes NumPy arrays
    (:func:`~ccalens.core.validation.check_paired`)."""
    if arrays and all(device.is_tensor(a) for a in arrays):
        names = default_names(len(arrays))
        tensors = device.check_tensors(arrays, names, min_samples=2)
        device.check_finite_tensors(tensors, names)
        return tensors
    return check_paired(*arrays)


def _blocks_from_tensors(tensors: Sequence[Any], order: np.ndarray, bounds: np.ndarray, *, packed: bool) -> Blocks:
    """:func:`_blocks_from_arrays` of torch tensors: the rows' products on their device, only ``(D, D)`` block
    products (or, unpacked, nothing until a replicate's weighted product) come to the host."""
    sizes = tuple(int(t.shape[1]) for t in tensors)
    center = device.column_means(tensors)
    B, D = bounds.shape[0] - 1, sum(sizes)
    counts = np.diff(bounds).astype(np.float64)
    offsets = np.empty((B, D))
    if not packed:
        data = device.centred_rows(tensors, order, center)
        for b in range(B):
            offsets[b] = device.to_host(data[bounds[b] : bounds[b + 1]].mean(dim=0))
        return Blocks(sizes, counts, center, offsets, data=data, row_block=np.repeat(np.arange(B), np.diff(bounds)))
    R = np.empty((B, D * (D + 1) // 2))
    for b in range(B):
        offsets[b], product = device.block_products(tensors, order[bounds[b] : bounds[b + 1]], center)
        _pack_lower(product, R[b])  # about g: C_b + n_b (m_b - g)(m_b - g)'
    return Blocks(sizes, counts, center, offsets, packed=R)


def _blocks_from_arrays(
    arrays: Sequence[Any], order: np.ndarray, bounds: np.ndarray, *, packed: bool
) -> Blocks:
    """Block statistics of ``arrays`` (same rows; NumPy arrays, or torch tensors from :func:`checked_arrays`),
    blocks ``order[bounds[b]:bounds[b + 1]]``."""
    if device.is_tensor(arrays[0]):
        return _blocks_from_tensors(arrays, order, bounds, packed=packed)
    sizes = tuple(int(a.shape[1]) for a in arrays)
    n = arrays[0].shape[0]
    center = np.concatenate([a.mean(axis=0, dtype=np.float64) for a in arrays])
    B = bounds.shape[0] - 1
    D = sum(sizes)
    counts = np.diff(bounds).astype(np.float64)
    offsets = np.empty((B, D))
    if not packed:
        data = np.empty((n, D))
        lo = 0
        for a in arrays:
            np.subtract(a[order], center[lo : lo + a.shape[1]], out=data[:, lo : lo + a.shape[1]], casting="unsafe")
            lo += a.shape[1]
        row_block = np.repeat(np.arange(B), np.diff(bounds))
        for b in range(B):
            offsets[b] = data[bounds[b] : bounds[b + 1]].mean(axis=0)
        return Blocks(sizes, counts, center, offsets, data=data, row_block=row_block)
    R = np.empty((B, D * (D + 1) // 2))
    contiguous = bool(np.all(order == np.arange(n)))
    for b in range(B):
        idx = slice(bounds[b], bounds[b + 1]) if contiguous else order[bounds[b] : bounds[b + 1]]
        rows = np.empty((bounds[b + 1] - bounds[b], D))
        lo = 0
        for a in arrays:
            np.subtract(a[idx], center[lo : lo + a.shape[1]], out=rows[:, lo : lo + a.shape[1]], casting="unsafe")
            lo += a.shape[1]
        offsets[b] = rows.mean(axis=0)
        _pack_products(rows, R[b])  # about g: C_b + n_b (m_b - g)(m_b - g)'
    return Blocks(sizes, counts, center, offsets, packed=R)


def _blocks_from_stats(blocks: Sequence[SufficientStats], select: Sequence[int] | None) -> Blocks:
    """Block statistics from given statistics (one per batch), optionally of some representations only."""
    if len(blocks) < 2:
        raise ValueError(f"blocks must hold at least 2 SufficientStats (one per batch), got {len(blocks)}")
    chosen = []
    for k, s in enumerate(blocks):
        if not isinstance(s, SufficientStats):
            raise TypeError(f"blocks[{k}] must be SufficientStats, got {type(s).__name__}")
        if s.n_samples < 1 or s.mean is None or s.comoment is None:
            raise ValueError(f"blocks[{k}] holds no samples")
        if s.sizes != blocks[0].sizes:
            raise ValueError(f"blocks[{k}] has feature sizes {s.sizes}, blocks[0] has {blocks[0].sizes}")
        if not (np.isfinite(s.mean).all() and np.isfinite(s.comoment).all()):
            raise ValueError(f"blocks[{k}] holds NaN/Inf statistics: its batch had NaN/Inf feature values")
        chosen.append(s.select(select) if select is not None else s)
    sizes = chosen[0].sizes
    assert sizes is not None
    counts = np.array([s.n_samples for s in chosen], dtype=np.float64)
    means = np.stack([s.mean for s in chosen])  # type: ignore[misc]
    center = counts @ means / counts.sum()
    offsets = means - center
    D = sum(sizes)
    R = np.empty((len(chosen), D * (D + 1) // 2))
    for b, s in enumerate(chosen):
        assert s.comoment is not None
        v = np.sqrt(counts[b]) * offsets[b]
        _pack_lower(s.comoment + np.multiply.outer(v, v), R[b])
    return Blocks(tuple(sizes), counts, center, offsets, packed=R)


def _partition(
    n: int, block_size: int | None, partition: Partition, rng: np.random.Generator, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row order and block bounds: block b holds rows ``order[bounds[b]:bounds[b + 1]]``."""
    if partition not in ("random", "contiguous"):
        raise ValueError(f"partition must be 'random' or 'contiguous', got {partition!r}")
    if block_size is None:
        # as many blocks as the memory budget allows, up to DEFAULT_BLOCKS (beyond it: the weighted-data path)
        B = min(n, max(_MIN_BLOCKS, min(DEFAULT_BLOCKS, _PACKED_BUDGET // _packed_bytes(1, width))))
        bounds = (np.arange(B + 1) * n) // B
    else:
        if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
            raise ValueError(f"block_size must be a positive integer (rows per block) or None, got {block_size!r}")
        if block_size > n // 2:
            raise ValueError(f"block_size={block_size} leaves fewer than 2 blocks of the {n} samples")
        bounds = np.append(np.arange(0, n, int(block_size)), n)
    single = bool(np.all(np.diff(bounds) == 1))
    order = rng.permutation(n) if partition == "random" and not single else np.arange(n)
    return order, bounds


def _packed_bytes(n_blocks: int, width: int) -> int:
    return n_blocks * (width * (width + 1) // 2) * 8


def _fits_packed(n_blocks: int, width: int) -> bool:
    return _packed_bytes(n_blocks, width) <= _PACKED_BUDGET

