"""Numerics of the engine: offsets, neuron scales, rank cut-offs, dtypes, streaming; the estimator protocol."""

from __future__ import annotations

import importlib
import itertools
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from ccalens.core import CCA, SufficientStats, UnderdeterminedWarning
from ccalens.core import cca as cca_similarity
from ccalens.core.linalg import cca_from_covariances, cca_from_stats, cca_qr
from ccalens.core.validation import NotFittedError, RankCutWarning, check_features
from ccalens.core.whitening import CholeskyWhitening, Whitening, whiten

# the modules (ccalens.core.cca, the attribute, is the measure function)
estimator_module = importlib.import_module("ccalens.core.cca_estimator")  # where CCA finds cca_from_stats
stats_module = importlib.import_module("ccalens.core.stats")


def latent_pair(n: int, p: int, q: int, seed: int, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 3))
    X = latent @ rng.standard_normal((3, p)) + noise * rng.standard_normal((n, p))
    Y = latent @ rng.standard_normal((3, q)) + noise * rng.standard_normal((n, q))
    return X, Y


def smooth_spectrum_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Issue #11.9: X with singular values logspace(0, -7, 40), Y = X W + 1e-6 noise."""
    rng = np.random.default_rng(seed)
    n, d = 400, 40
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    X = (U * np.logspace(0, -7, d)) @ V.T
    Y = X @ rng.standard_normal((d, d)) + 1e-6 * rng.standard_normal((n, d))
    return X, Y


def scaled_signal_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Issue #11.10: 5 signal neurons among 15 unit-variance ones; returns X, X with the signal scaled by 1e-6, Y."""
    rng = np.random.default_rng(seed)
    n = 3000
    latent = rng.standard_normal((n, 5))
    X = np.hstack([latent + 0.5 * rng.standard_normal((n, 5)), rng.standard_normal((n, 15))])
    Y = latent @ rng.standard_normal((5, 8)) + rng.standard_normal((n, 8))
    scaled = X.copy()
    scaled[:, :5] *= 1e-6
    return X, scaled, Y


def quiet_cca(X, Y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankCutWarning)
        return CCA(**kwargs).fit(X, Y)


# ------------------------------------------------------------------ item 11: offsets
def test_offset_of_950_std_loses_no_digits():
    """Issue #11.11: correlated neurons with offsets of 950 x std lost up to 2e-4 (raw products minus n m m')."""
    X, Y = latent_pair(2000, 6, 5, seed=0, noise=1e-3)
    Xo, Yo = X + 950 * X.std(axis=0), Y - 950 * Y.std(axis=0)
    exact = cca_qr(Xo, Yo).correlations  # centred in float64 first: no cancellation
    streamed = cca_from_stats(SufficientStats.from_arrays(Xo, Yo)).correlations
    np.testing.assert_allclose(streamed, exact, atol=1e-8)


@settings(max_examples=25, deadline=None)
@given(log_offset=st.floats(0.0, 8.0), seed=st.integers(0, 1000), batches=st.integers(1, 4))
@example(log_offset=7.980499687531745, seed=45, batches=1)  # found by hypothesis: the old float64 reference lost 4e-8
def test_error_does_not_depend_on_the_offset(log_offset, seed, batches):
    X, Y = latent_pair(600, 5, 4, seed=seed, noise=1e-3)
    offset = 10.0**log_offset
    Xo, Yo = X + offset * X.std(axis=0), Y - offset * Y.std(axis=0)
    stats = SufficientStats()
    for rows in np.array_split(np.arange(600), batches):
        stats.update(Xo[rows], Yo[rows])
    # the reference: the same (rounded) data, centred exactly (the offset is far above the spread: X - mean is exact)
    Z = np.hstack([Xo, Yo])
    Zc = Z - Z.mean(axis=0)
    reference = Zc.T @ Zc
    np.testing.assert_allclose(stats.comoment, reference, rtol=1e-12, atol=1e-13 * np.abs(reference).max())
    # the CCA reference centres in extended precision: cca_qr's float64 centring itself loses ~1e-8 at 1e8 std
    exact = [(A.astype(np.longdouble) - A.astype(np.longdouble).mean(axis=0)).astype(np.float64) for A in (Xo, Yo)]
    np.testing.assert_allclose(cca_from_stats(stats).correlations, cca_qr(*exact).correlations, atol=3e-8)
    # statistics made apart and merged keep every digit too
    halves = SufficientStats.from_arrays(Xo[:250], Yo[:250]) + SufficientStats.from_arrays(Xo[250:], Yo[250:])
    np.testing.assert_allclose(halves.comoment, reference, rtol=1e-12, atol=1e-13 * np.abs(reference).max())


