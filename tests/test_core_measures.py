"""Measures: invariances (hypothesis), symmetry, bounds, identities, streaming, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ortho_group

from ccalens.core import SufficientStats, UnderdeterminedWarning
from ccalens.core.measures import (
    MEASURES,
    cca,
    compare,
    debiased_linear_cka,
    linear_cka,
    procrustes,
    pwcca,
    rbf_cka,
    similarity_matrix,
    svcca,
)

SYMMETRIC = {
    "cca": cca,
    "svcca": svcca,
    "linear_cka": linear_cka,
    "procrustes": procrustes,
    "debiased_linear_cka": debiased_linear_cka,
    "rbf_cka": rbf_cka,
}


def related_pair(seed: int, n: int = 300, p: int = 8, q: int = 6):
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 3))
    X = latent @ rng.standard_normal((3, p)) + 0.7 * rng.standard_normal((n, p))
    Y = np.tanh(latent @ rng.standard_normal((3, q))) + 0.7 * rng.standard_normal((n, q))
    return X, Y


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e3))
def test_invariance_to_rotation_scaling_permutation(seed, scale):
    X, Y = related_pair(seed)
    rng = np.random.default_rng(seed + 1)
    Q = ortho_group.rvs(X.shape[1], random_state=seed)
    perm = rng.permutation(X.shape[1])
    shift = rng.standard_normal(X.shape[1]) * 10
    rotated, scaled, permuted = X @ Q + shift, X * scale, X[:, perm]
    for name in ("cca", "svcca", "linear_cka", "procrustes"):
        fn = MEASURES[name]
        base = fn(X, Y).score
        assert fn(rotated, Y).score == pytest.approx(base, abs=1e-9), name
        assert fn(scaled, Y).score == pytest.approx(base, abs=1e-9), name
        assert fn(permuted, Y).score == pytest.approx(base, abs=1e-9), name
    # PWCCA's weights live in the neuron basis: invariant to permutation and isotropic scaling only
    assert pwcca(permuted, Y).score == pytest.approx(pwcca(X, Y).score, abs=1e-9)
    assert pwcca(scaled, Y).score == pytest.approx(pwcca(X, Y).score, abs=1e-9)
    # CCA (not SVCCA, CKA) is invariant to any invertible linear map
    A = rng.standard_normal((X.shape[1], X.shape[1])) + 3 * np.eye(X.shape[1])
    assert cca(X @ A, Y).score == pytest.approx(cca(X, Y).score, abs=1e-8)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_symmetry_and_bounds(seed):
    X, Y = related_pair(seed, n=200)
    for name, fn in SYMMETRIC.items():
        a, b = fn(X, Y).score, fn(Y, X).score
        assert a == pytest.approx(b, abs=1e-9), name
        lower = -0.1 if name == "debiased_linear_cka" else 0.0  # the unbiased estimator can dip below 0
        assert lower <= a <= 1.0 + 1e-12, name
    res = pwcca(X, Y)
    assert 0.0 <= res.score <= 1.0 and res.weights is not None and res.weights.sum() == pytest.approx(1.0)
    assert np.all(np.diff(res.correlations) <= 1e-12)


def test_identical_inputs_score_one():
    X, _ = related_pair(0)
    for name, fn in MEASURES.items():
        assert fn(X, X).score == pytest.approx(1.0, abs=1e-9), name
    assert rbf_cka(X, X, method="random_features").score == pytest.approx(1.0, abs=1e-9)


def test_pwcca_matches_its_definition():
    """alpha_i ~ sum_j |<h_i, x_j>| with h_i the unit-norm canonical variates of X (Morcos et al.)."""
    from ccalens.core import CCA

    X, Y = related_pair(3, p=6, q=8)
    cca = CCA().fit(X, Y)
    H = cca.transform(X)
    H = H / np.linalg.norm(H, axis=0)
    alpha = np.abs(H.T @ (X - X.mean(axis=0))).sum(axis=1)
    expected = float(alpha @ cca.correlations_ / alpha.sum())
    assert pwcca(X, Y).score == pytest.approx(expected, abs=1e-10)


def test_linear_cka_and_procrustes_match_definitions():
    X, Y = related_pair(4)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    cka = np.linalg.norm(Xc.T @ Yc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))
    assert linear_cka(X, Y).score == pytest.approx(cka, abs=1e-12)
    # Procrustes: min over orthogonal R of ||A - B R||^2 for unit-Frobenius A, B (zero-padded to equal width)
    A = Xc / np.linalg.norm(Xc)
    B = np.hstack([Yc, np.zeros((Yc.shape[0], X.shape[1] - Y.shape[1]))]) / np.linalg.norm(Yc)
    U, _, Vt = np.linalg.svd(B.T @ A)
    dist = np.linalg.norm(A - B @ (U @ Vt)) ** 2
    assert procrustes(X, Y).distance ** 2 == pytest.approx(dist, abs=1e-10)
    assert linear_cka(X, Y).distance == pytest.approx(np.arccos(cka), abs=1e-12)


def test_debiased_cka_matches_u_statistic():
    X, Y = related_pair(5, n=60)

    def hsic_u(K, L):
        n = K.shape[0]
        K, L = K.copy(), L.copy()
        np.fill_diagonal(K, 0)
        np.fill_diagonal(L, 0)
        one = np.ones(n)
        return (np.trace(K @ L) + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * one @ K @ L @ one) / (n * (n - 3))

    K, L = X @ X.T, Y @ Y.T
    expected = hsic_u(K, L) / np.sqrt(hsic_u(K, K) * hsic_u(L, L))
    assert debiased_linear_cka(X, Y).score == pytest.approx(expected, abs=1e-10)


def test_rbf_cka_exact_and_approximation():
    X, Y = related_pair(6, n=600)
    exact = rbf_cka(X, Y, method="exact")
    approx = rbf_cka(X, Y, method="random_features", n_features=4096)
    assert exact.details["method"] == "exact" and approx.details["method"] == "random_features"
    assert approx.score == pytest.approx(exact.score, abs=0.03)
    # brute force: biased HSIC with centred Gaussian kernels
    from scipy.spatial.distance import pdist, squareform

    def kern(A):
        D = squareform(pdist(A))
        sigma = np.median(D[np.triu_indices(len(A), 1)])
        K = np.exp(-(D**2) / (2 * sigma**2))
        H = np.eye(len(A)) - 1 / len(A)
        return H @ K @ H

    K, L = kern(X), kern(Y)
    assert exact.score == pytest.approx(np.sum(K * L) / np.sqrt(np.sum(K * K) * np.sum(L * L)), abs=1e-10)


def test_svcca_keeps_variance_fraction():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((500, 10)) * np.array([10, 8, 6, 1e-2, 1e-2, 1e-2, 1e-2, 1e-2, 1e-2, 1e-2])
    res = svcca(X, rng.standard_normal((500, 4)), keep="variance")
    assert res.rank_x == 3 and res.details["explained_x"] >= 0.99
    assert (res.details["keep"], res.details["threshold"]) == ("variance", 0.99)


def test_a_b_c_example_svcca_tells_apart():
    """50 aligned dims + 150 small noise dims vs 150 useful dims: CCA can't tell them apart, SVCCA can."""
    rng = np.random.default_rng(8)
    n = 2000
    signal = rng.standard_normal((n, 50)) * 10
    A = np.hstack([signal, rng.standard_normal((n, 150)) * 0.1])
    B = np.hstack([signal @ ortho_group.rvs(50, random_state=1), rng.standard_normal((n, 150)) * 0.1])
    C = rng.standard_normal((n, 200))
    # plain CCA: B is a noisy copy of A only on 50 of 200 dims, so the mean rho is ~1/4 for both
    assert cca(A, B).score < 0.45
    assert svcca(A, B, keep="variance").score > 0.98
    assert svcca(A, C, keep="variance").score < 0.4  # unrelated: only the finite-sample bias of ~sqrt(d / n) remains


