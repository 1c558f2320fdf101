"""Classical significance tests of canonical correlations (normal theory).

For ``X: (n, p)`` and ``Y: (n, q)`` with canonical correlations ``rho_1 >= ... >= rho_s`` (s = min(p, q)),
row k (0-based) of :func:`cca_test` tests ``H0: rho_{k+1} = ... = rho_s = 0`` with

* Wilks' lambda ``Lambda_k = prod_{i > k} (1 - rho_i^2)`` and Rao's F approximation: with ``a = p - k``,
  ``b = q - k``, ``t = sqrt((a^2 b^2 - 4) / (a^2 + b^2 - 5))`` (1 when ``a b <= 2``),
  ``df_num = a b``, ``df_den = (n - (p + q + 3) / 2) t - a b / 2 + 1``,
  ``F = (Lambda_k^(-1/t) - 1) df_den / df_num`` (exact F when a or b is 1 or 2);
* Bartlett's chi-square with Lawley's correction, as MATLAB's ``canoncorr`` reports it:
  ``chi2 = -(n - k - (p + q + 3) / 2 + sum_{i <= k} rho_i^-2) log Lambda_k`` on ``a b`` degrees of freedom.

The full test (k = 0) is also given by Pillai's trace ``sum rho^2``, the Hotelling-Lawley trace
``sum rho^2 / (1 - rho^2)`` and Roy's largest root ``rho_1^2 / (1 - rho_1^2)``, each with its usual F
approximation (those of SAS and statsmodels' ``multivariate_stats``). Roy's F is an upper bound, so the p-value SAS
prints from it is a lower bound (it rejected 17.6%, 56.8% and 98.9% of null data sets at 0.05 in three shapes);
it is kept as ``"pvalue_f_upper_bound"``, and Roy's ``"pvalue"`` is calibrated: the exact null distribution of the
largest squared canonical correlation (a Pfaffian, Chiani 2016) where it is accurate in float64, Johnstone's (2008)
Tracy-Widom approximation otherwise (:mod:`ccalens.core.uncertainty.roy`; ``roy_pvalue_method`` says which).

p and q are the numerical ranks of the centred data (pivoted QR, the cut-off of
:func:`ccalens.core.cca.cca_qr`): redundant features add no dimension, and the result says so in ``notes``.
The tests need ``n >= rank_x + rank_y + 2``; with fewer samples some canonical correlations are 1 whatever
the data and no test is defined, so :func:`cca_test` raises ``ValueError``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.stats

from ..cca import cca_qr
from ..validation import UnderdeterminedWarning, check_paired
from ..whitening import DEFAULT_TOL
from .roy import roy_pvalue

__all__ = ["CCATestResult", "cca_test"]


@dataclass(frozen=True)
class CCATestResult:
    """Tests of the canonical correlations; arrays have one entry per canonical dimension k.

    Entry k tests ``H0: rho_k = ... = rho_s = 0`` (k = 0 is the test of no relation at all).

    Attributes:
        correlations: ``(s,)`` canonical correlations, descending.
        wilks_lambda, f_statistic, df_num, df_den, pvalue_f: Wilks' lambda and Rao's F test.
        chi2, df_chi2, pvalue_chi2: Bartlett's chi-square with Lawley's correction.
        multivariate: the full test by four statistics: ``{"wilks_lambda" | "pillai_trace" |
            "hotelling_lawley_trace" | "roy_largest_root": {"value", "f_statistic", "df_num", "df_den",
            "pvalue"}}``; Roy's row adds ``"pvalue_f_upper_bound"`` (SAS's, anticonservative) and its ``"pvalue"``
            is the calibrated one.
        n_samples, rank_x, rank_y: n and the ranks used as p and q.
        notes: messages about the input (rank deficiency).
        roy_pvalue_method: ``"exact"`` or ``"tracy-widom"``, how Roy's calibrated p-value was computed.
    """

    correlations: np.ndarray
    wilks_lambda: np.ndarray
    f_statistic: np.ndarray
    df_num: np.ndarray
    df_den: np.ndarray
    pvalue_f: np.ndarray
    chi2: np.ndarray
    df_chi2: np.ndarray
    pvalue_chi2: np.ndarray
    multivariate: dict[str, dict[str, float]]
    n_samples: int
    rank_x: int
    rank_y: int
    notes: tuple[str, ...] = field(default=())
    roy_pvalue_method: str = "exact"

    _COLUMNS = (
        "correlations",
        "wilks_lambda",
        "f_statistic",
        "df_num",
        "df_den",
        "pvalue_f",
        "chi2",
        "df_chi2",
        "pvalue_chi2",
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        out: dict[str, Any] = {name: getattr(self, name).tolist() for name in self._COLUMNS}
        out.update(
            multivariate=self.multivariate,
            n_samples=self.n_samples,
            rank_x=self.rank_x,
            rank_y=self.rank_y,
            notes=list(self.notes),
            roy_pvalue_method=self.roy_pvalue_method,
        )
        return out

    def to_frame(self) -> Any:
        """One row per canonical dimension (a pandas DataFrame; needs pandas)."""
        pd = _pandas()
        frame = pd.DataFrame({name: getattr(self, name) for name in self._COLUMNS})
        frame.index.name = "dimension"
        return frame

    def multivariate_frame(self) -> Any:
        """The four statistics of the full test, one row each (a pandas DataFrame; needs pandas); the column
        ``pvalue_f_upper_bound`` is filled for Roy's row only."""
        return _pandas().DataFrame.from_dict(self.multivariate, orient="index")


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("to_frame() needs pandas: pip install pandas (or use to_dict())") from exc
    return pd


