"""Tests of ccalens.conv: conventions, DFT-CCA maths, streaming, layouts, validation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ccalens
from ccalens.conv import (
    DFTStats,
    SpatialStats,
    conv_similarity,
    conv_similarity_from_batches,
    conv_stats,
    frequency_plan,
)
from ccalens.core import SimilarityResult, UnderdeterminedWarning
from ccalens.core.linalg import cca_from_whitenings, cca_qr, principal_whitening

# ---------------------------------------------------------------------------- data


def circular_conv(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Circular convolution of ``x: (N, C_in, H, W)`` by ``kernel: (C_out, C_in, kh, kw)`` (via the DFT)."""
    _, _, H, W = x.shape
    k = np.zeros((*kernel.shape[:2], H, W))
    k[:, :, : kernel.shape[2], : kernel.shape[3]] = kernel
    spectrum = np.einsum("oihw,nihw->nohw", np.fft.fft2(k), np.fft.fft2(x))
    return np.real(np.fft.ifft2(spectrum))


def all_shifts(x: np.ndarray) -> np.ndarray:
    """Every cyclic shift of every image: ``(N, C, H, W) -> (N*H*W, C, H, W)``, shifts of one image together."""
    _, C, H, W = x.shape
    shifted = [np.roll(x, (i, j), axis=(2, 3)) for i in range(H) for j in range(W)]
    return np.stack(shifted, axis=1).reshape(-1, C, H, W)


