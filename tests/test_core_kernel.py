"""RBF CKA: median rules, determinism, memory budget, scale-freeness, precision, validation."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from ccalens.core import kernel
from ccalens.core.bandwidth import median_distance
from ccalens.core.kernel import rbf_cka
from ccalens.core.measures import linear_cka
from ccalens.core.plan import exact_rbf_bytes


def related_pair(seed: int, n: int = 201, p: int = 6, q: int = 4):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    Y = np.tanh(X @ rng.standard_normal((p, q))) + 0.3 * rng.standard_normal((n, q))
    return X, Y


def kornblith_gram_rbf(x: np.ndarray, threshold: float) -> np.ndarray:
    """The reference rule (Kornblith et al. 2019): sigma^2 = threshold^2 * median of ALL n^2 squared distances."""
    dots = x @ x.T
    sq = np.diag(dots)
    sq_dist = sq[:, None] + sq[None, :] - 2 * dots
    return np.exp(-sq_dist / (2 * threshold**2 * np.median(sq_dist)))


def biased_cka(K: np.ndarray, L: np.ndarray) -> float:
    H = np.eye(len(K)) - 1.0 / len(K)
    K, L = H @ K @ H, H @ L @ H
    return float(np.sum(K * L) / np.sqrt(np.sum(K * K) * np.sum(L * L)))


def distinct_gram_rbf(x: np.ndarray, factor: float) -> np.ndarray:
    sq_dist = squareform(pdist(x, "sqeuclidean"))
    return np.exp(-sq_dist / (2 * factor**2 * np.median(pdist(x, "sqeuclidean"))))


@pytest.mark.parametrize("n", [120, 121])  # even and odd counts: the median averages two middle values or not
@pytest.mark.parametrize("factor", [0.5, 1.0, 2.0])
def test_median_all_is_kornblith_reference(n, factor):
    X, Y = related_pair(n, n=n)
    expected = biased_cka(kornblith_gram_rbf(X, factor), kornblith_gram_rbf(Y, factor))
    res = rbf_cka(X, Y, median="all", sigma_factor=factor)
    assert res.score == pytest.approx(expected, abs=1e-10)
    assert res.details["median"] == "all" and res.details["method"] == "exact"
    distinct = rbf_cka(X, Y, median="distinct", sigma_factor=factor)
    assert distinct.score == pytest.approx(biased_cka(distinct_gram_rbf(X, factor), distinct_gram_rbf(Y, factor)),
                                           abs=1e-10)
    # the all-entries median counts n zeros: a smaller bandwidth
    assert res.details["sigma_x"] < distinct.details["sigma_x"]


@pytest.mark.parametrize("n", [2, 3, 10, 11])
def test_median_distance_rules(n):
    X = np.random.default_rng(n).standard_normal((n, 3)) * 5 + 100
    full = squareform(pdist(X, "sqeuclidean"))
    assert median_distance(X, median="all") == pytest.approx(np.sqrt(np.median(full)), rel=1e-12)
    assert median_distance(X, median="distinct") == pytest.approx(np.sqrt(np.median(pdist(X, "sqeuclidean"))),
                                                                   rel=1e-12)
    assert median_distance(X) == median_distance(X, median="all")  # the default is the reference's rule


def test_default_bandwidth_is_kornblith_reference():
    """Issue #26 item 5: the default median was the distinct-pairs one (8.3e-4 lower than his code on his Demo)."""
    X, Y = related_pair(3, n=150)
    expected = biased_cka(kornblith_gram_rbf(X, 1.0), kornblith_gram_rbf(Y, 1.0))
    res = rbf_cka(X, Y)
    assert res.details["median"] == "all" and res.score == pytest.approx(expected, abs=1e-10)