def test_streaming_equals_in_memory_and_merge():
    X, Y = related_pair(9, n=1000)
    whole = SufficientStats.from_arrays(X, Y)
    batches = SufficientStats.from_batches((X[i : i + 37], Y[i : i + 37]) for i in range(0, 1000, 37))
    merged = SufficientStats.from_arrays(X[:400], Y[:400]) + SufficientStats.from_arrays(X[400:], Y[400:])
    for s in (batches, merged):
        assert s.n_samples == 1000
        np.testing.assert_allclose(s.comoment, whole.comoment, rtol=1e-11, atol=1e-9)
        np.testing.assert_allclose(s.mean, whole.mean, rtol=1e-12, atol=1e-13)
        for name in ("cca", "svcca", "pwcca", "linear_cka", "procrustes"):
            assert MEASURES[name](stats=s).score == pytest.approx(MEASURES[name](X, Y).score, abs=1e-10)


def test_float32_float16_accumulate_in_float64_and_large_offsets():
    rng = np.random.default_rng(10)
    X = rng.standard_normal((4000, 5))
    Y = X @ rng.standard_normal((5, 4)) + 0.1 * rng.standard_normal((4000, 4))
    ref = SufficientStats.from_arrays(X.astype(np.float32).astype(np.float64), Y.astype(np.float32).astype(float))
    s32 = SufficientStats.from_arrays(X.astype(np.float32), Y.astype(np.float32))
    assert s32.comoment.dtype == np.float64
    np.testing.assert_allclose(s32.comoment, ref.comoment, rtol=1e-12)
    s16 = SufficientStats.from_arrays(X.astype(np.float16), Y.astype(np.float16))
    assert cca(stats=s16).score == pytest.approx(cca(X, Y).score, abs=2e-3)
    # a huge common offset: raw products would cancel catastrophically; the engine falls back to centring
    offset = 1e8
    shifted = SufficientStats.from_arrays(X + offset, Y - offset)
    exact = SufficientStats.from_arrays(X, Y)
    np.testing.assert_allclose(shifted.comoment, exact.comoment, rtol=1e-6, atol=1e-6)


