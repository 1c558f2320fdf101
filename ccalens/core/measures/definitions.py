"""The measures, each defined once: its options and how it finishes a score from a pair of prepared sides.

A :class:`Measure` says what it needs from each prepared side (``needs``) and holds one ``finish(pair, **options)``
that computes the score from a :class:`PreparedPair`, whatever prepared the sides: co-moments in feature space,
Gram matrices in sample space, representations reduced once for a matrix of pairs (:mod:`.sides`). No path
names a measure; every path is a way of preparing sides.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy import special

from ..null import null_mean_rho, warn_if_null_high
from ..result import SimilarityResult, angular_distance
from ..validation import DEFAULT_SVCCA_RULE, SvccaRule, warn_if_underdetermined
from ..whitening import DEFAULT_TOL

#: Squared canonical correlations closer than this are one tied group for PWCCA's weights.
PWCCA_TIE = 1e-9

#: What a prepared side can be asked for. ``whitening``: the scale-invariant whitening (cut on the correlation
#: matrix); ``principal``: the top principal directions under SVCCA's rule; ``loadings``: covariances of the
#: neurons with the canonical variates (PWCCA); ``gram``: centred second moments (Frobenius norms, linear CKA);
#: ``spectrum``: traces and the nuclear norm of the cross-covariance (Procrustes).
NEEDS = frozenset({"whitening", "principal", "loadings", "gram", "spectrum"})


class PreparedPair(Protocol):
    """Two prepared sides, x and y, of the same ``n_samples`` (``same``: one representation against itself).

    ``rule``: None for the whitening, or SVCCA's ``(keep, threshold)`` for the principal directions.
    """

    n_samples: int
    same: bool

    def ranks(self, rule: tuple[str, float] | None) -> tuple[int, int]:
        """Dimensions kept on each side."""
        ...

    def explained(self, rule: tuple[str, float]) -> tuple[float, float]:
        """Fraction of each side's spectrum kept by ``rule``."""
        ...

    def correlations(self, rule: tuple[str, float] | None) -> np.ndarray:
        """Canonical correlations ``(k,)``, descending, ``k = min(ranks)``."""
        ...

    def variates(self, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For the ``side`` (``"x"`` or ``"y"``) under the whitening: ``rho: (k,)``, the squared correlations of
        all its directions ``(r,)``, and its neurons' covariances with its unit-variance canonical variates
        ``(d, r)`` (every direction, descending)."""
        ...

    def self_norms(self) -> tuple[float, float]:
        """``||Cxx||_F``, ``||Cyy||_F`` (any common scale)."""
        ...

    def cross_norm(self) -> float:
        """``||Cxy||_F`` (the scale of :meth:`self_norms`)."""
        ...

    def traces(self) -> tuple[float, float]:
        """``tr Cxx``, ``tr Cyy`` (any common scale)."""
        ...

    def cross_nuclear(self) -> float:
        """``||Cxy||_*`` (the scale of :meth:`traces`)."""
        ...


@dataclass(frozen=True)
class Measure:
    """One measure: its options and defaults, what it needs from a prepared side, and how it finishes a score.

    ``finish(pair, **options)`` from prepared sides (None: the measure needs the data); ``data(X, Y, **options)``
    from the data (measures without a statistics path). ``symmetric``: score(x, y) == score(y, x).
    ``any_options``: forwards every option (RBF CKA's are its function's).
    """

    name: str
    options: Mapping[str, Any]
    needs: frozenset[str] = frozenset()
    finish: Callable[..., SimilarityResult] | None = None
    data: Callable[..., SimilarityResult] | None = None
    symmetric: bool = True
    any_options: bool = False
    correlation_family: bool = False  # a mean of canonical correlations: ranks, mean rho and its null
    #: Its finite-sample bias is of order sqrt(rank / n) where population canonical correlations are 0 (the coverage
    #: study, validation/results/coverage.md): a resampling interval cannot estimate that bias, and says so.
    biased_at_zero_correlation: bool = False

    def rule(self, options: Mapping[str, Any]) -> tuple[str, float] | None:
        """SVCCA's ``(keep, threshold)`` when the measure keeps principal directions, else None."""
        return (options["keep"], float(options["threshold"])) if "principal" in self.needs else None

    def rule_options(self, keep: str, threshold: float) -> dict[str, Any]:
        """``{"keep", "threshold"}`` for a measure that keeps principal directions (SVCCA's rule), else ``{}``."""
        return {"keep": keep, "threshold": threshold} if "principal" in self.needs else {}

    def standardize(self) -> bool:
        """Whether the sides' cut is made on the correlation matrix (scale invariant per neuron)."""
        return "whitening" in self.needs


# --------------------------------------------------------------------------------- CCA family
def _sample_size_warnings(n: int, rank_x: int, rank_y: int, null: float) -> None:
    """One warning at most: too few samples for the ranks (forced correlations of 1), else a high null mean rho."""
    if rank_x + rank_y > n - 1:
        warn_if_underdetermined(n, rank_x, rank_y, stacklevel=7)
    else:
        warn_if_null_high(null, n, rank_x, rank_y, stacklevel=7)


def correlation_result(
    name: str, rho: np.ndarray, n: int, ranks: tuple[int, int], *, score: float | None = None, **extra: Any
) -> SimilarityResult:
    """The result of a CCA-family measure, with ``null_mean_rho`` (unrelated data of the same n and kept ranks)
    and the sample-size warning."""
    rank_x, rank_y = ranks
    mean_rho = float(rho.mean()) if rho.size else 0.0
    null = null_mean_rho(n, rank_x, rank_y) if n >= 3 else None
    if null is not None:
        _sample_size_warnings(n, rank_x, rank_y, null)
    else:  # n = 2: one dimension of centred data, a correlation of 1 whatever the data (as CCA().fit says)
        warn_if_underdetermined(n, rank_x, rank_y, stacklevel=6)
    return SimilarityResult(
        measure=name,
        score=mean_rho if score is None else score,
        mean_rho=mean_rho,
        mean_rho2=float(np.mean(rho**2)) if rho.size else 0.0,
        correlations=rho,
        n_samples=n,
        rank_x=rank_x,
        rank_y=rank_y,
        null_mean_rho=null,
        **extra,
    )


def _finish_cca(pair: PreparedPair, **options: Any) -> SimilarityResult:
    return correlation_result("cca", pair.correlations(None), pair.n_samples, pair.ranks(None))


def _finish_svcca(pair: PreparedPair, *, keep: str, threshold: float, **options: Any) -> SimilarityResult:
    rule = (keep, float(threshold))
    explained_x, explained_y = pair.explained(rule)
    details = {"keep": keep, "threshold": threshold, "explained_x": explained_x, "explained_y": explained_y}
    return correlation_result("svcca", pair.correlations(rule), pair.n_samples, pair.ranks(rule), details=details)


def mean_abs_coordinate(m: np.ndarray, field: str = "real") -> np.ndarray:
    """``E|u_1|`` for u uniform on the unit sphere of R^m (``field="real"``): Gamma(m/2) / (sqrt(pi) Gamma((m+1)/2)),
    or of C^m (``"complex"``, the sphere of R^2m with ``|u_1|`` the modulus): sqrt(pi)/2 Gamma(m) / Gamma(m+1/2);
    ``(groups,)``. Both are 1 at m = 1."""
    m = np.asarray(m, dtype=np.float64)
    if field == "complex":
        return np.exp(special.gammaln(m) - special.gammaln(m + 0.5)) * (np.sqrt(np.pi) / 2)
    if field != "real":
        raise ValueError(f"field must be 'real' or 'complex', got {field!r}")
    return np.exp(special.gammaln(m / 2) - special.gammaln((m + 1) / 2)) / np.sqrt(np.pi)


def tie_bounds(squared: np.ndarray) -> np.ndarray:
    """Group boundaries ``(groups + 1,)`` of descending squared correlations ``(r,)``: a new group starts wherever
    the next value lies more than :data:`PWCCA_TIE` below the previous one; group g is ``bounds[g]:bounds[g+1]``."""
    squared = np.asarray(squared, dtype=np.float64)
    if squared.size == 0:
        return np.zeros(1, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], squared[:-1] - squared[1:] > PWCCA_TIE]))
    return np.append(starts, squared.shape[0])


