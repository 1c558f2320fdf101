"""MinibatchCKA: the estimator of Nguyen et al. 2021, streaming, merging, many layers, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from ccalens.core.measures import debiased_linear_cka
from ccalens.core.minibatch import MinibatchCKA, minibatch_cka
from ccalens.core.result import SimilarityMatrix, SimilarityResult


def layers(seed: int, n: int, widths=(30, 20, 12)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 3))
    out = [latent @ rng.standard_normal((3, widths[0])) + rng.standard_normal((n, widths[0]))]
    out.append(np.tanh(latent @ rng.standard_normal((3, widths[1]))) + 0.7 * rng.standard_normal((n, widths[1])))
    out.extend(rng.standard_normal((n, w)) for w in widths[2:])
    return out


def hsic_u(K: np.ndarray, L: np.ndarray) -> float:
    """Song et al. (2012) unbiased HSIC, written out on n x n matrices."""
    n = K.shape[0]
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    one = np.ones(n)
    return float((np.trace(K @ L) + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
                  - 2 / (n - 2) * one @ K @ L @ one) / (n * (n - 3)))


def feed(metric: MinibatchCKA, arrays: list[np.ndarray], chunk: int) -> MinibatchCKA:
    for start in range(0, arrays[0].shape[0], chunk):
        metric.update(*(a[start : start + chunk] for a in arrays))
    return metric


def test_matches_the_definition_batch_by_batch():
    X, Y, _ = layers(0, 120)
    res = MinibatchCKA(2, batch_size=40).update(X, Y).compute()
    assert isinstance(res, SimilarityResult) and res.measure == "minibatch_cka"
    h = np.array([[hsic_u(A[b : b + 40] @ A[b : b + 40].T, B[b : b + 40] @ B[b : b + 40].T)
                   for b in range(0, 120, 40)] for A, B in ((X, Y), (X, X), (Y, Y))]).mean(axis=1)
    assert res.score == pytest.approx(h[0] / np.sqrt(h[1] * h[2]), abs=1e-12)
    assert res.details["n_minibatches"] == 3 and res.details["n_filled"] == 0 and res.n_samples == 120


def test_one_minibatch_is_the_debiased_cka():
    X, Y, _ = layers(1, 90)
    assert MinibatchCKA(2, batch_size=256).update(X, Y).compute().score == pytest.approx(
        debiased_linear_cka(X, Y).score, abs=1e-10)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_close_to_exact_debiased_cka(seed):
    """n = 2,000 in minibatches of 250: the gap to the full-data debiased CKA was at most 0.0022 over 20 seeds
    (CKA ~0.7); the test allows 0.01. The unrelated layer is near 0 within the same tolerance."""
    reps = layers(seed, 2000)
    matrix = feed(MinibatchCKA(3, batch_size=250), reps, chunk=333).compute()
    assert isinstance(matrix, SimilarityMatrix)
    for i in range(3):
        for j in range(i + 1, 3):
            assert matrix.scores[i, j] == pytest.approx(debiased_linear_cka(reps[i], reps[j]).score, abs=0.01)


def test_identical_runs_and_chunking_do_not_matter():
    reps = layers(5, 1003)  # 3 rows of remainder with batch_size 100: completed from the last minibatch
    a = feed(MinibatchCKA(3, batch_size=100, seed=7), reps, chunk=1003).compute_matrix().scores
    b = feed(MinibatchCKA(3, batch_size=100, seed=7), reps, chunk=37).compute_matrix().scores
    c = feed(MinibatchCKA(3, batch_size=100, seed=7), reps, chunk=100).compute_matrix().scores
    assert np.array_equal(a, b) and np.array_equal(a, c)
    other_seed = feed(MinibatchCKA(3, batch_size=100, seed=8), reps, chunk=1003).compute_matrix().scores
    assert not np.array_equal(a, other_seed)  # the seed picks the rows that complete the remainder
    res = MinibatchCKA(2, batch_size=100, seed=7).update(reps[0], reps[1]).compute()
    assert res.details["n_minibatches"] == 11 and res.details["n_filled"] == 97


def test_many_layers_equal_pairwise():
    reps = layers(6, 500, widths=(30, 20, 12, 7))
    matrix = MinibatchCKA(["a", "b", "c", "d"], batch_size=64, seed=1).update(*reps).compute()
    assert matrix.names == ("a", "b", "c", "d")
    assert np.allclose(matrix.scores, matrix.scores.T, atol=1e-14) and np.all(np.diag(matrix.scores) == 1.0)
    for i in range(4):
        for j in range(4):
            if i != j:
                pair = MinibatchCKA(2, batch_size=64, seed=1).update(reps[i], reps[j]).compute().score
                assert matrix.scores[i, j] == pytest.approx(pair, abs=1e-12)


def test_merge_equals_a_single_stream():
    reps = layers(7, 700)
    first, second = [r[:300] for r in reps], [r[300:] for r in reps]  # 300 = 5 minibatches of 60
    a = MinibatchCKA(3, batch_size=60, seed=2).update(*first)
    b = MinibatchCKA(3, batch_size=60, seed=2).update(*second)
    single = MinibatchCKA(3, batch_size=60, seed=2).update(*reps)
    merged = a.merge(b)
    assert merged.n_samples == 700 and merged.n_minibatches == single.n_minibatches
    assert np.allclose(merged.compute_matrix().scores, single.compute_matrix().scores, rtol=0, atol=1e-13)
    assert np.allclose((a + b).compute_matrix().scores, single.compute_matrix().scores, rtol=0, atol=1e-13)
    # inputs unchanged by the merge
    assert a.n_samples == 300 and b.n_samples == 400


def test_merge_with_remainders_and_different_scales():
    """Both remainders are joined and re-chunked: the stream a's full minibatches, b's, a's rest, b's rest."""
    reps = layers(8, 530)
    cut, m = 250, 60  # a: 4 minibatches + 10 rows; b: 4 minibatches + 40 rows
    a = MinibatchCKA(3, batch_size=m).update(*[r[:cut] for r in reps])
    b = MinibatchCKA(3, batch_size=m).update(*[r[cut:] * 1e6 for r in reps])  # another power-of-two scale
    order = np.concatenate([np.arange(240), np.arange(250, 490), np.arange(240, 250), np.arange(490, 530)])
    single = MinibatchCKA(3, batch_size=m).update(*[np.where(order[:, None] < cut, r[order], r[order] * 1e6)
                                                   for r in reps])
    assert np.allclose(a.merge(b).compute_matrix().scores, single.compute_matrix().scores, rtol=0, atol=1e-12)
    empty = MinibatchCKA(3, batch_size=m)
    assert np.array_equal(empty.merge(a).compute_matrix().scores, a.compute_matrix().scores)
    assert np.array_equal(a.merge(empty).compute_matrix().scores, a.compute_matrix().scores)


def test_wide_layers_need_no_feature_by_feature_matrix():
    rng = np.random.default_rng(9)
    X = rng.standard_normal((64, 50_000)).astype(np.float32)  # d x d would be 20 GB
    Y = X[:, :1000] * 3.0 + 5.0
    res = MinibatchCKA(2, batch_size=32).update(X, Y).compute()
    assert np.isfinite(res.score) and 0.0 < res.score < 1.0
    assert MinibatchCKA(2, batch_size=32).update(X, X * -2.0 + 1.0).compute().score == pytest.approx(1.0, abs=1e-12)


def test_scale_and_offset_free():
    X, Y, _ = layers(10, 300)
    base = MinibatchCKA(2, batch_size=50).update(X, Y).compute().score
    for scale in (1e-200, 1e-50, 1e50, 1e200):
        assert MinibatchCKA(2, batch_size=50).update(X * scale, Y).compute().score == pytest.approx(base, abs=1e-12)
    assert MinibatchCKA(2, batch_size=50).update(X + 1e6, Y - 1e6).compute().score == pytest.approx(base, abs=1e-8)
    X16 = X.astype(np.float16)
    assert MinibatchCKA(2, batch_size=50).update(X16, Y).compute().score == pytest.approx(
        MinibatchCKA(2, batch_size=50).update(X16.astype(np.float64), Y).compute().score, abs=1e-12)


def test_reset_and_mapping_update():
    X, Y, _ = layers(11, 100)
    metric = MinibatchCKA(["x", "y"], batch_size=25)
    by_name = metric.update({"y": Y, "x": X}).compute().score
    assert by_name == MinibatchCKA(2, batch_size=25).update(X, Y).compute().score
    metric.reset()
    assert metric.n_samples == 0
    with pytest.raises(ValueError, match="no samples"):
        metric.compute()


def test_bad_input():
    X, Y, _ = layers(12, 50)
    with pytest.raises(ValueError, match="batch_size"):
        MinibatchCKA(2, batch_size=3)
    with pytest.raises(ValueError, match="distinct names"):
        MinibatchCKA(["a", "a"])
    with pytest.raises(TypeError, match="representations"):
        MinibatchCKA("ab")
    metric = MinibatchCKA(["x", "y"], batch_size=10)
    with pytest.raises(ValueError, match="expects 2 arrays"):
        metric.update(X)
    with pytest.raises(ValueError, match="missing \\['y'\\]"):
        metric.update({"x": X})
    Xbad = X.copy()
    Xbad[2, 3] = np.inf
    with pytest.raises(ValueError, match=r"^x contains"):
        metric.update(Xbad, Y)
    with pytest.raises(ValueError, match="same samples"):
        metric.update(X, Y[:-1])
    metric.update(X, Y)
    with pytest.raises(ValueError, match="feature counts"):
        metric.update(X[:, :3], Y)
    with pytest.raises(ValueError, match="batch_size"):
        metric.merge(MinibatchCKA(["x", "y"], batch_size=20))
    with pytest.raises(ValueError, match="at least 4 samples"):
        MinibatchCKA(2, batch_size=10).update(X[:3], Y[:3]).compute()
    with pytest.raises(ValueError, match="undefined for R0"):
        MinibatchCKA(2, batch_size=10).update(np.ones((40, 3)), Y[:40]).compute()


def test_in_memory_function_shuffles_with_the_seed():
    """Class-sorted rows put one class in each minibatch: the within-batch pairs miss the class structure."""
    rng = np.random.default_rng(13)
    labels = np.repeat(np.arange(4), 100)  # sorted by class, 100 per class
    onehot = np.eye(4)[labels]
    X = onehot @ rng.standard_normal((4, 10)) * 3 + rng.standard_normal((400, 10))
    Y = onehot @ rng.standard_normal((4, 8)) * 3 + rng.standard_normal((400, 8))
    exact = debiased_linear_cka(X, Y).score
    shuffled = minibatch_cka(X, Y, batch_size=100, seed=1)
    assert shuffled.score == pytest.approx(exact, abs=0.05)
    assert minibatch_cka(X, Y, batch_size=100, seed=1).score == shuffled.score
    in_order = minibatch_cka(X, Y, batch_size=100, shuffle=False)
    assert in_order.score < exact - 0.3  # what a sorted stream estimates: the within-class similarity
    order = np.random.default_rng(1).permutation(400)
    streamed = MinibatchCKA(2, batch_size=100, seed=1).update(X[order], Y[order]).compute()
    assert streamed.score == shuffled.score
    matrix = minibatch_cka(X, Y, X, batch_size=100, names=["x", "y", "x2"])
    assert matrix.names == ("x", "y", "x2") and matrix.scores[0, 2] == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="names has 1 entries"):
        minibatch_cka(X, Y, names=["x"])


def gaussian(A: np.ndarray, sigma: float) -> np.ndarray:
    D = ((A[:, None, :] - A[None, :, :]) ** 2).sum(axis=2)
    return np.exp(-D / (2 * sigma**2))


def test_rbf_kernel_matches_the_definition():
    X, Y, _ = layers(14, 160)
    sigmas = (3.0, 2.0)
    res = MinibatchCKA(2, batch_size=80, kernel="rbf", sigmas=sigmas).update(X, Y).compute()
    h = np.array([[hsic_u(gaussian(A[b : b + 80], sa), gaussian(B[b : b + 80], sb)) for b in (0, 80)]
                  for (A, sa), (B, sb) in (((X, 3.0), (Y, 2.0)), ((X, 3.0), (X, 3.0)), ((Y, 2.0), (Y, 2.0)))])
    h = h.mean(axis=1)
    assert res.score == pytest.approx(h[0] / np.sqrt(h[1] * h[2]), abs=1e-12)
    assert res.details["kernel"] == "rbf" and res.details["sigma_x"] == 3.0
    # bandwidths estimated on the first minibatch: the root median squared distance of its 80 samples, over all
    # 80^2 entries by default (Kornblith's rule), over distinct pairs with median="distinct"
    estimated = MinibatchCKA(2, batch_size=80, kernel="rbf").update(X, Y)
    assert estimated.sigmas[0] == pytest.approx(np.sqrt(np.median(squareform(pdist(X[:80], "sqeuclidean")))),
                                                rel=1e-12)
    distinct = MinibatchCKA(2, batch_size=80, kernel="rbf", median="distinct").update(X, Y)
    assert distinct.sigmas[0] == pytest.approx(np.sqrt(np.median(pdist(X[:80], "sqeuclidean"))), rel=1e-12)
    assert MinibatchCKA(2, batch_size=80, kernel="rbf", median="all", sigma_factor=2.0).update(X, Y).sigmas[1] == (
        pytest.approx(2.0 * np.sqrt(np.median(squareform(pdist(Y[:80], "sqeuclidean")))), rel=1e-12))


def test_rbf_wide_bandwidth_tends_to_linear():
    X, Y, _ = layers(15, 200)
    linear = MinibatchCKA(2, batch_size=50).update(X, Y).compute().score
    wide = MinibatchCKA(2, batch_size=50, kernel="rbf", sigmas=(1e9, 1e9)).update(X, Y).compute().score
    assert wide == pytest.approx(linear, abs=1e-8)


def test_rbf_streams_merge_only_with_equal_bandwidths():
    X, Y, _ = layers(16, 300)
    a = MinibatchCKA(2, batch_size=50, kernel="rbf").update(X[:150], Y[:150])
    b = MinibatchCKA(2, batch_size=50, kernel="rbf").update(X[150:], Y[150:])
    with pytest.raises(ValueError, match="different bandwidths"):
        a.merge(b)
    with pytest.raises(ValueError, match="kernel"):
        a.merge(MinibatchCKA(2, batch_size=50))
    opts = {"batch_size": 50, "kernel": "rbf", "sigmas": (3.0, 2.0)}
    a = MinibatchCKA(2, **opts).update(X[:150], Y[:150])
    b = MinibatchCKA(2, **opts).update(X[150:] * 1e6, Y[150:])  # another power-of-two scale
    single = MinibatchCKA(2, **opts).update(np.vstack([X[:150], X[150:] * 1e6]), Y)
    assert a.merge(b).compute().score == pytest.approx(single.compute().score, abs=1e-12)
    with pytest.raises(ValueError, match="sigmas"):
        MinibatchCKA(2, kernel="rbf", sigmas=(1.0, -1.0))
    with pytest.raises(ValueError, match="sigmas applies"):
        MinibatchCKA(2, sigmas=(1.0, 1.0))
    with pytest.raises(ValueError, match="kernel must be"):
        MinibatchCKA(2, kernel="poly")


def test_largest_float64_magnitudes():
    X, Y, _ = layers(17, 100)
    unit = X / np.abs(X).max()
    with np.errstate(all="raise"):
        huge = MinibatchCKA(2, batch_size=50).update(unit * 1.7e308, Y).compute().score
    assert huge == pytest.approx(MinibatchCKA(2, batch_size=50).update(unit, Y).compute().score, abs=1e-12)
