"""The fast paths of the engine: Cholesky whitening, parallel tasks, tiled statistics.

Each fast path must give what the plain path gives (to rounding), and fall back where it must.
"""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ccalens.core.comoments as comoments_module
import ccalens.core.measures as measures_module
import ccalens.core.measures.matrix as matrix_module
import ccalens.core.measures.sides as sides_module
from ccalens.core import CCA, SufficientStats
from ccalens.core.cca import cca_qr
from ccalens.core.linalg import canonical_correlations
from ccalens.core.measures import compare, similarity_matrix
from ccalens.core.threads import blas_threads, run_tasks
from ccalens.core.whitening import CHOLESKY_MARGIN, CholeskyWhitening, Whitening, whiten


def correlated(n: int, p: int, q: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 4))
    X = latent @ rng.standard_normal((4, p)) + rng.standard_normal((n, p))
    Y = latent @ rng.standard_normal((4, q)) + rng.standard_normal((n, q))
    return X, Y


# ------------------------------------------------------------------ Cholesky whitening
@pytest.mark.parametrize("complex_", [False, True])
def test_cholesky_whitening_identities(complex_):
    rng = np.random.default_rng(1)
    A = rng.standard_normal((60, 7)) + (1j * rng.standard_normal((60, 7)) if complex_ else 0)
    S = A.conj().T @ A / 59
    w = whiten(S, method="auto")
    assert isinstance(w, CholeskyWhitening) and w.rank == 7
    W, D = w.whitener, w.dewhitener
    np.testing.assert_allclose(W.conj().T @ S @ W, np.eye(7), atol=1e-12)
    np.testing.assert_allclose(D, S @ W, atol=1e-12)
    B = rng.standard_normal((7, 5))
    np.testing.assert_allclose(w.whiten_rows(B), W.conj().T @ B, atol=1e-12)
    np.testing.assert_allclose(w.whiten_columns(B.T), B.T @ W, atol=1e-12)
    np.testing.assert_allclose(w.unwhiten(B), D @ B, atol=1e-12)
    np.testing.assert_allclose(w.whitener_dot(B), W @ B, atol=1e-12)
    # the eigen whitening has the same interface and the same identities
    e = whiten(S, method="eigh")
    assert isinstance(e, Whitening)
    np.testing.assert_allclose(e.whiten_rows(B), e.whitener.conj().T @ B, atol=1e-12)
    np.testing.assert_allclose(e.unwhiten(e.whiten_rows(S)), S, atol=1e-10)
    np.testing.assert_allclose(e.whitener_dot(e.whiten_rows(B)), e.whitener @ e.whitener.conj().T @ B, atol=1e-10)


def test_auto_falls_back_to_eigh_where_a_direction_could_be_dropped():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((500, 6))
    # a duplicated neuron: singular covariance, Cholesky fails or is hopelessly conditioned
    dup = np.cov(np.column_stack([X, X[:, 0]]).T)
    assert isinstance(whiten(dup, method="auto"), Whitening)
    assert whiten(dup, method="auto").rank == 6
    # full rank but condition 1e9: above the margin, the eigendecomposition decides
    scales = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 10**-4.5])
    ill = np.cov((X * scales).T)
    assert isinstance(whiten(ill, method="auto"), Whitening)
    # a well-conditioned covariance with a large tol: the margin sends it to the eigendecomposition too
    good = np.cov(X.T)
    assert isinstance(whiten(good, method="auto"), CholeskyWhitening)
    assert isinstance(whiten(good, method="auto", tol=1.0 / CHOLESKY_MARGIN), Whitening)
    with pytest.raises(ValueError, match="method must be"):
        whiten(good, method="qr")  # type: ignore[arg-type]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), p=st.integers(1, 9), q=st.integers(1, 9))
