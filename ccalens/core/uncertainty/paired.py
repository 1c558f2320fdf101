"""Is 0.62 different from 0.58? A paired bootstrap of the difference of two similarities on the same samples.

``bootstrap_difference((A, R), (B, R))`` resamples the same rows (blocks) for both pairs, so the covariance of
the two scores (same samples, often a shared reference) is kept: the interval of ``s(A, R) - s(B, R)`` is much
narrower than one built from two separate intervals. The p-value of "the population difference is 0" inverts
the interval method: for half-sampling (the default) ``p = 2 P(T_{B-1} >= |d - bias| / se)``; for the basic
interval ``p = 2 min(P*(d* >= 2 d), P*(d* <= 2 d))`` with the +1 correction of a Monte Carlo p-value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.stats

from ..stats import SufficientStats
from .blocks import Partition, _blocks_from_arrays, _fits_packed, _partition, checked_arrays
from .bootstrap import bootstrap_engine, effective_blocks, measure_function, validate_common, warn_few_blocks
from .intervals import DEFAULT_METHOD
from .results import DifferenceResult

__all__ = ["bootstrap_difference"]


def _pair(value: Any, name: str) -> tuple[Any, Any]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (X, Y) of arrays of the same samples")
    return value[0], value[1]


def difference_pvalue(replicates: np.ndarray, difference: float, method: str, *, bias: float = 0.0,
                      standard_error: float = 0.0, n_blocks: int = 0) -> float:
    """Two-sided p-value of "population difference = 0" from ``replicates: (R,)`` of the difference."""
    if method == "half_sampling":
        if standard_error <= 0.0:
            return 1.0 if difference - bias == 0.0 else 0.0
        statistic = abs(difference - bias) / standard_error
        return float(min(1.0, 2.0 * scipy.stats.t.sf(statistic, max(min(n_blocks, 1 << 20) - 1, 1))))
    R = replicates.shape[0]
    # basic/bca invert about 2 d (the reflected distribution); percentile about 0
    pivot = 0.0 if method == "percentile" else 2.0 * difference
    upper = (np.count_nonzero(replicates >= pivot) + 1) / (R + 1)
    lower = (np.count_nonzero(replicates <= pivot) + 1) / (R + 1)
    return float(min(1.0, 2.0 * min(upper, lower)))


def bootstrap_difference(
    first: Sequence[Any],
    second: Sequence[Any],
    measure: str = "svcca",
    *,
    n_resamples: int = 1000,
    confidence_level: float = 0.95,
    method: str = DEFAULT_METHOD,
    block_size: int | None = None,
    partition: Partition = "random",
    seed: int | np.random.Generator | None = None,
    **measure_options: Any,
) -> DifferenceResult:
    """Paired bootstrap of ``measure(*first) - measure(*second)``; all four arrays hold the same n samples.

    ``first = (X1, Y1)``, ``second = (X2, Y2)``: e.g. two layers against one reference ``((A, R), (B, R))``. Arrays
    given twice (the same object) are stored once. Each replicate resamples the same blocks for both pairs.
    Options as in :func:`~ccalens.core.uncertainty.bootstrap.bootstrap` (a statistics measure is required).
    """
    validate_common(n_resamples, confidence_level, method)
    fn, has_stats = measure_function(measure)
    if not has_stats:
        raise ValueError(f"measure {measure!r} has no statistics path: bootstrap_difference needs one")
    x1, y1 = _pair(first, "first")
    x2, y2 = _pair(second, "second")
    arrays: list[Any] = []
    index: list[int] = []
    for a in (x1, y1, x2, y2):
        found = next((k for k, b in enumerate(arrays) if b is a), None)
        if found is None:
            arrays.append(a)
            found = len(arrays) - 1
        index.append(found)
    checked = checked_arrays(arrays)
    rng = np.random.default_rng(seed)
    width = sum(a.shape[1] for a in checked)
    order, bnds = _partition(checked[0].shape[0], block_size, partition, rng, width)
    blk = _blocks_from_arrays(checked, order, bnds, packed=_fits_packed(bnds.shape[0] - 1, width))
    size = int(np.diff(bnds).max())
    warn_few_blocks(effective_blocks(blk.n_blocks, size), confidence_level, method)
    options = dict(measure_options)

    def evaluate(stats: SufficientStats) -> np.ndarray:
        a = fn(stats=stats.select([index[0], index[1]]), **options).score
        b = fn(stats=stats.select([index[2], index[3]]), **options).score
        return np.array([a, b, a - b])

    replicate_method = "half_sampling" if method == "half_sampling" else "percentile"
    est, reps, whole = bootstrap_engine(
        blk, evaluate, n_resamples=n_resamples, confidence_level=confidence_level, method=replicate_method,
        rng=rng, bounds=None, what="bootstrap_difference",
    )
    from .intervals import compute_interval

    diffs = reps[:, 2]
    d = float(est[2])

    def jackknife() -> np.ndarray:
        from .replicates import gathered_warnings, run_weighted

        with gathered_warnings("bootstrap_difference (jackknife)", blk.n_blocks):
            return run_weighted(blk, 1.0 - np.eye(blk.n_blocks), lambda s: evaluate(s)[2])

    blocks_seen = effective_blocks(blk.n_blocks, size)
    iv = compute_interval(diffs, np.asarray(d), method, confidence_level, jackknife, n_blocks=blocks_seen,
                          bounds=(-1.0, 1.0), fraction=whole.fraction)
    bias, se = float(iv.bias), float(iv.standard_error)
    path = "block statistics" if blk.packed is not None else "weighted data"
    p_value = difference_pvalue(diffs, d, iv.method_used, bias=bias, standard_error=se, n_blocks=blocks_seen)
    return DifferenceResult(
        measure, (float(est[0]), float(est[1])), d, iv.interval, p_value, diffs, se, bias, d - bias,
        confidence_level, method, iv.method_used, blk.n_blocks, path, "population", iv.notes,
    )

