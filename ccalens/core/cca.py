"""Canonical correlation analysis with full results, from sufficient statistics or by QR.

Two paths, one result type:

* eigh path (:func:`cca_from_covariances`, ``CCA(method="eigh")``): whiten each side from its covariance
  (:mod:`ccalens.core.whitening`: eigendecomposition with a relative cut-off, or a Cholesky factor where
  the covariance is so well conditioned that the cut-off cannot drop anything), then SVD of the whitened
  cross-covariance ``M = Wx^H Sxy Wy``. Needs only the sufficient statistics, so it streams and merges.
* QR path (:func:`cca_qr`, ``CCA(method="qr")``): QR of the centred data, then SVD of ``Qx^H Qy``. Exact
  reference when the data fit in memory (no squaring of the condition number).

Both paths keep the same directions: the eigh path drops covariance eigenvalues below ``tol`` times the
largest, the QR path singular values of R (those of the centred data) below ``sqrt(tol)`` times the largest,
and ``sigma_i^2 = (n - 1) lambda_i``. With ``standardize=True`` (the default: CCA does not change when a neuron
is rescaled, so neither may its cut-off) both cut on the standardised features instead: the eigenvalues of
the correlation matrix, or the singular values of the centred data with unit-norm columns.

Canonical weights are scaled so that canonical variates have unit sample variance (divisor n - 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.linalg

from .stats import SufficientStats
from .threads import MIN_PARALLEL_WIDTH, run_tasks
from .validation import check_features, check_paired, warn_if_underdetermined
from .whitening import DEFAULT_TOL, QR_ADVICE, CholeskyWhitening, Whitening, warn_if_cut_drops_signal, whiten

__all__ = ["CCAResult", "cca_from_covariances", "cca_from_stats", "cca_from_whitenings", "cca_qr"]


@dataclass(frozen=True)
class CCAResult:
    """Canonical correlation analysis of ``X: (n, p)`` and ``Y: (n, q)``.

    Attributes:
        correlations: ``(k,)`` canonical correlations, descending, ``k = min(rank_x, rank_y)``.
        x_weights: ``(p, k)`` canonical directions of X: variates ``(X - x_mean) @ x_weights``.
        y_weights: ``(q, k)`` canonical directions of Y.
        x_basis: ``(rank_x, p)`` basis change ``B_x`` from centred X to canonical coordinates: its first
            k rows are ``x_weights.T``, the remaining ``rank_x - k`` complete the basis (correlation 0).
        x_basis_pinv: ``(p, rank_x)`` pseudo-inverse of ``x_basis``.
        y_basis, y_basis_pinv: the same for Y.
        x_mean, y_mean: ``(p,)``, ``(q,)`` means used for centring.
        rank_x, rank_y: dimensions kept after the relative eigenvalue (or pivot) cut-off.
        n_samples: number of samples.
    """

    correlations: np.ndarray
    x_weights: np.ndarray
    y_weights: np.ndarray
    x_basis: np.ndarray
    x_basis_pinv: np.ndarray
    y_basis: np.ndarray
    y_basis_pinv: np.ndarray
    x_mean: np.ndarray
    y_mean: np.ndarray
    rank_x: int
    rank_y: int
    n_samples: int

    @property
    def mean_rho(self) -> float:
        return float(np.mean(self.correlations))

    @property
    def mean_rho2(self) -> float:
        return float(np.mean(self.correlations**2))

    def transform(self, X: Any, Y: Any | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Canonical variates ``(n, k)`` of X (and of Y if given)."""
        X = check_features(X, "X", min_samples=1)
        if X.shape[1] != self.x_weights.shape[0]:
            raise ValueError(f"X has {X.shape[1]} features, the CCA was fitted on {self.x_weights.shape[0]}")
        u = (X - self.x_mean) @ self.x_weights
        if Y is None:
            return u
        Y = check_features(Y, "Y", min_samples=1)
        if Y.shape[1] != self.y_weights.shape[0]:
            raise ValueError(f"Y has {Y.shape[1]} features, the CCA was fitted on {self.y_weights.shape[0]}")
        return u, (Y - self.y_mean) @ self.y_weights

    def projection(self, components: Any, side: Literal["x", "y"] = "x") -> np.ndarray:
        """Oblique projector ``P = B^+ diag(mask) B``: ``(d, d)``, keeping the given canonical directions.

        ``components`` are indices into the canonical basis (0 = highest correlation). Apply as
        ``mean + (X - mean) @ P.T`` (Moreau et al. 2021, section 4.2).
        """
        if side not in ("x", "y"):
            raise ValueError(f"side must be 'x' or 'y', got {side!r}")
        basis, pinv = (self.x_basis, self.x_basis_pinv) if side == "x" else (self.y_basis, self.y_basis_pinv)
        idx = np.asarray(components, dtype=np.int64).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= basis.shape[0]):
            raise ValueError(f"components must lie in 0..{basis.shape[0] - 1}, got {idx.tolist()}")
        return pinv[:, idx] @ basis[idx, :]


