"""The sample-space (dual) path equals the feature-space (primal) path wherever both fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ccalens.core import dual, gram_tiles, plan
from ccalens.core.measures import debiased_linear_cka, linear_cka, procrustes


def _pair(n: int, p: int, q: int, seed: int = 0, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) @ rng.standard_normal((p, p)) + offset
    k = min(p, q)
    Y = X[:, :k] @ rng.standard_normal((k, q)) + rng.standard_normal((n, q)) + 2 * offset
    return X, Y


def _unbiased_hsic(K: np.ndarray, L: np.ndarray) -> float:
    """Song et al. (2012)'s unbiased HSIC of two ``(n, n)`` Grams, n >= 4, as the paper writes it (a reference)."""
    n = K.shape[0]
    Kt, Lt = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
    one = np.ones(n)
    total = np.trace(Kt @ Lt) + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
    total -= 2.0 / (n - 2) * (one @ Kt @ Lt @ one)
    return float(total / (n * (n - 3)))


@pytest.mark.parametrize(("n", "p", "q"), [(300, 40, 60), (50, 120, 90), (40, 8, 200)])
@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_second_moment_measures_match_primal(n: int, p: int, q: int, offset: float) -> None:
    X, Y = _pair(n, p, q, offset=offset)
    gx, gy = dual.centred_gram(X), dual.centred_gram(Y, name="Y")
    bx = dual.SampleBasis.from_gram(gx, tol=1e-12)
    by = dual.SampleBasis.from_gram(gy, tol=1e-12)
    primal = linear_cka(X, Y, method="primal").score
    assert gram_tiles.linear_cka_tiled(X, Y) == pytest.approx(primal, rel=1e-9)
    assert gram_tiles.linear_cka_tiled(X, Y, tile_rows=7) == pytest.approx(primal, rel=1e-9)  # many tiles, ragged
    proc = dual.procrustes_nuclear(bx, by) / np.sqrt(gx.trace * gy.trace)
    assert proc == pytest.approx(procrustes(X, Y).score, rel=1e-9)
    h = _unbiased_hsic
    dcka = h(gx.matrix, gy.matrix) / np.sqrt(h(gx.matrix, gx.matrix) * h(gy.matrix, gy.matrix))
    assert dcka == pytest.approx(debiased_linear_cka(X, Y).score, rel=1e-9)


@pytest.mark.parametrize("offset", [0.0, 0.5, 1e3])
def test_tiled_linear_cka_of_float32_input_is_centred_without_cancellation(offset: float) -> None:
    """float32 tiles: raw products with rank-one centring while the offsets are small, rows centred per tile when
    they are not; either way within float32 rounding of the float64 value of the same numbers."""
    X, Y = _pair(300, 700, 500, offset=offset)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    reference = linear_cka(X32.astype(np.float64), Y32.astype(np.float64), method="primal").score
    for tile_rows in (plan.TILE_ROWS, 64):
        assert gram_tiles.linear_cka_tiled(X32, Y32, tile_rows=tile_rows) == pytest.approx(reference, rel=1e-5)
    raw = gram_tiles._raw_tile_products(X32, Y32, plan.TILE_ROWS)
    assert (raw is not None) == (offset < 1e3)  # large offsets: rows centred per tile instead


@pytest.mark.parametrize("tile_rows", [plan.TILE_ROWS, 7])
def test_raw_tiles_centred_afterwards_equal_centred_tiles(tile_rows: int) -> None:
    """The raw tiles' inner products, centred from the Grams' row sums, equal those of centred tiles."""
    X, Y = _pair(200, 30, 50, offset=0.3)
    raw = gram_tiles._raw_tile_products(X, Y, tile_rows)
    assert raw is not None
    centred = gram_tiles._centred_tile_products(X, Y, tile_rows)
    np.testing.assert_allclose(raw, centred, rtol=1e-11)


def test_raw_tiles_give_way_when_later_rows_carry_the_offset() -> None:
    """Small offsets in the first tile but a large one over all rows (e.g. samples sorted by class): the exact
    check on the whole Grams sends the pair to centred tiles, and the score stays exact."""
    X, Y = _pair(400, 20, 30)
    X[20:] += 1e3  # the first 20 rows (the first tile) look centred; over all rows, n |m|^2 is 19 tr(Xc Xc')
    assert gram_tiles._raw_tile_products(X, Y, 20) is None
    primal = linear_cka(X, Y, method="primal").score
    assert gram_tiles.linear_cka_tiled(X, Y, tile_rows=20) == pytest.approx(primal, rel=1e-9)
    Xs, Ys = _pair(120, 20, 30)
    assert gram_tiles._raw_tile_products(Xs, Ys + 1e3, 40) is None  # one side with large offsets: centred tiles too
    assert gram_tiles.linear_cka_tiled(Xs, Ys + 1e3, tile_rows=40) == pytest.approx(
        linear_cka(Xs, Ys + 1e3, method="primal").score, rel=1e-9
    )


