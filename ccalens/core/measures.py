"""Similarity measures, all computed from one :class:`~ccalens.core.stats.SufficientStats` where they can be.

Every measure has one signature, ``measure(X=None, Y=None, *, stats=None, i=None, j=None, **options)``:
``X: (n, p)`` and ``Y: (n, q)`` (rows = the same samples), or precomputed ``stats`` with ``i, j`` the two
representations to compare (required when ``stats`` holds more than two). It returns a
:class:`SimilarityResult`. Definitions (C = covariances, W = whiteners):

* ``cca``: canonical correlations rho_i = singular values of ``Wx' Cxy Wy``; score = mean rho.
* ``svcca``: the same after keeping on each side the top principal directions (Raghu et al. 2017). The rule is
  ``keep``: ``"singular_values"`` (default, the SVCCA appendix: the fewest m with
  ``sum_{i<=m} s_i >= threshold * sum_i s_i``, s = singular values of the centred data) or ``"variance"``
  (Kornblith et al.'s reading: the same with ``s_i^2``); ``threshold`` defaults to 0.99. score = mean rho.
* ``pwcca``: rho weighted by alpha_i ~ sum_j |<h_i, x_j>| (h_i: unit-variance canonical variates of one side,
  x_j: its centred neurons; Morcos et al. 2018). ``weights_from="x" | "y" | "smaller"`` (the side with fewer kept
  dimensions, as google's reference code does). Tied correlations share one weight per tied group,
  ``sum_j ||P_g x_j||`` (P_g: projection on the group's variates), so that any basis of the group gives the same
  score; for a single correlation this is the definition above.
* ``linear_cka``: ``||Cxy||_F^2 / (||Cxx||_F ||Cyy||_F)`` (Kornblith et al. 2019); distance ``arccos(score)``.
* ``debiased_linear_cka``: CKA with the unbiased HSIC estimator (Song et al. 2012); needs the data.
* ``rbf_cka``: CKA with Gaussian kernels; see :mod:`ccalens.core.kernel`; needs the data.
* ``procrustes``: ``||Cxy||_* / sqrt(tr Cxx tr Cyy)``; distance ``sqrt(2 - 2 score)``, the orthogonal Procrustes
  distance between the centred, Frobenius-normalised representations (Ding et al. 2021).

Scale: every measure is invariant to rescaling one side. Arrays whose largest magnitude lies outside
``[2^-32, 2^32]`` are first rescaled by a power of two (exact), so any scale over the float64 range gives the
same value; statistics whose co-moments are too close to float64's limits raise a clear error.

:func:`compare` computes several measures of one pair and :func:`similarity_matrix` one measure of every pair of
L representations, with one joint pass over the data and one whitening per representation.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from . import dual
from . import plan as planner
from .linalg import canonical_correlations, principal_whitening
from .many import ReducedPairs, Reduction, reduce_representation
from .null import null_mean_rho, warn_if_null_high
from .result import SimilarityMatrix, SimilarityResult, angular_distance
from .stats import SufficientStats, second_moment_statistics
from .threads import MIN_PARALLEL_WIDTH, blas_threads, run_tasks
from .validation import check_paired, svcca_rule, warn_if_underdetermined
from .whitening import DEFAULT_TOL, CholeskyWhitening, Whitening, whiten

__all__ = [
    "MEASURES",
    "STATS_MEASURES",
    "SimilarityMatrix",
    "SimilarityResult",
    "cca",
    "compare",
    "debiased_linear_cka",
    "linear_cka",
    "procrustes",
    "pwcca",
    "rbf_cka",
    "similarity_matrix",
    "svcca",
]

Keep = Literal["singular_values", "variance"]
Method = Literal["auto", "primal", "dual"]

#: How a measure given the data chooses its path (``method=`` and ``memory_budget=`` of every statistics measure).
PLAN_DOC = """\
``method="auto"`` (default) takes the feature-space path (co-moments, streamed over samples) or the sample-space
path (centred Gram matrices, :mod:`ccalens.core.dual`) by their flops, among those whose working memory fits
``memory_budget`` (bytes; default a quarter of the available memory); ``"primal"``/``"dual"`` force one. Both give
the same result fields; ``details['plan']`` records the path taken and why. Given ``stats``, the path is primal.
"""
WeightsFrom = Literal["x", "y", "smaller"]

#: Squared canonical correlations closer than this are one tied group for PWCCA's weights.
PWCCA_TIE = 1e-9
#: Arrays whose largest magnitude is outside [2^-SCALE_EXPONENT, 2^SCALE_EXPONENT] are rescaled by a power of 2.
SCALE_EXPONENT = 32
#: Co-moment diagonals (sums of squares) must lie within [2^-COMOMENT_EXPONENT, 2^COMOMENT_EXPONENT].
COMOMENT_EXPONENT = 900


# --------------------------------------------------------------------------------- scale
def _unit_scale(A: np.ndarray) -> np.ndarray:
    """``A`` itself, or ``A * 2^-e`` (float64, exact) when its largest magnitude is outside ``2^±SCALE_EXPONENT``."""
    if A.dtype.kind != "f" or A.size == 0:
        return A
    peak = float(max(A.max(), -A.min()))
    if peak == 0.0 or 2.0**-SCALE_EXPONENT <= peak <= 2.0**SCALE_EXPONENT:
        return A
    return np.ldexp(A.astype(np.float64), -math.frexp(peak)[1])


def _in_range(value: float) -> bool:
    return bool(np.isfinite(value)) and (value == 0.0 or 2.0**-COMOMENT_EXPONENT <= value <= 2.0**COMOMENT_EXPONENT)


def _statistics(
    arrays: Sequence[np.ndarray], *, second_moments_only: bool = False
) -> tuple[SufficientStats, list[np.ndarray]]:
    """Statistics of ``arrays`` and the arrays they came from. The raw arrays are used unless their co-moments fall
    outside float64's accurate range (or their sums overflow): then the offending arrays are rescaled by a power
    of two (exact, :func:`_unit_scale`) and the statistics recomputed, so no extra pass over the data is made in
    the common case. ``second_moments_only`` (linear CKA): float32 input multiplied in float32
    (:func:`~ccalens.core.stats.second_moment_statistics`)."""
    arrays = list(arrays)
    make = second_moment_statistics if second_moments_only else SufficientStats.from_arrays
    try:
        stats = make(*arrays)
        largest = [float(np.max(np.diagonal(stats.block(k, k)))) for k in range(len(arrays))]
        # out of range, or zero although the values differ (squares that underflowed): rescale those
        bad = [k for k, v in enumerate(largest)
               if not _in_range(v) or (v == 0.0 and arrays[k].size and arrays[k].max() != arrays[k].min())]
    except ValueError:  # sums that overflow float64, or NaN/Inf (the retry names them)
        bad = list(range(len(arrays)))
    if not bad:
        return stats, arrays
    arrays = [_unit_scale(a) if k in bad else a for k, a in enumerate(arrays)]
    return make(*arrays), arrays


def _check_comoment(stats: SufficientStats, index: int) -> None:
    """Clear errors for co-moments with no variance, or too close to float64's limits to be accurate."""
    diagonal = np.diagonal(stats.block(index, index))
    largest = float(diagonal.max()) if diagonal.size else 0.0
    if not np.isfinite(largest) or not np.isfinite(stats.block(index, index)).all():
        raise ValueError(
            f"the statistics of representation {index} are not finite (NaN or Inf in its co-moment: its features' "
            "squares overflowed float64); rescale its features (e.g. by a power of 2) before accumulating"
        )
    if not largest > 0.0:
        raise ValueError(
            f"representation {index} has no variance: every feature is constant over the samples, so no "
            "similarity with it is defined"
        )
    if not 2.0**-COMOMENT_EXPONENT <= largest <= 2.0**COMOMENT_EXPONENT:
        raise ValueError(
            f"the co-moment of representation {index} is {largest:.3g}, too close to float64's range limits to be "
            "accurate: rescale its features (e.g. by a power of 2) before accumulating the statistics"
        )