@pytest.mark.parametrize("case", ["poor_first_offset", "small_means"])
def test_a_poor_provisional_offset_is_corrected(case, monkeypatch):
    """The first offset comes from the leading rows (or is 0 for features centred near 0); a batch whose mean lies
    far from its offset is shifted anew, so neither loses digits."""
    X, Y = latent_pair(1200, 5, 4, seed=4, noise=1e-3)
    Z = np.hstack([X, Y])
    if case == "poor_first_offset":  # as if the leading rows were 1e6 standard deviations off
        monkeypatch.setattr(stats_module, "leading_mean", lambda blocks: Z.mean(axis=0) + 1e6 * Z.std(axis=0))
    else:  # within one standard deviation of 0: raw products, no shift
        X += 0.5 * X.std(axis=0)
        Z = np.hstack([X, Y])
    stats = SufficientStats.from_arrays(X[:600], Y[:600]).update(X[600:], Y[600:])
    Zc = Z - Z.mean(axis=0)
    reference = Zc.T @ Zc
    np.testing.assert_allclose(stats.comoment, reference, rtol=1e-11, atol=1e-12 * np.abs(reference).max())
    np.testing.assert_allclose(stats.mean, Z.mean(axis=0), rtol=1e-14, atol=1e-14)


def test_constant_features_are_exact_whatever_the_batches():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 4)) + 1e6
    X[:, 1] = 0.1  # not representable: a sum / n mean is off by an ulp
    X[:, 3] = -7.3e9
    Y = rng.standard_normal((300, 3))
    stats = SufficientStats()
    for rows in np.array_split(np.arange(300), 7):
        stats.update(X[rows], Y[rows])
    other = SufficientStats.from_arrays(X[:41], Y[:41]) + SufficientStats.from_arrays(X[41:], Y[41:])
    for s in (stats, other, SufficientStats.from_arrays(X, Y)):
        for j in (1, 3):
            assert s.mean[j] == X[0, j]
            assert not np.any(s.comoment[j]) and not np.any(s.comoment[:, j])
    res = cca_from_stats(stats)
    assert res.rank_x == 2
    np.testing.assert_allclose(res.correlations, cca_qr(X, Y).correlations, atol=1e-10)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), cuts=st.lists(st.integers(1, 199), min_size=1, max_size=4, unique=True))
