"""Linear CKA of conv maps by Parseval (ccalens.conv.dft_linear_cka) and the null of DFT-CCA cells."""

from __future__ import annotations

import numpy as np
import pytest
from numerics import assert_close_computed_two_ways
from test_conv import all_shifts, flat, invariant_pair, layer_pair

from ccalens.conv import conv_similarity, dft_linear_cka, dft_null_mean_rho
from ccalens.core.measures import linear_cka
from ccalens.core.null import null_mean_rho


def _terms_k(A: np.ndarray, B: np.ndarray) -> int:
    """Terms summed along the longest chain: an FFT over H*W positions, then a co-moment over the N images, then a
    Frobenius norm over the C_a*C_b*H*W entries (each norm is a sum of squares; CKA takes three of them)."""
    n, c_a = A.shape[:2]
    c_b, hw = B.shape[1], int(np.prod(A.shape[2:]))
    return 3 * (hw + n + c_a * max(c_a, c_b) * hw)


@pytest.mark.parametrize(("h", "w", "c_a", "c_b"), [(4, 5, 3, 2), (3, 4, 2, 3), (4, 4, 3, 3)])
def test_dft_linear_cka_equals_flattened_linear_cka_on_shift_augmented_data(h, w, c_a, c_b) -> None:
    A, B = invariant_pair(4, 10, c_a, c_b, h, w)
    got = dft_linear_cka(A, B)
    ref = linear_cka(flat(A), flat(B)).score
    assert got.measure == "linear_cka" and got.details["convention"] == "dft"
    assert 0.05 < ref < 0.999  # a case where the test can fail
    assert_close_computed_two_ways(got.score, ref, dtype=np.float64, k=_terms_k(A, B), scale=1.0)
    assert got.distance == pytest.approx(np.arccos(got.score))


def test_dft_linear_cka_of_a_map_and_a_vector_equals_flattened_cka_on_shift_augmented_data() -> None:
    a, _ = layer_pair(np.random.default_rng(5), 10, 3, 2, 4, 5)
    v = np.tanh(a.mean(axis=(2, 3)) @ np.random.default_rng(6).standard_normal((3, 4))) + 0.2 * np.random.default_rng(
        7).standard_normal((10, 4))
    A = all_shifts(a)
    V = np.repeat(v, 4 * 5, axis=0)  # a vector does not move when the image is shifted
    ref = linear_cka(flat(A), V).score
    for got in (dft_linear_cka(A, V).score, dft_linear_cka(V, A).score):
        assert_close_computed_two_ways(got, ref, dtype=np.float64, k=_terms_k(A, A), scale=1.0)


