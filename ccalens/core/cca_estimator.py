"""The scikit-learn-compatible :class:`CCA` estimator: ``fit``, ``partial_fit`` and ``fit_stats``, solved lazily.

The numerics are :mod:`ccalens.core.cca`'s (the eigh path from :class:`~ccalens.core.stats.SufficientStats`, or
the QR path); this module holds the estimator protocol around them: parameters, fitted attributes, lazy solving.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .cca import CCAResult, cca_from_stats, cca_qr
from .stats import SufficientStats
from .validation import check_paired, not_fitted_error
from .whitening import DEFAULT_TOL

__all__ = ["CCA"]


_FITTED = (
    "correlations", "x_weights", "y_weights", "x_mean", "y_mean", "x_basis", "x_basis_pinv",
    "y_basis", "y_basis_pinv", "rank_x", "rank_y", "n_samples",
)  # fmt: skip
_PARAMS = ("method", "tol", "standardize")


class CCA:
    """Canonical correlation analysis estimator, compatible with scikit-learn (which it does not import).

    Parameters:
        method: ``"eigh"`` (sufficient statistics; also :meth:`partial_fit` for streams) or ``"qr"``
            (exact, in memory).
        tol: relative eigenvalue cut-off of the whitening (see :data:`ccalens.core.whitening.DEFAULT_TOL`).
        standardize: cut on the standardised features (invariant to rescaling a neuron); see :mod:`ccalens.core.cca`.

    Fitted attributes: ``correlations_``, ``x_weights_``, ``y_weights_``, ``x_mean_``, ``y_mean_``,
    ``x_basis_``, ``x_basis_pinv_``, ``y_basis_``, ``y_basis_pinv_``, ``rank_x_``, ``rank_y_``,
    ``n_samples_``, ``result_`` (the :class:`CCAResult`), ``n_features_in_`` (p, X's features).

    :meth:`partial_fit` only accumulates statistics; the CCA is solved on the first read of a fitted attribute
    (or :meth:`transform`) after it. Reading a fitted attribute before any fit raises scikit-learn's
    ``NotFittedError`` (see :func:`~ccalens.core.validation.not_fitted_error`). ``get_params``/``set_params``,
    ``sklearn.base.clone`` and ``sklearn.utils.validation.check_is_fitted`` work as for scikit-learn estimators.
    """

    def __init__(self, method: Literal["eigh", "qr"] = "eigh", tol: float = DEFAULT_TOL, standardize: bool = True):
        self.method = method
        self.tol = tol
        self.standardize = standardize

    # ------------------------------------------------------------ scikit-learn protocol
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters (``deep`` is accepted for scikit-learn; there are no nested estimators)."""
        return {name: getattr(self, name) for name in _PARAMS}

    def set_params(self, **params: Any) -> CCA:
        """Set constructor parameters; raises ``ValueError`` naming an unknown one. Returns self."""
        for key, value in params.items():
            if key not in _PARAMS:
                raise ValueError(f"invalid parameter {key!r} for CCA: valid parameters are {', '.join(_PARAMS)}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        return f"CCA({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    def __sklearn_is_fitted__(self) -> bool:
        if "result_" in self.__dict__:
            return True
        stats = self.__dict__.get("_stats")
        return stats is not None and stats.n_samples >= 2

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags (only scikit-learn calls this, so importing it here costs nothing otherwise)."""
        from sklearn.base import BaseEstimator

        tags = BaseEstimator.__sklearn_tags__(self)  # type: ignore[arg-type]
        tags.target_tags.required = True  # fit needs Y
        return tags

    # ------------------------------------------------------------ fitting
    def _check_method(self) -> None:
        if self.method not in ("eigh", "qr"):
            raise ValueError(f"method must be 'eigh' or 'qr', got {self.method!r}")

    def _forget(self) -> None:
        """Drop the fitted attributes (they are recomputed from the statistics when next read)."""
        for name in (*(n + "_" for n in _FITTED), "result_"):
            self.__dict__.pop(name, None)

    def _set(self, result: CCAResult) -> CCA:
        self.result_ = result
        for name in _FITTED:
            setattr(self, name + "_", getattr(result, name))
        return self

    def _solve(self) -> CCA:
        stats = self.__dict__["_stats"]
        return self._set(cca_from_stats(stats, tol=self.tol, standardize=self.standardize))

    def fit(self, X: Any, Y: Any) -> CCA:
        """Fit on ``X: (n, p)`` and ``Y: (n, q)``, rows of the same samples."""
        self._check_method()
        X, Y = check_paired(X, Y)
        self._forget()
        self.__dict__.pop("_stats", None)
        self.n_features_in_ = X.shape[1]
        if self.method == "qr":
            return self._set(cca_qr(X, Y, tol=self.tol, standardize=self.standardize))
        self._stats = SufficientStats.from_arrays(X, Y)
        return self._solve()

    def partial_fit(self, X: Any, Y: Any) -> CCA:
        """Add a batch to the statistics (eigh method only); the CCA is solved when a result is next read."""
        self._check_method()
        if self.method != "eigh":
            raise ValueError("partial_fit needs method='eigh' (the QR path is in-memory only)")
        stats = self.__dict__.get("_stats") or SufficientStats()
        stats.update(X, Y)
        self._forget()
        self._stats = stats
        assert stats.sizes is not None
        self.n_features_in_ = stats.sizes[0]
        return self

    def fit_stats(self, stats: SufficientStats, i: int = 0, j: int = 1) -> CCA:
        """Fit from precomputed statistics (e.g. merged across shards or workers) of representations i and j.

        The estimator keeps its own copy: a later :meth:`partial_fit` does not change ``stats``.
        """
        if not isinstance(stats, SufficientStats):
            raise TypeError(f"stats must be SufficientStats, got {type(stats).__name__}")
        self._check_method()
        if self.method != "eigh":
            raise ValueError("fit_stats needs method='eigh' (the QR path needs the data)")
        own = stats.select([i, j])
        self._forget()
        self._stats = own
        self.n_features_in_ = own.sizes[0] if own.sizes else 0
        return self._solve()

    def __getattr__(self, name: str) -> Any:
        # only called for attributes not set: fitted ones are solved lazily after partial_fit
        if name == "result_" or (name.endswith("_") and name[:-1] in _FITTED):
            if self.__sklearn_is_fitted__():
                return getattr(self._solve(), name)
            raise not_fitted_error(f"this CCA is not fitted yet: call fit(X, Y) first ({name} is not available)")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise not_fitted_error("this CCA is not fitted yet: call fit(X, Y), partial_fit(X, Y) or fit_stats first")

    def transform(self, X: Any, Y: Any | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Canonical variates of X (and Y)."""
        self._check_fitted()
        return self.result_.transform(X, Y)

    def fit_transform(self, X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.fit(X, Y).transform(X, Y)  # type: ignore[return-value]