def layer_pair(rng: np.random.Generator, n: int, c_a: int, c_b: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Two related 'layers' of the same images: random conv + tanh, then conv + ReLU + noise."""
    base = rng.standard_normal((n, 3, h, w))
    a = np.tanh(circular_conv(base, rng.standard_normal((c_a, 3, 3, 3))))
    b = np.maximum(circular_conv(a, rng.standard_normal((c_b, c_a, 3, 3))), 0.0)
    return a, b + 0.3 * rng.standard_normal(b.shape)


def invariant_pair(seed: int, n: int, c_a: int, c_b: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A translation-invariant dataset: all cyclic shifts of ``n`` image pairs (the pair shifted together)."""
    a, b = layer_pair(np.random.default_rng(seed), n, c_a, c_b, h, w)
    return all_shifts(a), all_shifts(b)


def flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(x.shape[0], -1)


# ---------------------------------------------------------------------------- frequencies


@pytest.mark.parametrize(
    ("shape_a", "shape_b", "grid"),
    [
        ((4, 5), (4, 5), (4, 5)),
        ((1, 1), (1, 1), (1, 1)),
        ((6, 3), (6, 3), (6, 3)),
        ((8, 8), (16, 16), (7, 7)),
        ((16, 9), (8, 12), (7, 9)),
        ((5, 6), (7, 6), (5, 6)),
    ],
)
def test_frequency_plan_covers_each_mirror_pair_once(shape_a, shape_b, grid) -> None:
    plan = frequency_plan(shape_a, shape_b)
    assert plan.grid == grid
    assert plan.multiplicity.sum() == grid[0] * grid[1]
    reps = {tuple(f) for f in plan.frequencies.tolist()}
    assert len(reps) == plan.n_frequencies
    for (ku, kv), m in zip(plan.frequencies.tolist(), plan.multiplicity.tolist(), strict=True):
        mirror_same = all(((-k) % s == k % s) for k, s in ((ku, grid[0]), (kv, grid[1])))
        assert m == (1 if mirror_same else 2)
        if m == 2:
            assert (-ku, -kv) not in reps or (ku, kv) == (-ku, -kv)
    for shape, (rows, cols) in ((shape_a, plan.index_a), (shape_b, plan.index_b)):
        assert (cols <= shape[1] // 2).all() and (rows < shape[0]).all()
    for axis in range(2):  # an axis of different sizes keeps the common frequencies strictly below Nyquist
        if shape_a[axis] != shape_b[axis]:
            assert (np.abs(plan.frequencies[:, axis]) <= (min(shape_a[axis], shape_b[axis]) - 1) // 2).all()


# ---------------------------------------------------------------------------- DFT-CCA maths


@pytest.mark.parametrize(("h", "w"), [(4, 5), (3, 4)])
def test_translation_invariant_data_have_block_diagonal_dft_covariance(h: int, w: int) -> None:
    A, B = invariant_pair(0, 6, 3, 2, h, w)
    coeffs = np.concatenate([np.fft.fft2(A), np.fft.fft2(B)], axis=1)  # (n, C_a + C_b, H, W)
    z = coeffs.reshape(len(A), 5, h * w)
    z = z - z.mean(axis=0)
    cov = np.einsum("nci,ndj->icjd", z.conj(), z)  # frequency i, channel c x frequency j, channel d
    off = cov.copy()
    off[np.arange(h * w), :, np.arange(h * w), :] = 0
    assert np.abs(off).max() < 1e-10 * np.abs(cov).max()
    # the same statistic on data that are not shift-augmented is far from block diagonal
    a, b = layer_pair(np.random.default_rng(0), len(A), 3, 2, h, w)
    z = np.concatenate([np.fft.fft2(a), np.fft.fft2(b)], axis=1).reshape(len(a), 5, h * w)
    z = z - z.mean(axis=0)
    cov = np.einsum("nci,ndj->icjd", z.conj(), z)
    cov[np.arange(h * w), :, np.arange(h * w), :] = 0
    assert np.abs(cov).max() > 1e-2 * np.abs(off).max() + 1e-3


@pytest.mark.parametrize(("h", "w", "c_a", "c_b"), [(4, 5, 3, 2), (3, 4, 2, 3), (4, 4, 3, 3)])
def test_dft_cca_equals_cca_of_flattened_maps_on_translation_invariant_data(h, w, c_a, c_b) -> None:
    A, B = invariant_pair(1, 12, c_a, c_b, h, w)
    res = DFTStats.from_arrays(A, B).result("cca")
    ref = cca_qr(flat(A), flat(B))
    assert res.correlations.shape == ref.correlations.shape == (h * w * min(c_a, c_b),)
    np.testing.assert_allclose(res.correlations, np.sort(ref.correlations)[::-1], atol=1e-8)
    assert res.score == pytest.approx(ref.mean_rho, abs=1e-10)
    # the per-frequency results, weighted by multiplicity, are the gathered ones
    assert sum(c.size * m for c, m in zip(res.per_frequency, res.multiplicity, strict=True)) == res.correlations.size
    assert res.correlation_matrix().shape == (res.frequencies.shape[0], min(c_a, c_b))


def test_dft_cca_differs_from_flattened_cca_without_translation_invariance() -> None:
    a, b = layer_pair(np.random.default_rng(2), 240, 3, 2, 4, 5)
    res = DFTStats.from_arrays(a, b).result()
    ref = cca_qr(flat(a), flat(b))
    assert np.abs(res.correlations - ref.correlations).max() > 1e-3


@pytest.mark.parametrize("keep", ["variance", "singular_values"])
def test_global_svcca_equals_svcca_of_flattened_maps(keep: str) -> None:
    A, B = invariant_pair(3, 12, 3, 3, 4, 4)
    n = len(A)

    def flat_cov(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (flat(x) - flat(x).mean(0)).T @ (flat(y) - flat(y).mean(0)) / (n - 1)

    def parts(eig: np.ndarray) -> np.ndarray:  # what the rule sums: variances or singular values
        return eig if keep == "variance" else np.sqrt(np.clip(eig, 0.0, None))

    cov_aa, cov_bb, cov_ab = flat_cov(A, A), flat_cov(B, B), flat_cov(A, B)
    # choose a threshold at a gap between distinct eigenvalues (mirrored frequencies repeat them)
    eig = np.sort(np.linalg.eigvalsh(cov_aa))[::-1]
    cum = np.cumsum(parts(eig)) / parts(eig).sum()
    gaps = [k for k in range(len(eig) - 1) if eig[k] - eig[k + 1] > 1e-6 * eig[0] and 0.8 < cum[k] < 0.97]
    threshold = float(cum[gaps[0]]) - 1e-9
    eig_b = np.sort(np.linalg.eigvalsh(cov_bb))[::-1]
    cum_b = np.cumsum(parts(eig_b)) / parts(eig_b).sum()
    k_b = int(np.searchsorted(cum_b, threshold - 1e-12))
    assert eig_b[k_b] - eig_b[k_b + 1] > 1e-6 * eig_b[0], "the cut of B must also fall between distinct eigenvalues"
    wa = principal_whitening(cov_aa).top(threshold, keep)  # type: ignore[arg-type]
    wb = principal_whitening(cov_bb).top(threshold, keep)  # type: ignore[arg-type]
    ref = cca_from_whitenings(wa, wb, cov_ab, n_samples=n)
    res = DFTStats.from_arrays(A, B).result("svcca", keep=keep, threshold=threshold)  # type: ignore[arg-type]
    assert (res.keep, res.threshold) == (keep, threshold)
    assert int((res.rank_a * res.multiplicity).sum()) == wa.rank
    assert int((res.rank_b * res.multiplicity).sum()) == wb.rank
    assert res.n_zeros > 0  # kept ranks differ between A and B at some frequencies
    np.testing.assert_allclose(res.correlations, ref.correlations, atol=1e-8)
    assert res.score == pytest.approx(ref.mean_rho, abs=1e-10)
    # per-frequency scope keeps a share of every frequency's spectrum instead
    per_freq = DFTStats.from_arrays(A, B).result(
        "svcca", keep=keep, threshold=threshold, svcca_scope="frequency"  # type: ignore[arg-type]
    )
    assert (per_freq.rank_a >= 1).all() and not np.array_equal(per_freq.rank_a, res.rank_a)


@pytest.mark.parametrize("keep", ["variance", "singular_values"])
def test_dft_svcca_equals_svcca_of_flattened_maps_at_every_threshold(keep: str) -> None:
    """Issue 26.6: a frequency and its mirror give the flattened maps two equal singular values; a cut between them
    kept one arbitrary direction of that eigenspace (0.6 and 0.8 differed by up to 0.03): the rule keeps whole
    eigenspaces, so DFT-SVCCA equals SVCCA of the flattened maps at every threshold."""
    A, B = invariant_pair(0, 25, 3, 2, 4, 4)
    for threshold in (0.5, 0.6, 0.7, 0.8, 0.9, 0.99):
        dft = conv_similarity(A, B, convention="dft", measure="svcca", keep=keep, threshold=threshold)
        ref = ccalens.svcca(flat(A), flat(B), keep=keep, threshold=threshold)  # type: ignore[arg-type]
        # two float64 eigendecompositions of 48 x 48 and 16 blocks of 3 x 3 covariances with mirrored (exactly
        # degenerate) eigenvalues: the spans agree to ~1e3 eps relative, scores to ~1e-9; before the fix they
        # differed by up to 3e-2
        assert dft.score == pytest.approx(ref.score, abs=1e-7), threshold
        assert dft.dft is not None and int(dft.dft.rank_a @ dft.dft.multiplicity) == ref.rank_x


def test_svcca_keeps_whole_eigenspaces_so_it_is_rotation_invariant_at_ties() -> None:
    """Two equal singular values at the cut: SVCCA keeps both, so rotating X inside that eigenspace (or anywhere)
    does not change the score."""
    rng = np.random.default_rng(3)
    n = 2000
    noise = rng.standard_normal((n, 4))
    basis, _ = np.linalg.qr(noise - noise.mean(0))  # centred orthonormal columns
    X = basis * np.array([3.0, 2.0, 2.0, 0.5]) * np.sqrt(n)  # singular values 3, 2, 2, 0.5 (times sqrt(n))
    Y = X[:, [1]] + 0.3 * X[:, [2]] + 0.5 * rng.standard_normal((n, 1))
    Y = np.hstack([Y, rng.standard_normal((n, 2))])
    scores = []
    for seed in range(4):
        rotation, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((4, 4)))
        res = ccalens.svcca(X @ rotation, Y, keep="singular_values", threshold=0.5)
        assert res.rank_x == 3  # the cut at 3 / 7.5 falls inside the tied pair: both kept
        scores.append(res.score)
    np.testing.assert_allclose(scores, scores[0], rtol=1e-9)


def test_dft_svcca_rules_differ() -> None:
    A, B = invariant_pair(3, 12, 3, 3, 4, 4)
    stats = DFTStats.from_arrays(A, B)
    by_sv = stats.result("svcca", threshold=0.9)
    by_var = stats.result("svcca", keep="variance", threshold=0.9)
    # the singular-value rule keeps more directions than the variance rule at the same threshold
    assert (by_sv.rank_a @ by_sv.multiplicity) > (by_var.rank_a @ by_var.multiplicity)
    with pytest.raises(TypeError, match="variance"):
        stats.result("svcca", variance=0.9)  # the old alias is gone: keep= and threshold= only


def test_pwcca_weights_and_score() -> None:
    a, b = layer_pair(np.random.default_rng(4), 300, 4, 3, 6, 6)
    stats = DFTStats.from_arrays(a, b)
    cca, pw = stats.result("cca"), stats.result("pwcca")
    assert pw.pwcca_weights is not None
    total = sum(float(w.sum()) * m for w, m in zip(pw.pwcca_weights, pw.multiplicity, strict=True))
    assert total == pytest.approx(1.0)
    assert all((w >= 0).all() for w in pw.pwcca_weights)
    np.testing.assert_allclose(pw.correlations, cca.correlations)
    assert cca.correlations.min() <= pw.score <= cca.correlations.max()
    assert pw.score != pytest.approx(cca.score, abs=1e-6)
    same = DFTStats.from_arrays(a, a).result("pwcca")
    assert same.score == pytest.approx(1.0, abs=1e-8)


def test_different_spatial_sizes_keep_common_low_frequencies() -> None:
    rng = np.random.default_rng(5)
    a, _ = layer_pair(rng, 200, 3, 2, 8, 8)
    up = np.repeat(np.repeat(a, 2, axis=2), 2, axis=3)  # nearest 2x upsampling: 16 x 16
    res = DFTStats.from_arrays(a, up).result()
    assert res.grid == (7, 7) and res.multiplicity.sum() == 49
    assert (np.abs(res.frequencies) <= 3).all()
    np.testing.assert_allclose(res.correlations, 1.0, atol=1e-8)  # B_f = scalar * A_f below Nyquist
    swapped = DFTStats.from_arrays(up, a).result()
    np.testing.assert_allclose(swapped.correlations, res.correlations, atol=1e-10)
    noisy = DFTStats.from_arrays(a, up + 0.2 * rng.standard_normal(up.shape)).result()
    assert noisy.score > 0.85 and noisy.correlations.min() < 0.999
    with pytest.raises(ValueError, match="same spatial size"):
        conv_similarity(a, up, convention="positions")
    pooled = conv_similarity(a, up, convention="pooled")
    np.testing.assert_allclose(pooled.correlations, 1.0, atol=1e-8)


def test_frequencies_without_variance_give_no_correlations() -> None:
    a, _ = layer_pair(np.random.default_rng(6), 50, 3, 2, 4, 4)
    const = np.broadcast_to(a.mean(axis=(2, 3), keepdims=True), a.shape)  # spatially constant maps
    res = DFTStats.from_arrays(a, const).result()
    dc = np.flatnonzero((res.frequencies == 0).all(axis=1))
    assert [c.size for c in res.per_frequency] == [3 if f in dc else 0 for f in range(len(res.per_frequency))]
    np.testing.assert_allclose(res.correlations, 1.0, atol=1e-8)
    assert np.isnan(res.per_frequency_score).sum() == len(res.per_frequency) - 1


# ---------------------------------------------------------------------------- streaming


def _assert_stats_equal(s: DFTStats, t: DFTStats) -> None:
    assert s.n_samples == t.n_samples
    for name in ("mean_a", "mean_b", "s_aa", "s_bb", "s_ab"):
        x, y = getattr(s, name), getattr(t, name)
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-10 * np.abs(y).max())


def test_dft_stats_batches_merge_and_chunks_equal_one_pass() -> None:
    a, b = layer_pair(np.random.default_rng(7), 90, 3, 4, 5, 6)
    a, b = a + 3.0, 2.0 * b - 1.0  # non-zero means exercise the merge's mean correction
    once = DFTStats.from_arrays(a, b)
    batched = DFTStats()
    for lo, hi in ((0, 7), (7, 40), (40, 41), (41, 90)):
        batched.update(a[lo:hi], b[lo:hi])
    _assert_stats_equal(batched, once)
    merged = DFTStats.from_arrays(a[:30], b[:30]).merge(DFTStats.from_arrays(a[30:], b[30:]))
    _assert_stats_equal(merged, once)
    _assert_stats_equal(DFTStats() + once, once)
    chunked = DFTStats.from_arrays(a, b, chunk_bytes=1)  # one image per internal chunk
    _assert_stats_equal(chunked, once)
    from_batches = DFTStats.from_batches((a[i : i + 16], b[i : i + 16]) for i in range(0, 90, 16))
    _assert_stats_equal(from_batches, once)
    np.testing.assert_allclose(from_batches.result().correlations, once.result().correlations, atol=1e-10)


def test_dft_stats_streaming_errors() -> None:
    a, b = layer_pair(np.random.default_rng(8), 10, 2, 2, 4, 4)
    stats = DFTStats.from_arrays(a, b)
    with pytest.raises(ValueError, match="earlier batches"):
        stats.update(a[:, :, :3], b)
    with pytest.raises(ValueError, match="cannot merge"):
        stats.merge(DFTStats.from_arrays(a[:, :1], b))
    with pytest.raises(TypeError, match="DFTStats"):
        stats.merge(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2 images"):
        DFTStats.from_arrays(a[:1], b[:1]).result()
    with pytest.raises(ValueError, match="empty"):
        DFTStats.from_batches([])
    with pytest.raises(ValueError, match="A has no variance"):
        DFTStats.from_arrays(np.ones_like(a), b).result()


@pytest.mark.parametrize("convention", ["positions", "pooled"])
def test_spatial_stats_stream_and_match_the_core(convention: str) -> None:
    a, b = layer_pair(np.random.default_rng(9), 60, 3, 4, 5, 5)
    once = conv_similarity(a, b, convention=convention)
    if convention == "positions":
        x, y = np.moveaxis(a, 1, 3).reshape(-1, 3), np.moveaxis(b, 1, 3).reshape(-1, 4)
    else:
        x, y = a.mean(axis=(2, 3)), b.mean(axis=(2, 3))
    ref = cca_qr(x, y)
    assert once.n_samples == x.shape[0]
    np.testing.assert_allclose(once.correlations, ref.correlations, atol=1e-8)
    batched = conv_similarity(a, b, convention=convention, batch_size=7)
    np.testing.assert_allclose(batched.correlations, once.correlations, atol=1e-10)
    s1, s2 = SpatialStats(convention).update(a[:25], b[:25]), SpatialStats(convention).update(a[25:], b[25:])
    merged = s1.merge(s2).result()
    np.testing.assert_allclose(merged.correlations, once.correlations, atol=1e-10)
    assert s1.merge(s2).n_images == 60
    streamed = conv_similarity_from_batches(
        ((a[i : i + 9], b[i : i + 9]) for i in range(0, 60, 9)), convention=convention
    )
    np.testing.assert_allclose(streamed.correlations, once.correlations, atol=1e-10)


# ---------------------------------------------------------------------------- invariances


@pytest.mark.parametrize("convention", ["positions", "pooled", "dft"])
@pytest.mark.parametrize("measure", ["cca", "pwcca"])
def test_self_similarity_is_one(convention: str, measure: str) -> None:
    a, _ = layer_pair(np.random.default_rng(10), 80, 4, 2, 5, 4)
    res = conv_similarity(a, a, convention=convention, measure=measure)
    np.testing.assert_allclose(res.correlations, 1.0, atol=1e-8)
    assert res.score == pytest.approx(1.0, abs=1e-8)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), convention=st.sampled_from(["positions", "pooled", "dft"]))
def test_channel_permutation_and_invertible_mixing_leave_cca_unchanged(seed: int, convention: str) -> None:
    rng = np.random.default_rng(seed)
    a, b = layer_pair(rng, 60, 3, 4, 4, 5)
    base = conv_similarity(a, b, convention=convention)
    perm = rng.permutation(3)
    mix = rng.standard_normal((4, 4)) + 2 * np.eye(4)  # invertible channel mixing of B
    mixed = np.einsum("oc,nchw->nohw", mix, b)
    other = conv_similarity(a[:, perm], mixed, convention=convention)
    np.testing.assert_allclose(other.correlations, base.correlations, atol=1e-7)


def test_measure_svcca_positions_and_pooled_keep_top_variance() -> None:
    rng = np.random.default_rng(11)
    a, b = layer_pair(rng, 80, 6, 6, 4, 4)
    full = conv_similarity(a, b, convention="positions", measure="cca")
    sv = conv_similarity(a, b, convention="positions", measure="svcca", keep="variance", threshold=0.6)
    assert sv.rank_x is not None and full.rank_x is not None and sv.rank_x < full.rank_x
    assert sv.correlations is not None and full.correlations is not None
    assert sv.correlations.size < full.correlations.size
    assert (sv.details["keep"], sv.details["threshold"]) == ("variance", 0.6)
    dft_sv = conv_similarity(a, b, convention="dft", measure="svcca", keep="variance", threshold=0.6)
    assert (
        dft_sv.dft is not None and dft_sv.correlations.size < conv_similarity(a, b, convention="dft").correlations.size
    )


# ---------------------------------------------------------------------------- layouts and validation


@pytest.mark.parametrize("convention", ["positions", "pooled", "dft"])
def test_nhwc_layout_gives_the_same_result(convention: str) -> None:
    a, b = layer_pair(np.random.default_rng(12), 40, 3, 2, 4, 6)
    nchw = conv_similarity(a, b, convention=convention, layout="NCHW")
    nhwc = conv_similarity(np.moveaxis(a, 1, 3), np.moveaxis(b, 1, 3), convention=convention, layout="NHWC")
    np.testing.assert_allclose(nhwc.correlations, nchw.correlations, atol=1e-10)
    # reading NHWC data as NCHW is a different (wrong) layout: an error or a different answer
    if convention == "positions":
        with pytest.raises(ValueError, match="same spatial size"):
            conv_similarity(np.moveaxis(a, 1, 3), np.moveaxis(b, 1, 3), convention=convention, layout="NCHW")
    else:
        wrong = conv_similarity(np.moveaxis(a, 1, 3), np.moveaxis(b, 1, 3), convention=convention, layout="NCHW")
        assert wrong.correlations.shape != nchw.correlations.shape or not np.allclose(
            wrong.correlations, nchw.correlations
        )


def test_validation_errors_name_the_argument() -> None:
    a, b = layer_pair(np.random.default_rng(13), 10, 2, 3, 4, 4)
    for bad in ("nchw", "CHW", None, 4):
        with pytest.raises(ValueError, match="layout"):
            conv_similarity(a, b, convention="dft", layout=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="layout"):
            DFTStats(layout=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="convention"):
        conv_similarity(a, b, convention="flatten")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="measure"):
        conv_similarity(a, b, convention="dft", measure="cka")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        conv_similarity(a, b, convention="pooled", measure="svcca", threshold=1.5)
    with pytest.raises(ValueError, match="keep"):
        conv_similarity(a, b, convention="pooled", measure="svcca", keep="energy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="svcca_scope"):
        conv_similarity(a, b, convention="dft", measure="svcca", svcca_scope="layer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="A must be 4-D"):
        conv_similarity(a[0], b[0], convention="dft")
    with pytest.raises(ValueError, match="B must be 4-D"):
        DFTStats().update(a, b.reshape(10, -1))
    with pytest.raises(ValueError, match="A has 9 and B has 10"):
        conv_similarity(a[:9], b, convention="pooled")
    nan = a.copy()
    nan[3, 1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"A contains 1 NaN/Inf value\(s\); first at index \(3, 1, 2, 0\)"):
        conv_similarity(nan, b, convention="dft")
    inf = b.copy()
    inf[0, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="B contains"):
        SpatialStats("positions").update(a, inf)
    with pytest.raises(TypeError, match="real-valued"):
        conv_similarity(a.astype(complex), b, convention="dft")
    with pytest.raises(ValueError, match="SpatialStats handles"):
        SpatialStats("dft")
    with pytest.raises(ValueError, match="batch_size"):
        conv_similarity(a, b, convention="dft", batch_size=0)
    with pytest.raises(ValueError, match="empty"):
        conv_similarity_from_batches([], convention="pooled")


def test_channel_counts_may_differ_and_inputs_may_be_float32_or_torch() -> None:
    a, b = layer_pair(np.random.default_rng(14), 50, 2, 5, 4, 4)
    ref = conv_similarity(a, b, convention="dft")
    assert ref.correlations.size == 16 * 2
    f32 = conv_similarity(a.astype(np.float32), b.astype(np.float32), convention="dft")
    np.testing.assert_allclose(f32.correlations, ref.correlations, atol=1e-5)
    torch = pytest.importorskip("torch")
    tt = conv_similarity(torch.from_numpy(a), torch.from_numpy(b), convention="dft", batch_size=16)
    np.testing.assert_allclose(tt.correlations, ref.correlations, atol=1e-10)
    assert isinstance(conv_stats("dft"), DFTStats) and isinstance(conv_stats("pooled"), SpatialStats)


def test_too_few_images_per_frequency_warn() -> None:
    a, b = layer_pair(np.random.default_rng(15), 6, 4, 4, 4, 4)
    with pytest.warns(UnderdeterminedWarning, match="frequencies"):
        DFTStats.from_arrays(a, b).result()
    a, b = layer_pair(np.random.default_rng(15), 60, 4, 4, 4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnderdeterminedWarning)
        DFTStats.from_arrays(a, b).result()
    with pytest.warns(UnderdeterminedWarning):
        conv_similarity(a[:6], b[:6], convention="pooled")


@pytest.mark.parametrize("convention", ["positions", "pooled", "dft"])
def test_conv_results_are_similarity_results(convention: str) -> None:
    import json

    a, b = layer_pair(np.random.default_rng(14), 60, 3, 4, 4, 4)
    for measure in ("cca", "svcca", "pwcca"):
        res = conv_similarity(a, b, convention=convention, measure=measure)  # type: ignore[arg-type]
        assert isinstance(res, SimilarityResult) and res.convention == convention and res.measure == measure
        assert res.rank_x is not None and res.rank_y is not None and res.rank_x >= 1
        assert res.correlations is not None and res.correlations.size == min(res.rank_x, res.rank_y)
        d = json.loads(json.dumps(res.to_dict()))
        assert d["convention"] == convention and d["rank_x"] == res.rank_x
        assert ("per_frequency" in d) == (convention == "dft")
        if measure == "pwcca" and convention != "dft":
            assert res.weights is not None and res.weights.sum() == pytest.approx(1.0)
    with pytest.raises(TypeError):
        type(res)(measure="cca", score=1.0)  # type: ignore[call-arg]  # convention is required