def _brute_force_block_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Every frequency of the full two-sided fft2 grid, one loop iteration each (equal spatial sizes)."""
    fa, fb = np.fft.fft2(a), np.fft.fft2(b)  # (n, C, H, W) complex
    cross = self_a = self_b = 0.0
    for i in range(a.shape[2]):
        for j in range(a.shape[3]):
            za = fa[:, :, i, j] - fa[:, :, i, j].mean(axis=0)
            zb = fb[:, :, i, j] - fb[:, :, i, j].mean(axis=0)
            cross += np.linalg.norm(za.conj().T @ zb) ** 2
            self_a += np.linalg.norm(za.conj().T @ za) ** 2
            self_b += np.linalg.norm(zb.conj().T @ zb) ** 2
    return float(cross / np.sqrt(self_a * self_b))


@pytest.mark.parametrize(("h", "w"), [(4, 5), (4, 4), (3, 3)])
def test_dft_linear_cka_on_random_data_is_the_sum_over_frequency_blocks(h: int, w: int) -> None:
    rng = np.random.default_rng(h * w)
    a, b = rng.standard_normal((30, 3, h, w)), rng.standard_normal((30, 2, h, w))
    b[:, 0] += a[:, 1]
    got = dft_linear_cka(a, b, batch_size=7).score  # several batches: merged statistics
    assert_close_computed_two_ways(got, _brute_force_block_cka(a, b), dtype=np.float64, k=_terms_k(a, b), scale=1.0)
    # not the flattened CKA: these data are not translation invariant
    assert abs(got - linear_cka(flat(a), flat(b)).score) > 1e-2


def test_dft_linear_cka_properties_with_different_spatial_sizes() -> None:
    rng = np.random.default_rng(11)
    a = rng.standard_normal((40, 3, 6, 6))
    b = a[:, :2, ::2, ::2] + 0.5 * rng.standard_normal((40, 2, 3, 3))
    s = dft_linear_cka(a, b)
    assert 0 < s.score < 1 and s.details["grid"] == (3, 3)
    assert dft_linear_cka(b, a).score == pytest.approx(s.score, rel=1e-12)
    q = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    rotated = 2.5 * np.einsum("dc,nchw->ndhw", q, a)  # orthogonal mixing of channels and isotropic scaling
    assert dft_linear_cka(rotated, b).score == pytest.approx(s.score, rel=1e-10)
    assert dft_linear_cka(a, a).score == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(
        dft_linear_cka(np.moveaxis(a, 1, -1), np.moveaxis(b, 1, -1), layout="NHWC").score, s.score, rtol=1e-12)


def test_dft_linear_cka_rejects_bad_input() -> None:
    a = np.random.default_rng(0).standard_normal((5, 2, 3, 3))
    with pytest.raises(ValueError, match="batch_size"):
        dft_linear_cka(a, a, batch_size=0)
    with pytest.raises(ValueError, match="no variance"):
        dft_linear_cka(np.ones_like(a), a)
    with pytest.raises(ValueError):
        dft_linear_cka(a, a[:4])


def test_dft_cells_carry_their_null_mean_rho() -> None:
    """Before: DFT-CCA results had null_mean_rho None, so the two-initialisation figure left DFT cells blank."""
    a, b = layer_pair(np.random.default_rng(8), 200, 3, 2, 4, 5)
    res = conv_similarity(a, b, convention="dft", measure="svcca")
    assert res.null_mean_rho is not None and 0 < res.null_mean_rho < res.score
    d = res.dft
    assert d is not None
    expected = sum(m * min(ra, rb) * null_mean_rho(d.n_samples, int(ra), int(rb))
                   for ra, rb, m in zip(d.rank_a, d.rank_b, d.multiplicity, strict=True) if ra and rb)
    assert res.null_mean_rho == pytest.approx(expected / d.correlations.size, rel=1e-12)
    # 1 x 1 maps: a single real frequency, the dense null exactly
    x, y = a.mean(axis=(2, 3))[:, :, None, None], b.mean(axis=(2, 3))[:, :, None, None]
    one = conv_similarity(x, y, convention="dft", measure="cca")
    assert one.null_mean_rho == pytest.approx(null_mean_rho(200, 3, 2), rel=1e-12)
    assert dft_null_mean_rho(one.dft) == one.null_mean_rho  # type: ignore[arg-type]


def test_conv_similarity_takes_linear_cka_under_the_fourier_convention() -> None:
    """Linear CKA has a DFT form (the registry's Parseval measures): conv_similarity(convention='dft') gives it for
    two maps and for a map against a vector (a 1 x 1 map), with the result of dft_linear_cka."""
    from ccalens.conv import PARSEVAL_MEASURES

    assert PARSEVAL_MEASURES == ("linear_cka",)
    a, b = layer_pair(np.random.default_rng(3), 150, 3, 2, 4, 4)
    res = conv_similarity(a, b, convention="dft", measure="linear_cka")
    assert res.convention == "dft" and res.measure == "linear_cka"
    assert res.score == pytest.approx(dft_linear_cka(a, b).score, rel=1e-12)
    v = b.mean(axis=(2, 3))
    assert conv_similarity(a, v, convention="dft", measure="linear_cka").score == pytest.approx(
        dft_linear_cka(a, v).score, rel=1e-12)
    with pytest.raises(ValueError, match="measure must be one of"):
        conv_similarity(a, b, convention="pooled", measure="linear_cka")