# --------------------------------------------------------------------------------- per-representation
@dataclass
class _Prepared:
    """What one representation contributes to every pair: its whitenings, each computed once.

    ``full`` is the whitening CCA and PWCCA use: cut on the correlation matrix (CCA is invariant to rescaling
    single neurons, so its cut must be too), by the Cholesky fast path when well conditioned, else by the
    eigendecomposition. ``eigen`` is the covariance's own eigendecomposition (principal directions);
    ``top(keep, threshold)`` is SVCCA's truncation of it (not scale invariant, by definition).
    """

    stats: SufficientStats
    index: int
    tol: float
    _full: Whitening | CholeskyWhitening | None = None
    _eigen: Whitening | None = None
    _top: dict[tuple[str, float], Whitening] = field(default_factory=dict)

    @property
    def cov(self) -> np.ndarray:
        return self.stats.covariance(self.index)

    @property
    def name(self) -> str:
        return f"representation {self.index}"

    @property
    def eigen(self) -> Whitening:
        if self._eigen is None:
            self._eigen = principal_whitening(self.cov, tol=self.tol, name=self.name)
        return self._eigen

    @property
    def full(self) -> Whitening | CholeskyWhitening:
        """CCA's and PWCCA's whitening: the cut on the correlation matrix (scale invariant, per neuron)."""
        if self._full is None:
            self._full = whiten(self.cov, tol=self.tol, name=self.name, method="auto", standardize=True)
        return self._full

    def top(self, keep: str, threshold: float) -> Whitening:
        key = (keep, threshold)
        if key not in self._top:
            self._top[key] = self.eigen.top(threshold, keep)  # type: ignore[arg-type]
        return self._top[key]


def _prepare_all(prepared: Sequence[_Prepared], task: Callable[[_Prepared], Any]) -> None:
    """Run ``task`` (a whitening) for every representation, side by side (one BLAS thread each)."""

    def run(p: _Prepared) -> None:
        task(p).prepare()  # the whitener (a triangular inverse, or scaled eigenvectors), inside the worker

    unique = list({id(p): p for p in prepared}.values())
    big = any(p.stats.sizes is not None and p.stats.sizes[p.index] >= MIN_PARALLEL_WIDTH for p in unique)
    run_tasks([lambda p=p: run(p) for p in unique], workers=None if big else 1)


