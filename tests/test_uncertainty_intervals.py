"""Intervals for the population value (issue #22): the reproducer, BCa fallback, one warning per call, few
blocks (#26 item 4), failing replicates (#26 item 6), the paired difference and a small coverage study."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

import ccalens
from ccalens.core.null import SmallSampleWarning
from ccalens.core.uncertainty import FEW_BLOCKS, FewBlocksWarning, bootstrap, bootstrap_difference
from ccalens.core.uncertainty.intervals import widening
from validation.coverage_study import Population, coverage_cell, null_study, population


def reproducer() -> tuple[np.ndarray, np.ndarray, float]:
    """The issue's case: n = 500, A: 50 normal features, B = A[:, :30] W + 2 noise (40); population linear CKA."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((500, 50))
    W = rng.standard_normal((30, 40))
    B = A[:, :30] @ W + 2.0 * rng.standard_normal((500, 40))
    Sxy = np.zeros((50, 40))
    Sxy[:30] = W
    Syy = W.T @ W + 4.0 * np.eye(40)
    cka = float(np.sum(Sxy**2) / (np.linalg.norm(np.eye(50)) * np.linalg.norm(Syy)))
    return A, B, cka


def test_default_interval_covers_the_population_linear_cka_of_the_reproducer() -> None:
    A, B, truth = reproducer()
    res = bootstrap(A, B, "linear_cka", n_resamples=300, seed=0)
    assert res.method == "half_sampling" and res.estimand == "population"
    assert res.confidence_interval.low <= truth <= res.confidence_interval.high
    percentile = bootstrap(A, B, "linear_cka", n_resamples=300, seed=0, method="percentile")
    assert not percentile.confidence_interval.low <= truth <= percentile.confidence_interval.high  # the old default
    assert res.bias > 0 and abs(res.bias_corrected - truth) < abs(res.estimate - truth)
    # half-samples keep m ~ n / 2 rows (half of the blocks, which hold 1-2 rows each here): bias
    # (mean - estimate) m / (n - m) and se sd sqrt(m / (n - m)), where m / (n - m) is within a few % of 1
    assert res.bias == pytest.approx(res.bootstrap_distribution.mean() - res.estimate, rel=0.05)
    t = scipy.stats.t.ppf(0.975, res.n_blocks - 1)
    half_width = (res.confidence_interval.high - res.confidence_interval.low) / 2
    assert half_width == pytest.approx(t * res.standard_error, rel=1e-9)
    assert res.standard_error == pytest.approx(np.std(res.bootstrap_distribution, ddof=1), rel=0.03)
    d = res.to_dict()
    assert d["estimand"] == "population" and d["bias"] == res.bias and d["method_used"] == "half_sampling"
    basic = bootstrap(A, B, "linear_cka", n_resamples=300, seed=0, method="basic")
    assert basic.bias == pytest.approx(basic.bootstrap_distribution.mean() - basic.estimate, abs=1e-12)
    assert basic.confidence_interval.low <= truth <= basic.confidence_interval.high


@pytest.mark.parametrize("measure", ["svcca", "linear_cka", "cca"])
def test_bca_is_never_zero_width_and_names_its_fallback(measure: str) -> None:
    A, B, _ = reproducer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        res = bootstrap(A, B, measure, n_resamples=300, seed=0, method="bca")
    low, high = res.confidence_interval
    assert high - low > 0.25 * res.standard_error
    assert res.method_used == "basic" and any("wholly above" in note for note in res.notes)


def test_bca_is_used_where_it_is_defined() -> None:
    rng = np.random.default_rng(4)
    Z = rng.multivariate_normal([0, 0], [[1.0, 0.6], [0.6, 1.0]], size=400)
    res = bootstrap(Z[:, :1], Z[:, 1:], "cca", n_resamples=500, method="bca", seed=1)
    assert res.method_used == "bca" and not any("BCa" in note for note in res.notes)


def small_sample_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((60, 8))
    return X, X[:, :5] + rng.standard_normal((60, 5))