def test_truncation_rules_keep_different_ranks() -> None:
    rng = np.random.default_rng(3)
    s = np.logspace(0, -3, 60)
    X = rng.standard_normal((400, 60)) * s
    b = dual.SampleBasis.from_gram(dual.centred_gram(X), tol=1e-12)
    by_values = b.top(0.99, "singular_values").rank
    by_variance = b.top(0.99, "variance").rank
    assert by_variance < by_values
    s_hat = b.all_singular_values
    m = int(np.searchsorted(np.cumsum(s_hat) / s_hat.sum(), 0.99 - 1e-12)) + 1
    assert by_values == m


def test_constant_representation_is_refused() -> None:
    with pytest.raises(ValueError, match="Z has no variance"):
        dual.SampleBasis.from_gram(dual.centred_gram(np.ones((10, 30)), name="Z"), tol=1e-10, name="Z")


def test_planner_prefers_dual_for_wide_and_primal_for_tall() -> None:
    wide = plan.plan_pair(2000, (8192, 8192), needs_basis=True, memory_budget=8 << 30)
    tall = plan.plan_pair(50_000, (512, 512), needs_basis=True, memory_budget=8 << 30)
    assert wide.method == "dual" and tall.method == "primal"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        forced = plan.plan_pair(50_000, (512, 512), needs_basis=True, method="dual", memory_budget=1 << 40)
    assert forced.method == "dual" and "forced" in forced.reason


def test_planner_error_says_what_would_fit() -> None:
    with pytest.raises(MemoryError, match="minibatch CKA"):
        plan.plan_pair(100_000, (65_536, 65_536), needs_basis=False, memory_budget=1 << 30)
    with pytest.raises(ValueError, match="memory_budget"):
        plan.plan_pair(10, (3, 3), needs_basis=False, memory_budget=-1)


# --------------------------------------------------------------------------------- the measures on both paths
import ccalens  # noqa: E402

PAIR_MEASURES = ("cca", "svcca", "pwcca", "linear_cka", "procrustes")