def tied_weights(projections: np.ndarray, squared: np.ndarray, k: int) -> np.ndarray:
    """PWCCA weights ``(k,)`` of the first k correlations, one weight per group of tied correlations.

    ``projections: (d, r)``: covariances of the d neurons with the r unit-variance canonical variates of the side
    (every direction, descending); ``squared: (r,)`` their squared correlations. A group g of correlations equal
    within :data:`PWCCA_TIE` (:func:`tie_bounds`) weighs ``sum_j ||P_g x_j||`` (the norm of neuron j's covariances
    with the group's variates, the same in any orthonormal basis of the group): each of its m correlations weighs
    ``E|u_1| sum_j ||P_g x_j||``, the expectation of Morcos's weight ``sum_j |<h, x_j>|`` over a uniformly random
    unit h of the group's span (``E|u_1|`` for u uniform on the sphere of R^m; 1 for m = 1). So the weight is
    basis invariant and, as the expected weight of a near-tie's arbitrary basis, continuous across the tie boundary.
    """
    bounds = tie_bounds(squared)
    groups = int(np.count_nonzero(bounds[:-1] < k))  # the groups that begin among the first k count
    starts, stops = bounds[:groups], bounds[1 : groups + 1]
    if groups == 0:
        raise ValueError("PWCCA weights are all zero: the representation has no variance along its canonical variates")
    columns = projections[:, : int(stops[-1])]  # (d, columns of the groups)
    if groups == columns.shape[1]:  # no ties: ||P_g x_j|| is |<x_j, h_g>|
        per_group = np.abs(columns).sum(axis=0)
    else:
        norms = np.sqrt(np.add.reduceat(np.abs(columns) ** 2, starts, axis=1))  # (d, groups): ||P_g x_j||
        per_group = norms.sum(axis=0) * mean_abs_coordinate(stops - starts)  # E over bases of Morcos's weight
    weights = np.repeat(per_group, stops - starts)[:k]
    total = weights.sum()
    if not total > 0.0:
        raise ValueError("PWCCA weights are all zero: the representation has no variance along its canonical variates")
    return weights / total