def test_exact_is_deterministic_without_subsample():
    """Issue #11 item 8: the exact method used a random subsample of the distances for the median."""
    X, Y = related_pair(1, n=300)
    a = rbf_cka(X, Y, method="exact", median_samples=40, seed=0)
    b = rbf_cka(X, Y, method="exact", median_samples=40, seed=1)
    assert a.score == b.score and a.details == b.details
    assert a.details["sigma_x"] == pytest.approx(np.sqrt(np.median(squareform(pdist(X, "sqeuclidean")))),
                                                 rel=1e-12)
    # median_distance subsamples only when asked to, with its seed
    assert median_distance(X) == pytest.approx(a.details["sigma_x"], rel=1e-12)
    sub = median_distance(X, max_samples=40, seed=3)
    assert sub != a.details["sigma_x"] and sub == median_distance(X, max_samples=40, seed=3)


def test_memory_budget_picks_the_method():
    X, Y = related_pair(2, n=150)
    need = exact_rbf_bytes(150)
    assert need == 8 * (2 * 150**2 + 150 * 149 // 2)
    assert rbf_cka(X, Y, memory_budget=need).details["method"] == "exact"
    approx = rbf_cka(X, Y, memory_budget=need - 1, n_features=256)
    assert approx.details["method"] == "random_features"
    with pytest.raises(ValueError, match="memory_budget"):
        rbf_cka(X, Y, method="exact", memory_budget=need - 1)
    # the default budget is the engine's one default (a quarter of the available memory), as for every measure
    from ccalens.core import plan

    n_fits = int((plan.default_memory_budget() / 40) ** 0.5)  # exact_rbf_bytes(n) ~ 20 n^2: half the budget
    assert plan.plan_rbf(n_fits, "auto") == "exact"
    assert plan.plan_rbf(int(1e6), "auto") == "random_features"  # 20 TB of kernels exceed any budget


@pytest.mark.parametrize("exponent", [-300, -100, -30, 30, 100, 300])
def test_scale_free_over_the_float64_range(exponent):
    """Issue #11 item 12: squared distances overflowed (NaN) at 1e200 and lost all precision at tiny scales."""
    X, Y = related_pair(3, n=120)
    base = rbf_cka(X, Y)
    scale = 10.0**exponent
    res = rbf_cka(X * scale + 7 * scale, Y / scale)
    assert np.isfinite(res.score)
    assert res.score == pytest.approx(base.score, abs=1e-12)
    assert res.details["sigma_x"] == pytest.approx(base.details["sigma_x"] * scale, rel=1e-12)
    assert res.details["sigma_y"] == pytest.approx(base.details["sigma_y"] / scale, rel=1e-12)
    rff = rbf_cka(X * scale, Y, method="random_features", n_features=256)
    assert rff.score == pytest.approx(rbf_cka(X, Y, method="random_features", n_features=256).score, abs=1e-9)


def test_large_offsets_do_not_cancel():
    X, Y = related_pair(4, n=100)
    # offsets of 1e6 keep the input exact to ~1e-10; the Gram-matrix distances of raw data lost ~1e-4
    assert rbf_cka(X + 1e6, Y - 1e6).score == pytest.approx(rbf_cka(X, Y).score, abs=1e-8)


def test_wide_bandwidth_keeps_precision():
    """sigma >> data: K = 1 - d^2 / (2 sigma^2) + ..., so RBF CKA tends to linear CKA (exp() rounded to 1)."""
    X, Y = related_pair(5, n=100)
    assert rbf_cka(X, Y, sigma_factor=1e7).score == pytest.approx(linear_cka(X, Y).score, abs=1e-8)
    for factor in (1e100, 1e200):  # 2 sigma^2 overflows float64 at the second
        assert rbf_cka(X, Y, sigma_factor=factor).score == pytest.approx(linear_cka(X, Y).score, abs=1e-10)
    # a very narrow bandwidth: both kernels tend to the identity, CKA to 1
    assert rbf_cka(X, Y, sigma_factor=1e-10).score == pytest.approx(1.0, abs=1e-12)


def test_low_precision_input_is_accumulated_in_float64():
    X, Y = related_pair(6, n=80)
    X16 = X.astype(np.float16)
    assert rbf_cka(X16, Y).score == pytest.approx(rbf_cka(X16.astype(np.float64), Y).score, abs=1e-12)


def test_random_features_are_seeded_and_close_to_exact():
    X, Y = related_pair(7, n=400)
    a = rbf_cka(X, Y, method="random_features", seed=5, n_features=1024)
    assert a.score == rbf_cka(X, Y, method="random_features", seed=5, n_features=1024).score
    assert a.score != rbf_cka(X, Y, method="random_features", seed=6, n_features=1024).score
    assert a.score == pytest.approx(rbf_cka(X, Y, method="exact").score, abs=0.04)  # error ~ 1 / sqrt(1024)
    approx_all = rbf_cka(X, Y, method="random_features", median="all", n_features=1024)
    assert approx_all.details["median"] == "all"
    assert approx_all.score == pytest.approx(rbf_cka(X, Y, median="all").score, abs=0.04)


def test_bad_input():
    X, Y = related_pair(8, n=50)
    with pytest.raises(ValueError, match="median must be"):
        rbf_cka(X, Y, median="mean")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sigma_factor"):
            rbf_cka(X, Y, sigma_factor=bad)
    with pytest.raises(ValueError, match="memory_budget"):
        rbf_cka(X, Y, memory_budget=0)
    with pytest.raises(ValueError, match="n_features"):
        rbf_cka(X, Y, method="random_features", n_features=0)
    with pytest.raises(ValueError, match="method"):
        rbf_cka(X, Y, method="fast")
    with pytest.raises(ValueError, match=r"^Y: .*median squared distance"):
        rbf_cka(X, np.ones_like(Y))
    # 34 copies of one sample, 10 of another, 6 others: 606 of the 1225 distinct pairs are 0 (below half), but
    # with the 50 zeros of the diagonal 1262 of all 2500 entries are (above half)
    rng = np.random.default_rng(0)
    clustered = np.vstack([np.repeat(rng.standard_normal((1, 2)), 34, 0), np.repeat(rng.standard_normal((1, 2)), 10, 0),
                           rng.standard_normal((6, 2))])
    assert rbf_cka(clustered, Y, median="distinct").details["sigma_x"] > 0
    with pytest.raises(ValueError, match=r"^X: .*median='all'"):
        rbf_cka(clustered, Y, median="all")
    Xnan = X.copy()
    Xnan[3, 1] = np.nan
    with pytest.raises(ValueError, match="X contains"):
        rbf_cka(Xnan, Y)


def test_kernel_does_not_import_measures():
    """Issue #11 item 5: kernel.py and measures.py stop importing each other."""
    tree = ast.parse(Path(kernel.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not any(mod and "measures" in mod for mod in imported)
    allowed = {"__future__", "typing", "numpy", "bandwidth", "minibatch", "plan", "result", "stats", "validation"}
    assert imported <= allowed


def test_minibatch_does_not_import_the_kernel_module():
    """Issue #25 item 4: the bandwidth helpers live in bandwidth.py, so kernel -> minibatch is one way."""
    import ccalens.core.minibatch as minibatch

    tree = ast.parse(Path(minibatch.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "kernel" not in imported and "bandwidth" in imported


def test_minibatch_method_estimates_the_exact_value():
    """Unbiased HSIC over shuffled minibatches of 250 (n = 2,000): within 0.0035 of exact over 4 seeds; 0.02 here."""
    X, Y = related_pair(9, n=2000)
    exact = rbf_cka(X, Y)
    est = rbf_cka(X, Y, method="minibatch", batch_size=250)
    assert est.details["method"] == "minibatch" and est.details["n_minibatches"] == 8
    assert est.score == pytest.approx(exact.score, abs=0.02)
    assert est.details["sigma_x"] == pytest.approx(exact.details["sigma_x"], rel=1e-12)  # n <= median_samples
    assert rbf_cka(X, Y, method="minibatch", batch_size=250).score == est.score
    assert rbf_cka(X * 1e150, Y, method="minibatch", batch_size=250).score == pytest.approx(est.score, abs=1e-12)


def test_largest_float64_magnitudes():
    X, Y = related_pair(10, n=80)
    unit = X / np.abs(X).max()
    with np.errstate(all="raise"):
        huge = rbf_cka(unit * 1.7e308, Y)
    assert huge.score == pytest.approx(rbf_cka(unit, Y).score, abs=1e-12)
    assert np.isfinite(huge.details["sigma_x"])
