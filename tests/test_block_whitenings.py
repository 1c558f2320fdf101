"""One cut-off for a block-diagonal covariance (DFT-CCA's frequencies) and one merge term, shared with the dense
engine."""

from __future__ import annotations

import numpy as np
import pytest

from ccalens.core.linalg import principal_block_whitenings, principal_whitening
from ccalens.core.stats import SufficientStats, add_merge_correction


def _spd(rng: np.random.Generator, d: int, scale: float, complex_: bool = False) -> np.ndarray:
    A = rng.standard_normal((3 * d, d)) + (1j * rng.standard_normal((3 * d, d)) if complex_ else 0)
    return scale * (A.conj().T @ A) / (3 * d)


@pytest.mark.parametrize("complex_", [False, True])
def test_blocks_are_cut_relative_to_the_largest_eigenvalue_of_all_blocks(complex_: bool) -> None:
    rng = np.random.default_rng(0)
    big, small = _spd(rng, 4, 1.0, complex_), _spd(rng, 3, 1e-12, complex_)
    alone = principal_whitening(small, tol=1e-10)
    assert alone.rank == 3  # on its own nothing is below 1e-10 of its largest
    wb, ws = principal_block_whitenings([big, small], tol=1e-10, names=["A f0", "A f1"])
    assert ws is None and wb is not None and wb.rank == 4  # with the big block beside it, all of it is
    # the block-diagonal matrix whitened whole keeps the same directions
    whole = np.zeros((7, 7), dtype=big.dtype)
    whole[:4, :4], whole[4:, 4:] = big, small
    assert principal_whitening(whole, tol=1e-10).rank == 4
    # one block alone is principal_whitening itself
    (one,) = principal_block_whitenings([big], tol=1e-10, names=["A"])
    assert one is not None
    np.testing.assert_allclose(one.eigenvalues, principal_whitening(big).eigenvalues, rtol=1e-12)
    with pytest.raises(ValueError, match="names has 1"):
        principal_block_whitenings([big, small], names=["A"])
    with pytest.raises(ValueError, match="A f0 has no variance"):
        principal_block_whitenings([np.zeros((2, 2)), np.zeros((2, 2))], names=["A f0", "A f1"])


def test_merge_correction_is_the_comoment_of_the_union() -> None:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 3)) + 1j * rng.standard_normal((50, 3)) + 2.0
    Y = rng.standard_normal((50, 2)) - 1.0
    a, b = slice(0, 20), slice(20, 50)

    def co(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return (u - u.mean(0)).conj().T @ (v - v.mean(0))

    merged = co(X[a], Y[a]) + co(X[b], Y[b])
    add_merge_correction(merged, 20, 30, X[b].mean(0) - X[a].mean(0), Y[b].mean(0) - Y[a].mean(0))
    np.testing.assert_allclose(merged, co(X, Y), atol=1e-12 * 50)
    # the real engine's merge uses the same term
    Z = rng.standard_normal((40, 4)) * 3 + 5
    parts = SufficientStats.from_arrays(Z[:15]).merge(SufficientStats.from_arrays(Z[15:]))
    np.testing.assert_allclose(parts.covariance(0), np.cov(Z.T), atol=1e-12 * 40 * 25)


def test_no_variance_names_what_the_caller_compares() -> None:
    """The caller's wording when no block has variance (DFT-CCA: channels over images), the engine's otherwise;
    NaN in a block is still named by the whitening, not dropped as a block without variance."""
    zero = [np.zeros((2, 2)), np.zeros((3, 3))]
    with pytest.raises(ValueError, match=r"^X has no variance: every feature is constant over the samples"):
        principal_block_whitenings(zero, names=["X", "X"])
    with pytest.raises(ValueError, match=r"^A has no variance: every channel is constant over the images"):
        principal_block_whitenings(zero, names=["A f0", "A f1"], no_variance="A has no variance: every channel is "
                                   "constant over the images")
    bad = np.eye(2)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="A f1 contains NaN"):
        principal_block_whitenings([np.eye(2), bad], names=["A f0", "A f1"])