def weights_side(ranks: tuple[int, int], weights_from: str) -> str:
    """The side PWCCA takes its weights from: ``"x"``, ``"y"``, or for ``"smaller"`` the one with fewer kept
    dimensions (ties: x)."""
    return ("x" if ranks[0] <= ranks[1] else "y") if weights_from == "smaller" else weights_from


def _finish_pwcca(pair: PreparedPair, *, weights_from: str = "x", **options: Any) -> SimilarityResult:
    ranks = pair.ranks(None)
    side = weights_side(ranks, weights_from)
    rho, squared, projections = pair.variates(side)
    weights = tied_weights(projections, squared, rho.shape[0])
    details = {"weights_from": side, "weights_rule": weights_from}
    return correlation_result(
        "pwcca", rho, pair.n_samples, ranks, score=float(weights @ rho), weights=weights, details=details
    )


# --------------------------------------------------------------------------------- second moments
def require_variance(norm: float, index: int) -> None:
    if not norm > 0.0:
        raise ValueError(f"representation {index} has no variance: every feature is constant over the samples")


def _finish_linear_cka(pair: PreparedPair, **options: Any) -> SimilarityResult:
    nx, ny = pair.self_norms()
    require_variance(nx, 0)
    require_variance(ny, 1)
    if pair.same:  # a representation against itself: 1 by definition
        return SimilarityResult("linear_cka", 1.0, n_samples=pair.n_samples, distance=0.0)
    cross = pair.cross_norm()
    score = (cross / nx) * (cross / ny)
    return SimilarityResult("linear_cka", score, n_samples=pair.n_samples, distance=angular_distance(score))


def _finish_procrustes(pair: PreparedPair, **options: Any) -> SimilarityResult:
    tx, ty = pair.traces()
    require_variance(tx, 0)
    require_variance(ty, 1)
    if pair.same:  # a representation against itself: 1 by definition
        return SimilarityResult("procrustes", 1.0, n_samples=pair.n_samples, distance=0.0)
    score = pair.cross_nuclear() / math.sqrt(tx) / math.sqrt(ty)
    if score > 1.0 + 1e-9:
        raise ValueError(
            f"Procrustes similarity {score} > 1: the statistics are not a valid co-moment (not positive semidefinite)"
        )
    score = min(score, 1.0)  # rounding only (Cauchy-Schwarz bounds the exact value by 1)
    return SimilarityResult(
        "procrustes", score, n_samples=pair.n_samples, distance=math.sqrt(max(0.0, 2.0 - 2.0 * score))
    )


# --------------------------------------------------------------------------------- from the data
def _centred(A: np.ndarray) -> tuple[np.ndarray, float]:
    """Centred float64 copy of ``A`` and its largest magnitude."""
    A = np.asarray(A, dtype=np.float64)
    A = A - A.mean(axis=0)
    peak = float(np.abs(A).max()) if A.size else 0.0
    return A, peak