def _corpus() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Degenerate pairs: n < d, rank-deficient, constant and duplicated neurons, offsets, scales, float32."""
    rng = np.random.default_rng(11)
    out = []
    n = 60
    lat = rng.standard_normal((n, 6))
    X = lat @ rng.standard_normal((6, 150)) + 0.5 * rng.standard_normal((n, 150))
    Y = lat @ rng.standard_normal((6, 90)) + 0.5 * rng.standard_normal((n, 90))
    out.append(("n<d", X, Y))
    R = rng.standard_normal((200, 8)) @ rng.standard_normal((8, 40))  # rank 8 of 40
    out.append(("rank-deficient", R, R[:, :20] + 0.1 * rng.standard_normal((200, 20))))
    C = rng.standard_normal((120, 30))
    C[:, 3] = 7.0  # constant neuron
    C[:, 10] = C[:, 11]  # duplicated neurons
    out.append(("constant+duplicated", C, C[:, ::-1] @ rng.standard_normal((30, 30)) + rng.standard_normal((120, 30))))
    O = rng.standard_normal((150, 25)) + 1e6
    out.append(("offset 1e6", O, O[:, :12] * 3 - 1e4 + rng.standard_normal((150, 12))))
    S = rng.standard_normal((150, 25)) * np.logspace(-2.9, 3, 25)  # no variance ratio at the 1e-10 cut
    out.append(("neuron scales", S, S[:, ::2] + 1e-3 * rng.standard_normal((150, 13))))
    out.append(("float32", X.astype(np.float32), Y.astype(np.float32)))
    return out


@pytest.mark.parametrize("case", _corpus(), ids=lambda c: c[0])
@pytest.mark.parametrize("measure", PAIR_MEASURES)
def test_primal_equals_dual_on_the_degenerate_corpus(case, measure: str) -> None:
    _, X, Y = case
    fn = getattr(ccalens, measure)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = fn(X, Y, method="primal")
        b = fn(X, Y, method="dual")
    rel = 1e-5 if X.dtype == np.float32 else 1e-9  # float32 input: both paths multiply in float32
    assert b.score == pytest.approx(a.score, rel=rel, abs=1e-12)
    assert (a.rank_x, a.rank_y) == (b.rank_x, b.rank_y)
    if a.correlations is not None:
        np.testing.assert_allclose(b.correlations, a.correlations, atol=1e-7 if rel > 1e-9 else 1e-9)
        assert b.null_mean_rho == a.null_mean_rho
    if a.weights is not None:
        np.testing.assert_allclose(b.weights, a.weights, atol=1e-7)
    assert a.details["plan"]["method"] == "primal" and b.details["plan"]["method"] == "dual"
    assert {k: v for k, v in a.details.items() if k != "plan"}.keys() == {
        k for k in b.details if k != "plan"
    }


def test_auto_plan_takes_the_dual_path_for_wide_data_and_records_it() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3000))
    Y = X[:, :1500] + rng.standard_normal((40, 1500))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ccalens.linear_cka(X, Y)
        tall = ccalens.linear_cka(X[:, :5], Y[:, :5])
    assert res.details["plan"]["method"] == "dual"
    assert tall.details["plan"]["method"] == "primal"
    assert res.score == pytest.approx(ccalens.linear_cka(X, Y, method="primal").score, rel=1e-9)


def test_plan_errors_are_clear() -> None:
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 4)), rng.standard_normal((30, 5))
    stats = ccalens.SufficientStats.from_arrays(X, Y)
    with pytest.raises(ValueError, match="method='dual' needs the data"):
        ccalens.cca(stats=stats, method="dual")
    with pytest.raises(ValueError, match="method must be"):
        ccalens.svcca(X, Y, method="gram")
    with pytest.raises(MemoryError, match="memory_budget=100 bytes"):
        ccalens.linear_cka(X, Y, memory_budget=100)


@pytest.mark.parametrize("measure", PAIR_MEASURES)
def test_similarity_matrix_prepared_path_equals_the_joint_path(measure: str) -> None:
    rng = np.random.default_rng(4)
    n = 80
    lat = rng.standard_normal((n, 5))
    reps = [lat @ rng.standard_normal((5, d)) + rng.standard_normal((n, d)) + 2.0 for d in (6, 12, 30, 140)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joint = ccalens.similarity_matrix(reps[:3], measure)
        small_budget = ccalens.similarity_matrix(reps[:3], measure, memory_budget=2_000)  # no joint co-moment
        wide = ccalens.similarity_matrix(reps, measure)  # a representation wider than n: prepared path
        pairwise = np.array([[getattr(ccalens, measure)(a, b).score for b in reps] for a in reps])
    assert joint.details["plan"]["method"] == "primal"
    assert small_budget.details["plan"]["method"] == "prepared"
    assert wide.details["plan"]["method"] == "prepared"
    tol = 1e-6  # the prepared path multiplies whitened coordinates; the joint one whitens co-moment blocks
    np.testing.assert_allclose(small_budget.scores, joint.scores, atol=tol)
    np.testing.assert_allclose(wide.scores, pairwise, atol=tol)


def test_similarity_matrix_warns_once_per_call() -> None:
    rng = np.random.default_rng(0)
    reps = [rng.standard_normal((40, 15)) for _ in range(4)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ccalens.similarity_matrix(reps, "cca")
    categories = [w.category.__name__ for w in caught]
    assert categories.count("SmallSampleWarning") == 1
    assert "pairs" in str(caught[0].message)


def test_streamed_groups_fit_the_budget_and_equal_in_memory_results() -> None:
    from ccalens.core.many import stream_similarities
    from ccalens.core.plan import plan_stream_groups

    rng = np.random.default_rng(8)
    n, T, L, d = 90, 4, 2, 6  # T checkpoints x L layers against the final state (the last L)
    lat = rng.standard_normal((n, 3))
    reps = [lat @ rng.standard_normal((3, d)) + 0.3 * rng.standard_normal((n, d)) for _ in range(T * L + L)]
    pairs = [(t * L + layer, T * L + layer) for t in range(T) for layer in range(L)]
    budget = 2 * 8 * (3 * d) ** 2  # three representations per pass at most
    groups = plan_stream_groups([d] * len(reps), pairs, memory_budget=budget)
    assert len(groups) > 1 and all(len(g[0]) <= 3 for g in groups)
    assert sorted(p for g in groups for p in g[1]) == sorted(pairs)
    passes = []

    def make_batches():
        passes.append(1)
        return ([r[lo : lo + 25] for r in reps] for lo in range(0, n, 25))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = stream_similarities(make_batches, [d] * len(reps), pairs, ccalens.svcca, memory_budget=budget)
        for i, j in pairs:
            assert got[(i, j)].score == pytest.approx(ccalens.svcca(reps[i], reps[j]).score, abs=1e-10)
    assert len(passes) == len(groups)  # one pass over the data per group
    with pytest.raises(MemoryError, match="alone needs"):
        plan_stream_groups([d] * 3, [(0, 1)], memory_budget=10)


@pytest.mark.parametrize("scale", [1e-300, 1e-160, 1e160, 1e300])
@pytest.mark.parametrize("measure", PAIR_MEASURES)
def test_dual_path_is_scale_free_over_the_float64_range(scale: float, measure: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 80))
    Y = X[:, :40] + rng.standard_normal((30, 40))
    fn = getattr(ccalens, measure)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert fn(X * scale, Y, method="dual").score == pytest.approx(fn(X, Y, method="dual").score, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("measure", ["linear_cka", "procrustes", "svcca", "cca"])
def test_prepared_path_raw_products_and_centred_copies_agree_with_pairwise(measure: str, dtype: type) -> None:
    """Small offsets: pairs from the data as they are (``X_i' X_j - n m_i m_j'``); offsets of 1e3 std: centred
    copies; the mixed pairs centre the raw side. Every cell equals the pairwise call."""
    rng = np.random.default_rng(12)
    n = 400
    lat = rng.standard_normal((n, 4))
    offsets = (0.3, 1e3, 0.0, 50.0)
    reps = [(lat @ rng.standard_normal((4, 20)) + rng.standard_normal((n, 20)) + off).astype(dtype) for off in offsets]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = ccalens.similarity_matrix(reps, measure, memory_budget=20_000)
        pairwise = np.array([[getattr(ccalens, measure)(a.astype(np.float64), b.astype(np.float64)).score
                              for b in reps] for a in reps])
    assert prepared.details["plan"]["method"] == "prepared"
    tol = 1e-9 if dtype == np.float64 else 2e-5  # float32 input: float32 products
    np.testing.assert_allclose(prepared.scores, pairwise, atol=tol)


def test_overwriting_basis_consumes_the_gram_and_keeps_the_result() -> None:
    """``from_gram(overwrite=True)`` releases the Gram (its matrix is destroyed by the solver): the same basis as
    from a copy, and a clear error, not a silent wrong value, if the consumed Gram is read again."""
    X, _ = _pair(60, 90, 10)
    kept = dual.SampleBasis.from_gram(dual.centred_gram(X), tol=1e-10)
    gram = dual.centred_gram(X)
    consumed = dual.SampleBasis.from_gram(gram, tol=1e-10, overwrite=True)
    assert gram.matrix is None
    with pytest.raises(RuntimeError, match="consumed"):
        _ = gram.trace
    np.testing.assert_allclose(consumed.singular_values, kept.singular_values, rtol=1e-12)
    np.testing.assert_allclose(np.abs(consumed.left.T @ kept.left), np.eye(kept.rank), atol=1e-8)


def test_cross_product_of_float32_bases_accumulates_in_float64() -> None:
    rng = np.random.default_rng(4)
    A, B = rng.standard_normal((1000, 30)).astype(np.float32), rng.standard_normal((1000, 20)).astype(np.float32)
    exact = A.astype(np.float64).T @ B.astype(np.float64)
    for rows in (7, 256, 4096):
        np.testing.assert_allclose(dual.cross_product(A, B, rows=rows), exact, rtol=0, atol=1e-12)


@pytest.mark.parametrize("measure", ["cca", "svcca"])
def test_cca_family_diagonal_is_one_by_definition(measure: str) -> None:
    """A representation against itself: every canonical correlation of its kept subspace is 1 (no product and no
    eigenproblem on either path), with the ranks of the computed comparison of two copies."""
    rng = np.random.default_rng(8)
    n = 120
    reps = [rng.standard_normal((n, 5)) @ rng.standard_normal((5, d)) + rng.standard_normal((n, d)) for d in (7, 15)]
    reps.append(np.hstack([reps[0], reps[0][:, :3]]))  # duplicated neurons: rank below the width
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for budget in (None, 2_000):  # the joint path, then the prepared one
            matrix = ccalens.similarity_matrix(reps, measure, memory_budget=budget)
            assert np.all(np.diag(matrix.scores) == 1.0)
        for X in reps:
            computed = getattr(ccalens, measure)(X, X.copy())  # two statistics blocks: the eigenproblem is solved
            assert computed.score == pytest.approx(1.0, abs=1e-9)
            assert matrix.rank is not None and computed.rank_x in matrix.rank