def test_streaming_equals_in_memory(seed, cuts):
    X, Y = latent_pair(200, 4, 3, seed=seed)
    X += 1e4
    stats = SufficientStats()
    edges = [0, *sorted(cuts), 200]
    for lo, hi in itertools.pairwise(edges):
        stats.update(X[lo:hi], Y[lo:hi])
    whole = SufficientStats.from_arrays(X, Y)
    assert stats.n_samples == 200
    np.testing.assert_allclose(stats.mean, whole.mean, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(stats.comoment, whole.comoment, rtol=1e-10, atol=1e-10 * np.abs(whole.comoment).max())


def test_updates_after_load_select_and_merge_continue_the_statistics(tmp_path):
    X, Y = latent_pair(900, 4, 3, seed=14)
    X += 1e6 * X.std(axis=0)
    whole = SufficientStats.from_arrays(X, Y)
    loaded = SufficientStats.load(SufficientStats.from_arrays(X[:300], Y[:300]).save(tmp_path / "s.npz"))
    selected = SufficientStats.from_arrays(Y[:300], X[:300]).select([1, 0])
    merged = SufficientStats.from_arrays(X[:100], Y[:100]) + SufficientStats.from_arrays(X[100:300], Y[100:300])
    for s in (loaded, selected, merged):
        s.update(X[300:600], Y[300:600]).update(X[600:], Y[600:])
        assert s.n_samples == 900
        np.testing.assert_allclose(s.mean, whole.mean, rtol=1e-15, atol=1e-15)
        np.testing.assert_allclose(s.comoment, whole.comoment, rtol=1e-9, atol=1e-9 * np.abs(whole.comoment).max())


# ------------------------------------------------------------------ dtypes
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_every_float_dtype_gives_the_float64_answer_of_its_values(dtype):
    X, Y = latent_pair(500, 5, 4, seed=2)
    X, Y = X.astype(dtype), Y.astype(dtype)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    reference = cca_qr(X64, Y64).correlations
    np.testing.assert_allclose(cca_qr(X, Y).correlations, reference, atol=1e-12)
    np.testing.assert_allclose(CCA().fit(X, Y).correlations_, reference, atol=1e-6)
    np.testing.assert_allclose(cca_similarity(X, Y).correlations, reference, atol=1e-6)


@pytest.mark.parametrize("offset", [0.0, 1.0, 1e3])
@pytest.mark.parametrize("condition", [1.0, 1e3, 1e6])
def test_float32_products_serve_linear_cka_and_only_linear_cka(offset: float, condition: float):
    """float32 input: linear CKA multiplies in float32 row chunks (float64 across chunks) and stays within 2e-7 of
    the float64 products of the same values, offsets up to 1e3 std and conditions up to 1e6; canonical correlations,
    whose error would grow with the condition number, keep float64 products (equal to 1e-10)."""
    from ccalens.core import measures

    rng = np.random.default_rng(int(np.log10(condition)) + 7 * int(offset))
    n, p, q = 20_000, 48, 32
    X = (rng.standard_normal((n, p)) * np.logspace(0, -np.log10(condition), p)) @ np.linalg.qr(
        rng.standard_normal((p, p)))[0]
    Y = X[:, :q] @ rng.standard_normal((q, q)) + 0.5 * rng.standard_normal((n, q))
    X32, Y32 = (X + offset * X.std(0)).astype(np.float32), (Y + offset * Y.std(0)).astype(np.float32)
    X64, Y64 = X32.astype(np.float64), Y32.astype(np.float64)
    stats = stats_module.second_moment_statistics(X32, Y32)
    assert stats._float32_products and not SufficientStats.from_arrays(X32, Y32)._float32_products
    assert measures.linear_cka(X32, Y32).score == pytest.approx(measures.linear_cka(X64, Y64).score, abs=2e-7)
    assert measures.linear_cka(stats=stats).score == pytest.approx(measures.linear_cka(X64, Y64).score, abs=2e-7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(
            cca_similarity(X32, Y32).correlations, cca_similarity(X64, Y64).correlations, atol=1e-10
        )


def test_bfloat16_and_float16_tensors_are_accepted():
    """Issue #10.8: bfloat16 tensors were refused ("Got unsupported ScalarType BFloat16")."""
    torch = pytest.importorskip("torch")
    X, Y = latent_pair(300, 4, 3, seed=3)
    Xb = torch.from_numpy(X).to(torch.bfloat16)
    arr = check_features(Xb, "X")
    assert arr.dtype == np.float32
    np.testing.assert_array_equal(arr, Xb.float().numpy())
    widened = cca_similarity(Xb.float().numpy(), Y)
    assert cca_similarity(Xb, Y).score == pytest.approx(widened.score, abs=1e-12)
    assert CCA().fit(Xb, torch.from_numpy(Y).half()).correlations_[0] > 0.5


# ------------------------------------------------------------------ item 9: the QR path cuts where eigh does
def test_qr_and_eigh_keep_the_same_directions_on_a_smooth_spectrum():
    """Issue #11.9: |R_ii| and eigenvalue cuts kept 28 vs 32 directions, mean rho 0.997 vs 0.909."""
    X, Y = smooth_spectrum_pair()
    for standardize in (False, True):
        eig = quiet_cca(X, Y, method="eigh", standardize=standardize)
        qr = quiet_cca(X, Y, method="qr", standardize=standardize)
        assert (eig.rank_x_, eig.rank_y_) == (qr.rank_x_, qr.rank_y_)
        np.testing.assert_allclose(eig.correlations_, qr.correlations_, atol=1e-6)
    eig = quiet_cca(X, Y, method="eigh", standardize=False)
    assert eig.rank_x_ == 28  # singular values above sqrt(tol) = 1e-5: indices 0..27 of logspace(0, -7, 40)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), decades=st.floats(3.0, 9.0), standardize=st.booleans())
def test_qr_and_eigh_paths_agree_in_ranks_and_correlations(seed, decades, standardize):
    rng = np.random.default_rng(seed)
    n, d = 400, 12
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    X = (U * np.logspace(0, -decades, d)) @ V.T * rng.uniform(0.5, 2.0, d)
    Y = X[:, :6] @ rng.standard_normal((6, 5)) + 0.1 * rng.standard_normal((n, 5))
    # the data's own singular values (of the standardised columns if asked): none may sit near the cut
    Xc = X - X.mean(axis=0)
    sigma = np.linalg.svd(Xc / np.linalg.norm(Xc, axis=0) if standardize else Xc, compute_uv=False)
    assume(np.all(np.abs(np.log10(sigma / sigma[0] / 1e-5)) > 0.1))
    eig = quiet_cca(X, Y, method="eigh", standardize=standardize)
    qr = quiet_cca(X, Y, method="qr", standardize=standardize)
    assert (eig.rank_x_, eig.rank_y_) == (qr.rank_x_, qr.rank_y_) == (int(np.sum(sigma > 1e-5 * sigma[0])), 5)
    np.testing.assert_allclose(eig.correlations_, qr.correlations_, atol=1e-6)


# ------------------------------------------------------------------ item 10: the cut is scale invariant
def test_rescaled_signal_neurons_keep_their_directions():
    """Issue #11.10 (mechanism): 5 signal neurons scaled by 1e-6 were cut and the score fell from 0.52 to 0.06."""
    X, scaled, Y = scaled_signal_pair()
    plain, rescaled = SufficientStats.from_arrays(X, Y), SufficientStats.from_arrays(scaled, Y)
    reference = cca_from_stats(plain)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RankCutWarning)  # nothing is cut on the correlation matrix
        result = cca_from_stats(rescaled)
        qr = CCA(method="qr").fit(scaled, Y)
    assert result.rank_x == qr.rank_x_ == 20
    np.testing.assert_allclose(result.correlations, reference.correlations, atol=1e-9)
    np.testing.assert_allclose(qr.correlations_, reference.correlations, atol=1e-9)
    assert result.mean_rho > 0.5
    # the covariance cut drops them, and says so
    with pytest.warns(RankCutWarning, match=r"X: .*dropped 5 direction"):
        cut = cca_from_covariances(
            rescaled.covariance(0), rescaled.covariance(1), rescaled.covariance(0, 1),
            n_samples=rescaled.n_samples, standardize=False,
        )
    assert cut.rank_x == 15 and cut.mean_rho < 0.1


def test_cca_similarity_is_invariant_to_rescaling_neurons():
    """Issue #11.10 (measure level): the score fell from 0.518 to 0.057 without a warning."""
    X, scaled, Y = scaled_signal_pair()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RankCutWarning)
        assert cca_similarity(scaled, Y).score == pytest.approx(cca_similarity(X, Y).score, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), log_scales=st.lists(st.floats(-8.0, 8.0), min_size=6, max_size=6))
