"""The null distribution of Roy's largest root: an exact CDF, and Tracy-Widom where the exact one is not computed.

Under ``H0`` (X and Y independent, Gaussian, n samples, centred), the squared canonical correlations of
``X: (n, p)`` and ``Y: (n, q)`` are the eigenvalues of a real Jacobi (matrix Beta) ensemble: with ``s = min(p, q)``,
``m = max(p, q)`` and ``e = n - 1 - m``, their joint density on ``[0, 1]^s`` is proportional to
``prod_i w(x_i) prod_{i<j} |x_i - x_j|`` with ``w(x) = x^a (1 - x)^b``, ``a = (m - s - 1) / 2``,
``b = (e - s - 1) / 2`` (Muirhead, *Aspects of Multivariate Statistical Theory*, theorem 3.3.4).

Exact CDF (the Pfaffian route of Chiani 2016, J. Multivariate Anal. 143, "Distribution of the largest root of a
matrix for Roy's test in multivariate analysis of variance"): by de Bruijn's identity,
``P(x_max <= x) = Pf(A(x)) / Pf(A(1))`` with ``A_ij(x) = int int_{[0,x]^2} sgn(z - y) phi_i(y) phi_j(z) dy dz``
for any basis ``phi_i = w P_i`` (``P_i`` of degree i, i < s), bordered by ``c_i = int_0^x phi_i`` when s is odd.
We take ``P_i`` the orthonormal Jacobi polynomials of ``w`` (well conditioned), whose integrals are closed form
(DLMF 18.9.16): ``int_0^y w P_k^{(b,a)}(2t - 1) dt = -(1/k) y^(a+1) (1 - y)^(b+1) P_{k-1}^{(b+1,a+1)}(2y - 1)``,
so ``A_ij = 2 int_0^x Phi_i phi_j - Phi_i(x) Phi_j(x)`` is the integral of a polynomial (``2a + 1`` and ``2b + 1``
are integers) times nothing else, which Gauss-Legendre integrates exactly; ``Pf^2 = det``.

Tracy-Widom (Johnstone 2008, Ann. Statist. 36, "Multivariate analysis and Jacobi ensembles: largest eigenvalue,
Tracy-Widom limits and rates of convergence"): ``(logit(x_max) - mu) / sigma`` is approximately TW1, with
``mu``, ``sigma`` from the angles ``sin^2(gamma/2) = (s - 1/2) / N``, ``sin^2(phi/2) = (m - 1/2) / N``,
``N = n - 2``. TW1's CDF is Bornemann's (2010, Math. Comp. 79) Gauss-Legendre discretisation of the Fredholm
determinant ``F1(t) = det(I - K)`` on ``L2(0, inf)``, ``K(u, v) = Ai(u + v + t)``.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.special as sp

__all__ = [
    "EXACT_MAX_DIMENSION",
    "exact_is_reliable",
    "roy_cdf_exact",
    "roy_cdf_tracy_widom",
    "roy_pvalue",
    "tracy_widom1_cdf",
]

#: Largest ``min(p, q)`` for which the exact CDF is tried (it costs ``O(s^2 n)``; Tracy-Widom above, and where
#: :func:`exact_is_reliable` finds it inaccurate).
EXACT_MAX_DIMENSION = 60
_MAX_NODES = 4000


def _parameters(n: int, p: int, q: int) -> tuple[int, float, float]:
    s, m = min(p, q), max(p, q)
    if s < 1 or n - p - q - 2 < 0:
        raise ValueError(f"Roy's test needs p, q >= 1 and n >= p + q + 2, got n = {n}, p = {p}, q = {q}")
    return s, (m - s - 1) / 2.0, (n - p - q - 2) / 2.0


def _basis(y: np.ndarray, s: int, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """``P: y.shape + (s,)`` orthonormal Jacobi polynomials of ``w`` at y, and ``Q`` with
    ``Phi_k(y) = y^(a+1) (1 - y)^(b+1) Q_k(y)`` for k >= 1 (``Q[..., 0]`` is unused, 0)."""
    k = np.arange(s)
    log_norm = 0.5 * (
        sp.gammaln(k + a + 1) + sp.gammaln(k + b + 1) - np.log(2 * k + a + b + 1)
        - sp.gammaln(k + a + b + 1) - sp.gammaln(k + 1)
    )
    t = 2.0 * y[..., None] - 1.0
    P = sp.eval_jacobi(k, b, a, t) * np.exp(-log_norm)
    Q = np.zeros_like(P)
    if s > 1:
        Q[..., 1:] = -sp.eval_jacobi(k[1:] - 1, b + 1, a + 1, t) / k[1:] * np.exp(-log_norm[1:])
    return P, Q


def _log_pf(x: np.ndarray, s: int, a: float, b: float, n_nodes: int) -> np.ndarray:
    """``log |Pf(A(x))|`` for each x in ``x: (K,)`` (0 < x < 1): ``A(x)`` (s even) or the bordered
    ``(s + 1, s + 1)`` matrix (s odd), computed in units of ``g^2`` (``A``) and ``g`` (the border),
    ``g = x^(a + 1/2) exp(shift / 2)``, so that ``Pf`` carries ``g^s``."""
    x = np.asarray(x, dtype=np.float64)[:, None]
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    y = 0.5 * x * (nodes + 1.0)  # (K, N)
    weights = 0.5 * x * weights
    P, Q = _basis(y, s, a, b)  # (K, N, s)
    # Phi_i phi_j = y^(2a+1) (1-y)^(2b+1) Q_i P_j (i >= 1) = x^(2a+1) exp(log_w) Q_i P_j
    log_w = (2 * a + 1) * np.log(y / x) + (2 * b + 1) * np.log1p(-y)
    shift = log_w.max(axis=1, keepdims=True)  # (K, 1)
    log_g = (a + 0.5) * np.log(x) + 0.5 * shift
    M = 2.0 * np.einsum("kni,kn,knj->kij", Q, weights * np.exp(log_w - shift), P)  # (K, s, s); row 0 unused
    # the border Phi_i(x) / g: x^(a+1) (1-x)^(b+1) Q_i(x) for i >= 1, sqrt(B(a+1, b+1)) I_x(a+1, b+1) for i = 0
    _, Qx = _basis(x[:, 0], s, a, b)  # (K, s)
    c = Qx * np.exp((a + 1) * np.log(x) + (b + 1) * np.log1p(-x) - log_g)
    c[:, 0] = np.exp(0.5 * sp.betaln(a + 1, b + 1) - log_g[:, 0]) * sp.betainc(a + 1, b + 1, x[:, 0])
    A = M - c[:, :, None] * c[:, None, :]
    A[:, 0, :] = -A[:, :, 0]
    A = 0.5 * (A - A.transpose(0, 2, 1))
    if s % 2:
        B = np.zeros((A.shape[0], s + 1, s + 1))
        B[:, :s, :s] = A
        B[:, :s, s] = c
        B[:, s, :s] = -c
        A = B
    sign, logdet = np.linalg.slogdet(A)
    return np.where(sign == 0, -np.inf, 0.5 * logdet + s * log_g[:, 0])


def _log_pf_one(s: int, a: float, b: float) -> float:
    """``log Pf(A(1))`` for the orthonormal basis: Selberg's integral (gamma = 1/2) / s! times the leading
    coefficients of the orthonormal polynomials."""
    j = np.arange(s)
    selberg = np.sum(
        sp.gammaln(a + 1 + j / 2) + sp.gammaln(b + 1 + j / 2) + sp.gammaln(1 + (j + 1) / 2)
        - sp.gammaln(a + b + 2 + (s + j - 1) / 2) - sp.gammaln(1.5)
    )
    k = j
    log_lead = sp.gammaln(2 * k + a + b + 1) - sp.gammaln(k + 1) - sp.gammaln(k + a + b + 1)  # P_k^{(b,a)}(2y-1)
    log_norm = 0.5 * (
        sp.gammaln(k + a + 1) + sp.gammaln(k + b + 1) - np.log(2 * k + a + b + 1)
        - sp.gammaln(k + a + b + 1) - sp.gammaln(k + 1)
    )
    return float(selberg - sp.gammaln(s + 1) + np.sum(log_lead - log_norm))


def _nodes(s: int, a: float, b: float) -> int:
    """Gauss-Legendre nodes that integrate the polynomial integrands exactly (capped at ``_MAX_NODES``)."""
    degree = round(2 * a + 1 + 2 * b + 1) + 2 * s
    return min(_MAX_NODES, degree // 2 + 2)


def _cdf(x: np.ndarray, s: int, a: float, b: float, n_nodes: int) -> np.ndarray:
    """The unclipped exact CDF at ``x: (K,)``, 0 < x < 1, in chunks of 256 (memory ``256 n_nodes s``)."""
    x = np.asarray(x, dtype=np.float64)
    log_one = _log_pf_one(s, a, b)
    parts = [_log_pf(x[i : i + 256], s, a, b, n_nodes) for i in range(0, x.size, 256)]
    return np.exp(np.concatenate(parts) - log_one) if parts else np.zeros(0)


def roy_cdf_exact(x: np.ndarray | float, n: int, p: int, q: int) -> np.ndarray | float:
    """``P(rho_1^2 <= x)`` under H0 for n centred samples of p and q features (exact; module docstring); x a
    float or an array. In float64 the Pfaffian loses accuracy for large ``min(p, q)`` with large n (e.g. 30 x 30
    at n = 100); see :func:`exact_is_reliable`."""
    s, a, b = _parameters(n, p, q)
    xs = np.atleast_1d(np.asarray(x, dtype=np.float64))
    out = np.where(xs >= 1.0, 1.0, 0.0)
    inside = (xs > 0.0) & (xs < 1.0)
    with np.errstate(all="ignore"):
        out[inside] = np.clip(_cdf(xs[inside], s, a, b, _nodes(s, a, b)), 0.0, 1.0)
    return out if np.ndim(x) else float(out[0])


@functools.lru_cache(maxsize=256)
def exact_is_reliable(n: int, p: int, q: int, tol: float = 1e-5) -> bool:
    """Whether the exact CDF is trustworthy at this shape: at Johnstone's 0.1%, 1%, 10%, 50%, 90%, 99%, 99.9%
    points it gives the same value (within ``tol``) with two quadrature sizes (both exact in exact arithmetic, so
    a difference is rounding error), lies in [0, 1] and increases."""
    s, a, b = _parameters(n, p, q)
    if s > EXACT_MAX_DIMENSION:
        return False
    mu, sigma = _johnstone(n, p, q)
    points = 1.0 / (1.0 + np.exp(-(mu + sigma * np.array([-4.6, -3.9, -2.78, -1.27, 0.45, 2.02, 3.28]))))
    nodes = _nodes(s, a, b)
    with np.errstate(all="ignore"):
        first = _cdf(points, s, a, b, nodes)
        second = _cdf(points, s, a, b, nodes + max(16, nodes // 4))
    return bool(
        np.all(np.isfinite(first)) and np.all(np.abs(first - second) <= tol)
        and np.all(first >= -tol) and np.all(first <= 1 + tol) and np.all(np.diff(first) >= -tol)
    )


def tracy_widom1_cdf(t: np.ndarray | float, n_nodes: int = 64) -> np.ndarray:
    """TW1's CDF ``F1(t) = det(I - K)``, ``K(u, v) = Ai(u + v + t)`` on ``(0, inf)`` (Bornemann's quadrature on
    ``(0, 16 + max(0, -t))``, beyond which the Airy kernel is below 1e-20)."""
    t_arr = np.atleast_1d(np.asarray(t, dtype=np.float64))
    out = np.empty_like(t_arr)
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    for i, ti in enumerate(t_arr):
        if ti > 16.0:  # also +inf
            out[i] = 1.0
            continue
        if ti < -12.0:
            out[i] = 0.0
            continue
        length = 16.0 + max(0.0, -ti)
        u = 0.5 * length * (nodes + 1.0)
        sw = np.sqrt(0.5 * length * weights)
        K = sw[:, None] * sp.airy(u[:, None] + u[None, :] + ti)[0] * sw[None, :]
        out[i] = min(max(float(np.linalg.det(np.eye(n_nodes) - K)), 0.0), 1.0)
    return out if np.ndim(t) else out[0]


def _johnstone(n: int, p: int, q: int) -> tuple[float, float]:
    """Johnstone's (2008) centring and scaling of ``logit(rho_1^2)``."""
    s, m = min(p, q), max(p, q)
    big_n = n - 2.0  # (error df) + (hypothesis df) - 1 = (n - 1 - m) + m - 1
    gamma = 2.0 * np.arcsin(np.sqrt((s - 0.5) / big_n))
    phi = 2.0 * np.arcsin(np.sqrt((m - 0.5) / big_n))
    mu = 2.0 * np.log(np.tan(0.5 * (phi + gamma)))
    sigma = (16.0 / big_n**2 / (np.sin(phi + gamma) ** 2 * np.sin(phi) * np.sin(gamma))) ** (1.0 / 3.0)
    return float(mu), float(sigma)


