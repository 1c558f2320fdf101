"""The measures' front door: one signature per measure, :func:`compare` for several measures of one pair.

Each call validates its options once (:func:`~.definitions.check_options`), chooses a path (statistics, or the
sample-space Grams by the planner), prepares the two sides on it (:mod:`.sides`) and lets the measure finish
the score (:data:`~.definitions.REGISTRY`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np

from .. import plan as planner
from ..result import SimilarityResult
from ..stats import SufficientStats
from ..validation import SVCCA_THRESHOLD, check_paired
from ..whitening import DEFAULT_TOL
from .definitions import REGISTRY, STATS_MEASURES, Measure, check_measure, check_options
from .sides import GramPair, checked_data, statistics, statistics_pairs, unit_scale

Keep = Literal["singular_values", "variance"]
Method = Literal["auto", "primal", "dual"]
WeightsFrom = Literal["x", "y", "smaller"]

#: How a measure given the data chooses its path (``method=`` and ``memory_budget=`` of every statistics measure).
PLAN_DOC = """\
``method="auto"`` (default) takes the feature-space path (co-moments, streamed over samples) or the sample-space
path (centred Gram matrices, :mod:`ccalens.core.dual`) by their flops, among those whose working memory fits
``memory_budget`` (bytes; default a quarter of the available memory); ``"primal"``/``"dual"`` force one. Both give
the same result fields; ``details['plan']`` records the path taken and why. Given ``stats``, the path is primal.
"""


def with_plan(result: SimilarityResult, plan: planner.Plan | None) -> SimilarityResult:
    """``result`` with ``details['plan']`` (the path taken and why)."""
    if plan is None:
        return result
    return replace(result, details={**result.details, "plan": plan.to_dict()})


def split_plan(opts: dict[str, Any]) -> tuple[str, int | None, dict[str, Any]]:
    """``(method, memory_budget, the measure's own options)``."""
    rest = dict(opts)
    method = rest.pop("method", "auto")
    budget = rest.pop("memory_budget", None)
    if method not in ("auto", "primal", "dual"):
        raise ValueError(f"method must be 'auto', 'primal' or 'dual', got {method!r}")
    return method, budget, rest


def split_options(measures: Sequence[str], options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each measure's share of ``options``; an option no requested measure accepts is an error."""
    options = dict(options)
    claimed: set[str] = set()
    out: dict[str, dict[str, Any]] = {}
    for m in measures:
        spec = REGISTRY[m]
        if not spec.any_options:
            out[m] = {k: v for k, v in options.items() if k in spec.options}
            claimed |= set(out[m])
    # options of other measures (tol, threshold, ...) are ignored, so one set of options serves any list of measures
    known = {k for spec in REGISTRY.values() for k in spec.options}
    leftover = {k: v for k, v in options.items() if k not in claimed and k not in known}
    for m in measures:
        if REGISTRY[m].any_options:
            out[m] = leftover
            claimed |= set(leftover)
    unknown = sorted(set(options) - claimed - known)
    if unknown:
        raise TypeError(f"option(s) {', '.join(unknown)} are accepted by none of the measures {list(measures)}")
    return {m: check_options(REGISTRY[m], out[m]) for m in measures}


def resolve_pair(
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
    if measure in STATS_MEASURES:  # scaled lazily, only when the statistics show it is needed (sides.statistics)
        X, Y = checked_data((X, Y))  # torch tensors stay on their device
        return None, 0, 1, (X, Y)
    X, Y = check_paired(X, Y)
    return None, 0, 1, (unit_scale(X), unit_scale(Y))


def _plan(measures: Sequence[Measure], data: tuple[np.ndarray, np.ndarray], method: str,
          budget: int | None) -> planner.Plan:
    X, Y = data
    return planner.plan_pair(
        X.shape[0], (X.shape[1], Y.shape[1]), needs_basis=any(m.correlation_family for m in measures),
        method=method, memory_budget=budget, tiled=all("gram" in m.needs for m in measures),
    )


def _second_moments_only(measures: Sequence[Measure]) -> bool:
    """Linear CKA alone needs only second moments (float32 products of float32 input)."""
    return all(m.needs == {"gram"} for m in measures)


def _measure(
    name: str, X: Any, Y: Any, stats: SufficientStats | None, i: int | None, j: int | None, options: dict[str, Any]
) -> SimilarityResult:
    spec = REGISTRY[name]
    opts = check_options(spec, options)
    stats, i, j, data = resolve_pair(X, Y, stats, i, j, name)
    if spec.finish is None:
        if data is None:
            raise ValueError(
                f"{name} needs the data X and Y: it has no statistics path (SufficientStats keeps no per-sample "
                "values, which its estimator needs)"
            )
        assert spec.data is not None
        return spec.data(*data, **opts)
    method, budget, opts = split_plan(opts)
    plan = None
    if stats is None:
        assert data is not None
        plan = _plan([spec], data, method, budget)
        if plan.method == "dual":
            return with_plan(spec.finish(GramPair(spec, *data, opts), **opts), plan)  # tensors: Grams on device
        stats, _ = statistics(data, second_moments_only=_second_moments_only([spec]))
    elif method == "dual":
        raise ValueError("method='dual' needs the data X and Y (statistics hold the feature-space co-moments only)")
    (pair,) = statistics_pairs(stats, i, j, [(spec, opts)])
    return with_plan(spec.finish(pair, **opts), plan)


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
    threshold: float = SVCCA_THRESHOLD,
    tol: float = DEFAULT_TOL,
    method: Method = "auto",
    memory_budget: int | None = None,
) -> SimilarityResult:
    """SVCCA: CCA on each side's top principal directions (Raghu et al. 2017).

    ``keep="singular_values"`` (default; the SVCCA appendix): the fewest top directions whose singular values sum to
    ``threshold`` (0.99) of the sum of all singular values of the centred data; ``keep="variance"``: the fewest
    explaining ``threshold`` of the variance. The rule, threshold, kept ranks (``rank_x``, ``rank_y``) and the
    fractions reached (``details['explained_x']``, ``['explained_y']``) are recorded in the result.
    """
    options: dict[str, Any] = {"tol": tol, "keep": keep, "threshold": threshold, "method": method,
                               "memory_budget": memory_budget}
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
        check_measure(m, list(REGISTRY))
    per_measure = split_options(measures, options)
    needs_data = [m for m in measures if REGISTRY[m].finish is None]
    # raw arrays for the statistics path (scaled lazily); a data-only measure scans and scales them up front
    stats, i, j, data = resolve_pair(X, Y, stats, i, j, "compare" if needs_data else "cca")
    if needs_data and data is None:
        raise ValueError(f"{', '.join(needs_data)} need(s) the data X and Y: they have no statistics path")
    out: dict[str, SimilarityResult] = {}
    stats_measures = [m for m in measures if REGISTRY[m].finish is not None]
    specs = [REGISTRY[m] for m in stats_measures]
    plans = {m: split_plan(per_measure[m]) for m in stats_measures}
    per_measure.update({m: plans[m][2] for m in stats_measures})
    plan = None
    if stats_measures and stats is None:
        assert data is not None
        method, budget = plans[stats_measures[0]][:2]
        plan = _plan(specs, data, method, budget)
        if plan.method == "dual":
            for m, spec in zip(stats_measures, specs, strict=True):
                assert spec.finish is not None
                out[m] = with_plan(spec.finish(GramPair(spec, *data, per_measure[m]), **per_measure[m]), plan)
            stats_measures = []
    elif stats_measures and any(plans[m][0] == "dual" for m in stats_measures):
        raise ValueError("method='dual' needs the data X and Y (statistics hold the feature-space co-moments only)")
    if stats_measures:
        if stats is None:
            assert data is not None
            stats, _ = statistics(data, second_moments_only=_second_moments_only(specs))
        pairs = statistics_pairs(stats, i, j, [(REGISTRY[m], per_measure[m]) for m in stats_measures])
        for m, pair in zip(stats_measures, pairs, strict=True):
            finish = REGISTRY[m].finish
            assert finish is not None
            out[m] = with_plan(finish(pair, **per_measure[m]), plan)
    for m in needs_data:
        assert data is not None and REGISTRY[m].data is not None
        out[m] = REGISTRY[m].data(*data, **per_measure[m])  # type: ignore[misc]
    return {m: out[m] for m in measures}
