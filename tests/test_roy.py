"""Roy's largest root: a calibrated p-value (exact Pfaffian CDF, Tracy-Widom beyond it), checked by simulation,
and SAS's F upper bound kept under its own name (issue 26 item 3)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.stats

from ccalens.core.uncertainty import cca_test
from ccalens.core.uncertainty.roy import (
    exact_is_reliable,
    roy_cdf_exact,
    roy_cdf_tracy_widom,
    roy_pvalue,
    tracy_widom1_cdf,
)


def _null_largest_root(rng: np.random.Generator, n: int, p: int, q: int, reps: int) -> np.ndarray:
    """``(reps,)`` largest squared canonical correlations of independent Gaussian X: (n, p), Y: (n, q)."""
    out = np.empty(reps)
    for i in range(reps):
        X = rng.standard_normal((n, p))
        Y = rng.standard_normal((n, q))
        qx, _ = np.linalg.qr(X - X.mean(0))
        qy, _ = np.linalg.qr(Y - Y.mean(0))
        out[i] = np.linalg.svd(qx.T @ qy, compute_uv=False)[0] ** 2
    return out


def test_tracy_widom1_matches_the_published_quantiles() -> None:
    # TW1 quantiles (Tracy and Widom 1996; Bornemann 2010, table 4): 1%, 5%, 50%, 90%, 95%, 99%
    t = np.array([-3.8954, -3.1804, -1.2686, 0.4501, 0.9793, 2.0234])
    expected = np.array([0.01, 0.05, 0.5, 0.9, 0.95, 0.99])
    np.testing.assert_allclose(tracy_widom1_cdf(t), expected, atol=5e-5)
    assert tracy_widom1_cdf(-np.inf) == 0.0 and tracy_widom1_cdf(np.inf) == 1.0


def test_exact_cdf_of_one_dimension_is_the_beta_law() -> None:
    # s = 1: rho^2 ~ Beta(q / 2, (n - 1 - q) / 2) under H0
    n, q = 30, 4
    x = np.linspace(0.01, 0.9, 25)
    np.testing.assert_allclose(roy_cdf_exact(x, n, 1, q), scipy.stats.beta.cdf(x, q / 2, (n - 1 - q) / 2),
                               atol=1e-12)


@pytest.mark.parametrize(("n", "p", "q"), [(40, 3, 5), (60, 10, 10), (100, 20, 25)])
def test_exact_cdf_matches_monte_carlo(n: int, p: int, q: int) -> None:
    rng = np.random.default_rng(n + p + q)
    sample = _null_largest_root(rng, n, p, q, 1500)
    assert exact_is_reliable(n, p, q)
    # KS distance of the sample to the exact CDF: at 1,500 draws its 0.1% critical value is 0.050
    ks = scipy.stats.kstest(sample, lambda x: roy_cdf_exact(x, n, p, q))
    assert ks.pvalue > 1e-3, ks


def test_tracy_widom_agrees_with_exact_where_both_apply() -> None:
    n, p, q = 100, 20, 25
    x = roy_cdf_exact(np.array([0.3, 0.4, 0.5]), n, p, q)
    quantiles = [float(scipy.optimize.brentq(lambda v, c=c: roy_cdf_exact(v, n, p, q) - c, 0.05, 0.99))
                 for c in (0.5, 0.9, 0.95, 0.99)]
    tw = roy_cdf_tracy_widom(np.array(quantiles), n, p, q)
    np.testing.assert_allclose(tw, [0.5, 0.9, 0.95, 0.99], atol=0.01)  # Johnstone's O(N^-2/3) error
    assert np.all(np.diff(x) > 0)


@pytest.mark.parametrize(("n", "p", "q"), [(50, 5, 5), (100, 10, 20), (250, 40, 40)])
def test_roy_pvalue_rejects_a_true_null_at_its_level_where_the_f_bound_does_not(n: int, p: int, q: int) -> None:
    rng = np.random.default_rng(7 * n + p)
    reps = 600
    pvalues = []
    bound = []
    for _ in range(reps):
        res = cca_test(rng.standard_normal((n, p)), rng.standard_normal((n, q)))
        roy = res.multivariate["roy_largest_root"]
        pvalues.append(roy["pvalue"])
        bound.append(roy["pvalue_f_upper_bound"])
    pvalues = np.array(pvalues)
    rate = float(np.mean(pvalues < 0.05))
    # binomial(600, 0.05): sd 0.0089; 3.5 sd either side
    assert 0.019 <= rate <= 0.081, (rate, res.roy_pvalue_method)
    assert float(np.mean(np.array(bound) < 0.05)) > 0.15  # SAS's bound is anticonservative in every shape
    assert scipy.stats.kstest(pvalues, "uniform").pvalue > 1e-3


def test_roy_pvalue_method_is_reported() -> None:
    rng = np.random.default_rng(0)
    small = cca_test(rng.standard_normal((60, 4)), rng.standard_normal((60, 6)))
    assert small.roy_pvalue_method == "exact" and small.to_dict()["roy_pvalue_method"] == "exact"
    _, method = roy_pvalue(0.5, 600, 80, 80)
    assert method == "tracy-widom"
    with pytest.raises(ValueError, match="n >= p \\+ q \\+ 2"):
        roy_pvalue(0.5, 10, 5, 5)