def roy_cdf_tracy_widom(x: np.ndarray | float, n: int, p: int, q: int) -> np.ndarray | float:
    """``P(rho_1^2 <= x)`` by Johnstone's TW1 approximation on the logit scale (x a float or an array)."""
    _parameters(n, p, q)
    mu, sigma = _johnstone(n, p, q)
    xs = np.clip(np.atleast_1d(np.asarray(x, dtype=np.float64)), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        t = (np.log(xs) - np.log1p(-xs) - mu) / sigma  # -inf at 0, inf at 1: F1 gives 0 and 1
    out = np.atleast_1d(tracy_widom1_cdf(t))
    return out if np.ndim(x) else float(out[0])


def roy_pvalue(rho2_max: np.ndarray | float, n: int, p: int, q: int) -> tuple[np.ndarray | float, str]:
    """Calibrated p-value of Roy's test, ``P(rho_1^2 >= rho2_max | H0)`` (a float or an array), and the method
    used: ``"exact"`` where :func:`exact_is_reliable`, ``"tracy-widom"`` otherwise."""
    if exact_is_reliable(n, p, q):
        return 1.0 - roy_cdf_exact(rho2_max, n, p, q), "exact"
    return 1.0 - roy_cdf_tracy_widom(rho2_max, n, p, q), "tracy-widom"