def test_cholesky_and_eigh_paths_agree(seed, p, q):
    X, Y = correlated(200, p, q, seed)
    stats = SufficientStats.from_arrays(X, Y)
    cx, cy, cxy = stats.covariance(0), stats.covariance(1), stats.covariance(0, 1)
    fast = (whiten(cx, method="auto"), whiten(cy, method="auto"))
    slow = (whiten(cx, method="eigh"), whiten(cy, method="eigh"))
    assert all(isinstance(w, CholeskyWhitening) for w in fast)
    rho_fast, U_fast, _ = canonical_correlations(*fast, cxy, vectors=True)
    rho_slow, U_slow, _ = canonical_correlations(*slow, cxy, vectors=True)
    np.testing.assert_allclose(rho_fast, rho_slow, atol=1e-10)
    assert U_fast is not None and U_slow is not None
    # PWCCA's weights |Cxx a_i| do not depend on the whitening chosen (up to sign, for distinct rho)
    k = rho_fast.shape[0]
    alpha_fast = np.abs(fast[0].unwhiten(U_fast[:, :k])).sum(axis=0)
    alpha_slow = np.abs(slow[0].unwhiten(U_slow[:, :k])).sum(axis=0)
    distinct = np.all(np.abs(np.diff(rho_fast)) > 1e-6) if k > 1 else True
    if distinct:
        np.testing.assert_allclose(alpha_fast, alpha_slow, rtol=1e-6, atol=1e-9)


def test_fast_measures_match_qr_reference():
    X, Y = correlated(3000, 150, 120, seed=3)
    reference = cca_qr(X, Y).correlations
    results = compare(X, Y, ("cca", "pwcca"))  # no SVCCA: the Cholesky path is taken
    np.testing.assert_allclose(results["cca"].correlations, reference, atol=1e-9)
    np.testing.assert_allclose(results["pwcca"].correlations, reference, atol=1e-9)
    np.testing.assert_allclose(CCA().fit(X, Y).correlations_, reference, atol=1e-9)
    # with SVCCA requested, CCA and PWCCA reuse the eigendecompositions: same numbers
    both = compare(X, Y, ("cca", "svcca", "pwcca"))
    assert both["cca"].score == pytest.approx(results["cca"].score, abs=1e-10)
    assert both["pwcca"].score == pytest.approx(results["pwcca"].score, abs=1e-9)


# ------------------------------------------------------------------ threads
def test_run_tasks_order_errors_and_nesting():
    assert run_tasks([lambda i=i: i * i for i in range(7)], workers=2) == [i * i for i in range(7)]
    assert run_tasks([], workers=2) == []
    seen = []

    def nested() -> list[int]:
        seen.append(threading.current_thread().name)
        return run_tasks([lambda: 1, lambda: 2], workers=2)  # inside a worker: sequential, no deadlock

    assert run_tasks([nested, nested], workers=2) == [[1, 2], [1, 2]]

    def boom() -> None:
        raise RuntimeError("task failed")

    with pytest.raises(RuntimeError, match="task failed"):
        run_tasks([lambda: 1, boom], workers=2)
    assert blas_threads() >= 1


@pytest.fixture
def force_parallel(monkeypatch):
    """Make the thread pool and tiling run even on small inputs, with 3 workers' worth of tiles."""
    monkeypatch.setattr(comoments_module, "_PARALLEL_MIN_FLOPS", 0)
    monkeypatch.setattr(comoments_module, "blas_threads", lambda: 3)
    monkeypatch.setattr(sides_module, "MIN_PARALLEL_WIDTH", 0)
    monkeypatch.setattr(matrix_module, "MIN_PARALLEL_WIDTH", 0)


def test_column_tiles_cover_every_column_and_balance():
    for sizes, workers in [((512, 512), 2), ((1024, 512), 2), ((300, 40, 700), 3), ((64, 64), 8), ((5,), 4)]:
        tiles = comoments_module.column_tiles(sizes, workers)
        for b, d in enumerate(sizes):
            edges = sorted((lo, hi) for bb, lo, hi in tiles if bb == b)
            assert edges[0][0] == 0 and edges[-1][1] == d
            assert all(e1[1] == e2[0] for e1, e2 in itertools.pairwise(edges))
    assert comoments_module.column_tiles((512, 512), 2) == [(0, 0, 512), (1, 0, 512)]  # XY | XX + YY
    assert len(comoments_module.column_tiles((1024, 512), 2)) > 2