def test_correlations_do_not_depend_on_neuron_scales(seed, log_scales):
    X, Y = latent_pair(400, 6, 4, seed=seed)
    reference = cca_from_stats(SufficientStats.from_arrays(X, Y)).correlations
    scaled = X * 10.0 ** np.asarray(log_scales)
    stats = SufficientStats.from_arrays(scaled, Y)
    np.testing.assert_allclose(cca_from_stats(stats).correlations, reference, atol=1e-9)
    np.testing.assert_allclose(cca_qr(scaled, Y).correlations, reference, atol=1e-9)


@pytest.mark.parametrize("method", ["eigh", "auto"])
def test_standardized_whitening_whitens_the_original_covariance(method):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((500, 6)) * np.array([1e-7, 1.0, 1e5, 3.0, 1e-3, 0.0])  # one constant feature
    X[:, 3] += X[:, 1]
    S = np.cov(X.T)
    w = whiten(S, method=method, standardize=True, name="layer3")
    assert isinstance(w, Whitening) and w.rank == 5  # the constant feature rules out the Cholesky path
    W = w.whitener
    np.testing.assert_allclose(W.T @ S @ W, np.eye(5), atol=1e-9)
    np.testing.assert_allclose(w.dewhitener, S @ W, rtol=1e-9, atol=1e-12 * np.abs(S @ W).max())
    assert not np.any(W[5]) and w.feature_scale is not None
    # without the constant feature the Cholesky factor of the correlation matrix is taken when asked
    S5 = S[:5, :5]
    fast = whiten(S5, method=method, standardize=True)
    assert isinstance(fast, CholeskyWhitening if method == "auto" else Whitening)
    np.testing.assert_allclose(fast.whitener.T @ S5 @ fast.whitener, np.eye(5), atol=1e-9)
    np.testing.assert_allclose(fast.dewhitener, S5 @ fast.whitener, rtol=1e-9, atol=1e-12 * np.abs(S5).max())
    # on the covariance, the cut (1e-10 of the largest variance, 1e10) drops the neurons of variance 1e-14, 1e-6,
    # the first two silently (below the noise floor 6 eps 1e10), and one direction of variance ~1
    with pytest.warns(RankCutWarning, match="layer3: .*dropped 1 direction"):
        assert whiten(S, standardize=False, name="layer3").rank == 2