def _debiased_data(X: np.ndarray, Y: np.ndarray) -> SimilarityResult:
    """Debiased linear CKA of validated, scaled ``X: (n, p)``, ``Y: (n, q)`` (Song et al.'s unbiased HSIC)."""
    n = X.shape[0]
    if n < 4:
        raise ValueError(f"debiased_linear_cka needs at least 4 samples, got {n}")
    sides = []
    for A, index in ((X, 0), (Y, 1)):
        Ac, peak = _centred(A)
        require_variance(peak, index)
        Ac *= 2.0 ** -math.frexp(peak)[1]  # fourth powers below neither overflow nor underflow
        sides.append(Ac)
    Xc, Yc = sides
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
    from dataclasses import replace

    from ..kernel import rbf_cka as _rbf

    res = _rbf(X, Y, **options)
    return res if res.distance is not None else replace(res, distance=angular_distance(res.score))


# --------------------------------------------------------------------------------- the registry
#: Every statistics measure's path options (see PLAN_DOC in :mod:`.api`).
PLAN_DEFAULTS: dict[str, Any] = {"method": "auto", "memory_budget": None}

REGISTRY: dict[str, Measure] = {
    "cca": Measure("cca", {"tol": DEFAULT_TOL, **PLAN_DEFAULTS}, frozenset({"whitening"}), _finish_cca,
                   correlation_family=True, biased_at_zero_correlation=True),
    "svcca": Measure(
        "svcca", {"tol": DEFAULT_TOL, "keep": DEFAULT_SVCCA_RULE.keep, "threshold": DEFAULT_SVCCA_RULE.threshold,
                  **PLAN_DEFAULTS},
        frozenset({"principal"}), _finish_svcca, correlation_family=True, biased_at_zero_correlation=True,
    ),
    "pwcca": Measure(
        "pwcca", {"tol": DEFAULT_TOL, "weights_from": "x", **PLAN_DEFAULTS}, frozenset({"whitening", "loadings"}),
        _finish_pwcca, symmetric=False, correlation_family=True, biased_at_zero_correlation=True,
    ),
    "linear_cka": Measure("linear_cka", dict(PLAN_DEFAULTS), frozenset({"gram"}), _finish_linear_cka),
    "procrustes": Measure("procrustes", dict(PLAN_DEFAULTS), frozenset({"spectrum"}), _finish_procrustes,
                          biased_at_zero_correlation=True),
    "debiased_linear_cka": Measure("debiased_linear_cka", {}, data=_debiased_data),
    "rbf_cka": Measure("rbf_cka", {}, data=_rbf_data, any_options=True),
}

#: Measures computable from :class:`~ccalens.core.stats.SufficientStats` alone (every one the matrix accepts).
STATS_MEASURES: tuple[str, ...] = tuple(name for name, m in REGISTRY.items() if m.finish is not None)

#: The measures that are means of canonical correlations (results carry ranks, mean rho and its null).
CORRELATION_MEASURES: tuple[str, ...] = tuple(name for name, m in REGISTRY.items() if m.correlation_family)


# --------------------------------------------------------------------------------- options
def check_measure(measure: object, allowed: Any) -> str:
    if not isinstance(measure, str) or measure not in allowed:
        raise ValueError(f"measure must be one of {sorted(allowed)}, got {measure!r}")
    return measure


def _check_value(name: str, value: Any) -> None:
    if name == "tol" and not 0.0 <= value < 1.0:
        raise ValueError(f"tol must be in [0, 1), got {value}")
    if name == "weights_from" and value not in ("x", "y", "smaller"):
        raise ValueError(f"weights_from must be 'x', 'y' or 'smaller', got {value!r}")


def check_options(measure: Measure, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``measure`` with its defaults filled in; clear errors for unknown or bad values."""
    if measure.any_options:
        return dict(options)
    unknown = sorted(set(options) - set(measure.options))
    if unknown:
        accepted = ", ".join(sorted(measure.options)) or "none"
        raise TypeError(f"{measure.name} got unknown option(s) {', '.join(unknown)} (it accepts: {accepted})")
    out = {**measure.options, **options}
    for name, value in out.items():
        _check_value(name, value)
    if "principal" in measure.needs:
        SvccaRule(out["keep"], out["threshold"])  # SVCCA's rule, validated here once
    return out
