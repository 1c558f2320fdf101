"""Permutation test of "X and Y are unrelated".

Rows of Y are permuted, which destroys the pairing but keeps each side's distribution. Sxx and Syy (and the
means) do not change, so each side is whitened once and a permutation costs the cross product of the whitened
data ``Zx' Zy[perm]`` and one small SVD. The p-value is ``(count + 1) / (n_permutations + 1)`` (the observed
pairing counts as one permutation), so it is never 0. The warnings of the permuted scores are gathered into one
line per category with counts.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from ..device import centred_rows, cross_product, is_tensor
from ..stats import SufficientStats
from ..validation import check_paired
from .blocks import checked_arrays
from .bootstrap import measure_function
from .replicates import gathered_warnings
from .results import PermutationTestResult

__all__ = ["permutation_test"]

def _whitened_null(
    measure: str, stats: SufficientStats, Xc: Any, Yc: Any, options: dict[str, Any]
) -> Callable[[np.ndarray], tuple[float, float]] | None:
    """``perm -> (score, mean rho)`` of the measure on the pairing ``(X, Y[perm])``, each side whitened once
    (:class:`~ccalens.core.measures.sides.PermutedPair`), or None where the measure needs more than whitened data
    or its options are not the plain ones (the caller then recomputes from the permuted cross block)."""
    from ..measures.api import split_plan
    from ..measures.definitions import REGISTRY, check_options
    from ..measures.permuted import PermutedPair

    spec = REGISTRY[measure]
    if spec.finish is None or not spec.needs <= {"whitening", "principal", "loadings"} or "variance" in options:
        return None
    _, _, opts = split_plan(check_options(spec, options))
    pair = PermutedPair(spec, stats, Xc, Yc, opts)
    finish = spec.finish

    def null(perm: np.ndarray) -> tuple[float, float]:
        with warnings.catch_warnings():  # the same n and ranks as the observed score, which gave its warnings
            warnings.simplefilter("ignore")
            res = finish(pair.permute(perm), **opts)
        return float(res.score), float(res.mean_rho)

    return null


def _centred(A: Any, mean: np.ndarray) -> Any:
    """``A - mean`` in float64, where ``A`` lives."""
    return centred_rows([A], None, mean) if is_tensor(A) else np.asarray(A, dtype=np.float64) - mean


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
    fn, has_stats = measure_function(measure)
    # measures without a statistics path recompute from permuted rows, on the host; the others keep tensors on
    # their device: each permutation is then one product there and a small result on the host
    X, Y = checked_arrays([X, Y]) if has_stats else check_paired(X, Y)
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    options = dict(measure_options)
    null = np.empty(n_permutations)
    null_rho = np.empty(n_permutations)
    has_rho = True
    with gathered_warnings("permutation test", n_permutations + 1, stacklevel=4):
        if not has_stats:
            observed = fn(X, Y, **options)
            path = "resampled rows"
            for k in range(n_permutations):
                res = fn(X, Y[rng.permutation(n)], **options)
                null[k] = res.score
                has_rho = has_rho and res.mean_rho is not None
                null_rho[k] = res.mean_rho if res.mean_rho is not None else np.nan
        else:
            stats = SufficientStats.from_arrays(X, Y)
            observed = fn(stats=stats, **options)
            Xc, Yc = _centred(X, stats.means(0)), _centred(Y, stats.means(1))
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
                for k in range(n_permutations):
                    cross = cross_product(Xc, Yc, rng.permutation(n))
                    comoment = stats.comoment.copy()
                    comoment[:p, p:] = cross
                    comoment[p:, :p] = cross.T
                    permuted = SufficientStats(sizes=stats.sizes, n_samples=n, mean=stats.mean, comoment=comoment)
                    res = fn(stats=permuted, **options)
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