def test_exact_dependencies_are_cut_silently():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((300, 8))
    X[:, 5] = X[:, 0] - 2 * X[:, 1]
    X[:, 6] = X[:, 2]
    X[:, 7] = 4.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RankCutWarning)
        for standardize in (False, True):
            assert whiten(np.cov(X.T), standardize=standardize).rank == 5
            assert CCA("qr", standardize=standardize).fit(X, X[:, :3]).rank_x_ == 5


# ------------------------------------------------------------------ item 14: clear errors
def test_overflow_is_reported_by_name():
    rng = np.random.default_rng(7)
    X, Y = rng.standard_normal((50, 3)), rng.standard_normal((50, 2))
    # the measures rescale by a power of two first (scale-free), so a huge but finite Y gives the same value
    assert cca_similarity(X, Y * 1e200).score == pytest.approx(cca_similarity(X, Y).score, rel=1e-12)
    with pytest.raises(ValueError, match=r"representations\[2\] has values too large"):
        SufficientStats.from_arrays(X, Y, X * 1e300)
    with pytest.raises(ValueError, match="covariance of layer1 contains NaN/Inf"):
        whiten(np.full((2, 2), np.inf), name="layer1")
    # large offsets alone are fine: they are shifted away before any product
    big = SufficientStats.from_arrays(X + 1e200, Y)
    assert np.isfinite(big.comoment).all()


def test_complex_input_is_called_complex():
    with pytest.raises(TypeError, match="X must be real-valued"):
        cca_similarity(np.ones((10, 2)) + 1j, np.ones((10, 2)))


def test_one_sample_errors_name_the_arguments():
    one = np.ones((1, 2))
    with pytest.raises(ValueError, match="X needs at least 2 samples, got 1"):
        cca_similarity(one, one)
    with pytest.raises(ValueError, match="X needs at least 2 samples, got 1"):
        CCA().fit(one, one)
    with pytest.raises(ValueError, match="layer1 and layer2 need at least 2 samples, got 1"):
        CCA().fit_stats(SufficientStats().update(one, one, names=("layer1", "layer2")))


# ------------------------------------------------------------------ item 4: the estimator protocol
def test_estimator_params_and_clone():
    from sklearn.base import clone

    est = CCA(method="qr", tol=1e-8, standardize=False)
    assert est.get_params() == {"method": "qr", "tol": 1e-8, "standardize": False}
    assert est.set_params(method="eigh") is est and est.method == "eigh"
    with pytest.raises(ValueError, match="invalid parameter 'alpha' for CCA"):
        est.set_params(alpha=1.0)
    X, Y = latent_pair(200, 4, 3, seed=8)
    est.fit(X, Y)
    copy = clone(est)
    assert copy.get_params() == est.get_params() and not hasattr(copy, "result_")
    assert est.n_features_in_ == 4
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.correlations_, est.correlations_)
    assert repr(est) == "CCA(method='eigh', tol=1e-08, standardize=False)"


def test_not_fitted_errors_are_sklearns():
    from sklearn.exceptions import NotFittedError as SklearnNotFitted
    from sklearn.utils.validation import check_is_fitted

    est = CCA()
    with pytest.raises(SklearnNotFitted):
        check_is_fitted(est)
    with pytest.raises(SklearnNotFitted, match="not fitted"):
        est.transform(np.zeros((3, 2)))
    with pytest.raises(SklearnNotFitted):
        _ = est.correlations_
    assert not hasattr(est, "x_weights_")  # NotFittedError is an AttributeError
    X, Y = latent_pair(100, 3, 2, seed=9)
    est.partial_fit(X[:1], Y[:1])
    with pytest.raises(SklearnNotFitted):
        check_is_fitted(est)  # one sample: nothing to solve
    est.partial_fit(X[1:], Y[1:])
    check_is_fitted(est)
    np.testing.assert_allclose(est.correlations_, CCA().fit(X, Y).correlations_, atol=1e-12)


