"""Uncertainty of a similarity score: bootstrap confidence intervals and permutation tests (SciPy style).

Bootstrap from block statistics
-------------------------------
The samples are split into B blocks and each block's sufficient statistics are computed once (one pass over
the data). A bootstrap replicate draws B blocks with replacement (multiplicities ``w_b``) and merges the
block statistics with those weights; nothing is read again. With block means ``m_b``, co-moments ``C_b`` and
sizes ``n_b``, the replicate has

    n = sum_b w_b n_b,   m = sum_b w_b n_b m_b / n,
    S = sum_b w_b C_b + sum_b w_b n_b (m_b - m)(m_b - m)'.

It is computed as ``S = sum_b w_b R_b - n (m - g)(m - g)'`` with ``R_b = C_b + n_b (m_b - g)(m_b - g)'``
(the block's co-moment about the global mean ``g``, the same algebra, stable because ``m - g`` is small):
one weighted sum of the precomputed ``R_b`` (lower triangles, batched over replicates as one matrix
product) and a rank-one correction. Each replicate then costs that merge and the measure's small
eigenproblems; for wide representations the replicates are solved side by side, one BLAS thread each
(:mod:`ccalens.core.threads`). Replicate k draws ``rng.integers(0, B, size=B)`` (after the random partition's
``rng.permutation(n)`` when blocks hold more than one sample), so a seed fixes every interval.

*When is it exact?* A block bootstrap is the i.i.d. bootstrap of the blocks. With ``block_size=1`` every
block is one sample and the result is exactly the classical i.i.d. bootstrap (Efron), the same replicates as
resampling rows and recomputing. With larger blocks it approximates it: for i.i.d. samples assigned to
blocks at random (``partition="random"``, the default), block statistics are i.i.d. and the bootstrap is
consistent; its standard error has a relative noise of about ``sqrt(2 / B)`` more than the i.i.d. one, so
the default uses ``B = min(n, 256)`` blocks (about 9%; exact i.i.d. whenever n <= 256), fewer (down to 64)
if the block statistics would exceed ``_PACKED_BUDGET`` (1 GiB: 255 blocks at p + q = 1024). With
``partition="contiguous"`` the blocks are runs of consecutive samples: this is the non-overlapping block
bootstrap (Carlstein 1986), valid for dependent samples such as time series or frames of one recording,
provided the blocks are longer than the dependence. Streamed statistics (one :class:`SufficientStats` per
batch) are bootstrapped with the batches as blocks, so batches must be exchangeable (shuffled data) or
long contiguous runs.

Intervals, for the population value (``estimand="population"``): these similarities are biased upward at
finite n, and a with-replacement resample repeats rows, which raises them further, so the percentile interval
of the replicates sits above an estimate that is itself too high and misses the population value (see
``validation/coverage_study.py``). The default, ``"half_sampling"``, draws subsamples of half the blocks
*without* replacement (a 0/1 weighted merge of the same block statistics): the estimate's bias is the
delete-half jackknife ``(mean of the half-sample scores - estimate) m / (n - m)`` (exact for a bias of order
1 / n), its standard error ``sd(half-sample scores) sqrt(m / (n - m))``, and the interval ``estimate - bias +-
t se`` (Student's t on B - 1 degrees of freedom: wider when few blocks). It covers at its nominal rate where the
score is a smooth function of the covariances (linear and debiased CKA; CCA, SVCCA, PWCCA and Procrustes when no
population canonical correlation is near 0); where some are 0 the bias is of order 1 / sqrt(n) and no
resampling interval here covers: compare with ``null_mean_rho`` and the permutation test. Also offered:
``"basic"`` (reverse percentile), ``"percentile"`` (quantiles of the replicates) and ``"bca"``
(bias-corrected and accelerated, Efron 1987, its acceleration from the delete-one-block jackknife: B more
solves). Where the replicates lie (almost) wholly on one side of the estimate BCa's correction is undefined;
the result then reports the basic interval and says so in ``note``.

Measures without a statistics path (``debiased_linear_cka``, ``rbf_cka``) are bootstrapped by resampling
the rows of the drawn blocks and recomputing (one pass per replicate). If the block statistics would need
more than ``_PACKED_BUDGET`` bytes, replicates are computed by a weighted product over the data
(``Zc' diag(w) Zc``, one pass per replicate) instead.

Permutation test
----------------
The null hypothesis of unrelated representations: rows of Y are permuted, which destroys the pairing but
keeps each side's distribution. Sxx and Syy (and the means) do not change, so each side is whitened once and
a permutation costs the cross product of the whitened data ``Zx' Zy[perm]`` and one small SVD. The p-value
is ``(count + 1) / (n_permutations + 1)`` (the observed pairing counts as one permutation), so it is never 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import scipy.linalg
from scipy import stats as scipy_stats
from scipy.special import ndtr, ndtri

from .stats import SufficientStats
from .threads import MIN_PARALLEL_WIDTH, run_tasks
from .validation import UnderdeterminedWarning, check_paired
from .whitening import DEFAULT_TOL, Whitening, whiten

__all__ = [
    "BootstrapMatrixResult",
    "BootstrapResult",
    "ConfidenceInterval",
    "FewBlocksWarning",
    "PermutationTestResult",
    "bootstrap",
    "bootstrap_matrix",
    "permutation_test",
]

#: Default number of blocks: enough for the block bootstrap to be close to the i.i.d. one (see module doc).
DEFAULT_BLOCKS = 256
#: Fewest blocks the default chooses when the memory budget would allow fewer (then replicates use the data).
_MIN_BLOCKS = 64
#: Largest memory (bytes) the per-block statistics may take; beyond it replicates use weighted data products.
_PACKED_BUDGET = 1 << 30
#: Replicates merged per batched matrix product are limited so the batch holds about this many float64.
_MERGE_BATCH_ELEMENTS = 1 << 25

Partition = Literal["random", "contiguous"]
Method = Literal["half_sampling", "basic", "percentile", "bca"]


class ConfidenceInterval(NamedTuple):
    """Lower and upper bound (floats, or ``(L, L)`` arrays for a matrix)."""

    low: Any
    high: Any


# --------------------------------------------------------------------------------- result types
@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap of one similarity score.

    Attributes:
        measure: measure name.
        estimate: the score on all samples.
        confidence_interval: ``(low, high)``.
        bootstrap_distribution: ``(n_resamples,)`` replicate scores.
        standard_error: standard deviation of the replicates (ddof=1).
        confidence_level, method: as requested (``method_used`` differs when BCa falls back, see ``note``).
        n_blocks: number of blocks B resampled.
        block_size: rows per block (the largest block; None for given block statistics).
        exact_iid: True when every block is one sample (the classical i.i.d. bootstrap).
        path: how replicates were computed: ``"block statistics"`` (weighted merges), ``"weighted data"``
            (one weighted product over the data per replicate) or ``"resampled rows"`` (recomputed).
        estimand: what the interval is for: ``"population"``, the similarity of the distributions the samples
            come from (not the score of this sample).
        bias: the estimate's bias estimated from the replicates (half-samples: the delete-half jackknife
            ``(mean of half-sample scores - estimate) m / (n - m)``; bootstrap methods: mean of the replicates
            minus the estimate); ``bias_corrected_estimate = estimate - bias``.
        method_used: the method that produced the interval; ``note``: why it differs from ``method``, or None.
    """

    measure: str
    estimate: float
    confidence_interval: ConfidenceInterval
    bootstrap_distribution: np.ndarray = field(repr=False)
    standard_error: float
    confidence_level: float
    method: str
    n_blocks: int
    block_size: int | None
    exact_iid: bool
    path: str
    bias: float = 0.0
    method_used: str = ""
    note: str | None = None
    estimand: str = "population"

    @property
    def bias_corrected_estimate(self) -> float:
        return self.estimate - self.bias

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (without the replicates)."""
        return {
            "measure": self.measure,
            "estimate": self.estimate,
            "confidence_interval": [self.confidence_interval.low, self.confidence_interval.high],
            "standard_error": self.standard_error,
            "confidence_level": self.confidence_level,
            "method": self.method,
            "n_resamples": int(self.bootstrap_distribution.shape[0]),
            "n_blocks": self.n_blocks,
            "block_size": self.block_size,
            "exact_iid": self.exact_iid,
            "path": self.path,
            "estimand": self.estimand,
            "bias": self.bias,
            "bias_corrected_estimate": self.bias_corrected_estimate,
            "method_used": self.method_used,
            "note": self.note,
        }


@dataclass(frozen=True)
class BootstrapMatrixResult:
    """Bootstrap of a similarity matrix: one interval per cell.

    Attributes:
        measure, names: as in :class:`~ccalens.core.result.SimilarityMatrix`.
        scores: ``(L, L)`` scores on all samples.
        confidence_interval: ``(low (L, L), high (L, L))``.
        bootstrap_distribution: ``(n_resamples, L, L)`` replicate matrices.
        standard_error: ``(L, L)``.
        confidence_level, method, n_blocks, block_size, exact_iid, path, estimand, method_used, note: as in
            :class:`BootstrapResult`; ``bias: (L, L)``.
    """

    measure: str
    names: tuple[str, ...]
    scores: np.ndarray
    confidence_interval: ConfidenceInterval
    bootstrap_distribution: np.ndarray = field(repr=False)
    standard_error: np.ndarray
    confidence_level: float
    method: str
    n_blocks: int
    block_size: int | None
    exact_iid: bool
    path: str
    bias: np.ndarray | None = None
    method_used: str = ""
    note: str | None = None
    estimand: str = "population"

    def interval(self, i: int, j: int) -> ConfidenceInterval:
        """The interval of cell ``(i, j)``."""
        return ConfidenceInterval(float(self.confidence_interval.low[i, j]), float(self.confidence_interval.high[i, j]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (without the replicates)."""
        return {
            "measure": self.measure,
            "names": list(self.names),
            "scores": self.scores.tolist(),
            "low": self.confidence_interval.low.tolist(),
            "high": self.confidence_interval.high.tolist(),
            "standard_error": self.standard_error.tolist(),
            "confidence_level": self.confidence_level,
            "method": self.method,
            "n_resamples": int(self.bootstrap_distribution.shape[0]),
            "n_blocks": self.n_blocks,
            "block_size": self.block_size,
            "exact_iid": self.exact_iid,
            "path": self.path,
            "estimand": self.estimand,
            "bias": None if self.bias is None else np.asarray(self.bias).tolist(),
            "method_used": self.method_used,
            "note": self.note,
        }