def _directions(M: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full SVD of the whitened cross-covariance: ``U (rx, rx)``, ``s (k,)``, ``V (ry, ry)``."""
    U, s, Vh = np.linalg.svd(M, full_matrices=True)
    return U, np.clip(s, 0.0, 1.0), Vh.conj().T


def cca_from_whitenings(
    wx: Whitening | CholeskyWhitening,
    wy: Whitening | CholeskyWhitening,
    cross_covariance: np.ndarray,
    *,
    n_samples: int,
    x_mean: np.ndarray | None = None,
    y_mean: np.ndarray | None = None,
) -> CCAResult:
    """CCA given both whitenings and ``Sxy: (p, q)``; the building block of every eigh-path CCA."""
    M = wy.whiten_columns(wx.whiten_rows(cross_covariance))  # Wx^H Sxy Wy
    U, s, V = _directions(M)
    k = s.shape[0]
    x_basis = np.ascontiguousarray(wx.whitener_dot(U).conj().T)  # (Wx U)^H
    y_basis = np.ascontiguousarray(wy.whitener_dot(V).conj().T)
    p, q = wx.n_features, wy.n_features
    return CCAResult(
        correlations=s,
        x_weights=x_basis[:k].conj().T,
        y_weights=y_basis[:k].conj().T,
        x_basis=x_basis,
        x_basis_pinv=np.ascontiguousarray(wx.unwhiten(U)),
        y_basis=y_basis,
        y_basis_pinv=np.ascontiguousarray(wy.unwhiten(V)),
        x_mean=np.zeros(p) if x_mean is None else x_mean,
        y_mean=np.zeros(q) if y_mean is None else y_mean,
        rank_x=wx.rank,
        rank_y=wy.rank,
        n_samples=n_samples,
    )


def cca_from_covariances(
    cov_xx: np.ndarray,
    cov_yy: np.ndarray,
    cov_xy: np.ndarray,
    *,
    n_samples: int,
    tol: float = DEFAULT_TOL,
    x_mean: np.ndarray | None = None,
    y_mean: np.ndarray | None = None,
    standardize: bool = True,
) -> CCAResult:
    """CCA from covariance blocks (real, or complex Hermitian for DFT-CCA).

    ``cov_xx: (p, p)``, ``cov_yy: (q, q)``, ``cov_xy: (p, q)``. Eigenvalues below ``tol`` times the
    largest are dropped on each side: those of the correlation matrix with ``standardize=True`` (the default,
    invariant to rescaling single features), of the covariance otherwise (see :mod:`ccalens.core.whitening`).
    """
    if cov_xy.shape != (cov_xx.shape[0], cov_yy.shape[0]):
        raise ValueError(
            f"cov_xy must have shape ({cov_xx.shape[0]}, {cov_yy.shape[0]}) to match cov_xx and cov_yy, "
            f"got {cov_xy.shape}"
        )
    # both sides side by side; the Cholesky fast path where it provably keeps every direction
    workers = None if max(cov_xx.shape[0], cov_yy.shape[0]) >= MIN_PARALLEL_WIDTH else 1
    wx, wy = run_tasks(
        [
            lambda: whiten(cov_xx, tol=tol, name="X", method="auto", standardize=standardize),
            lambda: whiten(cov_yy, tol=tol, name="Y", method="auto", standardize=standardize),
        ],
        workers=workers,
    )
    warn_if_underdetermined(n_samples, wx.rank, wy.rank, stacklevel=3)
    return cca_from_whitenings(wx, wy, cov_xy, n_samples=n_samples, x_mean=x_mean, y_mean=y_mean)


def cca_from_stats(
    stats: SufficientStats, i: int = 0, j: int = 1, *, tol: float = DEFAULT_TOL, standardize: bool = True
) -> CCAResult:
    """CCA of representations ``i`` and ``j`` of a :class:`SufficientStats` (eigh path)."""
    cross = stats.covariance(i, j)  # first: a too-small sample count is reported naming both representations
    return cca_from_covariances(
        stats.covariance(i),
        stats.covariance(j),
        cross,
        n_samples=stats.n_samples,
        tol=tol,
        x_mean=stats.means(i).copy(),
        y_mean=stats.means(j).copy(),
        standardize=standardize,
    )


def _orthonormal_basis(
    X: np.ndarray, mean: np.ndarray, tol: float, name: str, standardize: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The centred data ``Xc = X - mean`` and an orthonormal basis of their kept subspace.

    Returns ``Xc: (n, d)`` (float64), ``Q: (n, r)`` and ``C: (d, r)`` with ``Xc @ C = Q`` (to rounding). QR of the
    centred data (columns scaled to unit norm if ``standardize``; constant columns dropped), then SVD of R:
    the singular values of R are those of the data, and the ones below ``sqrt(tol)`` times the largest are
    cut, which is the eigh path's cut (``sigma^2`` is proportional to the covariance, or correlation, eigenvalues).
    """
    if not np.isfinite(mean).all():
        raise ValueError(f"{name} has values too large: their sums overflow float64 (rescale the features)")
    Xc = np.subtract(X, mean, dtype=np.float64)
    live = ~np.all(X == X[:1], axis=0)  # exactly constant columns carry no variance
    if not live.any():
        raise ValueError(f"{name} has no variance: every feature is constant over the samples")
    cols = np.flatnonzero(live)
    A = Xc[:, cols]
    if standardize:  # unit-norm columns; the largest value first, so that no square overflows
        largest = np.abs(A).max(axis=0)
        A = A / largest
        scale = np.linalg.norm(A, axis=0)
        A /= scale
        scale *= largest
    else:
        scale = np.ones(cols.shape[0])
    Q, R = scipy.linalg.qr(A, mode="economic")
    W, sigma, Vh = np.linalg.svd(R, full_matrices=False)  # A / scale = (Q W) diag(sigma) Vh
    r = int(np.count_nonzero(sigma > np.sqrt(tol) * sigma[0]))
    warn_if_cut_drops_signal(sigma**2, r, name, tol, advice=QR_ADVICE)  # the eigh path's test, same eigenvalues
    C = np.zeros((X.shape[1], r))
    C[cols] = (Vh[:r].T / sigma[:r]) / scale[:, None]
    return Xc, Q @ W[:, :r], C


def cca_qr(X: Any, Y: Any, *, tol: float = DEFAULT_TOL, standardize: bool = True) -> CCAResult:
    """Exact CCA from the centred data in memory (QR, then SVD of R). ``X: (n, p)``, ``Y: (n, q)``.

    Keeps the directions the eigh path keeps for the same ``tol`` and ``standardize`` (see the module docstring).
    """
    X, Y = check_paired(X, Y)
    n = X.shape[0]
    x_mean = X.mean(axis=0, dtype=np.float64)
    y_mean = Y.mean(axis=0, dtype=np.float64)
    Xc, Qx, Cx = _orthonormal_basis(X, x_mean, tol, "X", standardize)
    Yc, Qy, Cy = _orthonormal_basis(Y, y_mean, tol, "Y", standardize)
    warn_if_underdetermined(n, Qx.shape[1], Qy.shape[1], stacklevel=3)
    U, s, V = _directions(Qx.T @ Qy)
    scale = np.sqrt(n - 1.0)
    # canonical variates (unit sample variance): Xc @ (Cx U) sqrt(n - 1); like the eigh path's S W U, the
    # pseudo-inverse of the basis is the covariance of the data with the variates, Xc' (Qx U) / sqrt(n - 1)
    x_basis = (Cx @ U).T * scale
    y_basis = (Cy @ V).T * scale
    x_pinv = Xc.T @ (Qx @ U) / scale
    y_pinv = Yc.T @ (Qy @ V) / scale
    k = s.shape[0]
    return CCAResult(
        correlations=s,
        x_weights=x_basis[:k].T,
        y_weights=y_basis[:k].T,
        x_basis=np.ascontiguousarray(x_basis),
        x_basis_pinv=x_pinv,
        y_basis=np.ascontiguousarray(y_basis),
        y_basis_pinv=y_pinv,
        x_mean=x_mean,
        y_mean=y_mean,
        rank_x=Qx.shape[1],
        rank_y=Qy.shape[1],
        n_samples=n,
    )
