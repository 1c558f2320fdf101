"""CCA: published oracle, brute-force definitions, degenerate input, the two paths."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest

from ccalens.core import CCA, SufficientStats, UnderdeterminedWarning
from ccalens.core.linalg import cca_from_stats, cca_qr

R_CANCOR = np.array([0.8247966, 0.3652762])  # R: cancor(LifeCycleSavings[, 2:3], LifeCycleSavings[, -(2:3)])


def life_cycle_savings(shared_dir):
    with open(shared_dir / "data" / "r-datasets" / "LifeCycleSavings.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 50
    X = np.array([[float(r["pop15"]), float(r["pop75"])] for r in rows])
    Y = np.array([[float(r["sr"]), float(r["dpi"]), float(r["ddpi"])] for r in rows])
    return X, Y


@pytest.mark.parametrize("method", ["eigh", "qr"])
def test_r_cancor_oracle(shared_dir, method):
    X, Y = life_cycle_savings(shared_dir)
    cca = CCA(method=method).fit(X, Y)
    np.testing.assert_allclose(cca.correlations_, R_CANCOR, atol=5e-8)
    u, v = cca.transform(X, Y)
    # canonical variates: unit variance, uncorrelated within a side, paired correlations = rho
    np.testing.assert_allclose(np.cov(u.T), np.eye(2), atol=1e-10)
    np.testing.assert_allclose(np.cov(v.T)[:2, :2], np.eye(2), atol=1e-10)
    cross = np.corrcoef(u.T, v.T)[:2, 2:4]
    np.testing.assert_allclose(cross, np.diag(R_CANCOR), atol=5e-8)


def brute_force_correlations(X, Y):
    """rho^2 = eigenvalues of Cxx^-1 Cxy Cyy^-1 Cyx (well-conditioned input only)."""
    C = np.cov(np.hstack([X, Y]).T)
    p = X.shape[1]
    Cxx, Cyy, Cxy = C[:p, :p], C[p:, p:], C[:p, p:]
    M = np.linalg.solve(Cxx, Cxy) @ np.linalg.solve(Cyy, Cxy.T)
    vals = np.sort(np.linalg.eigvals(M).real)[::-1][: min(p, Y.shape[1])]
    return np.sqrt(np.clip(vals, 0, 1))


def test_matches_brute_force_and_qr():
    rng = np.random.default_rng(1)
    latent = rng.standard_normal((400, 3))
    X = latent @ rng.standard_normal((3, 6)) + rng.standard_normal((400, 6))
    Y = latent @ rng.standard_normal((3, 4)) + 0.5 * rng.standard_normal((400, 4))
    eig = CCA("eigh").fit(X, Y)
    qr = CCA("qr").fit(X, Y)
    np.testing.assert_allclose(eig.correlations_, brute_force_correlations(X, Y), atol=1e-10)
    np.testing.assert_allclose(eig.correlations_, qr.correlations_, atol=1e-10)
    # directions agree up to sign
    signs = np.sign(np.sum(eig.x_weights_ * qr.x_weights_, axis=0))
    np.testing.assert_allclose(eig.x_weights_, qr.x_weights_ * signs, atol=1e-8)


@pytest.mark.parametrize("method", ["eigh", "qr"])
def test_linear_map_of_rank_deficient_input_gives_all_ones(method):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((300, 10))
    X[:, 7] = X[:, 0] - 2 * X[:, 1]  # linearly dependent neuron
    X[:, 8] = 5.0  # constant neuron
    X[:, 9] = X[:, 3]  # duplicated neuron
    Y = X @ rng.standard_normal((10, 12))  # rank 7, wider than X
    cca = CCA(method).fit(X, Y)
    assert cca.rank_x_ == 7 and cca.rank_y_ == 7
    np.testing.assert_allclose(cca.correlations_, 1.0, atol=1e-9)
    assert np.all(np.isfinite(cca.x_weights_)) and np.all(np.isfinite(cca.x_basis_pinv_))


def test_projection_and_basis():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 5))
    Y = X[:, :3] + 0.3 * rng.standard_normal((200, 3))
    res = CCA().fit(X, Y).result_
    assert res.x_basis.shape == (5, 5) and res.x_basis_pinv.shape == (5, 5)
    np.testing.assert_allclose(res.x_basis @ res.x_basis_pinv, np.eye(5), atol=1e-10)
    full = res.projection(range(5))
    np.testing.assert_allclose(full, np.eye(5), atol=1e-10)
    P = res.projection([0, 1])
    np.testing.assert_allclose(P @ P, P, atol=1e-10)  # a projector
    assert np.linalg.matrix_rank(P) == 2
    with pytest.raises(ValueError, match="components"):
        res.projection([7])


def test_streaming_partial_fit_equals_fit():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((500, 8))
    Y = X @ rng.standard_normal((8, 6)) + rng.standard_normal((500, 6))
    batch = CCA()
    for i in range(0, 500, 64):
        batch.partial_fit(X[i : i + 64], Y[i : i + 64])
    np.testing.assert_allclose(batch.correlations_, CCA().fit(X, Y).correlations_, atol=1e-12)


def test_underdetermined_warns():
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((20, 15)), rng.standard_normal((20, 15))
    with pytest.warns(UnderdeterminedWarning, match="canonical correlation"):
        res = CCA().fit(X, Y)
    # the warning is right: unrelated noise, yet several correlations are 1
    assert np.sum(res.correlations_ > 1 - 1e-8) >= 15 + 15 - 19


def test_constant_representation_raises():
    X = np.ones((50, 3))
    Y = np.random.default_rng(0).standard_normal((50, 2))
    for method in ("eigh", "qr"):
        with pytest.raises(ValueError, match="no variance"):
            CCA(method).fit(X, Y)


def test_complex_hermitian_blocks():
    """cca_from_stats on real data == complex path with the same (real) blocks cast to complex."""
    from ccalens.core.linalg import cca_from_covariances

    rng = np.random.default_rng(6)
    X = rng.standard_normal((300, 4))
    Y = X @ rng.standard_normal((4, 3)) + rng.standard_normal((300, 3))
    s = SufficientStats.from_arrays(X, Y)
    real = cca_from_stats(s)
    cplx = cca_from_covariances(
        s.covariance(0).astype(complex), s.covariance(1).astype(complex), s.covariance(0, 1).astype(complex),
        n_samples=s.n_samples,
    )
    np.testing.assert_allclose(real.correlations, cplx.correlations, atol=1e-12)


def test_not_fitted_and_bad_method():
    with pytest.raises(ValueError, match="not fitted"):  # NotFittedError (a ValueError and AttributeError)
        CCA().transform(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="method"):
        CCA(method="svd").fit(np.eye(3), np.eye(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnderdeterminedWarning)
        res = cca_qr(np.arange(10.0)[:, None], np.arange(10.0)[:, None] ** 2)
    assert 0.9 < res.correlations[0] <= 1.0
