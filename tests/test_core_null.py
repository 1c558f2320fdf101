"""null_mean_rho: the mean canonical correlation of unrelated data, and the small-sample warning."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from ccalens.core import null
from ccalens.core.measures import cca
from ccalens.core.null import SmallSampleWarning, null_mean_rho, warn_if_null_high


def brute_mean_rho(m: int, p: int, q: int, reps: int, seed: int = 0) -> float:
    """Mean cosine of principal angles between random p- and q-subspaces of R^m (QR of Gaussians)."""
    rng = np.random.default_rng(seed)
    Qa = np.linalg.qr(rng.standard_normal((reps, m, p)))[0]
    Qb = np.linalg.qr(rng.standard_normal((reps, m, q)))[0]
    s = np.linalg.svd(Qa.transpose(0, 2, 1) @ Qb, compute_uv=False)
    return float(np.clip(s, 0, 1).mean())


def test_issue_example_50_plus_50_at_150_through_ccalens_cca():
    """Reproducer of issue #11 item 13: 50 + 50 independent features at n = 150 give mean rho ~0.50."""
    rng = np.random.default_rng(0)
    observed = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        for _ in range(12):
            X, Y = rng.standard_normal((150, 50)), rng.standard_normal((150, 50))
            observed.append(cca(X, Y).mean_rho)
    expected = null_mean_rho(150, 50, 50)
    assert 0.49 < expected < 0.53
    assert np.mean(observed) == pytest.approx(expected, abs=0.005)


def test_small_ranks_through_ccalens_cca_with_offsets_and_scales():
    rng = np.random.default_rng(1)
    observed = []
    for _ in range(150):
        X = rng.standard_normal((40, 3)) * [1e3, 1.0, 1e-2] + 7.0
        Y = rng.standard_normal((40, 5)) - 3.0
        observed.append(cca(X, Y).mean_rho)
    # per-draw sd ~0.1: standard error of the mean ~0.008
    assert np.mean(observed) == pytest.approx(null_mean_rho(40, 3, 5), abs=0.025)


@pytest.mark.parametrize(
    ("n", "p", "q", "reps"),
    [(150, 50, 50, 300), (60, 1, 1, 6000), (61, 1, 20, 6000), (1000, 5, 5, 300), (101, 10, 30, 300),
     (60, 2, 50, 2000), (30, 20, 15, 3000), (20, 12, 7, 5000), (10, 2, 3, 20_000)],
)
def test_against_brute_force_subspaces(n, p, q, reps):
    """Random subspaces by QR of Gaussian matrices; includes p + q > n - 1 (forced ones) and p + q = n - 1.

    ``reps`` keeps the brute force's standard error below 0.002.
    """
    expected = brute_mean_rho(n - 1, p, q, reps=reps, seed=n + p + q)
    assert null_mean_rho(n, p, q) == pytest.approx(expected, abs=0.006)


def test_one_dimension_is_exact():
    # two random lines in R^2: E|cos| = 2 / pi; in R^m: Gamma(m/2) / (sqrt(pi) Gamma((m+1)/2))
    assert null_mean_rho(3, 1, 1) == pytest.approx(2 / np.pi, abs=1e-12)
    from scipy.special import gammaln

    m = 59
    expected = np.exp(gammaln(m / 2) - gammaln((m + 1) / 2)) / np.sqrt(np.pi)
    assert null_mean_rho(m + 1, 1, 1) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("m", "p", "q"), [(149, 40, 40), (149, 40, 60), (999, 40, 100), (200, 40, 150)])
def test_wachter_law_against_the_simulation(m, p, q):
    """The two methods meet where one hands over to the other (rank 40): within the documented 0.002."""
    assert null._wachter_mean_rho(m, p, q) == pytest.approx(null._simulated_mean_rho(m, p, q), abs=0.002)


@pytest.mark.parametrize(("m", "p", "q"), [(149, 50, 50), (149, 10, 30), (99, 40, 59), (1000, 3, 900)])
def test_wachter_density_is_normalised_with_the_exact_mean(m, p, q):
    assert null._wachter_moment(m, p, q, 0.0) == pytest.approx(1.0, abs=1e-5)
    assert null._wachter_moment(m, p, q, 1.0) == pytest.approx(q / m, abs=1e-5)  # E[mean rho^2] = q / m exactly


def test_forced_correlations_and_symmetry():
    assert null_mean_rho(30, 29, 3) == 1.0  # one subspace is the whole centred space
    assert null_mean_rho(30, 100, 100) == 1.0  # ranks above n - 1 are treated as n - 1
    assert null_mean_rho(50, 7, 30) == null_mean_rho(50, 30, 7)
    # p + q > m: at least p + q - m of the min(p, q) correlations are 1
    assert null_mean_rho(30, 20, 15) >= (20 + 15 - 29) / 15


def test_monotone_in_samples():
    values = [null_mean_rho(n, 10, 10) for n in (25, 50, 100, 1000, 10**6)]
    assert all(a > b for a, b in itertools.pairwise(values))
    assert values[-1] < 0.01


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        null_mean_rho(2, 1, 1)
    with pytest.raises(ValueError, match="rank_x"):
        null_mean_rho(10, 0, 1)
    with pytest.raises(ValueError, match="rank_y"):
        null_mean_rho(10, 1, -1)
    with pytest.raises(TypeError, match="rank_x"):
        null_mean_rho(10, 1.5, 1)


def test_deterministic_after_the_cache_is_cleared():
    shapes = [(150, 50, 50), (150, 16, 16), (10**6, 16, 100), (10**7, 2000, 3000), (30, 20, 15), (40, 12, 12)]
    first = [null_mean_rho(*s) for s in shapes]
    null._null_mean_rho.cache_clear()
    assert [null_mean_rho(*s) for s in shapes] == first  # the same computation, bit for bit, not a cached value


def test_warning_once_with_advice_and_silenceable():
    with pytest.warns(SmallSampleWarning, match="more samples.*SVCCA.*permutation_test") as record:
        assert warn_if_null_high(null_mean_rho(150, 50, 50), 150, 50, 50)
    assert len(record) == 1
    assert "filterwarnings" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_null_high(null_mean_rho(10**5, 5, 5), 10**5, 5, 5)  # ~0.01: quiet
        warnings.filterwarnings("ignore", category=SmallSampleWarning)
        assert warn_if_null_high(0.5, 150, 50, 50)  # silenced by the documented filter
    assert issubclass(SmallSampleWarning, UserWarning)