def _rao_exponent(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rao's t: ``sqrt((a^2 b^2 - 4) / (a^2 + b^2 - 5))``, 1 when ``a b <= 2`` (then F is exact)."""
    ab = a * b
    t = np.ones_like(ab, dtype=np.float64)
    ok = ab > 2
    t[ok] = np.sqrt((ab[ok] ** 2 - 4.0) / (a[ok] ** 2 + b[ok] ** 2 - 5.0))
    return t


def _multivariate(rho2: np.ndarray, p: int, q: int, n: int) -> tuple[dict[str, dict[str, float]], str]:
    """Wilks, Pillai, Hotelling-Lawley and Roy for the full test, with F approximations (SAS conventions), and
    the method of Roy's calibrated p-value.

    In the MANOVA reading (Y regressed on X): p = rank of Y's side, q = hypothesis rank, error df
    ``v = n - q - 1``; the statistics and p-values are symmetric in X and Y.
    """
    v = n - q - 1
    s = min(p, q)
    m = (abs(p - q) - 1) / 2.0
    nn = (v - p - 1) / 2.0
    with np.errstate(divide="ignore"):
        ratio = rho2 / (1.0 - rho2)  # inf for rho = 1
    out: dict[str, dict[str, float]] = {}

    def row(value: float, f: float, df1: float, df2: float) -> dict[str, float]:
        return {
            "value": float(value),
            "f_statistic": float(f),
            "df_num": float(df1),
            "df_den": float(df2),
            "pvalue": float(scipy.stats.f.sf(f, df1, df2)),
        }

    # Wilks (Rao's F)
    lam = float(np.prod(1.0 - rho2))
    t = float(_rao_exponent(np.array([p]), np.array([q]))[0])
    df1 = p * q
    df2 = (v - (p - q + 1) / 2.0) * t - (p * q - 2) / 2.0
    out["wilks_lambda"] = row(lam, _rao_f(lam, t, df1, df2), df1, df2)
    # Pillai
    V = float(rho2.sum())
    df1 = s * (2 * m + s + 1)
    df2 = s * (2 * nn + s + 1)
    f = np.inf if V >= s else df2 / df1 * V / (s - V)
    out["pillai_trace"] = row(V, f, df1, df2)
    # Hotelling-Lawley
    U = float(ratio.sum())
    if nn > 0:
        b = (p + 2 * nn) * (q + 2 * nn) / (2 * (2 * nn + 1) * (nn - 1)) if nn != 1 else np.inf
        df1 = p * q
        df2 = 4 + (p * q + 2) / (b - 1)
        c = (df2 - 2) / (2 * nn)
        f = df2 / df1 * U / c
    else:
        df1 = s * (2 * m + s + 1)
        df2 = s * (s * nn + 1)
        f = df2 / df1 / s * U
    out["hotelling_lawley_trace"] = row(U, f, df1, df2)
    # Roy (upper bound on F)
    theta = float(ratio.max()) if ratio.size else 0.0
    r = max(p, q)
    df1 = r
    df2 = v - r + q
    roy = row(theta, df2 / df1 * theta, df1, df2)
    rho2_max = float(rho2.max()) if rho2.size else 0.0
    calibrated, method = roy_pvalue(rho2_max, n, p, q)
    roy["pvalue_f_upper_bound"] = roy["pvalue"]
    roy["pvalue"] = calibrated
    out["roy_largest_root"] = roy
    return out, method


def _rao_f(lam: float, t: float, df1: float, df2: float) -> float:
    if lam <= 0.0:
        return float(np.inf)
    powered = lam ** (1.0 / t)
    return float((1.0 - powered) / powered * df2 / df1)


def cca_test(X: Any, Y: Any, *, tol: float = DEFAULT_TOL) -> CCATestResult:
    """Wilks/Rao F and Bartlett-Lawley chi-square tests of each canonical dimension, and the full test.

    ``X: (n, p)``, ``Y: (n, q)``, the same samples. ``tol``: rank cut-off (as in :func:`~ccalens.core.cca.cca_qr`).
    Rank-deficient input is reduced to its rank (noted in ``notes`` and warned); ``n < rank_x + rank_y + 2``
    raises ``ValueError``.
    """
    X, Y = check_paired(X, Y)
    n, p_features = X.shape
    q_features = Y.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnderdeterminedWarning)  # reported below as an error
        result = cca_qr(X, Y, tol=tol)
    p, q = result.rank_x, result.rank_y
    if n < p + q + 2:
        raise ValueError(
            f"cca_test needs n >= rank_x + rank_y + 2 samples, got n = {n} with rank_x = {p}, rank_y = {q}: "
            "with fewer samples some canonical correlations are 1 whatever the data and no test is defined; "
            "reduce the dimensions first (e.g. PCA) or use more samples"
        )
    notes = []
    for name, rank, d in (("X", p, p_features), ("Y", q, q_features)):
        if rank < d:
            notes.append(
                f"{name} has rank {rank} < {d} features (constant or linearly dependent columns): "
                f"the tests use {'p' if name == 'X' else 'q'} = {rank}"
            )
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    rho = np.clip(np.asarray(result.correlations, dtype=np.float64), 0.0, 1.0)
    s = rho.shape[0]
    rho2 = rho**2
    k = np.arange(s)
    with np.errstate(divide="ignore"):
        log_terms = np.log1p(-rho2)  # -inf where rho = 1
    log_lambda = np.cumsum(log_terms[::-1])[::-1]  # log Lambda_k = sum_{i >= k} log(1 - rho_i^2)
    wilks = np.exp(log_lambda)
    a = (p - k).astype(np.float64)
    b = (q - k).astype(np.float64)
    t = _rao_exponent(a, b)
    df_num = a * b
    df_den = (n - (p + q + 3) / 2.0) * t - df_num / 2.0 + 1.0
    f_stat = np.array(
        [
            _rao_f(float(w), float(ti), float(d1), float(d2))
            for w, ti, d1, d2 in zip(wilks, t, df_num, df_den, strict=True)
        ]
    )
    pvalue_f = scipy.stats.f.sf(f_stat, df_num, df_den)
    # Lawley: sum over the correlations before k of rho_i^-2 (terms for rho_i = 0 only meet log Lambda = 0)
    with np.errstate(divide="ignore"):
        inv_rho2 = np.where(rho2 > 0, 1.0 / np.where(rho2 > 0, rho2, 1.0), np.inf)
    lawley = np.concatenate([[0.0], np.cumsum(inv_rho2[:-1])]) if s else np.zeros(0)
    factor = n - k - (p + q + 3) / 2.0 + lawley
    with np.errstate(invalid="ignore"):
        chi2 = np.where(log_lambda == 0.0, 0.0, -factor * log_lambda)
    pvalue_chi2 = scipy.stats.chi2.sf(chi2, df_num)
    multivariate, roy_method = _multivariate(rho2, q, p, n)
    return CCATestResult(
        correlations=rho,
        wilks_lambda=wilks,
        f_statistic=f_stat,
        df_num=df_num,
        df_den=df_den,
        pvalue_f=np.asarray(pvalue_f, dtype=np.float64),
        chi2=chi2,
        df_chi2=df_num.copy(),
        pvalue_chi2=np.asarray(pvalue_chi2, dtype=np.float64),
        multivariate=multivariate,
        n_samples=n,
        rank_x=p,
        rank_y=q,
        notes=tuple(notes),
        roy_pvalue_method=roy_method,
    )
