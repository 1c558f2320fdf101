"""Every statistics measure on every path over a corpus of degenerate inputs agrees with the feature-space path.

The paths are ways of preparing the two sides of a pair (``ccalens.core.measures.sides``): feature-space
statistics of the data, the same from precomputed ``SufficientStats``, the sample-space Gram matrices, the
representations reduced once for a matrix of pairs, and (for the correlation measures) the permutation null at
the identity pairing. Each measure is defined once, so a difference here beyond rounding is drift. Tolerance:
two orderings of sums of n terms differ by at most ``2 gamma_n`` (tests/numerics.py) relative to the largest
summand; solving through a whitening multiplies that by the condition number of the kept correlation matrix.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numerics import two_way_tolerance

from ccalens.core import SufficientStats
from ccalens.core.measures import MEASURES, REGISTRY, STATS_MEASURES, similarity_matrix
from ccalens.core.measures.api import split_plan
from ccalens.core.measures.definitions import check_options
from ccalens.core.measures.permuted import PermutedPair


def _corpus() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(11)
    n = 200
    Z = rng.standard_normal((n, 4))
    X = Z @ rng.standard_normal((4, 8)) + 0.7 * rng.standard_normal((n, 8))
    Y = Z @ rng.standard_normal((4, 6)) + 0.9 * rng.standard_normal((n, 6))
    cases = {"generic": (X, Y)}
    cases["rank deficient"] = (np.hstack([X[:, :5], X[:, :3] @ rng.standard_normal((3, 3))]), Y)
    constant = X.copy()
    constant[:, 2] = 3.0
    cases["constant neuron"] = (constant, Y)
    cases["rescaled neurons"] = (X * np.logspace(-6, 6, 8), Y * np.logspace(3, -3, 6))
    cases["offsets"] = (X + 1e4, Y - 3e3)
    cases["tied correlations"] = (X, np.hstack([X[:, :3], rng.standard_normal((n, 3))]))
    wide_n = 40
    wide_y = rng.standard_normal((wide_n, 3)) @ rng.standard_normal((3, 50))
    cases["n <= d"] = (rng.standard_normal((wide_n, 60)), wide_y)
    cases["float32"] = (X.astype(np.float32), Y.astype(np.float32))
    return cases


CORPUS = _corpus()


def _condition(A: np.ndarray) -> float:
    """Condition number of the kept part of A's correlation matrix (the whitening's amplification of rounding)."""
    A = np.asarray(A, dtype=np.float64)
    sd = A.std(axis=0)
    R = np.corrcoef(A[:, sd > 0].T) if np.count_nonzero(sd > 0) > 1 else np.ones((1, 1))
    vals = np.linalg.eigvalsh(np.atleast_2d(R))
    kept = vals[vals > 1e-10 * vals.max()]
    return float(kept.max() / kept.min())


def _spread(A: np.ndarray) -> float:
    """sqrt of the condition number of A's covariance (kept part): the sample-space paths take singular values as
    square roots of Gram eigenvalues, whose absolute error (2 gamma lambda_1) becomes a relative error of
    sqrt(lambda_1 / lambda_i) times that on s_i."""
    vals = np.linalg.eigvalsh(np.cov(np.asarray(A, dtype=np.float64).T))
    kept = vals[vals > A.shape[0] * np.finfo(np.float64).eps * vals.max()]
    return float(np.sqrt(kept.max() / kept.min())) * kept.shape[0]


def _paths(measure: str, X: np.ndarray, Y: np.ndarray) -> dict[str, float]:
    fn = MEASURES[measure]
    out = {
        "statistics": fn(stats=SufficientStats.from_arrays(X, Y)).score,
        "gram": fn(X, Y, method="dual").score,
        "reduced": float(similarity_matrix([X, Y], measure, method="dual").scores[0, 1]),
    }
    spec = REGISTRY[measure]
    if spec.needs <= {"whitening", "principal", "loadings"}:
        stats = SufficientStats.from_arrays(X, Y)
        Xc = np.asarray(X, dtype=np.float64) - stats.means(0)
        Yc = np.asarray(Y, dtype=np.float64) - stats.means(1)
        _, _, opts = split_plan(check_options(spec, {}))
        pair = PermutedPair(spec, stats, Xc, Yc, opts).permute(np.arange(X.shape[0]))
        out["permutation null"] = spec.finish(pair, **opts).score  # type: ignore[misc]
    return out


@pytest.mark.parametrize("case", list(CORPUS))
@pytest.mark.parametrize("measure", STATS_MEASURES)
def test_every_path_agrees_with_the_feature_space_path(measure: str, case: str) -> None:
    X, Y = CORPUS[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        primal = MEASURES[measure](X, Y, method="primal").score
        others = _paths(measure, X, Y)
    n = X.shape[0]
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    if REGISTRY[measure].correlation_family:
        amplification = _condition(X) * _condition(Y)
    elif "spectrum" in REGISTRY[measure].needs:  # Procrustes: the nuclear norm sums every singular value
        amplification = _spread(X) + _spread(Y)
    else:
        amplification = 1.0
    tolerance = two_way_tolerance(dtype, n * max(X.shape[1], Y.shape[1]), 1.0) * amplification
    for path, value in others.items():
        assert abs(value - primal) <= tolerance, (path, value, primal, tolerance)