def test_parallel_statistics_equal_the_definition(force_parallel):
    rng = np.random.default_rng(4)
    blocks = [rng.standard_normal((400, d)) + 5.0 for d in (300, 40, 260)]
    stats = SufficientStats.from_arrays(*blocks)
    Z = np.hstack(blocks)
    np.testing.assert_allclose(stats.comoment, np.cov(Z.T) * 399, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(stats.mean, Z.mean(axis=0), rtol=1e-12)
    assert np.array_equal(stats.comoment, stats.comoment.T)
    bad = blocks[1].copy()
    bad[7, 3] = np.nan
    with pytest.raises(ValueError, match=r"representations\[1\] contains 1 NaN"):
        SufficientStats.from_arrays(blocks[0], bad, blocks[2])


def test_parallel_measures_equal_sequential(monkeypatch):
    reps = [correlated(800, w, 10, seed=s)[0] for s, w in enumerate((12, 9, 15))]
    names = ("cca", "svcca", "pwcca", "linear_cka")
    sequential = {m: similarity_matrix(reps, m).scores for m in names}  # small: no thread pool
    singles = {m: [[measures_module.MEASURES[m](a, b).score for b in reps] for a in reps] for m in names}
    monkeypatch.setattr(comoments_module, "_PARALLEL_MIN_FLOPS", 0)
    monkeypatch.setattr(comoments_module, "blas_threads", lambda: 3)
    monkeypatch.setattr(sides_module, "MIN_PARALLEL_WIDTH", 0)
    monkeypatch.setattr(matrix_module, "MIN_PARALLEL_WIDTH", 0)
    monkeypatch.setattr(matrix_module, "blas_threads", lambda: 2)
    for m in names:
        parallel = similarity_matrix(reps, m).scores
        np.testing.assert_allclose(parallel, sequential[m], atol=1e-10)
        np.testing.assert_allclose(parallel, np.array(singles[m]), atol=1e-10)


def _squares_in_pool(count: int) -> list[int]:
    return run_tasks([lambda i=i: i * i for i in range(count)], workers=2)


def test_thread_pool_survives_fork():
    """A forked child inherits the pool object but not its threads: run_tasks must make a new pool there."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    assert _squares_in_pool(4) == [0, 1, 4, 9]  # the parent's pool now exists
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_squares_in_pool, (5,)).get(timeout=60) == [0, 1, 4, 9, 16]


def test_concurrent_batches_restore_the_blas_thread_count():
    """Batches started from several threads at once (as under Dask's threaded scheduler) must not leave BLAS
    limited to one thread when they are all done."""
    before = blas_threads()
    barrier = threading.Barrier(4)

    def batch() -> None:
        barrier.wait()
        for _ in range(20):
            run_tasks([lambda: np.ones((60, 60)) @ np.ones((60, 60)) for _ in range(3)], workers=2)

    threads = [threading.Thread(target=batch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert blas_threads() == before


def test_pool_grows_when_more_workers_are_asked_for(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert run_tasks([lambda i=i: i for i in range(4)], workers=2) == [0, 1, 2, 3]
    names = run_tasks([lambda: threading.current_thread().name for _ in range(8)], workers=4)
    assert all(name.startswith("ccalens") for name in names)


# ------------------------------------------------------------------ centring inside the products, GIL-free LAPACK
@pytest.mark.parametrize("chunk_rows", [37, 400])
def test_centring_inside_the_tile_products_equals_the_definition(force_parallel, chunk_rows):
    """The rank-one centring n d d' is subtracted tile by tile with the last chunk's products: the co-moment about
    the mean must equal the two-pass definition, exactly symmetric, whether the rows come in one chunk or many."""
    rng = np.random.default_rng(9)
    blocks = [rng.standard_normal((400, d)) * 3.0 + 1e3 for d in (300, 40, 260)]
    offset = np.concatenate([blk[:5].mean(axis=0) for blk in blocks])
    comoment, sums = comoments_module.shifted_comoment(blocks, offset, dtype=np.float64, chunk_rows=chunk_rows)
    Z = np.hstack(blocks)
    Zc = Z - Z.mean(axis=0)
    np.testing.assert_allclose(comoment, Zc.T @ Zc, rtol=1e-11, atol=1e-8)
    np.testing.assert_allclose(sums, (Z - offset).sum(axis=0), rtol=1e-12, atol=1e-9)
    assert np.array_equal(comoment, comoment.T)


@pytest.mark.parametrize("complex_", [False, True])
def test_gil_free_cholesky_routines_match_lapack_by_scipy(complex_):
    import scipy.linalg

    from ccalens.core import _lapack

    rng = np.random.default_rng(3)
    A = rng.standard_normal((80, 9)) + (1j * rng.standard_normal((80, 9)) if complex_ else 0)
    S = A.conj().T @ A / 79
    U = np.array(S, order="F")
    assert _lapack.cholesky_in_place(U) == 0
    np.testing.assert_allclose(U, scipy.linalg.cholesky(S, lower=False), rtol=1e-12, atol=1e-13)
    assert not np.tril(U, -1).any()
    anorm = float(np.abs(S).sum(axis=0).max())
    rcond, info = _lapack.cholesky_rcond(U, anorm)
    pocon = scipy.linalg.lapack.get_lapack_funcs("pocon", (U,))
    assert info == 0 and rcond == pytest.approx(float(pocon(U, anorm)[0]), rel=1e-12)
    inverse = U.copy(order="F")
    assert _lapack.triangular_inverse_in_place(inverse) == 0 and not np.tril(inverse, -1).any()
    np.testing.assert_allclose(inverse @ U, np.eye(9), atol=1e-12)
    # not positive definite: LAPACK's info names the failing minor; C order and float32 are refused by name
    S[4, 4] = -1.0
    assert _lapack.cholesky_in_place(np.array(S, order="F")) == 5
    with pytest.raises(ValueError, match="Fortran-ordered"):
        _lapack.cholesky_in_place(np.ascontiguousarray(S[:, :8]))
    with pytest.raises(TypeError, match="float64 or complex128"):
        _lapack.cholesky_in_place(np.array(S.real, dtype=np.float32, order="F"))


def test_gil_free_routines_in_threads_and_the_single_threaded_blas_block():
    """Side by side in the pool they give each side's own answer; outside the pool they run with BLAS at one thread
    and leave the thread count as it was."""
    from ccalens.core import _lapack
    from ccalens.core.threads import single_threaded_blas

    rng = np.random.default_rng(5)
    covs = [(lambda A: A.T @ A)(rng.standard_normal((300, 150))) for _ in range(4)]
    def factor(S: np.ndarray) -> np.ndarray:
        U = np.array(S, order="F")
        assert _lapack.cholesky_in_place(U) == 0
        return U

    factors = run_tasks([lambda S=S: factor(S) for S in covs], workers=2)
    for S, U in zip(covs, factors, strict=True):
        np.testing.assert_allclose(U.T @ U, S, rtol=1e-12, atol=1e-9)
    before = blas_threads()
    with single_threaded_blas():
        assert blas_threads() == 1
    assert blas_threads() == before


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.complex64])
def test_cholesky_whitening_of_other_dtypes_is_computed_in_double(dtype):
    """LAPACK is called in float64/complex128 whatever the covariance's dtype (float32, integer, complex64)."""
    rng = np.random.default_rng(8)
    A = rng.integers(-3, 4, size=(40, 5)) + (1j * rng.integers(-3, 4, size=(40, 5)) if dtype == np.complex64 else 0)
    S = (A.conj().T @ A).astype(dtype)
    w = whiten(S, method="auto")
    assert isinstance(w, CholeskyWhitening)
    S64 = S.astype(np.result_type(dtype, np.float64))
    np.testing.assert_allclose(w.whitener.conj().T @ S64 @ w.whitener, np.eye(5), atol=1e-6)
