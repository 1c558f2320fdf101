"""CCA, SVCCA and PWCCA of one pair of covariance blocks (real, or complex Hermitian per frequency)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ccalens.core.linalg import Whitening, cca_from_whitenings
from ccalens.core.validation import SvccaRule

__all__ = ["MEASURES", "BlockResult", "Measure", "block_measure", "check_measure"]

Measure = Literal["cca", "svcca", "pwcca"]
MEASURES: tuple[str, ...] = ("cca", "svcca", "pwcca")


def check_measure(measure: object, threshold: float, keep: str = "singular_values") -> str:
    if not isinstance(measure, str) or measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    SvccaRule(keep, threshold)  # the one validation of SVCCA's rule
    return measure


@dataclass(frozen=True)
class BlockResult:
    """Canonical correlations ``(k,)`` of one block pair and, for PWCCA, the weights ``(k,)`` (else None)."""

    correlations: np.ndarray
    pwcca_weights: np.ndarray | None


def block_measure(
    wx: Whitening, wy: Whitening, cov_xx: np.ndarray, cov_xy: np.ndarray, *, n_samples: int, pwcca: bool
) -> BlockResult:
    """CCA of the kept subspaces of ``wx`` and ``wy`` given ``cov_xy: (p, q)``.

    PWCCA weights (Morcos et al. 2018): ``alpha_i = sum_j |cov(x_j, h_i)|`` with ``h_i`` the i-th canonical
    variate of X (unit variance) and ``x_j`` the j-th feature of X; from the statistics,
    ``cov(x, h_i) = cov_xx @ x_weights[:, i]``. They are not normalised here (the caller normalises over
    everything it aggregates).
    """
    res = cca_from_whitenings(wx, wy, cov_xy, n_samples=n_samples)
    weights = np.abs(cov_xx @ res.x_weights).sum(axis=0) if pwcca else None
    return BlockResult(res.correlations, weights)