def test_bootstrap_gives_one_warning_per_call_with_counts() -> None:
    X, Y = small_sample_pair()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bootstrap(X, Y, "cca", n_resamples=40, seed=0)
    small = [w for w in caught if issubclass(w.category, SmallSampleWarning)]
    assert len(small) == 1 and "of 41 scores" in str(small[0].message)


def test_permutation_test_and_matrix_give_one_warning_per_call() -> None:
    X, Y = small_sample_pair()
    for call in (
        lambda: ccalens.permutation_test(X, Y, "cca", n_permutations=30, seed=0),
        lambda: ccalens.bootstrap_matrix([X, Y, X[:, :4]], "cca", n_resamples=20, seed=0),
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        small = [w for w in caught if issubclass(w.category, SmallSampleWarning)]
        assert len(small) == 1 and "scores (the estimate and its replicates) warned" in str(small[0].message)


def test_few_blocks_warn_and_widen_by_the_student_factor() -> None:
    rng = np.random.default_rng(5)
    X = rng.standard_normal((400, 4))
    Y = X + rng.standard_normal((400, 4))
    blocks = [ccalens.SufficientStats.from_arrays(X[k::10], Y[k::10]) for k in range(10)]
    with pytest.warns(FewBlocksWarning, match="only 10 blocks"):
        half = bootstrap(blocks=blocks, measure="linear_cka", n_resamples=200, seed=0)
    half_width = (half.confidence_interval.high - half.confidence_interval.low) / 2
    assert half_width == pytest.approx(scipy.stats.t.ppf(0.975, 9) * half.standard_error, rel=1e-10)
    with pytest.warns(FewBlocksWarning, match="only 10 blocks"):
        res = bootstrap(blocks=blocks, measure="linear_cka", n_resamples=200, seed=0, method="basic")
    factor = widening(10, 0.95)
    expected = np.sqrt(10 / 9) * scipy.stats.t.ppf(0.975, 9) / scipy.stats.norm.ppf(0.975)
    assert factor == pytest.approx(expected, rel=1e-12) and widening(FEW_BLOCKS, 0.95) == 1.0
    reps, est = res.bootstrap_distribution, res.estimate
    centre = 2 * est - reps.mean()
    plain_low = 2 * est - np.quantile(reps, 0.975)
    assert res.confidence_interval.low == pytest.approx(centre - factor * (centre - plain_low), rel=1e-10)
    assert any("widened" in note for note in res.notes)


def test_no_few_blocks_warning_for_the_iid_bootstrap() -> None:
    X, Y = small_sample_pair(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewBlocksWarning)
        bootstrap(X[:30], Y[:30], "linear_cka", n_resamples=20, block_size=1, seed=0)


def test_a_failing_replicate_says_it_was_a_replicate_and_which() -> None:
    rng = np.random.default_rng(0)
    X = np.zeros((12, 1))
    X[0, 0] = 1.0
    Y = rng.standard_normal((12, 3))
    with pytest.raises(ValueError, match=r"bootstrap replicate \d+ failed"):
        bootstrap(X, Y, "linear_cka", n_resamples=50, seed=0)
    X2 = np.zeros((12, 1))
    X2[:3, 0] = [1.0, -2.0, 1.5]
    with pytest.raises(ValueError, match=r"bootstrap replicate \d+ failed"):
        bootstrap(X2, Y, "debiased_linear_cka", n_resamples=200, seed=0)


def test_difference_uses_the_same_rows_for_both_scores() -> None:
    rng = np.random.default_rng(7)
    R = rng.standard_normal((300, 6))
    A = R + rng.standard_normal((300, 6))
    B = R + 1.5 * rng.standard_normal((300, 6))
    res = bootstrap_difference((A, R), (B, R), "linear_cka", n_resamples=100, block_size=1, seed=3)
    one = bootstrap(A, R, "linear_cka", n_resamples=100, block_size=1, seed=3)
    two = bootstrap(B, R, "linear_cka", n_resamples=100, block_size=1, seed=3)
    np.testing.assert_allclose(res.bootstrap_distribution, one.bootstrap_distribution - two.bootstrap_distribution,
                               rtol=1e-9, atol=1e-12)
    assert res.difference == pytest.approx(one.estimate - two.estimate, abs=1e-12)
    assert res.confidence_interval.low > 0 and res.pvalue < 0.05
    # paired: narrower than the two intervals side by side
    assert res.standard_error < np.hypot(one.standard_error, two.standard_error)


def test_difference_rejects_bad_pairs() -> None:
    with pytest.raises(ValueError, match="first must be a pair"):
        bootstrap_difference(np.zeros((5, 2)), (np.zeros((5, 2)), np.zeros((5, 2))))


def test_population_values_match_a_large_sample() -> None:
    pop = population(6, 5, np.random.default_rng(2))
    X, Y = pop.sample(200_000, np.random.default_rng(3))
    for measure in ("cca", "linear_cka", "procrustes"):
        big = ccalens.MEASURES[measure](X, Y).score
        # the bias of these scores at this n is of order rank / n (and sqrt(rank / n) for zero directions)
        assert big == pytest.approx(pop.value(measure), abs=0.01)


def test_population_svcca_is_cca_between_the_kept_principal_subspaces() -> None:
    """A population whose third canonical pair lives on a direction of X with a tiny variance: SVCCA's rule (99%
    of the sum of singular values) drops it, so the population SVCCA is the mean of the other canonical
    correlations, not CCA's mean over all three; a large sample's SVCCA converges to it."""
    rng = np.random.default_rng(5)
    rotation = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    pop = Population(np.array([0.9, 0.6, 0.8]), np.diag([1.0, 1.0, 1e-3]) @ rotation, np.eye(3))
    assert pop.value("cca") == pytest.approx(np.mean([0.9, 0.6, 0.8]), rel=1e-12)
    assert pop.value("svcca") == pytest.approx(np.mean([0.9, 0.6]), rel=1e-12)
    X, Y = pop.sample(200_000, np.random.default_rng(6))
    sample = ccalens.svcca(X, Y)
    assert (sample.rank_x, sample.rank_y) == (2, 3)
    # the estimate's bias at this n is of order rank / n
    assert sample.score == pytest.approx(pop.value("svcca"), abs=0.005)
    # with every direction kept (a well-conditioned population) SVCCA's value is CCA's
    even = population(6, 5, np.random.default_rng(2))
    assert even.value("svcca") == pytest.approx(even.value("cca"), rel=1e-12)


def binomial_tolerance(rate: float, reps: int) -> float:
    """3 binomial standard deviations of a rate over ``reps`` repetitions, plus 3 points."""
    return 3.0 * np.sqrt(rate * (1.0 - rate) / reps) + 0.03


def test_small_coverage_study_linear_cka_basic_covers() -> None:
    reps = 60
    rows = coverage_cell(400, 6, 6, reps, n_resamples=150, seed=11, measures=("linear_cka",))
    by = {r["method"]: r for r in rows}
    assert by["basic"]["coverage"] == pytest.approx(0.95, abs=binomial_tolerance(0.95, reps))
    assert by["percentile"]["coverage"] < by["basic"]["coverage"]


def test_small_null_study_rejects_at_the_nominal_rate() -> None:
    datasets = 150
    out = null_study(120, 3, 3, datasets, n_permutations=49, seed=1)
    for name in ("permutation", "wilks_rao_f", "bartlett"):
        assert out[f"{name}_rejection"] == pytest.approx(0.05, abs=binomial_tolerance(0.05, datasets))


def test_package_files_are_small_and_measures_never_import_it() -> None:
    root = Path(ccalens.__file__).parent / "core"
    for path in (root / "uncertainty").glob("*.py"):
        assert len(path.read_text().splitlines()) < 400, path
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = [getattr(node, "module", "") or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        if path.name != "__init__.py":
            assert not any("uncertainty" in name for name in names), path
