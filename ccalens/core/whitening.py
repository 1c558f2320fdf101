"""Whitening of one representation from its covariance, with a relative eigenvalue cut-off.

CCA needs ``Sxx^-1/2``. It is never formed by inverting the covariance: the covariance is
eigendecomposed, eigenvalues below ``tol * largest`` are dropped (numerically, those directions carry
no variance: constant or duplicated neurons, rank-deficient layers, n <= d), and the whitener acts on
the kept principal directions only. This is a PCA that keeps all but a negligible fraction of the
variance; SVCCA's step of keeping the top directions that explain 99% of the variance is
:meth:`Whitening.top_variance`.

Works for real symmetric and complex Hermitian covariances (the latter for DFT-CCA).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_TOL", "Whitening", "whiten"]

#: Relative eigenvalue cut-off: directions whose variance is below ``DEFAULT_TOL`` times the largest
#: variance are dropped (standard deviation below 1e-5 of the largest). Rounding noise of float32
#: features (relative 1e-7, variance 1e-14) falls below it; real low-variance signal rarely does.
DEFAULT_TOL = 1e-10


@dataclass(frozen=True)
class Whitening:
    """Eigendecomposition of a covariance and the subspace kept.

    Attributes:
        eigenvalues: ``(r,)`` kept variances, descending.
        eigenvectors: ``(d, r)`` kept principal directions (orthonormal columns).
        n_features: d.
        total_variance: trace of the covariance (all directions, kept or not).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    n_features: int
    total_variance: float

    @property
    def rank(self) -> int:
        return int(self.eigenvalues.shape[0])

    @property
    def whitener(self) -> np.ndarray:
        """``W: (d, r)`` with ``W^H S W = I``: whitened data are ``(X - mean) @ W``."""
        return self.eigenvectors / np.sqrt(self.eigenvalues)

    @property
    def dewhitener(self) -> np.ndarray:
        """``D: (d, r) = S W``, the pseudo-inverse of ``W^H``: ``X - mean ~= Z @ D^H`` on the kept subspace."""
        return self.eigenvectors * np.sqrt(self.eigenvalues)

    @property
    def explained_variance(self) -> float:
        """Fraction of the total variance in the kept directions."""
        return float(self.eigenvalues.sum() / self.total_variance)

    def top_variance(self, fraction: float) -> Whitening:
        """The smallest set of top principal directions explaining ``fraction`` of the total variance.

        SVCCA's preprocessing (Raghu et al. 2017 keep 99%: ``fraction=0.99``).
        """
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"variance fraction must be in (0, 1], got {fraction}")
        cumulative = np.cumsum(self.eigenvalues) / self.total_variance
        # first index where the cumulative fraction reaches the target (with a rounding margin)
        keep = int(np.searchsorted(cumulative, fraction - 1e-12)) + 1
        keep = min(keep, self.rank)
        return Whitening(self.eigenvalues[:keep], self.eigenvectors[:, :keep], self.n_features, self.total_variance)


def whiten(covariance: np.ndarray, *, tol: float = DEFAULT_TOL, name: str = "X") -> Whitening:
    """Whitening of a covariance ``(d, d)`` (real symmetric or complex Hermitian).

    Raises ``ValueError`` naming ``name`` if the representation has no variance at all.
    """
    if not 0.0 <= tol < 1.0:
        raise ValueError(f"tol must be in [0, 1), got {tol}")
    cov = np.asarray(covariance)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"covariance of {name} must be square, got shape {cov.shape}")
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    eigenvalues = eigenvalues[::-1]
    eigenvectors = eigenvectors[:, ::-1]
    largest = float(eigenvalues[0]) if eigenvalues.size else 0.0
    total = float(np.real(np.trace(cov)))
    if not largest > 0.0 or not np.isfinite(largest):
        raise ValueError(
            f"{name} has no variance: every feature is constant over the samples, so no correlation "
            "with it is defined"
        )
    keep = int(np.count_nonzero(eigenvalues > tol * largest))
    return Whitening(
        eigenvalues=np.ascontiguousarray(eigenvalues[:keep]),
        eigenvectors=np.ascontiguousarray(eigenvectors[:, :keep]),
        n_features=cov.shape[0],
        total_variance=max(total, float(eigenvalues[:keep].sum())),
    )
