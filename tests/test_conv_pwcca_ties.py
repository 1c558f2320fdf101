"""DFT-PWCCA's weights at tied correlations: the dense path's tie groups, over the frequencies' complex blocks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from ccalens.conv import DFTStats
from ccalens.core.measures.definitions import PWCCA_TIE, mean_abs_coordinate, tie_bounds


def rotated_copy_pair(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """B's first 4 channels are a rotation of A's first 4: at every frequency four canonical correlations are 1."""
    rng = np.random.default_rng(seed)
    a = np.einsum("nchw,dc->ndhw", rng.standard_normal((n, 6, 5, 5)), rng.standard_normal((6, 6)))
    Q = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    b = np.concatenate(
        [np.einsum("nchw,dc->ndhw", a[:, :4], Q), 0.5 * a[:, 4:5] + rng.standard_normal((n, 1, 5, 5))], axis=1
    )
    return a, b


def test_dft_pwcca_at_tied_correlations_does_not_depend_on_round_off() -> None:
    """Before the tie groups the score moved by 3e-4 when the images were reordered (the tied eigenbasis is
    round-off); now by rounding only."""
    a, b = rotated_copy_pair()
    reference = DFTStats.from_arrays(a, b).result("pwcca")
    assert all(np.sum(c > 1 - 1e-9) == 4 for c in reference.per_frequency)
    for seed in range(4):
        perm = np.random.default_rng(seed).permutation(a.shape[0])
        assert DFTStats.from_arrays(a[perm], b[perm]).result("pwcca").score == pytest.approx(reference.score, abs=1e-10)
    assert reference.pwcca_weights is not None
    tied = np.concatenate([w[:4] for w in reference.pwcca_weights])
    assert np.ptp(tied) == pytest.approx(0.0, abs=1e-15)  # one group: one weight


def test_dft_pwcca_weights_follow_the_definition() -> None:
    """Brute force from the DFT coefficients: the group of the 4F correlations at 1 (F kept frequencies) weighs
    E|u_1| (complex sphere of C^4F) times sum_f,j ||P x_j|| with P the projection on A's first four channels at f;
    each frequency's fifth correlation weighs Morcos's sum_j |cov(x_j, h_5)|."""
    a, b = rotated_copy_pair()
    stats = DFTStats.from_arrays(a, b)
    res = stats.result("pwcca")
    plan = stats.plan
    assert plan is not None
    n = a.shape[0]

    def coefficients(x: np.ndarray, index: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        c = scipy.fft.rfft2(x, axes=(-2, -1))[:, :, index[0], index[1]].transpose(2, 0, 1)  # (F, n, C)
        return c - c.mean(axis=1, keepdims=True)

    ca, cb = coefficients(a, plan.index_a), coefficients(b, plan.index_b)
    F = ca.shape[0]
    group_norm, fifth_weight, fifth_rho = 0.0, np.zeros(F), np.zeros(F)
    for f in range(F):
        Saa = ca[f].conj().T @ ca[f] / (n - 1)
        Sbb = cb[f].conj().T @ cb[f] / (n - 1)
        Sab = ca[f].conj().T @ cb[f] / (n - 1)
        S44 = Saa[:4, :4]
        group_norm += np.sqrt(np.real(np.einsum("jk,kl,lj->j", Saa[:, :4], np.linalg.inv(S44), Saa[:4, :]))).sum()
        va, Ea = np.linalg.eigh(Saa)
        vb, Eb = np.linalg.eigh(Sbb)
        Wa, Wb = Ea / np.sqrt(va), Eb / np.sqrt(vb)
        U, s, _ = np.linalg.svd(Wa.conj().T @ Sab @ Wb)
        fifth_rho[f] = s[4]
        fifth_weight[f] = np.abs(Saa @ Wa @ U[:, 4]).sum()
    assert len(np.unique(np.round(fifth_rho, 6))) == F  # the fifth correlations are untied
    per_tied = group_norm * float(mean_abs_coordinate(4 * F, "complex"))
    m = res.multiplicity
    total = float(m @ (4 * per_tied + fifth_weight))
    expected = float(m @ (4 * per_tied + fifth_weight * fifth_rho)) / total
    assert res.score == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("m", [1, 2, 5, 30])
def test_complex_sphere_mean_abs_coordinate_by_simulation(m: int) -> None:
    rng = np.random.default_rng(m)
    z = rng.standard_normal((200_000, m)) + 1j * rng.standard_normal((200_000, m))
    draws = np.abs(z[:, 0]) / np.linalg.norm(z, axis=1)
    se = draws.std() / np.sqrt(draws.size)
    assert float(mean_abs_coordinate(m, "complex")) == pytest.approx(draws.mean(), abs=5 * se + 1e-12)
    assert float(mean_abs_coordinate(1, "complex")) == pytest.approx(1.0, abs=1e-15)
    with pytest.raises(ValueError, match="field"):
        mean_abs_coordinate(m, "quaternion")


def test_tie_bounds_group_within_the_tolerance() -> None:
    squared = np.array([1.0, 1.0 - PWCCA_TIE / 2, 0.5, 0.5, 0.5 - 10 * PWCCA_TIE, 0.0])
    np.testing.assert_array_equal(tie_bounds(squared), [0, 2, 4, 5, 6])
    np.testing.assert_array_equal(tie_bounds(np.zeros(0)), [0])