def test_without_sklearn_loaded_the_error_is_ccalens_own():
    code = (
        "import sys, numpy as np\n"
        "from ccalens.core import CCA\n"
        "from ccalens.core.validation import NotFittedError\n"
        "assert 'sklearn' not in sys.modules\n"
        "try:\n    CCA().transform(np.zeros((3, 2)))\n"
        "except NotFittedError as e:\n    assert isinstance(e, ValueError) and isinstance(e, AttributeError)\n"
        "assert 'sklearn' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


def test_partial_fit_only_accumulates_and_solves_on_first_read(monkeypatch):
    calls = []
    original = estimator_module.cca_from_stats
    monkeypatch.setattr(estimator_module, "cca_from_stats", lambda *a, **k: calls.append(1) or original(*a, **k))
    X, Y = latent_pair(640, 5, 4, seed=10)
    est = CCA()
    for start in range(0, 640, 64):
        est.partial_fit(X[start : start + 64], Y[start : start + 64])
    assert calls == [] and "result_" not in vars(est)
    first = est.correlations_.copy()
    assert calls == [1]
    _ = est.x_weights_, est.rank_x_, est.result_
    assert calls == [1]
    est.partial_fit(X[:64], Y[:64])  # more data: the old result is gone
    assert "correlations_" not in vars(est) and calls == [1]
    assert est.n_samples_ == 704 and calls == [1, 1]
    np.testing.assert_allclose(first, CCA().fit(X, Y).correlations_, atol=1e-12)


def test_fit_stats_does_not_alias_the_callers_statistics():
    X, Y = latent_pair(300, 4, 3, seed=11)
    s = SufficientStats.from_arrays(X, Y)
    mean, comoment = s.mean.copy(), s.comoment.copy()
    est = CCA().fit_stats(s)
    est.partial_fit(X[:50], Y[:50])
    assert s.n_samples == 300
    np.testing.assert_array_equal(s.mean, mean)
    np.testing.assert_array_equal(s.comoment, comoment)
    assert est.n_samples_ == 350
    # representations other than (0, 1)
    three = SufficientStats.from_arrays(Y, X, X[:, :2])
    np.testing.assert_allclose(CCA().fit_stats(three, 1, 0).correlations_, CCA().fit(X, Y).correlations_, atol=1e-10)


def test_underdetermined_still_warns_on_both_paths():
    rng = np.random.default_rng(12)
    X, Y = rng.standard_normal((20, 15)), rng.standard_normal((20, 15))
    for method in ("eigh", "qr"):
        with pytest.warns(UnderdeterminedWarning):
            CCA(method).fit(X, Y)


# ------------------------------------------------------------------ persistence
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_save_creates_the_file_with_the_process_umask(tmp_path, umask):
    X, Y = latent_pair(50, 3, 2, seed=13)
    s = SufficientStats.from_arrays(X, Y)
    old = os.umask(umask)
    try:
        path = s.save(tmp_path / f"stats{umask:o}.npz")
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    np.testing.assert_array_equal(SufficientStats.load(path).comoment, s.comoment)


# ------------------------------------------------------------------ issue 26.6: the RankCutWarning advice works
def _condition_1e12_pair() -> tuple[np.ndarray, np.ndarray]:
    """``Y = X A`` with X's singular values spanning 1e12: the true mean CCA is 1."""
    rng = np.random.default_rng(0)
    n, p = 400, 10
    U = np.linalg.qr(rng.standard_normal((n, p)))[0]
    V = np.linalg.qr(rng.standard_normal((p, p)))[0]
    X = (U * np.logspace(0, -12, p)) @ V.T
    return X, X @ rng.standard_normal((p, p))


def test_rank_cut_advice_recovers_a_true_one_score():
    """Issue 26.6: "lower tol to keep them" moved the score from 0.99940 to 0.89 (tol=0) on the eigen path; the
    advice now names the QR path, which gives 1 within 1e-6."""
    X, Y = _condition_1e12_pair()
    with pytest.warns(RankCutWarning) as record:
        default = cca_similarity(X, Y).score
    assert default < 1 - 1e-4
    message = str(record[0].message)
    assert "lower tol to keep them" not in message and "squares the condition number" in message
    assert 'ccalens.CCA("qr", tol=0).fit(X, Y)' in message
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankCutWarning)
        assert cca_similarity(X, Y, tol=0.0).score < 1 - 1e-3  # what the old advice gave
    with warnings.catch_warnings():
        warnings.simplefilter("error", RankCutWarning)
        followed = CCA("qr", tol=0).fit(X, Y).correlations_.mean()
    assert abs(followed - 1.0) < 1e-6
    # the QR path's own warning (default tol) advises tol=0, which works there
    with pytest.warns(RankCutWarning, match="tol=0 keeps them"):
        assert CCA("qr").fit(X, Y).correlations_.mean() < 1 - 1e-4