def _correlations_and_left_vectors(
    wx: Whitening | CholeskyWhitening, wy: Whitening | CholeskyWhitening, cross: np.ndarray, *, vectors: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Canonical correlations (descending) and, if asked, every left singular vector of ``Wx' C Wy``."""
    rho, U, _ = canonical_correlations(wx, wy, cross, vectors=vectors)
    return rho, U


# --------------------------------------------------------------------------------- the measures, per pair
def _sample_size_warnings(n: int, rank_x: int, rank_y: int, null: float) -> None:
    """One warning at most: too few samples for the ranks (forced correlations of 1), else a high null mean rho."""
    if rank_x + rank_y > n - 1:
        warn_if_underdetermined(n, rank_x, rank_y, stacklevel=7)
    else:
        warn_if_null_high(null, n, rank_x, rank_y, stacklevel=7)


def _cca_result(
    name: str, rho: np.ndarray, n: int, wx: Any, wy: Any, *, score: float | None = None, **extra: Any
) -> SimilarityResult:
    """The result of a CCA-family measure, with ``null_mean_rho`` (unrelated data of the same n and kept ranks)
    and the sample-size warning."""
    mean_rho = float(rho.mean()) if rho.size else 0.0
    null = null_mean_rho(n, wx.rank, wy.rank) if n >= 3 else None
    if null is not None:
        _sample_size_warnings(n, wx.rank, wy.rank, null)
    else:  # n = 2: one dimension of centred data, a correlation of 1 whatever the data (as CCA().fit says)
        warn_if_underdetermined(n, wx.rank, wy.rank, stacklevel=6)
    return SimilarityResult(
        measure=name,
        score=mean_rho if score is None else score,
        mean_rho=mean_rho,
        mean_rho2=float(np.mean(rho**2)) if rho.size else 0.0,
        correlations=rho,
        n_samples=n,
        rank_x=wx.rank,
        rank_y=wy.rank,
        null_mean_rho=null,
        **extra,
    )


def _cross(px: _Prepared, py: _Prepared) -> tuple[np.ndarray, float]:
    """The co-moment block of the pair (a view, no copy) and ``1 / (n - 1)``, which makes it the cross-covariance."""
    stats = px.stats
    stats._require(2, px.index, py.index)
    return stats.block(px.index, py.index), 1.0 / (stats.n_samples - 1)


def _self_correlations(px: _Prepared, py: _Prepared, w: Whitening | CholeskyWhitening) -> np.ndarray | None:
    """A representation against itself (the diagonal of a similarity matrix): every canonical correlation of its
    kept subspace with itself is 1 by definition (no product, no eigenproblem); else None."""
    return np.ones(w.rank) if px is py else None


def _cca_pair(px: _Prepared, py: _Prepared, *, tol: float = DEFAULT_TOL) -> SimilarityResult:
    wx, wy = px.full, py.full
    rho = _self_correlations(px, py, wx)
    if rho is None:
        rho, _, _ = canonical_correlations(wx, wy, *_cross(px, py))
    return _cca_result("cca", rho, px.stats.n_samples, wx, wy)


def _svcca_pair(
    px: _Prepared, py: _Prepared, *, tol: float = DEFAULT_TOL, keep: str = "singular_values", threshold: float = 0.99
) -> SimilarityResult:
    wx, wy = px.top(keep, threshold), py.top(keep, threshold)
    rho = _self_correlations(px, py, wx)
    if rho is None:
        rho, _, _ = canonical_correlations(wx, wy, *_cross(px, py))
    details = {
        "keep": keep,
        "threshold": threshold,
        "explained_x": wx.explained(keep),  # type: ignore[arg-type]
        "explained_y": wy.explained(keep),  # type: ignore[arg-type]
    }
    return _cca_result("svcca", rho, px.stats.n_samples, wx, wy, details=details)


def _tied_weights(projections: np.ndarray, squared: np.ndarray, k: int) -> np.ndarray:
    """PWCCA weights ``(k,)`` of the first k correlations, one weight per group of tied correlations.

    ``projections: (d, r)``: covariances of the d neurons with the r unit-variance canonical variates of the side
    (every direction, descending); ``squared: (r,)`` their squared correlations. A group g of correlations equal
    within :data:`PWCCA_TIE` weighs ``sum_j ||P_g x_j||`` (the norm of neuron j's covariances with the group's
    variates, the same in any orthonormal basis of the group), times the fraction of the group among the first k
    when the group extends past them; the group's weight is split evenly over its correlations.
    """
    r = squared.shape[0]
    # a new group starts wherever the next squared correlation lies more than PWCCA_TIE below the previous one
    bounds = np.append(np.flatnonzero(np.concatenate([[True], squared[:-1] - squared[1:] > PWCCA_TIE])), r)
    groups = int(np.count_nonzero(bounds[:-1] < k))  # the groups that begin among the first k count
    starts, stops = bounds[:groups], bounds[1 : groups + 1]
    if groups == 0:
        raise ValueError("PWCCA weights are all zero: the representation has no variance along its canonical variates")
    columns = projections[:, : int(stops[-1])]  # (d, columns of the groups)
    if groups == columns.shape[1]:  # no ties: ||P_g x_j|| is |<x_j, h_g>|
        per_group = np.abs(columns).sum(axis=0)
    else:
        norms = np.sqrt(np.add.reduceat(np.abs(columns) ** 2, starts, axis=1))  # (d, groups): ||P_g x_j||
        per_group = norms.sum(axis=0) / (stops - starts)  # the group's weight, split evenly over its correlations
    weights = np.repeat(per_group, stops - starts)[:k]
    total = weights.sum()
    if not total > 0.0:
        raise ValueError("PWCCA weights are all zero: the representation has no variance along its canonical variates")
    return weights / total


def _pwcca_pair(
    px: _Prepared, py: _Prepared, *, tol: float = DEFAULT_TOL, weights_from: str = "x"
) -> SimilarityResult:
    wx, wy = px.full, py.full
    side = ("x" if wx.rank <= wy.rank else "y") if weights_from == "smaller" else weights_from
    cross, scale = _cross(px, py)
    own, other, c = (wx, wy, cross) if side == "x" else (wy, wx, cross.T)
    rho, U, squared = canonical_correlations(own, other, c, scale, vectors=True)
    assert U is not None
    weights = _tied_weights(own.unwhiten(U), squared, rho.shape[0])
    details = {"weights_from": side, "weights_rule": weights_from}
    return _cca_result(
        "pwcca", rho, px.stats.n_samples, wx, wy, score=float(weights @ rho), weights=weights, details=details
    )


def _frobenius(A: np.ndarray) -> float:
    """``||A||_F`` without overflow or underflow of the squares."""
    peak = float(np.abs(A).max()) if A.size else 0.0
    return 0.0 if peak == 0.0 else peak * float(np.linalg.norm(A / peak))


def _linear_cka_stats(stats: SufficientStats, i: int, j: int) -> SimilarityResult:
    nx, ny = _frobenius(stats.block(i, i)), _frobenius(stats.block(j, j))
    _require_variance(nx, i)
    _require_variance(ny, j)
    cross = _frobenius(stats.block(i, j))
    score = (cross / nx) * (cross / ny)
    return SimilarityResult("linear_cka", score, n_samples=stats.n_samples, distance=angular_distance(score))


def _linear_cka_pair(px: _Prepared, py: _Prepared) -> SimilarityResult:
    return _linear_cka_stats(px.stats, px.index, py.index)


def _procrustes_pair(px: _Prepared, py: _Prepared) -> SimilarityResult:
    stats, i, j = px.stats, px.index, py.index
    tx, ty = float(np.trace(stats.block(i, i))), float(np.trace(stats.block(j, j)))
    _require_variance(tx, i)
    _require_variance(ty, j)
    nuclear = float(np.linalg.svd(stats.block(i, j), compute_uv=False).sum())
    score = nuclear / math.sqrt(tx) / math.sqrt(ty)
    if score > 1.0 + 1e-9:
        raise ValueError(
            f"Procrustes similarity {score} > 1: the statistics are not a valid co-moment (not positive semidefinite)"
        )
    score = min(score, 1.0)  # rounding only (Cauchy-Schwarz bounds the exact value by 1)
    return SimilarityResult(
        "procrustes", score, n_samples=stats.n_samples, distance=math.sqrt(max(0.0, 2.0 - 2.0 * score))
    )


def _require_variance(norm: float, index: int) -> None:
    if not norm > 0.0:
        raise ValueError(f"representation {index} has no variance: every feature is constant over the samples")


def _debiased_data(X: np.ndarray, Y: np.ndarray) -> SimilarityResult:
    """Debiased linear CKA of validated, scaled ``X: (n, p)``, ``Y: (n, q)`` (see :func:`debiased_linear_cka`)."""
    n = X.shape[0]
    if n < 4:
        raise ValueError(f"debiased_linear_cka needs at least 4 samples, got {n}")
    Xc = np.asarray(X, dtype=np.float64)
    Yc = np.asarray(Y, dtype=np.float64)
    Xc = Xc - Xc.mean(axis=0)
    Yc = Yc - Yc.mean(axis=0)
    # per side, a power-of-2 scale so that the fourth powers below neither overflow nor underflow
    for A, index in ((Xc, 0), (Yc, 1)):
        peak = float(np.abs(A).max())
        _require_variance(peak, index)
        A *= 2.0 ** -math.frexp(peak)[1]
    sq_x = np.einsum("ij,ij->i", Xc, Xc)
    sq_y = np.einsum("ij,ij->i", Yc, Yc)

    def hsic(cross_fro2: float, a: np.ndarray, b: np.ndarray, A: np.ndarray, B: np.ndarray) -> float:
        # K~ = A A' - diag(a), L~ = B B' - diag(b)
        tr_kl = cross_fro2 - float(a @ b)
        k1 = A @ A.sum(axis=0) - a  # K~ 1
        l1 = B @ B.sum(axis=0) - b  # L~ 1
        sum_k, sum_l = float(k1.sum()), float(l1.sum())
        return (tr_kl + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(k1 @ l1)) / (n * (n - 3))

    hxy = hsic(float(np.sum((Xc.T @ Yc) ** 2)), sq_x, sq_y, Xc, Yc)
    hxx = hsic(float(np.sum((Xc.T @ Xc) ** 2)), sq_x, sq_x, Xc, Xc)
    hyy = hsic(float(np.sum((Yc.T @ Yc) ** 2)), sq_y, sq_y, Yc, Yc)
    if not (hxx > 0 and hyy > 0):
        raise ValueError("debiased CKA is undefined: a representation has no (unbiased) self-similarity")
    score = hxy / math.sqrt(hxx) / math.sqrt(hyy)
    return SimilarityResult("debiased_linear_cka", score, n_samples=n, distance=angular_distance(score))


def _rbf_data(X: np.ndarray, Y: np.ndarray, **options: Any) -> SimilarityResult:
    from .kernel import rbf_cka as _rbf

    res = _rbf(X, Y, **options)
    return res if res.distance is not None else replace(res, distance=angular_distance(res.score))


# --------------------------------------------------------------------------------- the sample-space path
#: CCA and PWCCA cut on the correlation matrix (scale-invariant), on both paths; SVCCA on the covariance.
STANDARDIZE_CCA_CUT = True


def _dual_pair(name: str, X: np.ndarray, Y: np.ndarray, opts: Mapping[str, Any]) -> SimilarityResult:
    """``name`` of ``X: (n, p)``, ``Y: (n, q)`` from the centred Gram matrices (:mod:`ccalens.core.dual`): the same
    definitions, cut-offs, ranks and result fields as the feature-space path, for representations wider than the
    sample count (or whose co-moments do not fit the memory budget)."""
    n = X.shape[0]
    tol = opts.get("tol", DEFAULT_TOL)
    standardize = STANDARDIZE_CCA_CUT and name in ("cca", "pwcca")

    def gram(A: np.ndarray, label: str) -> tuple[dual.Gram, np.ndarray]:
        """The centred Gram of ``A``; of ``A`` rescaled by a power of two when its magnitude calls for it (checked
        on the Gram's trace, so no extra pass over the data in the common case)."""
        try:
            g = dual.centred_gram(A, name=label, standardize=standardize)
            trace = g.trace
            if _in_range(trace) and (trace > 0.0 or A.max() == A.min()):
                return g, A
        except ValueError:  # products that overflow float64 (or NaN/Inf: the retry names them)
            pass
        A = _unit_scale(A)
        return dual.centred_gram(A, name=label, standardize=standardize), A

    if name == "linear_cka":  # tiles of both Grams, never a whole one
        try:
            score = dual.linear_cka_tiled(X, Y)
        except ValueError as err:  # products beyond the float range: once more on power-of-two rescaled data
            if "overflow" not in str(err) and "no variance" not in str(err):
                raise
            score = dual.linear_cka_tiled(_unit_scale(X), _unit_scale(Y))
        return SimilarityResult("linear_cka", score, n_samples=n, distance=angular_distance(score))
    # float32 input: float32 bases for the correlations (PWCCA's tie groups need float64 ones)
    storage = np.float32 if X.dtype == Y.dtype == np.float32 and name in ("cca", "svcca") else np.float64

    def basis(A: np.ndarray, label: str, cut: float) -> tuple[dual.SampleBasis, float, np.ndarray, np.ndarray]:
        """One side at a time, its Gram destroyed by the eigensolver: ``(basis, trace, mean, data used)``."""
        g, A = gram(A, label)
        trace, mean = g.trace, g.mean
        return dual.SampleBasis.from_gram(g, tol=cut, name=label, overwrite=True, storage=storage), trace, mean, A

    cut = 0.0 if name == "procrustes" else tol
    bx, trace_x, mean_x, X = basis(X, "X", cut)
    by, trace_y, mean_y, Y = basis(Y, "Y", cut)
    if name == "procrustes":
        score = dual.procrustes_nuclear(bx, by) / math.sqrt(trace_x) / math.sqrt(trace_y)
        if score > 1.0 + 1e-9:
            raise ValueError(f"Procrustes similarity {score} > 1: rounding beyond float64 precision")
        score = min(score, 1.0)
        return SimilarityResult("procrustes", score, n_samples=n, distance=math.sqrt(max(0.0, 2.0 - 2.0 * score)))
    if name == "cca":
        rho, _ = dual.canonical_correlations(bx, by)
        return _cca_result("cca", rho, n, bx, by)
    if name == "svcca":
        keep, threshold = opts.get("keep", "singular_values"), opts.get("threshold", 0.99)
        tx, ty = bx.top(threshold, keep), by.top(threshold, keep)
        rho, _ = dual.canonical_correlations(tx, ty)
        details = {"keep": keep, "threshold": threshold, "explained_x": tx.explained(keep),
                   "explained_y": ty.explained(keep)}
        return _cca_result("svcca", rho, n, tx, ty, details=details)
    # pwcca: the weights' side, its whole canonical basis, covariances of its neurons with the unit-variance variates
    weights_from = opts.get("weights_from", "x")
    side = ("x" if bx.rank <= by.rank else "y") if weights_from == "smaller" else weights_from
    own, other, data, mean = (bx, by, X, mean_x) if side == "x" else (by, bx, Y, mean_y)
    M = dual.cross_product(own.left, other.left)
    vals, vecs = np.linalg.eigh(M @ M.T)
    squared = np.clip(vals[::-1], 0.0, 1.0)
    k = min(M.shape)
    rho = np.sqrt(squared[:k])
    variates = own.left @ vecs[:, ::-1]  # unit-norm; unit variance after * sqrt(n - 1)
    projections = dual.feature_loadings(data, mean, variates) / math.sqrt(n - 1.0)
    weights = _tied_weights(projections, squared, k)
    details = {"weights_from": side, "weights_rule": weights_from}
    return _cca_result("pwcca", rho, n, bx, by, score=float(weights @ rho), weights=weights, details=details)


def _with_plan(result: SimilarityResult, plan: planner.Plan | None) -> SimilarityResult:
    """``result`` with ``details['plan']`` (the path taken and why)."""
    if plan is None:
        return result
    return replace(result, details={**result.details, "plan": plan.to_dict()})


_CCA_FAMILY = ("cca", "svcca", "pwcca")
_PLAN_DEFAULTS: dict[str, Any] = {"method": "auto", "memory_budget": None}


def _split_plan(opts: dict[str, Any]) -> tuple[str, int | None, dict[str, Any]]:
    """``(method, memory_budget, the measure's own options)``."""
    rest = dict(opts)
    method = rest.pop("method", "auto")
    budget = rest.pop("memory_budget", None)
    if method not in ("auto", "primal", "dual"):
        raise ValueError(f"method must be 'auto', 'primal' or 'dual', got {method!r}")
    return method, budget, rest


# --------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class _Spec:
    """One measure: how to compute it from two prepared representations and/or from the data, and its options."""

    name: str
    options: Mapping[str, Any]  # accepted options and their defaults
    pair: Callable[..., SimilarityResult] | None = None  # (px, py, **options), from statistics
    data: Callable[..., SimilarityResult] | None = None  # (X, Y, **options), needs the data
    prepare: Callable[..., Any] | None = None  # (p, **options): the whitening a pair needs, to run in parallel
    symmetric: bool = True
    any_options: bool = False  # forwards every option it is given (rbf_cka)


_SPECS: dict[str, _Spec] = {
    "cca": _Spec("cca", {"tol": DEFAULT_TOL, **_PLAN_DEFAULTS}, _cca_pair, prepare=lambda p, **o: p.full),
    "svcca": _Spec(
        "svcca",
        {"tol": DEFAULT_TOL, "keep": "singular_values", "threshold": 0.99, **_PLAN_DEFAULTS},
        _svcca_pair,
        prepare=lambda p, **o: p.top(o.get("keep", "singular_values"), o.get("threshold", 0.99)),
    ),
    "pwcca": _Spec(
        "pwcca",
        {"tol": DEFAULT_TOL, "weights_from": "x", **_PLAN_DEFAULTS},
        _pwcca_pair,
        prepare=lambda p, **o: p.full,
        symmetric=False,
    ),
    "linear_cka": _Spec("linear_cka", dict(_PLAN_DEFAULTS), _linear_cka_pair),
    "procrustes": _Spec("procrustes", dict(_PLAN_DEFAULTS), _procrustes_pair),
    "debiased_linear_cka": _Spec("debiased_linear_cka", {}, data=_debiased_data),
    "rbf_cka": _Spec("rbf_cka", {}, data=_rbf_data, any_options=True),
}

#: Measures computable from :class:`SufficientStats` alone (every one :func:`similarity_matrix` accepts).
STATS_MEASURES: tuple[str, ...] = tuple(name for name, spec in _SPECS.items() if spec.pair is not None)


def _check_measure(measure: object, allowed: Sequence[str]) -> str:
    if not isinstance(measure, str) or measure not in allowed:
        raise ValueError(f"measure must be one of {sorted(allowed)}, got {measure!r}")
    return measure


def _translate_variance(options: dict[str, Any]) -> dict[str, Any]:
    """``variance=f`` (deprecated) means ``keep="variance", threshold=f`` (:func:`svcca_rule`)."""
    variance = options.pop("variance", None)
    if variance is not None and ("threshold" in options or "keep" in options):
        raise ValueError("give threshold= (and keep=), not the deprecated variance= with them")
    if variance is not None:
        options["keep"], options["threshold"] = svcca_rule("singular_values", 0.99, variance, stacklevel=5)
    return options


def _check_options(spec: _Spec, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``spec`` with its defaults filled in; clear errors for unknown or bad values."""
    if spec.any_options:
        return dict(options)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        accepted = ", ".join(sorted(spec.options)) or "none"
        raise TypeError(f"{spec.name} got unknown option(s) {', '.join(unknown)} (it accepts: {accepted})")
    out = {**spec.options, **options}
    if "tol" in out and not 0.0 <= out["tol"] < 1.0:
        raise ValueError(f"tol must be in [0, 1), got {out['tol']}")
    if "keep" in out and out["keep"] not in ("singular_values", "variance"):
        raise ValueError(f"keep must be 'singular_values' or 'variance', got {out['keep']!r}")
    if "threshold" in out and not (isinstance(out["threshold"], (int, float)) and 0.0 < out["threshold"] <= 1.0):
        raise ValueError(f"threshold must be in (0, 1], got {out['threshold']!r}")
    if "weights_from" in out and out["weights_from"] not in ("x", "y", "smaller"):
        raise ValueError(f"weights_from must be 'x', 'y' or 'smaller', got {out['weights_from']!r}")
    return out


def _resolve_pair(
    X: Any, Y: Any, stats: SufficientStats | None, i: int | None, j: int | None, measure: str
) -> tuple[SufficientStats | None, int, int, tuple[np.ndarray, np.ndarray] | None]:
    """``(stats, i, j, data)``: the statistics and indices to use, and the scaled data if X and Y were given."""
    if stats is not None:
        if X is not None or Y is not None:
            raise ValueError("give either X and Y, or stats (with i, j), not both")
        if not isinstance(stats, SufficientStats):
            raise TypeError(f"stats must be SufficientStats, got {type(stats).__name__}")
        count = stats.n_representations
        if count == 0 or stats.n_samples < 2:
            raise ValueError(f"stats must hold at least 2 samples of data, got {stats.n_samples}")
        if i is None and j is None:
            if count != 2:
                raise ValueError(
                    f"stats holds {count} representations: give i and j, the two to compare (e.g. i=0, j=1)"
                )
            i, j = 0, 1
        if i is None or j is None:
            raise ValueError("give both i and j (the two representations of stats to compare)")
        for arg, value in (("i", i), ("j", j)):
            if not isinstance(value, (int, np.integer)) or not -count <= value < count:
                raise ValueError(
                    f"{arg} must be an index in 0..{count - 1} of the representations of stats, got {value!r}"
                )
        return stats, int(i) % count, int(j) % count, None
    if i is not None or j is not None:
        raise ValueError("i and j select representations of stats; leave them out when giving X and Y")
    if X is None or Y is None:
        raise ValueError(f"{measure} needs X and Y (or stats=)")
    # statistics paths find NaN/Inf from their column sums (then name the culprit); data-only measures scan here
    X, Y = check_paired(X, Y, check_finite=measure not in STATS_MEASURES)
    if measure in STATS_MEASURES:  # scaled lazily, only when the statistics show it is needed (_statistics)
        return None, 0, 1, (X, Y)
    return None, 0, 1, (_unit_scale(X), _unit_scale(Y))


def _measure(
    name: str, X: Any, Y: Any, stats: SufficientStats | None, i: int | None, j: int | None, options: dict[str, Any]
) -> SimilarityResult:
    spec = _SPECS[name]
    opts = _check_options(spec, _translate_variance(options) if name == "svcca" else options)
    stats, i, j, data = _resolve_pair(X, Y, stats, i, j, name)
    if spec.pair is None:
        if data is None:
            raise ValueError(
                f"{name} needs the data X and Y: it has no statistics path (SufficientStats keeps no per-sample "
                "values, which its estimator needs)"
            )
        assert spec.data is not None
        return spec.data(*data, **opts)
    method, budget, opts = _split_plan(opts)
    plan = None
    if stats is None:
        assert data is not None
        n, widths = data[0].shape[0], (data[0].shape[1], data[1].shape[1])
        plan = planner.plan_pair(n, widths, needs_basis=name in _CCA_FAMILY, method=method, memory_budget=budget,
                              tiled=name == "linear_cka")
        if plan.method == "dual":
            return _with_plan(_dual_pair(name, *data, opts), plan)
        stats, _ = _statistics(data, second_moments_only=name == "linear_cka")
    elif method == "dual":
        raise ValueError("method='dual' needs the data X and Y (statistics hold the feature-space co-moments only)")
    for index in {i, j}:
        _check_comoment(stats, index)
    tol = opts.get("tol", DEFAULT_TOL)
    px = _Prepared(stats, i, tol)
    py = px if j == i else _Prepared(stats, j, tol)
    if spec.prepare is not None:  # both sides' whitenings side by side
        _prepare_all((px, py), lambda p: spec.prepare(p, **opts))  # type: ignore[misc]
    return _with_plan(spec.pair(px, py, **opts), plan)


# --------------------------------------------------------------------------------- public API
def cca(
    X: Any = None,
    Y: Any = None,
    *,
    stats: SufficientStats | None = None,
    i: int | None = None,
    j: int | None = None,
    tol: float = DEFAULT_TOL,
    method: Method = "auto",
    memory_budget: int | None = None,
) -> SimilarityResult:
    """Mean canonical correlation of ``X: (n, p)`` and ``Y: (n, q)``, or of representations i, j of ``stats``.

    ``tol``: relative eigenvalue cut-off of the whitening. ``i, j`` default to 0, 1 when ``stats`` holds two.
    ``method``/``memory_budget``: the feature-space or the sample-space path (see :data:`PLAN_DOC`).
    """
    return _measure("cca", X, Y, stats, i, j, {"tol": tol, "method": method, "memory_budget": memory_budget})


def svcca(
    X: Any = None,
    Y: Any = None,
    *,
    stats: SufficientStats | None = None,
    i: int | None = None,
    j: int | None = None,
    keep: Keep = "singular_values",
    threshold: float = 0.99,
    tol: float = DEFAULT_TOL,
    variance: float | None = None,
    method: Method = "auto",
    memory_budget: int | None = None,
) -> SimilarityResult:
    """SVCCA: CCA on each side's top principal directions (Raghu et al. 2017).

    ``keep="singular_values"`` (default; the SVCCA appendix): the fewest top directions whose singular values sum to
    ``threshold`` (0.99) of the sum of all singular values of the centred data; ``keep="variance"``: the fewest
    explaining ``threshold`` of the variance. The rule, threshold, kept ranks (``rank_x``, ``rank_y``) and the
    fractions reached (``details['explained_x']``, ``['explained_y']``) are recorded in the result.
    ``variance=f`` is the deprecated spelling of ``keep="variance", threshold=f``.
    """
    options: dict[str, Any] = {"tol": tol, "variance": variance, "method": method, "memory_budget": memory_budget}
    if variance is None or keep != "singular_values" or threshold != 0.99:
        options.update(keep=keep, threshold=threshold)
    return _measure("svcca", X, Y, stats, i, j, options)


def pwcca(
    X: Any = None,
    Y: Any = None,
    *,
    stats: SufficientStats | None = None,
    i: int | None = None,
    j: int | None = None,
    weights_from: WeightsFrom = "x",
    tol: float = DEFAULT_TOL,
    method: Method = "auto",
    memory_budget: int | None = None,
) -> SimilarityResult:
    """Projection-weighted CCA (Morcos et al. 2018); ``weights`` and ``details['weights_from']`` in the result.

    ``weights_from``: ``"x"`` (default), ``"y"``, or ``"smaller"`` (the side with fewer kept dimensions; ties: x).
    Tied correlations get one weight per group, so the score does not depend on round-off (module docstring).
    """
    options = {"tol": tol, "weights_from": weights_from, "method": method, "memory_budget": memory_budget}
    return _measure("pwcca", X, Y, stats, i, j, options)


def linear_cka(
    X: Any = None,
    Y: Any = None,
    *,
    stats: SufficientStats | None = None,
    i: int | None = None,
    j: int | None = None,
    method: Method = "auto",
    memory_budget: int | None = None,
) -> SimilarityResult:
    """Linear CKA ``||Cxy||_F^2 / (||Cxx||_F ||Cyy||_F)``; ``distance = arccos(score)``.

    From data wider than the sample count, the same value from the centred Gram matrices (Kornblith et al.):
    ``<Kc, Lc>_F / (||Kc||_F ||Lc||_F)``; ``method``/``memory_budget`` as in :data:`PLAN_DOC`.
    """
    return _measure("linear_cka", X, Y, stats, i, j, {"method": method, "memory_budget": memory_budget})


def procrustes(
    X: Any = None,
    Y: Any = None,
    *,
    stats: SufficientStats | None = None,
    i: int | None = None,
    j: int | None = None,
    method: Method = "auto",
    memory_budget: int | None = None,
) -> SimilarityResult:
    """Orthogonal Procrustes similarity ``||Cxy||_* / sqrt(tr Cxx tr Cyy)``; ``distance = sqrt(2 - 2 score)``.
    ``method``/``memory_budget`` as in :data:`PLAN_DOC`."""
    return _measure("procrustes", X, Y, stats, i, j, {"method": method, "memory_budget": memory_budget})


def debiased_linear_cka(
    X: Any = None, Y: Any = None, *, stats: SufficientStats | None = None, i: int | None = None, j: int | None = None
) -> SimilarityResult:
    """Linear CKA with the unbiased HSIC estimator (Song et al. 2012). Needs the data (n >= 4), not ``stats``.

    With ``K = Xc Xc'`` and ``L = Yc Yc'`` with zeroed diagonals, HSIC_u = [tr(KL) + 1'K1 1'L1 /
    ((n-1)(n-2)) - 2/(n-2) 1'KL1] / (n(n-3)). Computed in feature space in O(n (p + q) + n p q):
    ``tr(KL) = ||Xc'Yc||_F^2 - sum_i |x_i|^2 |y_i|^2`` etc.; the n x n kernels are never formed.
    The debiased value can be slightly negative for unrelated representations.
    """
    return _measure("debiased_linear_cka", X, Y, stats, i, j, {})


def rbf_cka(
    X: Any = None,
    Y: Any = None,
    *,
    stats: SufficientStats | None = None,
    i: int | None = None,
    j: int | None = None,
    **options: Any,
) -> SimilarityResult:
    """CKA with Gaussian kernels; needs the data. Options: see :func:`ccalens.core.kernel.rbf_cka`."""
    return _measure("rbf_cka", X, Y, stats, i, j, options)


MEASURES: dict[str, Callable[..., SimilarityResult]] = {
    "cca": cca,
    "svcca": svcca,
    "pwcca": pwcca,
    "linear_cka": linear_cka,
    "debiased_linear_cka": debiased_linear_cka,
    "rbf_cka": rbf_cka,
    "procrustes": procrustes,
}


def _split_options(measures: Sequence[str], options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each measure's share of ``options``; an option no requested measure accepts is an error."""
    options = dict(options)
    if "svcca" in measures:
        options = _translate_variance(options)
    else:
        options.pop("variance", None)  # SVCCA's (deprecated) option; nothing else takes it
    claimed: set[str] = set()
    out: dict[str, dict[str, Any]] = {}
    for m in measures:
        spec = _SPECS[m]
        if not spec.any_options:
            out[m] = {k: v for k, v in options.items() if k in spec.options}
            claimed |= set(out[m])
    # options of other measures (tol, threshold, ...) are ignored, so one set of options serves any list of measures
    known = {k for spec in _SPECS.values() for k in spec.options}
    leftover = {k: v for k, v in options.items() if k not in claimed and k not in known}
    for m in measures:
        if _SPECS[m].any_options:
            out[m] = leftover
            claimed |= set(leftover)
    unknown = sorted(set(options) - claimed - known)
    if unknown:
        raise TypeError(f"option(s) {', '.join(unknown)} are accepted by none of the measures {list(measures)}")
    return {m: _check_options(_SPECS[m], out[m]) for m in measures}


def compare(
    X: Any = None,
    Y: Any = None,
    measures: Sequence[str] = ("cca", "svcca", "pwcca", "linear_cka", "procrustes"),
    *,
    stats: SufficientStats | None = None,
    i: int | None = None,
    j: int | None = None,
    **options: Any,
) -> dict[str, SimilarityResult]:
    """Several measures of (X, Y) (or of representations i, j of ``stats``) sharing one pass and whitening.

    ``options`` go to the measures that accept them (``tol``, ``keep``, ``threshold``, ``weights_from``, RBF
    CKA's options; ``variance`` is deprecated); every result equals the measure's own call with its options.
    """
    if isinstance(measures, str):
        measures = (measures,)
    for m in measures:
        _check_measure(m, list(_SPECS))
    per_measure = _split_options(measures, options)
    needs_data = [m for m in measures if _SPECS[m].pair is None]
    # raw arrays for the statistics path (scaled lazily); a data-only measure scans and scales them up front
    stats, i, j, data = _resolve_pair(X, Y, stats, i, j, "compare" if needs_data else "cca")
    if needs_data and data is None:
        raise ValueError(f"{', '.join(needs_data)} need(s) the data X and Y: they have no statistics path")
    out: dict[str, SimilarityResult] = {}
    stats_measures = [m for m in measures if _SPECS[m].pair is not None]
    plans = {m: _split_plan(per_measure[m]) for m in stats_measures}
    per_measure.update({m: plans[m][2] for m in stats_measures})
    plan = None
    if stats_measures and stats is None:
        assert data is not None
        method, budget = plans[stats_measures[0]][:2]
        plan = planner.plan_pair(
            data[0].shape[0], (data[0].shape[1], data[1].shape[1]),
            needs_basis=any(m in _CCA_FAMILY for m in stats_measures), method=method, memory_budget=budget,
            tiled=stats_measures == ["linear_cka"],
        )
        if plan.method == "dual":
            for m in stats_measures:
                out[m] = _with_plan(_dual_pair(m, *data, per_measure[m]), plan)
            stats_measures = []
    elif stats_measures and any(plans[m][0] == "dual" for m in stats_measures):
        raise ValueError("method='dual' needs the data X and Y (statistics hold the feature-space co-moments only)")
    if stats_measures:
        if stats is None:
            assert data is not None
            stats, _ = _statistics(data, second_moments_only=stats_measures == ["linear_cka"])
        for index in {i, j}:
            _check_comoment(stats, index)
        prepared: dict[float, tuple[_Prepared, _Prepared]] = {}
        for m in stats_measures:
            tol = per_measure[m].get("tol", DEFAULT_TOL)
            if tol not in prepared:
                px = _Prepared(stats, i, tol)
                prepared[tol] = (px, px if j == i else _Prepared(stats, j, tol))
        for m in stats_measures:
            spec = _SPECS[m]
            pair = prepared[per_measure[m].get("tol", DEFAULT_TOL)]
            if spec.prepare is not None:
                _prepare_all(pair, lambda p, spec=spec, m=m: spec.prepare(p, **per_measure[m]))  # type: ignore[misc]
            assert spec.pair is not None
            out[m] = _with_plan(spec.pair(*pair, **per_measure[m]), plan)
    for m in needs_data:
        assert data is not None and _SPECS[m].data is not None
        out[m] = _SPECS[m].data(*data, **per_measure[m])  # type: ignore[misc]
    return {m: out[m] for m in measures}


def _reduced_pair(
    measure: str, arrays: Sequence[np.ndarray], store: ReducedPairs, i: int, j: int, opts: Mapping[str, Any]
) -> SimilarityResult:
    """One pair of prepared representations (:mod:`ccalens.core.many`): the same result as the measure's call."""
    ri, rj = store.reductions[i], store.reductions[j]
    n = ri.n_samples
    if i == j and measure in ("linear_cka", "procrustes") and ri.self_norm > 0.0:
        # a representation against itself: 1 by definition (its own product was formed once, for self_norm)
        return SimilarityResult(measure, 1.0, n_samples=n, distance=0.0)
    if measure == "linear_cka":
        cross = _frobenius(store.product(i, j))
        score = (cross / ri.self_norm) * (cross / rj.self_norm)
        return SimilarityResult("linear_cka", score, n_samples=n, distance=angular_distance(score))
    if measure == "procrustes":
        nuclear = float(np.linalg.svd(store.product(i, j), compute_uv=False).sum())
        score = min(1.0, nuclear / math.sqrt(ri.trace * rj.trace))
        return SimilarityResult("procrustes", score, n_samples=n, distance=math.sqrt(max(0.0, 2.0 - 2.0 * score)))
    if measure != "pwcca":
        if i == j:  # every canonical correlation of a subspace with itself is 1, by definition
            rho = np.ones(ri.rank)
        else:
            M = store.product(i, j) / (n - 1.0)  # whitened cross-covariance
            small = M @ M.T if M.shape[0] <= M.shape[1] else M.T @ M
            rho = np.sqrt(np.clip(np.linalg.eigvalsh(small)[::-1], 0.0, 1.0))
        if measure == "cca":
            return _cca_result("cca", rho, n, ri, rj)
        keep, threshold = opts["keep"], opts["threshold"]
        sides = [r.whitening if r.whitening is not None else r.basis for r in (ri, rj)]
        details = {"keep": keep, "threshold": threshold, "explained_x": sides[0].explained(keep),  # type: ignore
                   "explained_y": sides[1].explained(keep)}  # type: ignore[union-attr]
        return _cca_result("svcca", rho, n, ri, rj, details=details)
    M = store.product(i, j) / (n - 1.0)  # whitened cross-covariance
    weights_from = opts["weights_from"]
    side = ("x" if ri.rank <= rj.rank else "y") if weights_from == "smaller" else weights_from
    own, data, W = (ri, arrays[i], M) if side == "x" else (rj, arrays[j], M.T)
    vals, vecs = np.linalg.eigh(W @ W.T)
    squared = np.clip(vals[::-1], 0.0, 1.0)
    k = min(W.shape)
    U = vecs[:, ::-1]
    if own.loadings_basis is not None:  # covariances of the neurons with the unit-variance variates
        projections = own.loadings_basis @ U
    else:
        assert own.basis is not None and own.mean is not None
        projections = dual.feature_loadings(data, own.mean, own.basis.left @ U) / math.sqrt(n - 1.0)
    weights = _tied_weights(projections, squared, k)
    rho = np.sqrt(squared[:k])
    details = {"weights_from": side, "weights_rule": weights_from}
    return _cca_result("pwcca", rho, n, ri, rj, score=float(weights @ rho), weights=weights, details=details)


def _reduce_all(
    measure: str, arrays: Sequence[np.ndarray], names: Sequence[str], opts: Mapping[str, Any], method: str
) -> list[Reduction]:
    """Each representation prepared once (feature space, or sample space where wider than the sample count)."""
    n = arrays[0].shape[0]
    tol = opts.get("tol", DEFAULT_TOL)
    kind = "whitened" if measure in _CCA_FAMILY else "centred"
    if measure == "svcca":
        keep, threshold = opts["keep"], opts["threshold"]

        def primal(cov: np.ndarray, name: str) -> Whitening:
            return principal_whitening(cov, tol=tol, name=name).top(threshold, keep)

        def sample(gram: dual.Gram, name: str) -> dual.SampleBasis:  # the Gram is not used after: destroyed
            return dual.SampleBasis.from_gram(gram, tol=tol, name=name, overwrite=True).top(threshold, keep)
    else:

        def primal(cov: np.ndarray, name: str) -> Whitening:  # type: ignore[misc]
            w = whiten(cov, tol=tol, name=name, method="eigh", standardize=True)
            assert isinstance(w, Whitening)
            return w

        def sample(gram: dual.Gram, name: str) -> dual.SampleBasis:  # type: ignore[misc]
            return dual.SampleBasis.from_gram(gram, tol=tol, name=name, overwrite=True)

    def reduce(index: int) -> Reduction:
        X, name = arrays[index], names[index]
        return reduce_representation(
            X, kind, name=name, dual=method == "dual" or (method == "auto" and X.shape[1] > n),
            primal_whitening=lambda cov: primal(cov, name), dual_basis=lambda g: sample(g, name),
            standardize=STANDARDIZE_CCA_CUT and measure in ("cca", "pwcca"), loadings=measure == "pwcca",
        )

    return [reduce(index) for index in range(len(arrays))]


def _one_warning_per_category(caught: Sequence[warnings.WarningMessage], pairs: int) -> None:
    """Re-emit the pairs' warnings once per category (the first message, with the count of pairs it concerns)."""
    seen: dict[type[Warning], list[warnings.WarningMessage]] = {}
    for w in caught:
        seen.setdefault(w.category, []).append(w)
    for category, items in seen.items():
        note = f" ({len(items)} of the {pairs} pairs)" if len(items) > 1 else ""
        warnings.warn(f"{items[0].message}{note}", category, stacklevel=3)


def similarity_matrix(
    representations: Sequence[Any] | SufficientStats,
    measure: str = "svcca",
    *,
    names: Sequence[str] | None = None,
    pairs: Sequence[tuple[int, int]] | None = None,
    progress: bool = False,
    **options: Any,
) -> SimilarityMatrix:
    """All pairs of L representations of the same samples (or their joint ``SufficientStats``), or only ``pairs``
    (``(i, j)`` indices; the other cells are NaN), e.g. each checkpoint against the final state.

    ``measure``: any of :data:`STATS_MEASURES`; ``options`` as for the measure, with ``method`` and
    ``memory_budget`` (bytes; default a quarter of the available memory). ``scores[i, j]`` equals
    ``measure(R_i, R_j, **options).score``; on the diagonal, CCA and SVCCA correlations are 1 by definition (no
    product, no eigenproblem), as are linear CKA and Procrustes on the prepared path; the rest is computed (1 up to
    rounding). PWCCA is not symmetric: ``scores[i, j]`` takes its weights as ``pwcca(R_i, R_j)`` does.

    Two paths, recorded in ``details['plan']``: when the joint co-moment of all representations fits the budget
    (and none is wider than the sample count), one joint pass computes every block, each representation is
    whitened once, and each pair costs its cross block and one small eigenproblem. Otherwise (or with
    ``method="dual"``) each representation is prepared once on its own (:mod:`ccalens.core.many`: whitened or
    centred coordinates, in sample space when wider than the sample count) and each pair costs one product of two
    preparations: memory linear in L. Warnings of the pairs are given once per call.
    """
    measure = _check_measure(measure, STATS_MEASURES)
    spec = _SPECS[measure]
    method, budget_option, opts = _split_plan(_split_options((measure,), options)[measure])
    store: ReducedPairs | None = None
    arrays: list[np.ndarray] = []
    if isinstance(representations, SufficientStats):
        if method == "dual":
            raise ValueError("method='dual' needs the data (statistics hold the feature-space co-moments only)")
        stats: SufficientStats | None = representations
        if representations.n_representations == 0 or representations.n_samples < 2:
            raise ValueError(f"the statistics must hold at least 2 samples of data, got {representations.n_samples}")
        L = representations.n_representations
        plan = None
    else:
        if len(representations) < 1:
            raise ValueError("representations is empty")
        arrays = check_paired(*representations, check_finite=False)
        L, n = len(arrays), arrays[0].shape[0]
        widths = [a.shape[1] for a in arrays]
        plan = planner.plan_matrix(n, widths, n_pairs=None if pairs is None else len(pairs), method=method,
                                   memory_budget=budget_option)
        budget = plan.memory_budget
        if plan.method == "prepared":
            stats = None
        else:
            stats, arrays = _statistics(arrays, second_moments_only=measure == "linear_cka")
    if names is None:
        names = tuple(f"R{i}" for i in range(L))
    if len(names) != L:
        raise ValueError(f"names has {len(names)} entries for {L} representations")
    if stats is not None:
        for index in range(L):
            _check_comoment(stats, index)
        prepared = [_Prepared(stats, index, opts.get("tol", DEFAULT_TOL)) for index in range(L)]
        if spec.prepare is not None:
            _prepare_all(prepared, lambda p: spec.prepare(p, **opts))  # type: ignore[misc]
        assert spec.pair is not None
        pair_fn = spec.pair

        def compute(i: int, j: int) -> SimilarityResult:
            return pair_fn(prepared[i], prepared[j], **opts)

        widest = max(stats.sizes or (0,))
    else:
        arrays = [_unit_scale(a) for a in arrays]
        store = ReducedPairs(_reduce_all(measure, arrays, names, opts, method), memory_budget=budget)

        def compute(i: int, j: int) -> SimilarityResult:
            assert store is not None
            return _reduced_pair(measure, arrays, store, i, j, opts)

        widest = max(r.rank for r in store.reductions)
    cca_family = measure in _CCA_FAMILY
    scores = np.full((L, L), np.nan)
    mean_rho = np.full((L, L), np.nan) if cca_family else None
    null = np.full((L, L), np.nan) if cca_family else None
    ranks = np.zeros(L, dtype=np.int64) if cca_family else None
    if pairs is None:
        pairs = [(i, j) for i in range(L) for j in range(L) if not spec.symmetric or j >= i]
    else:
        pairs = [(int(i), int(j)) for i, j in pairs]
        bad = [(i, j) for i, j in pairs if not (0 <= i < L and 0 <= j < L)]
        if bad:
            raise ValueError(f"pairs must index the {L} representations (0..{L - 1}), got {bad[:3]}")

    bar: Any = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pairs), desc=f"{measure} pairs", unit="pair")
    # pairs run side by side (one BLAS thread each), in about 16 batches so that the bar moves; a batch's last
    # pairs may leave a worker idle, so batches are not made smaller than 4 pairs per worker
    workers = blas_threads() if widest >= MIN_PARALLEL_WIDTH else 1
    batch = max(4 * workers, len(pairs) // 16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for start in range(0, len(pairs), batch):
            chunk = pairs[start : start + batch]
            results = run_tasks([lambda i=i, j=j: compute(i, j) for i, j in chunk], workers=workers)
            for (i, j), res in zip(chunk, results, strict=True):
                cells = [(i, j), (j, i)] if spec.symmetric else [(i, j)]
                for a, b in cells:
                    scores[a, b] = res.score
                    if mean_rho is not None and null is not None:
                        mean_rho[a, b] = res.mean_rho
                        null[a, b] = np.nan if res.null_mean_rho is None else res.null_mean_rho
                if ranks is not None:
                    assert res.rank_x is not None and res.rank_y is not None
                    ranks[i], ranks[j] = res.rank_x, res.rank_y
            if bar is not None:
                bar.update(len(chunk))
    _one_warning_per_category(caught, len(pairs))
    if bar is not None:
        bar.close()
    details = dict(opts)
    if plan is not None:
        details["plan"] = plan.to_dict()
    return SimilarityMatrix(
        measure=measure, scores=scores, names=tuple(names), mean_rho=mean_rho, rank=ranks, details=details,
        null_mean_rho=null,
    )
