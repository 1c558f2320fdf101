"""Whitening of one representation from its covariance, with a relative eigenvalue cut-off.

CCA needs ``Sxx^-1/2``. It is never formed by inverting the covariance: the covariance is
eigendecomposed, eigenvalues below ``tol * largest`` are dropped (numerically, those directions carry
no variance: constant or duplicated neurons, rank-deficient layers, n <= d), and the whitener acts on
the kept principal directions only. This is a PCA that keeps all but a negligible fraction of the
variance; SVCCA's step of keeping the top directions that explain 99% of the variance is
:meth:`Whitening.top_variance`.

Fast path (``whiten(..., method="auto")``): when LAPACK's condition estimate shows that the smallest
eigenvalue is far above the cut-off (reciprocal condition number above ``CHOLESKY_MARGIN * tol``, and
at least ``CHOLESKY_MIN_RCOND``), the eigendecomposition would keep every direction, and any whitener
gives the same canonical correlations. A Cholesky factor ``S = L L^H`` then whitens with
``W = L^-H`` at a tenth of the cost (:class:`CholeskyWhitening`). Otherwise, and whenever the
factorisation fails, ``auto`` falls back to the eigendecomposition, so the cut-off semantics are
unchanged.

Standardised cut (``whiten(..., standardize=True)``, what CCA and PWCCA use): CCA does not change when a
single neuron is rescaled, but a cut relative to the largest covariance eigenvalue does (a neuron scaled by
1e-6 falls below it). The cut is then made on the eigenvalues of the correlation matrix
``C = D^-1/2 S D^-1/2`` (``D = diag(S)``; features of zero variance are dropped first), and the whitener
``W = D^-1/2 V Lambda^-1/2`` (``C = V Lambda V^H``) still satisfies ``W^H S W = I`` for the original S, so
CCA is unchanged when nothing is cut. Such a :class:`Whitening` has ``feature_scale = sqrt(diag(S))``, and its
``eigenvalues``/``eigenvectors`` are those of C: not principal directions or variances of S (SVCCA, which
needs those, never standardises).

A cut that drops a direction whose eigenvalue lies above the float noise floor (``d * eps * largest``)
emits :class:`~ccalens.core.validation.RankCutWarning`, naming the representation.

Works for real symmetric and complex Hermitian covariances (the latter for DFT-CCA).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from ._lapack import cholesky_in_place, cholesky_rcond, triangular_inverse_in_place
from .validation import SVCCA_THRESHOLD, RankCutWarning, SvccaRule

__all__ = [
    "CHOLESKY_MARGIN",
    "CHOLESKY_MIN_RCOND",
    "DEFAULT_TOL",
    "CholeskyWhitening",
    "Whitening",
    "warn_if_cut_drops_signal",
    "whiten",
]

#: Relative eigenvalue cut-off: directions whose variance is below ``DEFAULT_TOL`` times the largest
#: variance are dropped (standard deviation below 1e-5 of the largest). Rounding noise of float32
#: features (relative 1e-7, variance 1e-14) falls below it; real low-variance signal rarely does.
DEFAULT_TOL = 1e-10

#: The Cholesky fast path needs LAPACK's reciprocal condition estimate (1-norm) above
#: ``CHOLESKY_MARGIN * tol``. The true ``lambda_min / lambda_max`` is at least the 1-norm reciprocal condition
#: number, which the estimate exceeds by a small factor at most (rarely 10), so the margin of 1,000 keeps the
#: fast path away from any direction the eigendecomposition could drop.
CHOLESKY_MARGIN = 1e3
#: ... and above this floor whatever ``tol`` is (an explicit triangular inverse loses ``1 / rcond`` digits).
CHOLESKY_MIN_RCOND = 1e-9


class _Products:
    """The products CCA needs, from a whitener ``W: (d, r)`` (``W^H S W = I``) and ``D = S W``.

    Shared by :class:`Whitening` and :class:`CholeskyWhitening`; NumPy's GEMM releases the GIL, so pairs
    can run side by side in :mod:`ccalens.core.threads`.
    """

    whitener: np.ndarray
    dewhitener: np.ndarray

    def whiten_rows(self, A: np.ndarray) -> np.ndarray:
        """``W^H A: (r, m)`` for ``A: (d, m)``."""
        return self.whitener.conj().T @ A

    def whiten_columns(self, A: np.ndarray) -> np.ndarray:
        """``A W: (m, r)`` for ``A: (m, d)``."""
        return A @ self.whitener

    def whitener_dot(self, A: np.ndarray) -> np.ndarray:
        """``W A: (d, m)`` for ``A: (r, m)`` (directions in whitened coordinates back to feature weights)."""
        return self.whitener @ A

    def unwhiten(self, A: np.ndarray) -> np.ndarray:
        """``D A: (d, m)`` for ``A: (r, m)``."""
        return self.dewhitener @ A

    def prepare(self) -> _Products:
        """Compute the whitener now (e.g. inside a worker thread, side by side with the other side's); returns self."""
        self.whitener  # noqa: B018
        return self


@dataclass(frozen=True)
class Whitening(_Products):
    """Eigendecomposition of a covariance and the subspace kept.

    Attributes:
        eigenvalues: ``(r,)`` kept variances, descending.
        eigenvectors: ``(d, r)`` kept principal directions (orthonormal columns).
        n_features: d.
        total_variance: trace of the covariance (all directions, kept or not).
        total_deviation: sum over ALL principal directions, kept or not, of ``sqrt(eigenvalue)`` (the centred
            data's singular values up to the factor ``sqrt(n - 1)``), for SVCCA's rule in :meth:`top`; None
            where only the kept directions are known (then :meth:`top` sums those).
        feature_scale: None, or ``(d,)`` standard deviations of the features when the whitening was computed on
            the correlation matrix (``whiten(..., standardize=True)``): eigenvalues, eigenvectors and total
            variance are then those of the correlation matrix (rows of dropped constant features are 0), and
            the whitener is ``eigenvectors / sqrt(eigenvalues) / feature_scale[:, None]``.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    n_features: int
    total_variance: float
    total_deviation: float | None = None
    feature_scale: np.ndarray | None = None

    @property
    def rank(self) -> int:
        return int(self.eigenvalues.shape[0])

    @cached_property
    def whitener(self) -> np.ndarray:
        """``W: (d, r)`` with ``W^H S W = I``: whitened data are ``(X - mean) @ W``."""
        W = self.eigenvectors / np.sqrt(self.eigenvalues)
        return W if self.feature_scale is None else W / self.feature_scale[:, None]

    @cached_property
    def dewhitener(self) -> np.ndarray:
        """``D: (d, r) = S W``, the pseudo-inverse of ``W^H``: ``X - mean ~= Z @ D^H`` on the kept subspace."""
        D = self.eigenvectors * np.sqrt(self.eigenvalues)
        return D if self.feature_scale is None else D * self.feature_scale[:, None]

    @property
    def explained_variance(self) -> float:
        """Fraction of the total variance in the kept directions."""
        return float(self.eigenvalues.sum() / self.total_variance)

    def top_variance(self, fraction: float) -> Whitening:
        """The smallest set of top principal directions explaining ``fraction`` of the total variance.

        SVCCA's preprocessing (Raghu et al. 2017 keep 99%: ``fraction=0.99``): :meth:`top` with ``keep="variance"``.
        """
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"variance fraction must be in (0, 1], got {fraction}")
        return self.top(fraction, "variance")

    def top(
        self, threshold: float = SVCCA_THRESHOLD, keep: Literal["singular_values", "variance"] = "singular_values"
    ) -> Whitening:
        """SVCCA's truncation: the fewest top principal directions reaching ``threshold`` of the total.

        ``keep="singular_values"`` (the SVCCA appendix): the smallest m with
        ``sum_{i<=m} s_i >= threshold * sum_i s_i``, s = singular values of the centred data (all of them, kept
        by the cut-off or not: :attr:`total_deviation`). ``keep="variance"`` (Kornblith et al.'s reading): the
        same with ``s_i^2``, i.e. :meth:`top_variance`. The result keeps :attr:`total_variance` and
        :attr:`total_deviation`, so :meth:`explained` stays relative to every direction.
        """
        rule = SvccaRule(keep, threshold)
        parts, total = self._spectrum(rule.keep)
        count = rule.count(parts, total)
        return Whitening(
            self.eigenvalues[:count], self.eigenvectors[:, :count], self.n_features, self.total_variance,
            self.total_deviation, self.feature_scale,
        )

    def _spectrum(self, keep: str) -> tuple[np.ndarray, float]:
        """Per-direction parts ``(r,)`` (variances or deviations) and their total over every direction."""
        if keep == "variance":
            return self.eigenvalues, self.total_variance
        deviations = np.sqrt(self.eigenvalues)
        known = float(deviations.sum())
        return deviations, known if self.total_deviation is None else max(self.total_deviation, known)

    def explained(self, keep: Literal["singular_values", "variance"] = "variance") -> float:
        """Fraction of the total variance (or of the sum of singular values) in the kept directions."""
        parts, total = self._spectrum(keep)
        return float(parts.sum() / total)


@dataclass(frozen=True)
class CholeskyWhitening(_Products):
    """Whitening by a Cholesky factor ``S = L L^H`` of a well-conditioned covariance (nothing dropped).

    Has the interface of :class:`Whitening` that CCA needs (``whitener``, ``dewhitener``, ``whiten_rows``,
    ``whiten_columns``, ``unwhiten``, ``rank``, ``n_features``, ``total_variance``), but no principal
    directions: SVCCA's ``top_variance`` needs :class:`Whitening`.

    Attributes:
        factor: ``(d, d)`` lower-triangular L.
        n_features: d.
        total_variance: trace of the covariance.
        rcond: LAPACK's estimate of the reciprocal condition number (1-norm) of the covariance.
        feature_scale: None, or ``(d,)`` standard deviations when L factors the correlation matrix
            (``standardize=True``; total variance and rcond are then the correlation matrix's too).
    """

    factor: np.ndarray
    n_features: int
    total_variance: float
    rcond: float
    feature_scale: np.ndarray | None = None

    @property
    def rank(self) -> int:
        return self.n_features

    @cached_property
    def _upper(self) -> np.ndarray:
        """``U = L^H`` in Fortran order (a view for real C-ordered L), as LAPACK takes it without a copy."""
        return np.asfortranarray(self.factor.conj().T)

    @cached_property
    def whitener(self) -> np.ndarray:
        """``W: (d, d) = L^-H`` (``D^-1/2 L^-H`` when standardised), so ``W^H S W = I``: LAPACK's ``trtri`` (GIL
        released) on a copy of ``U = L^H``, rows then divided by the feature scales in place."""
        inverse = np.array(self._upper, order="F")
        info = triangular_inverse_in_place(inverse)
        if info != 0:  # pragma: no cover - excluded by the condition check
            raise np.linalg.LinAlgError(f"triangular inverse failed (info={info})")
        if self.feature_scale is not None:
            inverse /= self.feature_scale[:, None]
        return inverse

    @cached_property
    def dewhitener(self) -> np.ndarray:
        """``S W = L`` (``D^1/2 L`` when standardised): ``X - mean = Z @ D^H`` for whitened ``Z = (X - mean) @ W``."""
        return self.factor if self.feature_scale is None else self.factor * self.feature_scale[:, None]


def _cholesky_whitening(cov: np.ndarray, tol: float, scale: np.ndarray | None) -> CholeskyWhitening | None:
    """The Cholesky whitening of ``cov`` (of the correlation matrix ``D^-1/2 cov D^-1/2`` when ``scale`` holds the
    standard deviations ``sqrt(diag D)``) if the factorisation succeeds and the matrix is well conditioned, else
    None.

    One Fortran-ordered copy, standardised in place, is factored by LAPACK's ``potrf`` and its condition estimated
    by ``pocon`` (O(d^2)), both with the GIL released (:mod:`ccalens.core._lapack`), so whitenings run side by
    side in :mod:`ccalens.core.threads`.
    """
    # the transpose of a C-ordered Hermitian matrix, conjugated, is the matrix in Fortran order: a straight copy (in
    # float64 or complex128, what LAPACK is called with)
    dtype = np.result_type(cov.dtype, np.float64)
    upper = np.array(cov.T, dtype=dtype, order="F")
    if np.iscomplexobj(upper):
        np.conjugate(upper, out=upper)
    if scale is not None:
        upper /= scale[:, None]
        upper /= scale[None, :]
    total = float(np.real(np.trace(upper)))
    anorm = float(np.abs(upper).sum(axis=0).max())
    if cholesky_in_place(upper) != 0:
        return None
    rcond, info = cholesky_rcond(upper, anorm)
    if info != 0 or not rcond >= max(CHOLESKY_MARGIN * tol, CHOLESKY_MIN_RCOND):
        return None
    return CholeskyWhitening(
        factor=upper.conj().T, n_features=cov.shape[0], total_variance=total, rcond=rcond, feature_scale=scale
    )


def whiten(
    covariance: np.ndarray,
    *,
    tol: float = DEFAULT_TOL,
    name: str = "X",
    method: Literal["eigh", "auto"] = "eigh",
    standardize: bool = False,
) -> Whitening | CholeskyWhitening:
    """Whitening of a covariance ``(d, d)`` (real symmetric or complex Hermitian).

    ``method="eigh"`` always eigendecomposes (needed for SVCCA and PCA); ``"auto"`` takes the Cholesky fast
    path when it provably keeps the same subspace (see the module docstring). ``standardize=True`` makes the
    cut on the correlation matrix (scale invariant, for CCA/PWCCA; the result then has ``feature_scale``, see
    :class:`Whitening`). Raises ``ValueError`` naming ``name`` if the representation has no variance at all or
    the covariance holds NaN/Inf; warns with :class:`~ccalens.core.validation.RankCutWarning` when the cut drops
    directions above the float noise floor.
    """
    if not 0.0 <= tol < 1.0:
        raise ValueError(f"tol must be in [0, 1), got {tol}")
    if method not in ("eigh", "auto"):
        raise ValueError(f"method must be 'eigh' or 'auto', got {method!r}")
    cov = np.asarray(covariance)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"covariance of {name} must be square, got shape {cov.shape}")
    if not np.isfinite(cov).all():
        raise ValueError(
            f"covariance of {name} contains NaN/Inf: the feature values overflow float64 (rescale them)"
        )
    d = cov.shape[0]
    variances = np.real(np.diagonal(cov))
    if d == 0 or not variances.max() > 0.0:
        raise ValueError(
            f"{name} has no variance: every feature is constant over the samples, so no correlation "
            "with it is defined"
        )
    scale: np.ndarray | None = None
    live: np.ndarray | None = None
    if standardize:
        live = variances > 0.0
        scale = np.where(live, np.sqrt(np.where(live, variances, 1.0)), 1.0)
        if live.all():
            live = None
    if method == "auto" and live is None:
        fast = _cholesky_whitening(cov, tol, scale)
        if fast is not None:
            return fast
    if scale is not None:
        if live is None:
            cov = cov / np.multiply.outer(scale, scale)
        else:
            sub = scale[live]
            cov = cov[np.ix_(live, live)] / np.multiply.outer(sub, sub)
    total = float(np.real(np.trace(cov)))
    # NumPy's eigh releases the GIL: whitenings of several representations run side by side
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    eigenvalues = eigenvalues[::-1]
    eigenvectors = eigenvectors[:, ::-1]
    largest = float(eigenvalues[0])
    keep = int(np.count_nonzero(eigenvalues > tol * largest))
    warn_if_cut_drops_signal(eigenvalues, keep, name, tol)
    kept_vectors = eigenvectors[:, :keep]
    if live is not None:  # rows of the dropped constant features are 0
        full = np.zeros((d, keep), dtype=kept_vectors.dtype)
        full[live] = kept_vectors
        kept_vectors = full
    return Whitening(
        eigenvalues=np.ascontiguousarray(eigenvalues[:keep]),
        eigenvectors=np.ascontiguousarray(kept_vectors),
        n_features=d,
        total_variance=max(total, float(eigenvalues[:keep].sum())),
        feature_scale=scale,
    )


#: What the warning advises on the eigen path: lowering ``tol`` there does not help (measured on data of condition
#: number 1e12 whose true mean CCA is 1: 0.99951 at the default tol, 0.88 at tol=0; the QR path gives 0.99999999).
EIGH_ADVICE = (
    "the covariance squares the condition number of the data, so these directions are not resolved in it and a "
    "lower tol only adds rounding noise; to keep them, use the QR path on the data in memory: "
    "ccalens.CCA(\"qr\", tol=0).fit(X, Y) (correlations_.mean() is the cca score)"
)
#: ... and on the QR path, where the data's singular values are resolved to float precision.
QR_ADVICE = "tol=0 keeps them (the QR path resolves the data's singular values to float precision)"


def warn_if_cut_drops_signal(
    eigenvalues: np.ndarray, keep: int, name: str, tol: float, stacklevel: int = 4, advice: str = EIGH_ADVICE
) -> None:
    """Warn (:class:`RankCutWarning`) if ``eigenvalues`` (descending) beyond the first ``keep`` lie above the float
    noise floor ``d * eps * largest``; ``advice`` says how to keep them (:data:`EIGH_ADVICE` or :data:`QR_ADVICE`)."""
    if keep >= eigenvalues.shape[0]:
        return
    eps = float(np.finfo(eigenvalues.dtype).eps)
    floor = eigenvalues.shape[0] * eps * float(eigenvalues[0])
    dropped = int(np.count_nonzero(eigenvalues[keep:] > floor))
    if dropped:
        warnings.warn(
            f"{name}: the relative cut-off (tol={tol:g}) dropped {dropped} direction(s) with eigenvalues between "
            f"{float(eigenvalues[keep + dropped - 1]) / float(eigenvalues[0]):.2g} and "
            f"{float(eigenvalues[keep]) / float(eigenvalues[0]):.2g} of the largest, above the float noise floor: "
            f"they carry variance that is now ignored; {advice}",
            RankCutWarning,
            stacklevel=stacklevel,
        )