def test_stats_save_load_roundtrip(tmp_path):
    X, Y = related_pair(11)
    s = SufficientStats.from_arrays(X, Y)
    path = s.save(tmp_path / "sub" / "stats.npz")
    assert not list(path.parent.glob("*.tmp"))
    loaded = SufficientStats.load(path)
    assert loaded.sizes == s.sizes and loaded.n_samples == s.n_samples
    np.testing.assert_array_equal(loaded.comoment, s.comoment)


def test_similarity_matrix_equals_pairwise():
    rng = np.random.default_rng(12)
    latent = rng.standard_normal((500, 4))
    reps = [latent @ rng.standard_normal((4, w)) + rng.standard_normal((500, w)) for w in (5, 7, 6)]
    for measure in ("cca", "svcca", "pwcca", "linear_cka", "procrustes"):
        M = similarity_matrix(reps, measure, names=["a", "b", "c"])
        assert M.scores.shape == (3, 3) and M.names == ("a", "b", "c")
        for i in range(3):
            for j in range(3):
                assert M.scores[i, j] == pytest.approx(MEASURES[measure](reps[i], reps[j]).score, abs=1e-9)
    with pytest.raises(ValueError, match="measure must be one of"):
        similarity_matrix(reps, "rbf_cka")


def test_compare_shares_one_pass():
    X, Y = related_pair(13)
    res = compare(X, Y, measures=list(MEASURES))
    assert set(res) == set(MEASURES)
    for name, r in res.items():
        assert r.score == pytest.approx(MEASURES[name](X, Y).score, abs=1e-12)
        d = r.to_dict()
        assert d["measure"] == name


@pytest.mark.parametrize(
    ("X", "Y", "match"),
    [
        (np.full((10, 2), np.nan), np.ones((10, 2)), "X contains 20 NaN/Inf"),
        (np.ones((10, 2)), np.array([[np.inf, 1.0]] * 10), "Y contains 10 NaN/Inf"),
        (np.ones((10, 2)), np.ones((9, 2)), "sample counts differ: X has 10, Y has 9"),
        (np.ones(10), np.ones((10, 2)), r"X must be 2-D"),
        (np.ones((10, 0)), np.ones((10, 2)), "X has no features"),
        (np.ones((1, 2)), np.ones((1, 2)), "at least 2 samples"),
        (np.array([["a", "b"]] * 3), np.ones((3, 2)), "numeric"),
    ],
)
def test_bad_input_errors_name_the_argument(X, Y, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cca(X, Y)


def test_constant_inputs_raise_clearly():
    X = np.ones((20, 3))
    Y = np.random.default_rng(0).standard_normal((20, 2))
    for name in ("cca", "svcca", "pwcca", "linear_cka", "procrustes", "rbf_cka"):
        with pytest.raises(ValueError, match=r"no variance|constant"):
            MEASURES[name](X, Y)


def test_underdetermined_measure_warns():
    rng = np.random.default_rng(14)
    with pytest.warns(UnderdeterminedWarning):
        cca(rng.standard_normal((10, 8)), rng.standard_normal((10, 8)))


def test_scores_bounded_by_one_are_clipped_at_rounding_and_keep_their_distance():
    """Issue #26 item 5: linear_cka(X, X) and debiased_linear_cka(X, X) returned 1.0000000000000002 (and no
    distance) in a few percent of calls; a score past 1 by rounding is 1, with distance 0."""
    from ccalens.core.measures import debiased_linear_cka, linear_cka
    from ccalens.core.result import ROUNDING_EXCESS, clip_unit

    over = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((int(rng.integers(20, 200)), int(rng.integers(2, 40)))) * rng.uniform(0.1, 10)
        for fn in (linear_cka, debiased_linear_cka):
            res = fn(X, X)
            over += res.score > 1.0 or res.distance is None
            assert res.score == pytest.approx(1.0, abs=ROUNDING_EXCESS)
    assert over == 0
    assert clip_unit(1.0 + 2e-16) == 1.0 and clip_unit(-1.0 - 2e-16) == -1.0
    assert clip_unit(1.01) == 1.01  # beyond rounding: a bug to see, not to hide


@pytest.mark.parametrize("name", ["cca", "svcca", "pwcca"])
def test_two_samples_warn_like_the_estimator(name):
    """Issue #26 item 6: n = 2 gave cca = 1.0 with no warning, where CCA().fit warns."""
    from ccalens.core.measures import MEASURES

    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    with pytest.warns(UnderdeterminedWarning, match="only 2 samples"):
        res = MEASURES[name](X, Y)
    assert res.score == pytest.approx(1.0)


def test_underflowing_statistics_are_reported_as_underflow():
    """Issue #26 item 6: SufficientStats.from_arrays(X * 1e-200) said "every feature is constant"."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((100, 3)), rng.standard_normal((100, 3))
    with pytest.raises(ValueError, match=r"X: 3 feature\(s\) vary but their variance underflows"):
        SufficientStats.from_arrays(X * 1e-200, Y)
    constant = np.ones((100, 2))
    with pytest.raises(ValueError, match="no variance"):  # a truly constant side keeps its own message
        from ccalens.core.measures import cca

        cca(constant, Y)
