"""The noise-edge correction of canonical correlations (ccalens.core.noise_edge) and the intervals centred on it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ccalens.core.noise_edge import edge_corrected_correlations
from ccalens.core.null import SmallSampleWarning
from ccalens.core.uncertainty import bootstrap
from ccalens.core.uncertainty.edge import EDGE_METHOD
from validation.coverage_study import population


def _forward(t: np.ndarray, c1: float, c2: float) -> np.ndarray:
    """The sample squared correlation of a population one ``t`` above the threshold (Bao et al. 2019)."""
    return t * (1 - c1 + c1 / t) * (1 - c2 + c2 / t)


def test_inverts_the_limit_map_above_the_edge_and_zeroes_below():
    n, p, q = 1001, 100, 60
    t = np.array([0.81, 0.49, 0.25, 0.09])  # sqrt(t_c) is about 0.29 with all 100 + 60 noise dimensions
    # with the 3 strong correlations found, 97 and 57 noise dimensions remain of m = 997
    c1, c2 = (p - 3) / (n - 1 - 3), (q - 3) / (n - 1 - 3)
    edge = (np.sqrt(c1 * (1 - c2)) + np.sqrt(c2 * (1 - c1))) ** 2
    strong = np.sqrt(_forward(t[:3], c1, c2))
    sample = np.concatenate([strong, [np.sqrt(edge) * 0.999, 0.05]])
    fix = edge_corrected_correlations(sample, n, p, q)
    assert fix.detected == 3
    np.testing.assert_allclose(fix.corrected[:3], np.sqrt(t[:3]), rtol=1e-12)
    np.testing.assert_array_equal(fix.corrected[3:], 0.0)
    assert 0.0 < fix.threshold < np.sqrt(t[2])


def test_no_noise_model_when_the_sides_fill_the_samples():
    rho = np.array([1.0, 0.9, 0.4])
    fix = edge_corrected_correlations(rho, 10, 5, 4)
    assert fix.detected is None
    np.testing.assert_array_equal(fix.corrected, rho)


def test_independent_data_give_zero_correlations():
    rng = np.random.default_rng(3)
    found = []
    for _ in range(20):
        X, Y = rng.standard_normal((2000, 30)), rng.standard_normal((2000, 20))
        Xc, Yc = X - X.mean(0), Y - Y.mean(0)
        qx, qy = np.linalg.qr(Xc)[0], np.linalg.qr(Yc)[0]
        rho = np.linalg.svd(qx.T @ qy, compute_uv=False)
        found.append(edge_corrected_correlations(rho, 2000, 30, 20).corrected.mean())
    # the raw mean is about 0.08; a null component crosses the edge only by its Tracy-Widom fluctuation
    assert np.mean(found) < 0.01


def test_corrected_mean_is_nearly_unbiased_where_half_the_correlations_are_zero():
    rng = np.random.default_rng(5)
    pop = population(10, 10, rng, "half-null")
    truth = pop.value("cca")
    raw, corrected = [], []
    for _ in range(60):
        X, Y = pop.sample(1000, rng)
        Xc, Yc = X - X.mean(0), Y - Y.mean(0)
        rho = np.linalg.svd(np.linalg.qr(Xc)[0].T @ np.linalg.qr(Yc)[0], compute_uv=False)
        raw.append(rho.mean())
        corrected.append(edge_corrected_correlations(rho, 1000, 10, 10).corrected.mean())
    # sd of one corrected estimate is about 0.008, so the mean of 60 has sd 0.001; the residual bias is the
    # population's correlation 0.1, which lies below the edge (0.1 / 10 = 0.01 at most)
    assert np.mean(raw) - truth > 0.03
    assert abs(np.mean(corrected) - truth) < 0.012


def test_interval_says_when_it_used_the_noise_edge():
    rng = np.random.default_rng(0)
    pop = population(10, 10, rng, "half-null")
    X, Y = pop.sample(400, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        res = bootstrap(X, Y, "cca", n_resamples=100, seed=1)
    assert res.method_used == EDGE_METHOD
    assert any("at the noise edge" in note for note in res.notes)
    assert res.bias_corrected == pytest.approx(res.estimate - res.bias)
    assert res.confidence_interval.low < res.bias_corrected < res.confidence_interval.high
    # every correlation strong: the plain half-sampling interval, with no undercoverage note
    strong = population(4, 4, rng, "regular")
    X, Y = strong.sample(400, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        res = bootstrap(X, Y, "cca", n_resamples=100, seed=1)
    assert res.method_used == "half_sampling" and res.notes == ()


@pytest.mark.parametrize("measure", ["cca", "pwcca"])
def test_matrix_cells_take_the_same_edge_interval_as_the_pair(measure):
    from ccalens.core.measures import MEASURES, similarity_matrix
    from ccalens.core.noise_edge import edge_corrected_score
    from ccalens.core.uncertainty import bootstrap_matrix

    rng = np.random.default_rng(0)
    pop = population(10, 10, rng, "half-null")
    X, Y = pop.sample(400, rng)
    Z = X @ rng.standard_normal((10, 8)) + rng.standard_normal((400, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        whole = bootstrap_matrix([X, Y, Z], measure, n_resamples=60, seed=3)
        pair = bootstrap(X, Y, measure, n_resamples=60, seed=3)
        mat = similarity_matrix([X, Y, Z], measure)
        direct = edge_corrected_score(MEASURES[measure](X, Y))
    assert pair.method_used == EDGE_METHOD and EDGE_METHOD in whole.method_used
    tol = 1e-10  # the same merges and eigenproblems, summed in another order
    assert whole.confidence_interval.low[0, 1] == pytest.approx(pair.confidence_interval.low, abs=tol)
    assert whole.confidence_interval.high[0, 1] == pytest.approx(pair.confidence_interval.high, abs=tol)
    assert whole.bias_corrected[0, 1] == pytest.approx(pair.bias_corrected, abs=tol)
    assert mat.edge_corrected[0, 1] == pytest.approx(direct.score, abs=tol)
    assert mat.at_edge[0, 1] == direct.total - direct.detected
