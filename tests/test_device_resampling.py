"""The bootstrap family and the permutation test of torch tensors (issue #24): block statistics, the weighted-data
replicates and each permutation's cross product are multiplied on the tensors' device, with the same seeds, the
same replicates and the same p-values as NumPy input, and no activation reaches the host.

Run here on CPU torch; tolerance as in tests/test_device.py (two orderings of the same sums, amplified by the
whitening for the CCA family), applied to the estimate, every replicate and the interval's bounds.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_device import _tolerance, no_host_copy_of
from test_measure_paths import CORPUS

import ccalens.core.uncertainty.blocks as blocks_module
from ccalens.core.measures import STATS_MEASURES
from ccalens.core.uncertainty import bootstrap, bootstrap_difference, bootstrap_matrix, permutation_test

torch = pytest.importorskip("torch")

CASES = ("generic", "offsets", "constant neuron", "float32")


def _tensors(*arrays: np.ndarray) -> list:
    return [torch.from_numpy(a) for a in arrays]


def _assert_close(got: np.ndarray, expected: np.ndarray, tolerance: float) -> None:
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape
    assert np.nanmax(np.abs(got - expected), initial=0.0) <= tolerance, np.nanmax(np.abs(got - expected))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("measure", STATS_MEASURES)
def test_bootstrap_of_tensors_equals_numpy_and_keeps_the_data_on_the_device(measure: str, case: str) -> None:
    X, Y = CORPUS[case]
    tolerance = _tolerance(measure, X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = bootstrap(X, Y, measure, n_resamples=40, seed=5)
        with no_host_copy_of(X.shape[0]):
            got = bootstrap(*_tensors(X, Y), measure, n_resamples=40, seed=5)
    assert got.path == expected.path == "block statistics"
    assert got.method_used == expected.method_used
    _assert_close(got.bootstrap_distribution, expected.bootstrap_distribution, tolerance)
    _assert_close([got.estimate, *got.confidence_interval], [expected.estimate, *expected.confidence_interval],
                  10 * tolerance)  # the interval: a mean and a standard deviation of the replicates
    assert isinstance(got.bootstrap_distribution, np.ndarray)


def test_weighted_data_replicates_run_on_the_device(monkeypatch) -> None:
    """Block statistics beyond the memory budget: each replicate is a weighted product of the centred data, which
    stays on the device (the path NumPy input takes in the same case)."""
    monkeypatch.setattr(blocks_module, "_PACKED_BUDGET", 1 << 10)
    X, Y = CORPUS["offsets"]
    for measure in ("svcca", "linear_cka"):
        expected = bootstrap(X, Y, measure, n_resamples=20, seed=1)
        with no_host_copy_of(X.shape[0]):
            got = bootstrap(*_tensors(X, Y), measure, n_resamples=20, seed=1)
        assert got.path == expected.path == "weighted data"
        _assert_close(got.bootstrap_distribution, expected.bootstrap_distribution, _tolerance(measure, X, Y))


def test_bootstrap_matrix_and_difference_of_tensors_equal_numpy() -> None:
    X, Y = CORPUS["generic"]
    third = X[:, :4] + Y[:, :4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = bootstrap_matrix([X, Y, third], "cca", n_resamples=30, seed=2)
        with no_host_copy_of(X.shape[0]):
            got = bootstrap_matrix(_tensors(X, Y, third), "cca", n_resamples=30, seed=2)
        tolerance = _tolerance("cca", X, Y)
        _assert_close(got.scores, expected.scores, tolerance)
        _assert_close(got.bootstrap_distribution, expected.bootstrap_distribution, tolerance)
        d_expected = bootstrap_difference((X, Y), (third, Y), "cca", n_resamples=30, seed=3)
        tX, tY, tT = _tensors(X, Y, third)
        with no_host_copy_of(X.shape[0]):
            d_got = bootstrap_difference((tX, tY), (tT, tY), "cca", n_resamples=30, seed=3)
    _assert_close(d_got.bootstrap_distribution, d_expected.bootstrap_distribution, 2 * tolerance)
    assert d_got.pvalue == pytest.approx(d_expected.pvalue, abs=1e-9)


@pytest.mark.parametrize("measure", STATS_MEASURES)
def test_permutation_test_of_tensors_permutes_on_the_device(measure: str) -> None:
    X, Y = CORPUS["offsets"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = permutation_test(X, Y, measure, n_permutations=40, seed=7)
        with no_host_copy_of(X.shape[0]):
            got = permutation_test(*_tensors(X, Y), measure, n_permutations=40, seed=7)
    assert got.path == expected.path
    tolerance = _tolerance(measure, X, Y)
    _assert_close(got.null_distribution, expected.null_distribution, tolerance)
    assert abs(got.statistic - expected.statistic) <= tolerance
    assert got.pvalue == expected.pvalue  # the same seed, the same permutations: scores far apart from rounding


def test_measures_without_statistics_resample_tensors_on_the_host() -> None:
    X, Y = CORPUS["generic"]
    expected = permutation_test(X, Y, "rbf_cka", n_permutations=10, seed=0)
    got = permutation_test(*_tensors(X, Y), "rbf_cka", n_permutations=10, seed=0)
    assert got.path == expected.path == "resampled rows"
    np.testing.assert_allclose(got.null_distribution, expected.null_distribution, rtol=1e-12)


def test_bad_tensors_of_a_bootstrap_are_named() -> None:
    X, Y = _tensors(*CORPUS["generic"])
    bad = X.clone()
    bad[3, 2] = float("inf")
    with pytest.raises(ValueError, match=r"X contains 1 NaN/Inf value.*sample 3, feature 2"):
        bootstrap(bad, Y, "cca", n_resamples=5)
    with pytest.raises(ValueError, match=r"representations\[1\] contains 1 NaN/Inf"):
        bootstrap_matrix([Y, bad, X], "cca", n_resamples=5)
    with pytest.raises(ValueError, match="Y contains 1 NaN/Inf"):
        permutation_test(Y, bad, "cca", n_permutations=5)
    with pytest.raises(ValueError, match="sample counts differ: X has 200, Y has 199"):
        bootstrap(X, Y[:199], "cca", n_resamples=5)
