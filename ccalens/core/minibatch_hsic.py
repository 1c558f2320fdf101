"""One minibatch's arithmetic for minibatch CKA (:mod:`ccalens.core.minibatch`): its Grams and their HSIC_1.

The linear and Gaussian Grams of one minibatch of rows, the ``(L, L)`` unbiased HSIC_1 (Song et al. 2012) of every
pair of them, and the power-of-two scale that keeps the sums accurate for any float64 magnitude.
"""

from __future__ import annotations

import numpy as np

from .bandwidth import squared_distances

__all__ = ["MIN_BATCH", "linear_gram", "power_of_two_scale", "rbf_gram", "unbiased_hsic_matrix"]

MIN_BATCH = 4  # HSIC_1 divides by m (m - 3)


def power_of_two_scale(block: np.ndarray) -> float:
    """The power of two at or below ``max |block|`` (1 for zeros): dividing by it loses no digits."""
    peak = float(np.max(np.abs(block))) if block.size else 0.0
    # peak / scale in [1, 2); 2^(e - 1) stays finite for the largest float64
    return float(np.ldexp(1.0, int(np.frexp(peak)[1]) - 1)) if peak > 0.0 else 1.0


def linear_gram(block: np.ndarray, out: np.ndarray) -> None:
    """``out: (m, m)`` = the linear Gram of the column-centred ``block: (m, d)``."""
    centred = block - block.mean(axis=0)  # HSIC_1 is unchanged; the Gram loses no digits to offsets
    np.dot(centred, centred.T, out=out)


def rbf_gram(block: np.ndarray, sigma: float, out: np.ndarray) -> None:
    """``K - 1`` of the Gaussian kernel, times ``max(1, 2 sigma^2)`` (a constant per representation).

    HSIC_1 ignores the constant; the factor keeps full precision for bandwidths far wider than the data
    (``expm1(-t) / t -> -1``) and cancels in CKA because every minibatch uses the same one.
    """
    D = squared_distances(block - block.mean(axis=0), out=out)
    rate = 0.5 / sigma / sigma
    D *= -rate
    np.expm1(D, out=D)
    if rate < 1.0:
        D /= rate


def unbiased_hsic_matrix(grams: np.ndarray) -> np.ndarray:
    """``(L, L)`` HSIC_1 of the Grams ``grams: (L, m, m)`` (m >= 4; their diagonals are overwritten with 0)."""
    L, m, _ = grams.shape
    for gram in grams:
        np.fill_diagonal(gram, 0.0)
    flat = grams.reshape(L, m * m)
    traces = flat @ flat.T  # tr(K_i K_j) for symmetric Grams
    row_sums = grams.sum(axis=2)  # K_i 1
    totals = row_sums.sum(axis=1)  # 1' K_i 1
    return (
        traces + np.outer(totals, totals) / ((m - 1) * (m - 2)) - (2.0 / (m - 2)) * (row_sums @ row_sums.T)
    ) / (m * (m - 3))