@dataclass(frozen=True)
class PermutationTestResult:
    """Permutation test of "X and Y are unrelated" (rows of Y permuted).

    Attributes:
        measure: measure name.
        statistic: the score of the observed pairing.
        pvalue: ``(count + 1) / (n_permutations + 1)``; count = permutations at least as extreme.
        null_distribution: ``(n_permutations,)`` scores of permuted pairings.
        null_mean, null_std: mean and standard deviation (ddof=1) of the null distribution: what unrelated
            data of this shape give at this n.
        null_mean_rho: mean over permutations of the mean canonical correlation (CCA family, else None).
        reference_null_mean_rho: the cheap expectation the measure's own result carries (its ``null_mean_rho``,
            when it has one), for comparison with the permutation value; else None.
        alternative: ``"greater"``, ``"less"`` or ``"two-sided"``.
        path: ``"whitened cross products"`` (each side whitened once), ``"cross block"`` (statistics with the
            permuted cross block) or ``"resampled rows"`` (recomputed from the permuted data).
    """

    measure: str
    statistic: float
    pvalue: float
    null_distribution: np.ndarray = field(repr=False)
    null_mean: float
    null_std: float
    null_mean_rho: float | None
    alternative: str
    path: str
    reference_null_mean_rho: float | None = None

    @property
    def n_permutations(self) -> int:
        return int(self.null_distribution.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (without the null distribution)."""
        return {
            "measure": self.measure,
            "statistic": self.statistic,
            "pvalue": self.pvalue,
            "null_mean": self.null_mean,
            "null_std": self.null_std,
            "null_mean_rho": self.null_mean_rho,
            "reference_null_mean_rho": self.reference_null_mean_rho,
            "n_permutations": self.n_permutations,
            "alternative": self.alternative,
            "path": self.path,
        }


# --------------------------------------------------------------------------------- measure adapter
def _measure_function(measure: str) -> tuple[Callable[..., Any], bool]:
    """The measure's function and whether it accepts ``stats=`` (a statistics path)."""
    from .measures import MEASURES, STATS_MEASURES

    if not isinstance(measure, str) or measure not in MEASURES:
        raise ValueError(f"measure must be one of {sorted(MEASURES)}, got {measure!r}")
    return MEASURES[measure], measure in STATS_MEASURES


def _score_from_stats(fn: Callable[..., Any], stats: SufficientStats, options: dict[str, Any]) -> Any:
    """The measure of a 2-representation statistics object (i=0, j=1)."""
    return fn(stats=stats, **options)


# --------------------------------------------------------------------------------- block statistics
@dataclass
class _Blocks:
    """Per-block statistics ready for weighted merges (see the module docstring).

    ``counts: (B,)`` samples per block; ``center: (D,)`` global mean g; ``offsets: (B, D)`` m_b - g;
    ``packed: (B, T)`` lower triangles of R_b (row by row) (T = D (D + 1) / 2), or None when ``data`` is used instead:
    ``data: (n, D)`` float64 data minus g with ``row_block: (n,)`` the block of each row.
    """

    sizes: tuple[int, ...]
    counts: np.ndarray
    center: np.ndarray
    offsets: np.ndarray
    packed: np.ndarray | None = None
    data: np.ndarray | None = None
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
            else:
                assert self.data is not None and self.row_block is not None
                S = (self.data.T * weights[k][self.row_block]) @ self.data
                S = 0.5 * (S + S.T)
            v = np.sqrt(n[k]) * shift[k]
            S -= np.multiply.outer(v, v)
            return SufficientStats(
                sizes=self.sizes, n_samples=round(float(n[k])), mean=self.center + shift[k], comoment=S
            )

        return replicate


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


def _blocks_from_arrays(
    arrays: Sequence[np.ndarray], order: np.ndarray, bounds: np.ndarray, *, packed: bool
) -> _Blocks:
    """Block statistics of ``arrays`` (same rows), blocks ``order[bounds[b]:bounds[b + 1]]``."""
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
        return _Blocks(sizes, counts, center, offsets, data=data, row_block=row_block)
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
    return _Blocks(sizes, counts, center, offsets, packed=R)


def _blocks_from_stats(blocks: Sequence[SufficientStats], select: Sequence[int] | None) -> _Blocks:
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
    return _Blocks(tuple(sizes), counts, center, offsets, packed=R)


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


# --------------------------------------------------------------------------------- intervals
def _check_level(confidence_level: float) -> None:
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level}")


