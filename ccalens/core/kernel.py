"""RBF (Gaussian kernel) CKA: exact with n x n kernels within a memory budget, else random Fourier features.

Exact: ``K_ij = exp(-|x_i - x_j|^2 / (2 sigma_x^2))``, same for L, and
``CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with the biased estimator ``tr(HKHL)`` (Kornblith
et al. 2019). Bandwidth: ``sigma^2 = sigma_factor^2 * median of the squared distances``, per representation,
with two rules for which distances count:

* ``median="all"`` (default): all n^2 entries of the distance matrix, the n zeros of its diagonal included, as
  the reference code of Kornblith et al. computes it (``np.median`` of the full matrix of squared distances), so
  that the default reproduces their values.
* ``median="distinct"``: the n (n - 1) / 2 distances between distinct samples (a slightly larger bandwidth).

The exact method is deterministic: the median is exact (no subsample). It holds two n x n float64 kernels
and the triangle of distances, about ``20 n^2`` bytes; ``method="auto"`` uses it while that fits in
``memory_budget`` (the planner's default, :mod:`ccalens.core.plan`) and ``method="exact"`` refuses beyond it.

The kernel is computed as ``expm1(-d^2 / (2 sigma^2))`` (``K - 1``: centring removes the constant), so
a bandwidth much wider than the data keeps full precision instead of rounding every entry to 1; any
``sigma_factor`` works (as it grows, RBF CKA tends to linear CKA). Inputs are
centred and scaled by a power of two first (RBF CKA with a median bandwidth is invariant to shifts and
global scale), so any finite float64 scale, 1e-300 to 1e300, gives the same value.

Estimator (``method="minibatch"``): unbiased HSIC averaged over seeded, shuffled minibatches of ``batch_size``
rows (:mod:`ccalens.core.minibatch`), with the bandwidths of the random-features path; memory two
``batch_size^2`` kernels.

Approximation (larger n): random Fourier features (Rahimi & Recht 2007),
``z(x) = sqrt(2 / D) cos(W'x + b)`` with ``W ~ N(0, sigma^-2 I)``, ``b ~ U(0, 2 pi)``, so that
``z(x)'z(x') ~= k(x, x')`` with error O(1 / sqrt(D)). RBF CKA is then the linear CKA of the features,
computed batch by batch through :class:`SufficientStats` (memory O(D^2), not O(n^2)). The bandwidth comes
from a seeded subsample of ``median_samples`` rows (all rows when n is smaller). With the default
D = 4096 the approximation is within about 0.02 of the exact value in the tests (n = 600). Seeded: the same
inputs and seed give the same value.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .bandwidth import MedianRule, check_median_rule, median_squared, normalised, squared_distances
from .plan import plan_rbf
from .result import SimilarityResult
from .stats import SufficientStats
from .validation import check_paired

__all__ = ["rbf_cka"]

def _bandwidth_error(name: str, rule: str) -> ValueError:
    return ValueError(
        f"{name}: the median squared distance between samples (median={rule!r}) is 0, so the RBF bandwidth is 0: "
        "the representation is constant or most samples are identical"
        + (" (median='distinct' ignores the zero diagonal)" if rule == "all" else "")
    )


def _centred_kernel(A: np.ndarray, sigma_factor: float, rule: str, name: str) -> tuple[np.ndarray, float]:
    """Double-centred ``K - 1`` of normalised ``A: (n, d)``, up to a positive factor, in one n x n buffer; and sigma.

    CKA does not see the factor: the kernel is divided by its largest entry, so its squares cannot underflow.
    When every ``d^2 / (2 sigma^2)`` is below 1e-12 the kernel is its first-order term ``-d^2`` (relative
    error below 1e-12; for sigma -> infinity RBF CKA tends to linear CKA).
    """
    D = squared_distances(A)
    med = median_squared(D, rule)
    if not med > 0.0:
        raise _bandwidth_error(name, rule)
    rate = 0.5 / med / sigma_factor / sigma_factor  # 1 / (2 sigma^2); underflows to 0 rather than overflowing
    if rate * float(D.max()) < 1e-12:
        K = np.negative(D, out=D)
    else:
        D *= -rate
        K = np.expm1(D, out=D)
    K -= K.mean(axis=0, keepdims=True)
    K -= K.mean(axis=1, keepdims=True)
    peak = float(np.max(np.abs(K)))
    if peak > 0.0:
        K /= peak
    return K, sigma_factor * float(np.sqrt(med))


def _fourier_features(A: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(2.0 / W.shape[1]) * np.cos(A @ W + b)


def _linear_cka_of_stats(stats: SufficientStats) -> float:
    """``||S_xy||_F^2 / (||S_xx||_F ||S_yy||_F)`` from the co-moment blocks of two representations."""
    nx, ny = float(np.linalg.norm(stats.block(0, 0))), float(np.linalg.norm(stats.block(1, 1)))
    if not (nx > 0.0 and ny > 0.0):
        raise ValueError("the random Fourier features of a representation have no variance")
    return float(np.linalg.norm(stats.block(0, 1)) ** 2 / (nx * ny))


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def rbf_cka(
    X: Any,
    Y: Any,
    *,
    sigma_factor: float = 1.0,
    median: MedianRule = "all",
    method: Literal["auto", "exact", "random_features", "minibatch"] = "auto",
    memory_budget: int | None = None,
    n_features: int = 4096,
    batch_size: int = 4096,
    median_samples: int = 2000,
    seed: int = 0,
) -> SimilarityResult:
    """RBF CKA of ``X: (n, p)`` and ``Y: (n, q)`` (see the module docstring for the definitions).

    Args:
        sigma_factor: bandwidth ``sigma = sigma_factor * sqrt(median squared distance)``.
        median: ``"all"`` (all n^2 entries, Kornblith's reference code: the default) or ``"distinct"`` (pairs of
            distinct samples).
        method: ``"exact"`` (n x n kernels, deterministic), ``"random_features"`` (seeded approximation),
            ``"minibatch"`` (seeded estimator: unbiased HSIC averaged over shuffled minibatches of
            ``batch_size`` rows, :class:`~ccalens.core.minibatch.MinibatchCKA`) or ``"auto"`` (exact while
            ``exact_rbf_bytes(n) <= memory_budget``, else random features: :func:`ccalens.core.plan.plan_rbf`).
        memory_budget: bytes the exact method may use (None: the engine's default,
            :func:`ccalens.core.plan.default_memory_budget`).
        n_features, batch_size, median_samples, seed: approximation options (random features, rows per
            batch or per minibatch, rows of the seeded subsample for the bandwidth, seed).

    ``details`` holds the method, the median rule and the bandwidths (in the input's units).
    """
    X, Y = check_paired(X, Y)
    if not (np.isfinite(sigma_factor) and sigma_factor > 0):
        raise ValueError(f"sigma_factor must be positive and finite, got {sigma_factor}")
    check_median_rule(median)
    if method not in ("auto", "exact", "random_features", "minibatch"):
        raise ValueError(f"method must be 'auto', 'exact', 'random_features' or 'minibatch', got {method!r}")
    n = X.shape[0]
    method = plan_rbf(n, method, memory_budget)
    A, scale_x = normalised(X)
    B, scale_y = normalised(Y)
    details: dict[str, Any] = {"method": method, "median": median}
    if method == "exact":
        K, sx = _centred_kernel(A, sigma_factor, median, "X")
        del A
        L, sy = _centred_kernel(B, sigma_factor, median, "Y")
        hxx, hyy = float(np.vdot(K, K)), float(np.vdot(L, L))
        if not (hxx > 0.0 and hyy > 0.0):
            raise ValueError("RBF CKA is undefined: a centred kernel is 0 (sigma_factor far too small or large)")
        score = float(np.vdot(K, L)) / np.sqrt(hxx * hyy)
        details.update(sigma_x=sx * scale_x, sigma_y=sy * scale_y)
        return SimilarityResult("rbf_cka", min(1.0, score), n_samples=n, details=details)

    n_features = _positive_int(n_features, "n_features")
    batch_size = _positive_int(batch_size, "batch_size")
    median_samples = _positive_int(median_samples, "median_samples")

    def bandwidth(M: np.ndarray, name: str) -> float:
        if M.shape[0] > median_samples:
            M = M[np.sort(np.random.default_rng(seed).choice(M.shape[0], median_samples, replace=False))]
        med = median_squared(squared_distances(M), median)
        if not med > 0.0:
            raise _bandwidth_error(name, median)
        return sigma_factor * float(np.sqrt(med))

    sx, sy = bandwidth(A, "X"), bandwidth(B, "Y")
    details.update(sigma_x=sx * scale_x, sigma_y=sy * scale_y)
    if method == "minibatch":
        from .minibatch import minibatch_cka  # minibatch.py builds on this module's distances

        res = minibatch_cka(A, B, batch_size=max(4, batch_size), seed=seed, kernel="rbf", sigmas=(sx, sy))
        details.update(batch_size=res.details["batch_size"], n_minibatches=res.details["n_minibatches"])
        return SimilarityResult("rbf_cka", res.score, n_samples=n, details=details)

    # each side draws from a generator seeded alike, so identical inputs get identical features (CKA = 1)
    def draw(width: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        return rng.standard_normal((width, n_features)) / sigma, rng.uniform(0.0, 2.0 * np.pi, n_features)

    Wx, bx = draw(A.shape[1], sx)
    Wy, by = draw(B.shape[1], sy)
    stats = SufficientStats()
    for start in range(0, n, batch_size):
        sl = slice(start, start + batch_size)
        stats.update(_fourier_features(A[sl], Wx, bx), _fourier_features(B[sl], Wy, by))
    details["n_random_features"] = n_features
    return SimilarityResult("rbf_cka", _linear_cka_of_stats(stats), n_samples=n, details=details)
