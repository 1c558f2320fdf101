"""Uncertainty of similarity scores: bootstrap (block statistics), permutation test, classical CCA tests."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import scipy.stats

from ccalens.core.measures import MEASURES, similarity_matrix
from ccalens.core.stats import SufficientStats
from ccalens.core.uncertainty import blocks as resampling
from ccalens.core.uncertainty import bootstrap, bootstrap_matrix, cca_test, permutation_test
from ccalens.core.uncertainty import permutation as permutation_module


def related_pair(n: int, p: int, q: int, seed: int = 0, strength: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    Y = strength * X[:, : min(p, q)] @ rng.standard_normal((min(p, q), q)) + rng.standard_normal((n, q))
    return X, Y


def naive_bootstrap(X: np.ndarray, Y: np.ndarray, measure: str, n_resamples: int, seed: int) -> np.ndarray:
    """Resample rows and recompute, with the draws bootstrap(block_size=1) documents."""
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    out = []
    for _ in range(n_resamples):
        idx = rng.integers(0, n, size=n)
        out.append(MEASURES[measure](X[idx], Y[idx]).score)
    return np.array(out)


# --------------------------------------------------------------------------------- bootstrap
@pytest.mark.parametrize("measure", ["cca", "svcca", "pwcca", "linear_cka", "procrustes"])
def test_block_size_one_is_the_iid_bootstrap_replicate_by_replicate(measure: str) -> None:
    X, Y = related_pair(80, 6, 5, seed=1)
    res = bootstrap(X, Y, measure, n_resamples=60, block_size=1, seed=7, method="percentile")
    naive = naive_bootstrap(X, Y, measure, 60, seed=7)
    assert res.exact_iid and res.n_blocks == 80 and res.path == "block statistics"
    np.testing.assert_allclose(res.bootstrap_distribution, naive, rtol=1e-9, atol=1e-11)
    assert res.estimate == pytest.approx(MEASURES[measure](X, Y).score, rel=1e-10)
    low, high = np.quantile(naive, [0.025, 0.975])
    assert res.confidence_interval.low == pytest.approx(low, rel=1e-9)
    assert res.confidence_interval.high == pytest.approx(high, rel=1e-9)


def test_default_blocks_approximate_the_iid_bootstrap() -> None:
    X, Y = related_pair(3000, 10, 10, seed=2, strength=0.5)
    blocked = bootstrap(X, Y, "svcca", n_resamples=300, seed=1, method="percentile")
    assert blocked.n_blocks == resampling.DEFAULT_BLOCKS and not blocked.exact_iid
    assert blocked.block_size == int(np.ceil(3000 / resampling.DEFAULT_BLOCKS))
    naive = naive_bootstrap(X, Y, "svcca", 300, seed=2)
    # same distribution: centre and spread agree within Monte Carlo and block noise
    assert np.median(blocked.bootstrap_distribution) == pytest.approx(np.median(naive), abs=0.25 * naive.std())
    assert blocked.standard_error == pytest.approx(naive.std(ddof=1), rel=0.3)


def test_percentile_interval_covers_the_population_correlation() -> None:
    """p = q = 1: CCA is |corr|; 95% intervals should cover the population 0.6 about 95% of the time."""
    rng = np.random.default_rng(3)
    cov = [[1.0, 0.6], [0.6, 1.0]]
    covered = 0
    trials = 40
    for t in range(trials):
        Z = rng.multivariate_normal([0, 0], cov, size=300)
        ci = bootstrap(Z[:, :1], Z[:, 1:], "cca", n_resamples=150, seed=t).confidence_interval
        covered += ci.low <= 0.6 <= ci.high
    assert covered / trials >= 0.8


def test_bca_matches_scipy_bootstrap() -> None:
    """A skewed case (r^2 at n = 25) where BCa and percentile bounds differ by about 0.3 standard errors."""
    rng = np.random.default_rng(4)
    Z = rng.multivariate_normal([0, 0], [[1.0, 0.2], [0.2, 1.0]], size=25)
    x, y = Z[:, 0], Z[:, 1]
    ours = bootstrap(x[:, None], y[:, None], "linear_cka", n_resamples=4000, block_size=1, method="bca", seed=0)

    def r2(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a, b)[0, 1] ** 2)

    ref = scipy.stats.bootstrap(
        (x, y), r2, paired=True, vectorized=False, n_resamples=4000, method="BCa", random_state=1
    ).confidence_interval
    assert ours.estimate == pytest.approx(r2(x, y), rel=1e-10)
    spread = ours.standard_error
    assert ours.confidence_interval.low == pytest.approx(ref.low, abs=0.15 * spread)
    assert ours.confidence_interval.high == pytest.approx(ref.high, abs=0.15 * spread)


def test_bca_from_block_jackknife_equals_the_textbook_formula() -> None:
    """Size-1 blocks: the delete-one-block jackknife is the ordinary jackknife (Efron & Tibshirani, ch. 14)."""
    X, Y = related_pair(40, 3, 3, seed=23, strength=0.4)
    res = bootstrap(X, Y, "pwcca", n_resamples=400, block_size=1, method="bca", confidence_level=0.9, seed=5)
    reps = naive_bootstrap(X, Y, "pwcca", 400, seed=5)
    theta = MEASURES["pwcca"](X, Y).score
    jack = np.array([MEASURES["pwcca"](np.delete(X, i, 0), np.delete(Y, i, 0)).score for i in range(40)])
    z0 = scipy.stats.norm.ppf(np.mean(reps < theta))
    d = jack.mean() - jack
    a = np.sum(d**3) / (6 * np.sum(d**2) ** 1.5)
    levels = [scipy.stats.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))) for z in scipy.stats.norm.ppf([0.05, 0.95])]
    low, high = np.quantile(reps, levels)
    assert res.confidence_interval.low == pytest.approx(low, rel=1e-8)
    assert res.confidence_interval.high == pytest.approx(high, rel=1e-8)
    percentile = bootstrap(X, Y, "pwcca", n_resamples=400, block_size=1, confidence_level=0.9, seed=5,
                           method="percentile")
    assert percentile.confidence_interval != res.confidence_interval


def test_bca_of_identical_representations_is_finite() -> None:
    X, _ = related_pair(60, 3, 3, seed=5)
    res = bootstrap(X, X.copy(), "cca", n_resamples=50, method="bca", seed=0)
    assert np.isfinite(res.confidence_interval.low) and np.isfinite(res.confidence_interval.high)
    assert res.confidence_interval.low == pytest.approx(1.0) and res.confidence_interval.high == pytest.approx(1.0)


def test_same_seed_same_interval_and_different_seed_differs() -> None:
    X, Y = related_pair(500, 8, 8, seed=6)
    a = bootstrap(X, Y, "svcca", n_resamples=100, seed=11, method="bca")
    b = bootstrap(X, Y, "svcca", n_resamples=100, seed=11, method="bca")
    c = bootstrap(X, Y, "svcca", n_resamples=100, seed=12, method="bca")
    assert a.confidence_interval == b.confidence_interval
    np.testing.assert_array_equal(a.bootstrap_distribution, b.bootstrap_distribution)
    assert a.confidence_interval != c.confidence_interval


def test_matrix_cells_equal_the_pairwise_bootstrap() -> None:
    X, Y = related_pair(400, 6, 5, seed=8)
    Z = X[:, :4] + 0.5 * Y[:, :4]
    reps = [X, Y, Z]
    mat = bootstrap_matrix(reps, "svcca", n_resamples=40, seed=3, method="bca")
    np.testing.assert_allclose(mat.scores, similarity_matrix(reps, "svcca").scores, atol=1e-10)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        pair = bootstrap(reps[i], reps[j], "svcca", n_resamples=40, seed=3, method="bca")
        np.testing.assert_allclose(mat.bootstrap_distribution[:, i, j], pair.bootstrap_distribution, atol=1e-9)
        assert mat.interval(i, j).low == pytest.approx(pair.confidence_interval.low, abs=1e-9)
        assert mat.interval(i, j).high == pytest.approx(pair.confidence_interval.high, abs=1e-9)
    assert mat.confidence_interval.low.shape == (3, 3)


def test_streamed_batches_are_the_blocks() -> None:
    X, Y = related_pair(600, 5, 4, seed=9)
    batches = [SufficientStats.from_arrays(X[s : s + 50], Y[s : s + 50]) for s in range(0, 600, 50)]
    streamed = bootstrap(blocks=batches, measure="pwcca", n_resamples=50, seed=5, method="bca")
    direct = bootstrap(X, Y, "pwcca", n_resamples=50, seed=5, block_size=50, partition="contiguous", method="bca")
    assert streamed.n_blocks == direct.n_blocks == 12
    np.testing.assert_allclose(streamed.bootstrap_distribution, direct.bootstrap_distribution, rtol=1e-9)
    assert streamed.confidence_interval.low == pytest.approx(direct.confidence_interval.low, rel=1e-9)
    # joint statistics of three representations: i, j pick the pair; the matrix takes them all
    joint = [SufficientStats.from_arrays(X[s : s + 50], Y[s : s + 50], X[s : s + 50, :2]) for s in range(0, 600, 50)]
    picked = bootstrap(blocks=joint, measure="pwcca", i=0, j=1, n_resamples=50, seed=5, method="bca")
    np.testing.assert_allclose(picked.bootstrap_distribution, direct.bootstrap_distribution, rtol=1e-9)
    mat = bootstrap_matrix(blocks=joint, measure="linear_cka", n_resamples=20, seed=1)
    assert mat.bootstrap_distribution.shape == (20, 3, 3)


def test_weighted_data_path_equals_block_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    X, Y = related_pair(300, 6, 6, seed=10)
    packed = bootstrap(X, Y, "cca", n_resamples=30, seed=2, block_size=3)
    monkeypatch.setattr(resampling, "_PACKED_BUDGET", 0)
    rows = bootstrap(X, Y, "cca", n_resamples=30, seed=2, block_size=3)
    assert packed.path == "block statistics" and rows.path == "weighted data"
    np.testing.assert_allclose(rows.bootstrap_distribution, packed.bootstrap_distribution, rtol=1e-9)


def test_measures_without_statistics_resample_rows() -> None:
    X, Y = related_pair(60, 4, 4, seed=11)
    res = bootstrap(X, Y, "debiased_linear_cka", n_resamples=30, block_size=1, seed=4, method="percentile")
    assert res.path == "resampled rows"
    naive = naive_bootstrap(X, Y, "debiased_linear_cka", 30, seed=4)
    np.testing.assert_allclose(np.sort(res.bootstrap_distribution), np.sort(naive), rtol=1e-9)
    with pytest.raises(ValueError, match="needs the data"):
        bootstrap(blocks=[SufficientStats.from_arrays(X, Y)] * 3, measure="debiased_linear_cka")


def test_offsets_and_float32_do_not_spoil_the_merges() -> None:
    X, Y = related_pair(200, 4, 4, seed=12)
    base = bootstrap(X, Y, "cca", n_resamples=20, seed=0, block_size=1)
    shifted = bootstrap((X + 1e6).astype(np.float64), Y - 3e5, "cca", n_resamples=20, seed=0, block_size=1)
    np.testing.assert_allclose(shifted.bootstrap_distribution, base.bootstrap_distribution, rtol=1e-6)
    single = bootstrap(X.astype(np.float32), Y.astype(np.float32), "cca", n_resamples=20, seed=0, block_size=1)
    np.testing.assert_allclose(single.bootstrap_distribution, base.bootstrap_distribution, rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "studentized"}, "method must be"),
        ({"confidence_level": 1.5}, "confidence_level"),
        ({"n_resamples": 1}, "n_resamples"),
        ({"block_size": 0}, "block_size"),
        ({"block_size": 40}, "fewer than 2 blocks"),
        ({"partition": "shuffled"}, "partition"),
        ({"measure": "cosine"}, "measure must be one of"),
    ],
)
def test_bootstrap_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    X, Y = related_pair(60, 3, 3)
    with pytest.raises(ValueError, match=match):
        bootstrap(X, Y, **kwargs)


def test_bootstrap_rejects_nan_by_name() -> None:
    X, Y = related_pair(60, 3, 3)
    Y[5, 1] = np.nan
    with pytest.raises(ValueError, match="Y contains 1 NaN"):
        bootstrap(X, Y, "cca", n_resamples=10)


# --------------------------------------------------------------------------------- permutation test
def test_permutation_null_of_unrelated_features_is_half_at_n150() -> None:
    """50 + 50 independent features at n = 150: mean rho is about 0.5 whatever the data."""
    rng = np.random.default_rng(13)
    X, Y = rng.standard_normal((150, 50)), rng.standard_normal((150, 50))
    res = permutation_test(X, Y, "cca", n_permutations=200, seed=0)
    assert res.path == "whitened cross products"
    assert res.null_mean == pytest.approx(0.5, abs=0.03)
    assert res.null_mean_rho == pytest.approx(res.null_mean)
    assert res.statistic == pytest.approx(res.null_mean, abs=5 * res.null_std)
    assert res.pvalue > 0.001
    assert res.null_distribution.shape == (200,)


def test_permutation_pvalue_of_related_features_is_the_floor() -> None:
    X, Y = related_pair(150, 5, 5, seed=14)
    res = permutation_test(X, Y, "svcca", n_permutations=99, seed=1)
    assert res.pvalue == pytest.approx(1 / 100)
    assert res.statistic == pytest.approx(MEASURES["svcca"](X, Y).score, rel=1e-12)
    less = permutation_test(X, Y, "svcca", n_permutations=99, seed=1, alternative="less")
    assert less.pvalue == pytest.approx(1.0)
    two = permutation_test(X, Y, "svcca", n_permutations=99, seed=1, alternative="two-sided")
    assert two.pvalue == pytest.approx(2 / 100)


@pytest.mark.parametrize("measure", ["cca", "svcca", "pwcca"])
def test_whitened_null_equals_the_recomputed_null(measure: str, monkeypatch: pytest.MonkeyPatch) -> None:
    X, Y = related_pair(120, 6, 5, seed=15, strength=0.3)
    fast = permutation_test(X, Y, measure, n_permutations=25, seed=2)
    monkeypatch.setattr(permutation_module, "_whitened_null", lambda *args: None)
    slow = permutation_test(X, Y, measure, n_permutations=25, seed=2)
    assert fast.path == "whitened cross products" and slow.path == "cross block"
    np.testing.assert_allclose(fast.null_distribution, slow.null_distribution, rtol=1e-8, atol=1e-10)
    assert fast.pvalue == slow.pvalue


def test_permutation_test_other_measures_and_seeds() -> None:
    X, Y = related_pair(80, 4, 4, seed=16, strength=0.2)
    a = permutation_test(X, Y, "linear_cka", n_permutations=30, seed=3)
    b = permutation_test(X, Y, "linear_cka", n_permutations=30, seed=3)
    np.testing.assert_array_equal(a.null_distribution, b.null_distribution)
    assert a.null_mean_rho is None and a.path == "cross block"
    d = permutation_test(X, Y, "debiased_linear_cka", n_permutations=20, seed=3)
    assert d.path == "resampled rows" and abs(d.null_mean) < 0.1
    with pytest.raises(ValueError, match="alternative"):
        permutation_test(X, Y, "cca", alternative="bigger")
    with pytest.raises(ValueError, match="n_permutations"):
        permutation_test(X, Y, "cca", n_permutations=0)


# --------------------------------------------------------------------------------- classical tests
def _statsmodels_cancorr():
    return pytest.importorskip("statsmodels.multivariate.cancorr").CanCorr


def test_cca_test_against_statsmodels_random_data() -> None:
    CanCorr = _statsmodels_cancorr()
    X, Y = related_pair(60, 4, 4, seed=17, strength=0.3)
    ours = cca_test(X, Y)
    ref = CanCorr(Y, X).corr_test()
    table = ref.stats.astype(float).to_numpy()
    np.testing.assert_allclose(ours.correlations, table[:, 0], rtol=1e-10)
    np.testing.assert_allclose(ours.wilks_lambda, table[:, 1], rtol=1e-10)
    np.testing.assert_allclose(ours.df_num, table[:, 2])
    np.testing.assert_allclose(ours.df_den, table[:, 3], rtol=1e-12)
    np.testing.assert_allclose(ours.f_statistic, table[:, 4], rtol=1e-9)
    np.testing.assert_allclose(ours.pvalue_f, table[:, 5], rtol=1e-8)
    mv = ref.stats_mv.astype(float)
    for ours_key, ref_key in [
        ("wilks_lambda", "Wilks' lambda"),
        ("pillai_trace", "Pillai's trace"),
        ("hotelling_lawley_trace", "Hotelling-Lawley trace"),
        ("roy_largest_root", "Roy's greatest root"),
    ]:
        row = ours.multivariate[ours_key]
        expected = mv.loc[ref_key]
        for key, col in [
            ("value", "Value"),
            ("f_statistic", "F Value"),
            ("df_num", "Num DF"),
            ("df_den", "Den DF"),
            ("pvalue_f_upper_bound" if ours_key == "roy_largest_root" else "pvalue", "Pr > F"),
        ]:
            assert row[key] == pytest.approx(float(expected[col]), rel=1e-8), (ours_key, key)
    roy = ours.multivariate["roy_largest_root"]  # the calibrated p-value is above SAS's lower bound
    assert roy["pvalue"] > roy["pvalue_f_upper_bound"] and ours.roy_pvalue_method == "exact"


def test_cca_test_unequal_dimensions_uses_raos_symmetric_df() -> None:
    """p != q: the full test agrees with statsmodels' multivariate Wilks (its per-dimension table uses
    n - q - 1 - (p - q + 1) / 2 with p, q swapped, which is not symmetric in X and Y), and with the exact
    F of the regression when one side has one feature."""
    CanCorr = _statsmodels_cancorr()
    X, Y = related_pair(60, 3, 5, seed=18, strength=0.3)
    ours = cca_test(X, Y)
    swapped = cca_test(Y, X)
    np.testing.assert_allclose(ours.pvalue_f, swapped.pvalue_f, rtol=1e-10)
    np.testing.assert_allclose(ours.chi2, swapped.chi2, rtol=1e-10)
    wilks = CanCorr(Y, X).corr_test().stats_mv.astype(float).loc["Wilks' lambda"]
    assert ours.df_den[0] == pytest.approx(float(wilks["Den DF"]))
    assert ours.f_statistic[0] == pytest.approx(float(wilks["F Value"]), rel=1e-9)
    # one response: Wilks' test is the regression F test of R^2 on (q, n - q - 1) df
    rng = np.random.default_rng(0)
    n, q = 30, 3
    Xr = rng.standard_normal((n, q))
    y = Xr @ [0.3, 0.0, 0.2] + rng.standard_normal(n)
    design = np.column_stack([np.ones(n), Xr])
    resid = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    r2 = 1 - resid @ resid / np.sum((y - y.mean()) ** 2)
    res = cca_test(y[:, None], Xr)
    assert res.df_den[0] == n - q - 1
    assert res.f_statistic[0] == pytest.approx(r2 / q / ((1 - r2) / (n - q - 1)), rel=1e-9)


def test_cca_test_rank_deficient_input_uses_the_rank() -> None:
    CanCorr = _statsmodels_cancorr()
    X, Y = related_pair(70, 4, 4, seed=19, strength=0.4)
    deficient = np.column_stack([X, X[:, 0] - 2 * X[:, 2], np.full(70, 3.0)])  # rank 4 of 6 columns
    with pytest.warns(UserWarning, match="X has rank 4 < 6 features"):
        ours = cca_test(deficient, Y)
    assert ours.rank_x == 4 and ours.notes
    with pytest.raises(ValueError):  # statsmodels refuses collinear input; compare with the full-rank columns
        CanCorr(Y, deficient)
    ref = CanCorr(Y, X).corr_test().stats.astype(float).to_numpy()
    np.testing.assert_allclose(ours.correlations, ref[:, 0], rtol=1e-9)
    np.testing.assert_allclose(ours.df_den, ref[:, 3], rtol=1e-12)
    np.testing.assert_allclose(ours.pvalue_f, ref[:, 5], rtol=1e-7)


def test_cca_test_bartlett_lawley_chi2() -> None:
    X, Y = related_pair(50, 3, 4, seed=20, strength=0.5)
    res = cca_test(X, Y)
    n, p, q = 50, 3, 4
    rho = res.correlations
    for k in range(3):
        lawley = np.sum(1 / rho[:k] ** 2)
        expected = -(n - k - (p + q + 3) / 2 + lawley) * np.sum(np.log(1 - rho[k:] ** 2))
        assert res.chi2[k] == pytest.approx(expected, rel=1e-12)
        assert res.df_chi2[k] == (p - k) * (q - k)
        assert res.pvalue_chi2[k] == pytest.approx(scipy.stats.chi2.sf(expected, (p - k) * (q - k)), rel=1e-10)


def test_cca_test_too_few_samples_and_perfect_correlation() -> None:
    rng = np.random.default_rng(21)
    X, Y = rng.standard_normal((12, 6)), rng.standard_normal((12, 5))
    with pytest.raises(ValueError, match="n >= rank_x \\+ rank_y \\+ 2"):
        cca_test(X, Y)
    X = rng.standard_normal((40, 3))
    Y = np.column_stack([X[:, 0], rng.standard_normal((40, 2))])  # rho_1 = 1 exactly
    res = cca_test(X, Y)
    assert res.wilks_lambda[0] == pytest.approx(0.0, abs=1e-12)
    assert res.pvalue_f[0] == pytest.approx(0.0, abs=1e-12) and res.pvalue_chi2[0] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.isfinite(res.pvalue_f)) and np.all(np.isfinite(res.pvalue_chi2))


def test_cca_test_life_cycle_savings_matches_r(shared_dir) -> None:
    path = shared_dir / "data" / "r-datasets" / "LifeCycleSavings.csv"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    pop = np.array([[float(r["pop15"]), float(r["pop75"])] for r in rows])
    oec = np.array([[float(r["sr"]), float(r["dpi"]), float(r["ddpi"])] for r in rows])
    res = cca_test(pop, oec)
    np.testing.assert_allclose(res.correlations, [0.8247966, 0.3652762], atol=5e-8)  # R: cancor(pop, oec)$cor
    assert res.wilks_lambda[0] == pytest.approx((1 - 0.8247966**2) * (1 - 0.3652762**2), rel=1e-6)
    assert res.df_num.tolist() == [6.0, 2.0]


def test_cca_test_to_frame() -> None:
    pytest.importorskip("pandas")
    X, Y = related_pair(40, 3, 3, seed=22)
    res = cca_test(X, Y)
    frame = res.to_frame()
    assert list(frame.columns[:3]) == ["correlations", "wilks_lambda", "f_statistic"]
    assert len(frame) == 3
    mv = res.multivariate_frame()
    assert mv.shape == (4, 6) and mv["pvalue_f_upper_bound"].notna().sum() == 1
    assert mv.loc["roy_largest_root", "pvalue"] >= mv.loc["roy_largest_root", "pvalue_f_upper_bound"]
    assert res.to_dict()["rank_x"] == 3


def test_default_block_count_respects_the_memory_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    X, Y = related_pair(1000, 6, 6, seed=24)
    width = 12
    monkeypatch.setattr(resampling, "_PACKED_BUDGET", 100 * 8 * width * (width + 1) // 2)
    res = bootstrap(X, Y, "linear_cka", n_resamples=10, seed=0)
    assert res.n_blocks == 100 and res.path == "block statistics"
    monkeypatch.setattr(resampling, "_PACKED_BUDGET", 10 * 8 * width * (width + 1) // 2)
    res = bootstrap(X, Y, "linear_cka", n_resamples=10, seed=0)
    assert res.n_blocks == resampling._MIN_BLOCKS and res.path == "weighted data"


def test_wide_replicates_run_side_by_side_and_match_the_naive_bootstrap() -> None:
    rng = np.random.default_rng(25)
    X = rng.standard_normal((150, 60))
    Y = X[:, :40] + rng.standard_normal((150, 40))
    # width 100: the thread pool path
    res = bootstrap(X, Y, "svcca", n_resamples=12, block_size=1, seed=3, method="basic")
    np.testing.assert_allclose(res.bootstrap_distribution, naive_bootstrap(X, Y, "svcca", 12, seed=3), rtol=1e-9)


def test_blocks_are_checked() -> None:
    X, Y = related_pair(100, 3, 3, seed=26)
    good = [SufficientStats.from_arrays(X[s : s + 20], Y[s : s + 20]) for s in range(0, 100, 20)]
    with pytest.raises(ValueError, match="block_size applies"):
        bootstrap(blocks=good, measure="cca", block_size=5)
    with pytest.raises(ValueError, match="not both"):
        bootstrap(X, Y, blocks=good)
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap(blocks=good[:1], measure="cca")
    other = SufficientStats.from_arrays(X[:20, :2], Y[:20])
    with pytest.raises(ValueError, match=r"blocks\[5\] has feature sizes"):
        bootstrap(blocks=[*good, other], measure="cca")
    bad = good[0].copy()
    bad.comoment[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"blocks\[0\] holds NaN"):
        bootstrap(blocks=[bad, *good[1:]], measure="cca")
    with pytest.raises(TypeError, match=r"blocks\[1\] must be SufficientStats"):
        bootstrap(blocks=[good[0], X], measure="cca")


def test_permutation_result_shows_the_measures_own_null_expectation() -> None:
    from ccalens.core.null import null_mean_rho

    X, Y = related_pair(100, 3, 3, seed=27)
    res = permutation_test(X, Y, "cca", n_permutations=10, seed=0)
    assert res.reference_null_mean_rho == pytest.approx(null_mean_rho(100, 3, 3))
    assert res.to_dict()["reference_null_mean_rho"] == pytest.approx(res.reference_null_mean_rho)