def _percentile_interval(replicates: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(replicates, [alpha, 1.0 - alpha], axis=0)
    return low, high


def _bca_interval(
    replicates: np.ndarray, estimate: np.ndarray, jackknife: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """BCa bounds (Efron 1987), elementwise over trailing axes; ``jackknife: (B, ...)`` leave-one-block-out values.

    The bias proportion is clipped to ``[1/(2R), 1 - 1/(2R)]`` so that a replicate distribution entirely on
    one side of the estimate (e.g. a score of exactly 1) gives a finite interval, not NaN.
    """
    R = replicates.shape[0]
    prop = np.mean(replicates < estimate, axis=0)
    prop = np.clip(prop, 0.5 / R, 1.0 - 0.5 / R)
    z0 = ndtri(prop)
    dev = jackknife.mean(axis=0) - jackknife
    num = np.sum(dev**3, axis=0)
    den = 6.0 * np.sum(dev**2, axis=0) ** 1.5
    accel = np.divide(num, den, out=np.zeros_like(np.asarray(num, dtype=np.float64)), where=den > 0)
    alpha = (1.0 - level) / 2.0
    bounds = []
    for z_alpha in (ndtri(alpha), ndtri(1.0 - alpha)):
        z = z0 + z_alpha
        q = ndtr(z0 + z / (1.0 - accel * z))
        bounds.append(q)
    flat = replicates.reshape(R, -1)
    lows = np.asarray(bounds[0]).reshape(-1)
    highs = np.asarray(bounds[1]).reshape(-1)
    low = np.array([np.quantile(flat[:, c], lows[c]) for c in range(flat.shape[1])])
    high = np.array([np.quantile(flat[:, c], highs[c]) for c in range(flat.shape[1])])
    shape = replicates.shape[1:]
    return low.reshape(shape), high.reshape(shape)


#: Interval methods; the default, ``"half_sampling"``, is the one the coverage study (validation/) supports.
METHODS = ("half_sampling", "basic", "percentile", "bca")
DEFAULT_METHOD = "half_sampling"
#: Fewer blocks than this and the interval rests on too few independent pieces: a warning says so (the
#: half-sampling interval then uses Student's t with B - 1 degrees of freedom, which widens it).
MIN_RELIABLE_BLOCKS = 20


@dataclass(frozen=True)
class _Interval:
    ci: ConfidenceInterval
    se: Any
    bias: Any
    method_used: str
    note: str | None


def _as_interval(low: Any, high: Any, ndim: int) -> ConfidenceInterval:
    if ndim == 1:
        return ConfidenceInterval(float(low), float(high))
    return ConfidenceInterval(np.asarray(low), np.asarray(high))


def _basic(replicates: np.ndarray, estimate: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Reverse percentile: ``[2 theta - q_(1 - a/2), 2 theta - q_(a/2)]``."""
    low, high = _percentile_interval(replicates, level)
    return 2 * estimate - high, 2 * estimate - low


def _interval(
    replicates: np.ndarray,
    estimate: np.ndarray,
    method: str,
    level: float,
    jackknife: Callable[[], np.ndarray],
    *,
    half_fraction: float | None = None,
    n_blocks: int = 0,
) -> _Interval:
    """The interval of ``method`` from ``replicates: (R, ...)`` of ``estimate``.

    ``half_sampling``: ``replicates`` are scores of subsamples without replacement holding a fraction ``m / n``
    of the rows (``half_fraction = m / (n - m)``); the estimate's bias is ``(mean - estimate) m / (n - m)``
    (the delete-half jackknife: a bias of order 1 / n), its standard error ``sd sqrt(m / (n - m))``
    (``Var(theta_m - theta_n) = sigma^2 (1/m - 1/n)``), and the interval ``estimate - bias +- t se`` with
    Student's t on ``n_blocks - 1`` degrees of freedom.
    """
    ndim = replicates.ndim
    if method == "half_sampling":
        assert half_fraction is not None
        bias = (replicates.mean(axis=0) - estimate) * half_fraction
        se = np.std(replicates, axis=0, ddof=1) * np.sqrt(half_fraction)
        t = float(scipy_stats.t.ppf(0.5 + level / 2, max(n_blocks - 1, 1)))
        centre = estimate - bias
        return _Interval(_as_interval(centre - t * se, centre + t * se, ndim), se, bias, method, None)
    se = np.std(replicates, axis=0, ddof=1)
    bias = replicates.mean(axis=0) - estimate
    if method == "percentile":
        low, high = _percentile_interval(replicates, level)
        return _Interval(_as_interval(low, high, ndim), se, bias, method, None)
    if method == "basic":
        low, high = _basic(replicates, estimate, level)
        return _Interval(_as_interval(low, high, ndim), se, bias, method, None)
    # BCa: undefined where the replicates lie (almost) wholly on one side of the estimate
    below = np.mean(replicates < estimate, axis=0)
    tail = (1.0 - level) / 2.0
    one_sided = np.minimum(below, 1.0 - below) < tail
    low, high = _bca_interval(replicates, estimate, jackknife(), level)
    note = None
    if np.any(one_sided):
        b_low, b_high = _basic(replicates, estimate, level)
        low, high = np.where(one_sided, b_low, low), np.where(one_sided, b_high, high)
        share = float(np.max(np.maximum(below, 1.0 - below)))
        note = (f"the bootstrap distribution lies on one side of the estimate in {share:.1%} of the replicates"
                f"{' (some cells)' if ndim > 1 else ''}: BCa's bias correction is undefined there, so the basic "
                "(reverse percentile) interval is reported instead")
    used = "basic" if np.all(one_sided) else "bca"
    return _Interval(_as_interval(low, high, ndim), se, bias, used, note)


def _draw_half_weights(rng: np.random.Generator, n_blocks: int, count: int) -> np.ndarray:
    """0/1 weights ``(count, B)``: replicate r keeps ``B // 2`` blocks drawn without replacement."""
    out = np.zeros((count, n_blocks), dtype=np.float64)
    for r in range(count):
        out[r, rng.permutation(n_blocks)[: n_blocks // 2]] = 1.0
    return out


def _few_blocks_warning(n_blocks: int) -> None:
    if n_blocks < MIN_RELIABLE_BLOCKS:
        warnings.warn(
            f"the interval rests on {n_blocks} blocks (fewer than {MIN_RELIABLE_BLOCKS}): its width is itself "
            "uncertain and a bootstrap of so few blocks is too narrow; the half-sampling interval widens by "
            f"Student's t on {n_blocks - 1} degrees of freedom. Stream more (smaller) batches for more blocks.",
            FewBlocksWarning, stacklevel=4)


class FewBlocksWarning(UserWarning):
    """An interval computed from fewer than :data:`MIN_RELIABLE_BLOCKS` blocks."""


# --------------------------------------------------------------------------------- bootstrap engine
def _draw_weights(rng: np.random.Generator, n_blocks: int, count: int) -> np.ndarray:
    """Multiplicities ``(count, B)``: replicate r draws ``rng.integers(0, B, size=B)`` (one call per replicate)."""
    out = np.empty((count, n_blocks), dtype=np.float64)
    for r in range(count):
        out[r] = np.bincount(rng.integers(0, n_blocks, size=n_blocks), minlength=n_blocks)
    return out


def _run_weighted(blocks: _Blocks, weights: np.ndarray, evaluate: Callable[[SufficientStats], Any]) -> np.ndarray:
    """``evaluate`` on every weighted merge (rows of ``weights``).

    Merges are batched (one matrix product per batch, bounded memory); within a batch the replicates run
    side by side, one BLAS thread each (:mod:`ccalens.core.threads`), when the representations are wide.
    """
    T = blocks.width * (blocks.width + 1) // 2
    batch = max(1, min(weights.shape[0], _MERGE_BATCH_ELEMENTS // max(T, 1)))
    workers = None if blocks.width >= MIN_PARALLEL_WIDTH else 1
    values: list[Any] = []
    with _gathered_warnings(weights.shape[0]):
        for start in range(0, weights.shape[0], batch):
            replicate = blocks.merge(weights[start : start + batch])

            def task(k: int, replicate: Callable[[int], SufficientStats] = replicate) -> Any:
                try:
                    return evaluate(replicate(k))
                except (ValueError, np.linalg.LinAlgError) as exc:
                    return exc

            count = min(batch, weights.shape[0] - start)
            results = run_tasks([lambda k=k: task(k) for k in range(count)], workers=workers)
            for k, res in enumerate(results):
                if isinstance(res, Exception):
                    raise _replicate_error(start + k, weights.shape[0], res) from res
                values.append(res)
    return np.asarray(values)


def _replicate_error(k: int, count: int, exc: BaseException) -> ValueError:
    return ValueError(
        f"replicate {k} of {count} failed ({exc}): a resample of the blocks can leave a feature constant or too "
        "few distinct samples; the score on all samples is fine. Use more samples or more blocks"
    )


class _gathered_warnings:  # a context manager, like warnings.catch_warnings
    """Collect the warnings of ``count`` replicates and re-issue one line per warning category: the first
    replicate's message and how many replicates raised one (the under-determination warning was raised once
    already, for the estimate)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._catcher = warnings.catch_warnings(record=True)

    def __enter__(self) -> None:
        self._log = self._catcher.__enter__()
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", UnderdeterminedWarning)

    def __exit__(self, *exc: Any) -> None:
        log = self._log
        self._catcher.__exit__(*exc)
        counts: dict[type, int] = {}
        first: dict[type, warnings.WarningMessage] = {}
        for item in log:
            counts[item.category] = counts.get(item.category, 0) + 1
            first.setdefault(item.category, item)
        for category, n in counts.items():
            warnings.warn(f"bootstrap replicates: {first[category].message} ({min(n, self.count)} of {self.count} "
                          "replicates raised this warning)", category, stacklevel=4)


def _validate_common(n_resamples: int, confidence_level: float, method: str) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 2:
        raise ValueError(f"n_resamples must be an integer >= 2, got {n_resamples!r}")
    _check_level(confidence_level)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(repr(m) for m in METHODS)}, got {method!r}")


def _draw(method: str, rng: np.random.Generator, n_blocks: int, count: int, counts: np.ndarray) -> tuple[
        np.ndarray, float | None]:
    """Replicate weights ``(count, B)`` and, for half-sampling, ``m / (n - m)`` (m: mean rows kept)."""
    if method != "half_sampling":
        return _draw_weights(rng, n_blocks, count), None
    if n_blocks < 4:
        raise ValueError(f"half-sampling needs at least 4 blocks, got {n_blocks}: use more samples or batches")
    weights = _draw_half_weights(rng, n_blocks, count)
    kept = float(np.mean(weights @ counts))
    return weights, kept / (float(np.sum(counts)) - kept)


def _bootstrap_engine(
    blocks: _Blocks,
    evaluate: Callable[[SufficientStats], Any],
    *,
    n_resamples: int,
    confidence_level: float,
    method: str,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, _Interval]:
    """Estimate, replicates and interval of ``evaluate`` (scalar or array valued)."""
    B = blocks.n_blocks
    _few_blocks_warning(B)
    estimate = np.asarray(evaluate(blocks.merge(np.ones((1, B)))(0)))
    weights, fraction = _draw(method, rng, B, n_resamples, blocks.counts)
    replicates = _run_weighted(blocks, weights, evaluate)

    def jackknife() -> np.ndarray:
        return _run_weighted(blocks, 1.0 - np.eye(B), evaluate)

    interval = _interval(replicates, estimate, method, confidence_level, jackknife, half_fraction=fraction,
                         n_blocks=B)
    return estimate, replicates, interval


def bootstrap(
    X: Any = None,
    Y: Any = None,
    measure: str = "svcca",
    *,
    n_resamples: int = 1000,
    confidence_level: float = 0.95,
    method: Method = DEFAULT_METHOD,
    block_size: int | None = None,
    partition: Partition = "random",
    seed: int | np.random.Generator | None = None,
    blocks: Sequence[SufficientStats] | None = None,
    i: int = 0,
    j: int = 1,
    **measure_options: Any,
) -> BootstrapResult:
    """Bootstrap confidence interval of ``measure(X, Y)``, from merges of block statistics.

    ``X: (n, p)``, ``Y: (n, q)``, the same samples; or ``blocks``: one :class:`SufficientStats` per batch of
    a stream (the batches are the blocks; ``i``, ``j`` pick the two representations). ``block_size``: rows
    per block (None: ``min(n, 256)`` blocks, fewer for very wide data; 1: the exact i.i.d. bootstrap).
    ``partition``: blocks of rows drawn at random (i.i.d. samples) or ``"contiguous"`` runs (dependent
    samples: the non-overlapping block bootstrap). ``seed``: same seed, same intervals. Other keywords go
    to the measure (e.g. ``keep``, ``threshold`` for SVCCA).

    ``method``: ``"half_sampling"`` (default: subsamples of half the blocks without replacement, a bias-corrected
    interval for the population value, see :func:`_interval`), ``"basic"`` (reverse percentile), ``"percentile"``
    or ``"bca"`` (with-replacement bootstrap replicates). Which covers the population value, at which n, is
    measured by ``validation/coverage_study.py`` (the README's table). See the module docstring for when the
    with-replacement bootstrap is exact.
    """
    _validate_common(n_resamples, confidence_level, method)
    fn, has_stats = _measure_function(measure)
    rng = np.random.default_rng(seed)
    options = dict(measure_options)
    def from_blocks(blk: _Blocks, block_size_used: int | None, path: str) -> BootstrapResult:
        """The replicates (weighted merges of ``blk``) and their interval."""
        est, reps, iv = _bootstrap_engine(
            blk,
            lambda s: _score_from_stats(fn, s, options).score,
            n_resamples=n_resamples,
            confidence_level=confidence_level,
            method=method,
            rng=rng,
        )
        exact = block_size_used == 1 and method != "half_sampling"
        return BootstrapResult(measure, float(est), iv.ci, reps, float(iv.se), confidence_level, method,
                               blk.n_blocks, block_size_used, exact, path, float(iv.bias), iv.method_used, iv.note)

    if blocks is not None:
        if X is not None or Y is not None:
            raise ValueError("give either X and Y, or blocks, not both")
        if block_size is not None:
            raise ValueError("block_size applies to X and Y; with blocks, the given batches are the blocks")
        if not has_stats:
            raise ValueError(f"measure {measure!r} needs the data: it cannot be bootstrapped from blocks")
        return from_blocks(_blocks_from_stats(blocks, [i, j]), None, "block statistics")
    if X is None or Y is None:
        raise ValueError("X and Y are required when blocks is not given")
    X, Y = check_paired(X, Y)
    n = X.shape[0]
    order, bounds = _partition(n, block_size, partition, rng, X.shape[1] + Y.shape[1])
    largest = int(np.diff(bounds).max())
    if not has_stats:
        return _bootstrap_rows(X, Y, fn, measure, options, order, bounds, n_resamples, confidence_level, method, rng)
    packed = _fits_packed(bounds.shape[0] - 1, X.shape[1] + Y.shape[1])
    blk = _blocks_from_arrays([X, Y], order, bounds, packed=packed)
    return from_blocks(blk, largest, "block statistics" if packed else "weighted data")


def _bootstrap_rows(
    X: np.ndarray,
    Y: np.ndarray,
    fn: Callable[..., Any],
    measure: str,
    options: dict[str, Any],
    order: np.ndarray,
    bounds: np.ndarray,
    n_resamples: int,
    confidence_level: float,
    method: str,
    rng: np.random.Generator,
) -> BootstrapResult:
    """Bootstrap of a measure without a statistics path: rows of the drawn blocks, recomputed."""
    B = bounds.shape[0] - 1
    position_block = np.repeat(np.arange(B), np.diff(bounds))

    def score(weights: np.ndarray) -> float:
        rows = np.repeat(order, weights[position_block].astype(np.int64))
        return float(fn(X[rows], Y[rows], **options).score)

    def scores(all_weights: np.ndarray) -> np.ndarray:
        out = []
        with _gathered_warnings(all_weights.shape[0]):
            for k, w in enumerate(all_weights):
                try:
                    out.append(score(w))
                except (ValueError, np.linalg.LinAlgError) as exc:
                    raise _replicate_error(k, all_weights.shape[0], exc) from exc
        return np.array(out)

    _few_blocks_warning(B)
    estimate = float(fn(X, Y, **options).score)
    weights, fraction = _draw(method, rng, B, n_resamples, np.diff(bounds).astype(np.float64))
    replicates = scores(weights)

    def jackknife() -> np.ndarray:
        return scores(1.0 - np.eye(B))

    iv = _interval(replicates, np.asarray(estimate), method, confidence_level, jackknife, half_fraction=fraction,
                   n_blocks=B)
    largest = int(np.diff(bounds).max())
    return BootstrapResult(
        measure,
        estimate,
        iv.ci,
        replicates,
        float(iv.se),
        confidence_level,
        method,
        B,
        largest,
        largest == 1 and method != "half_sampling",
        "resampled rows",
        float(iv.bias),
        iv.method_used,
        iv.note,
    )


def bootstrap_matrix(
    representations: Sequence[Any] | None = None,
    measure: str = "svcca",
    *,
    n_resamples: int = 1000,
    confidence_level: float = 0.95,
    method: Method = DEFAULT_METHOD,
    block_size: int | None = None,
    partition: Partition = "random",
    seed: int | np.random.Generator | None = None,
    blocks: Sequence[SufficientStats] | None = None,
    names: Sequence[str] | None = None,
    **measure_options: Any,
) -> BootstrapMatrixResult:
    """Bootstrap of :func:`~ccalens.core.measures.similarity_matrix`: one interval per cell.

    ``representations``: L arrays ``(n, d_l)`` of the same samples, or ``blocks``: one joint
    :class:`SufficientStats` of the L representations per batch. Each replicate is one weighted merge of the
    block statistics followed by ``similarity_matrix`` of it (each representation whitened once per
    replicate). Options as in :func:`bootstrap`; with the same seed and blocks, cell ``(i, j)`` equals
    ``bootstrap(R_i, R_j)``.
    """
    from .measures import similarity_matrix

    _validate_common(n_resamples, confidence_level, method)
    rng = np.random.default_rng(seed)
    if blocks is not None:
        if representations is not None:
            raise ValueError("give either representations or blocks, not both")
        if block_size is not None:
            raise ValueError("block_size applies to representations; with blocks, the given batches are the blocks")
        blk = _blocks_from_stats(blocks, None)
        block_size_out: int | None = None
        exact = False
    else:
        if representations is None or len(representations) < 2:
            raise ValueError("representations must hold at least 2 arrays of the same samples")
        arrays = check_paired(*representations)
        width = sum(a.shape[1] for a in arrays)
        order, bounds = _partition(arrays[0].shape[0], block_size, partition, rng, width)
        packed = _fits_packed(bounds.shape[0] - 1, sum(a.shape[1] for a in arrays))
        blk = _blocks_from_arrays(arrays, order, bounds, packed=packed)
        block_size_out = int(np.diff(bounds).max())
        exact = block_size_out == 1
    L = len(blk.sizes)
    if names is None:
        names = tuple(f"R{k}" for k in range(L))
    names = tuple(names)

    def evaluate(stats: SufficientStats) -> np.ndarray:
        return similarity_matrix(stats, measure, names=names, **measure_options).scores

    est, reps, iv = _bootstrap_engine(
        blk, evaluate, n_resamples=n_resamples, confidence_level=confidence_level, method=method, rng=rng
    )
    path = "block statistics" if blk.packed is not None else "weighted data"
    return BootstrapMatrixResult(
        measure, names, est, iv.ci, reps, np.asarray(iv.se), confidence_level, method, blk.n_blocks,
        block_size_out, exact and method != "half_sampling", path, np.asarray(iv.bias), iv.method_used, iv.note,
    )


# --------------------------------------------------------------------------------- permutation test
_FAST_NULL = {"cca", "svcca", "pwcca"}


def _whitened_null(
    measure: str, stats: SufficientStats, Xc: np.ndarray, Yc: np.ndarray, options: dict[str, Any]
) -> Callable[[np.ndarray], tuple[float, float]] | None:
    """``perm -> (score, mean rho)`` from each side whitened once (the measure's own whitenings: CCA and PWCCA cut
    on the correlation matrix, SVCCA keeps its top principal directions), or None if the options are not
    understood (the caller then recomputes from the permuted cross block)."""
    from .linalg import principal_whitening
    from .measures import _tied_weights

    allowed = {"tol", "keep", "threshold", "variance", "weights_from"}
    if measure not in _FAST_NULL or not set(options) <= allowed or options.get("weights_from", "x") != "x":
        return None
    tol = float(options.get("tol", DEFAULT_TOL))
    keep = options.get("keep", "variance" if options.get("variance") is not None else "singular_values")
    threshold = float(options.get("threshold", options.get("variance") or 0.99))
    n = Xc.shape[0]
    ws = []
    for side, name in ((0, "X"), (1, "Y")):
        cov = stats.covariance(side)
        if measure == "svcca":
            w = principal_whitening(cov, tol=tol, name=name).top(threshold, keep)
        else:
            w = whiten(cov, tol=tol, name=name, method="eigh", standardize=True)
        assert isinstance(w, Whitening)
        ws.append(w)
    wx, wy = ws
    Zx = Xc @ wx.whitener / np.sqrt(n - 1.0)
    Zy = Yc @ wy.whitener / np.sqrt(n - 1.0)

    def null(perm: np.ndarray) -> tuple[float, float]:
        M = Zx.T @ Zy[perm]
        if measure == "pwcca":
            vals, vecs = np.linalg.eigh(M @ M.T)
            squared = np.clip(vals[::-1], 0.0, 1.0)
            k = min(M.shape)
            rho = np.sqrt(squared[:k])
            weights = _tied_weights(wx.unwhiten(vecs[:, ::-1]), squared, k)
            return float(weights @ rho), float(rho.mean())
        rho = np.clip(np.linalg.svd(M, compute_uv=False), 0.0, 1.0)
        return float(rho.mean()), float(rho.mean())

    return null


def _pvalue(null: np.ndarray, observed: float, alternative: str) -> float:
    eps = 1e-12 * max(1.0, abs(observed))  # ties within rounding count as at least as extreme
    greater = (np.count_nonzero(null >= observed - eps) + 1) / (null.shape[0] + 1)
    less = (np.count_nonzero(null <= observed + eps) + 1) / (null.shape[0] + 1)
    if alternative == "greater":
        return float(greater)
    if alternative == "less":
        return float(less)
    return float(min(1.0, 2.0 * min(greater, less)))


def permutation_test(
    X: Any,
    Y: Any,
    measure: str = "svcca",
    *,
    n_permutations: int = 1000,
    alternative: Literal["greater", "less", "two-sided"] = "greater",
    seed: int | np.random.Generator | None = None,
    **measure_options: Any,
) -> PermutationTestResult:
    """Permutation test of ``measure(X, Y)`` against unrelated pairings (rows of Y permuted).

    ``X: (n, p)``, ``Y: (n, q)``. Returns the observed score, the p-value ``(count + 1) / (n_permutations + 1)``
    and the null distribution with its mean: what unrelated data of this shape give at this n. For the CCA
    family each side is whitened once and a permutation costs ``Zx' Zy[perm]`` and one SVD; other statistics
    measures recompute from the permuted cross block; measures needing the data recompute from permuted rows.
    """
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) or n_permutations < 1:
        raise ValueError(f"n_permutations must be a positive integer, got {n_permutations!r}")
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    fn, has_stats = _measure_function(measure)
    X, Y = check_paired(X, Y)
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    options = dict(measure_options)
    null = np.empty(n_permutations)
    null_rho = np.empty(n_permutations)
    has_rho = True
    if not has_stats:
        observed = fn(X, Y, **options)
        path = "resampled rows"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnderdeterminedWarning)
            for k in range(n_permutations):
                res = fn(X, Y[rng.permutation(n)], **options)
                null[k] = res.score
                has_rho = has_rho and res.mean_rho is not None
                null_rho[k] = res.mean_rho if res.mean_rho is not None else np.nan
    else:
        stats = SufficientStats.from_arrays(X, Y)
        observed = _score_from_stats(fn, stats, options)
        Xc = np.asarray(X, dtype=np.float64) - stats.means(0)
        Yc = np.asarray(Y, dtype=np.float64) - stats.means(1)
        fast = _whitened_null(measure, stats, Xc, Yc, options)
        if fast is not None and not np.isclose(fast(np.arange(n))[0], observed.score, rtol=1e-8, atol=1e-10):
            fast = None  # the measure computes something the fast path does not reproduce: use the general path
        if fast is not None:
            path = "whitened cross products"
            for k in range(n_permutations):
                null[k], null_rho[k] = fast(rng.permutation(n))
        else:
            path = "cross block"
            p = X.shape[1]
            assert stats.comoment is not None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UnderdeterminedWarning)
                for k in range(n_permutations):
                    cross = Xc.T @ Yc[rng.permutation(n)]
                    comoment = stats.comoment.copy()
                    comoment[:p, p:] = cross
                    comoment[p:, :p] = cross.T
                    permuted = SufficientStats(sizes=stats.sizes, n_samples=n, mean=stats.mean, comoment=comoment)
                    res = _score_from_stats(fn, permuted, options)
                    null[k] = res.score
                    has_rho = has_rho and res.mean_rho is not None
                    null_rho[k] = res.mean_rho if res.mean_rho is not None else np.nan
    statistic = float(observed.score)
    return PermutationTestResult(
        measure=measure,
        statistic=statistic,
        pvalue=_pvalue(null, statistic, alternative),
        null_distribution=null,
        null_mean=float(null.mean()),
        null_std=float(null.std(ddof=1)) if n_permutations > 1 else 0.0,
        null_mean_rho=float(null_rho.mean()) if has_rho and observed.mean_rho is not None else None,
        alternative=alternative,
        path=path,
        reference_null_mean_rho=_reference_null(observed),
    )


def _reference_null(result: Any) -> float | None:
    """The measure result's own ``null_mean_rho`` (attribute or detail), if it carries one."""
    value = getattr(result, "null_mean_rho", None)
    if value is None:
        value = getattr(result, "details", {}).get("null_mean_rho")
    return None if value is None else float(value)
