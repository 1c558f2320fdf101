"""Kernel bandwidths: squared distances between samples and their median, shared by exact and minibatch RBF CKA.

``median="all"``: all n^2 entries of the distance matrix, its n zeros included (Kornblith et al.'s reference code,
``np.median`` of the full matrix); ``median="distinct"``: the n (n - 1) / 2 distances between distinct samples.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .validation import check_paired

__all__ = ["MedianRule", "check_median_rule", "median_distance", "median_squared", "normalised", "squared_distances"]

MedianRule = Literal["distinct", "all"]
MEDIAN_RULES = ("distinct", "all")


def normalised(A: np.ndarray) -> tuple[np.ndarray, float]:
    """``A: (n, d)`` as float64, centred and divided by a power of two near its largest value; and that scale.

    Distances, hence RBF CKA with a median bandwidth, do not change under the shift; the power-of-two scale
    is exact, so inputs of any finite magnitude are computed alike (no overflow of squared distances at
    1e200, no underflow at 1e-200).
    """
    out = np.array(A, dtype=np.float64, copy=True)
    scale = 1.0
    for _ in range(2):  # bring values near 1 (no overflow in the mean), centre, bring the residuals near 1
        peak = float(np.max(np.abs(out)))
        if peak == 0.0:
            break
        step = float(np.ldexp(1.0, int(np.frexp(peak)[1]) - 1))  # peak / step in [1, 2): no overflow at 1e308
        out /= step
        scale *= step
        out -= out.mean(axis=0)
    return out, scale


def squared_distances(A: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``(n, n)`` squared Euclidean distances between the rows of ``A: (n, d)``, into ``out`` if given."""
    D = np.dot(A, A.T, out=out)
    sq = np.diag(D).copy()
    D *= -2.0
    D += sq[:, None]
    D += sq[None, :]
    np.maximum(D, 0.0, out=D)
    np.fill_diagonal(D, 0.0)
    return D


def median_squared(D: np.ndarray, rule: str) -> float:
    """Median of the squared distances ``D: (n, n)`` under ``rule`` (exact; the triangle is copied once)."""
    n = D.shape[0]
    tri = np.empty(n * (n - 1) // 2)
    pos = 0
    for i in range(n - 1):  # row by row: no (n^2 / 2)-long index arrays
        tri[pos : pos + n - 1 - i] = D[i, i + 1 :]
        pos += n - 1 - i
    if rule == "distinct":
        count, zeros = tri.size, 0
    else:  # all n^2 entries: n zeros (the diagonal), then every distinct pair twice
        count, zeros = n * n, n
    middle = [(count - 1) // 2, count // 2]  # one index when count is odd

    def rank_in_triangle(k: int) -> int | None:
        return None if k < zeros else (k - zeros) // (2 if rule == "all" else 1)

    needed = sorted({r for r in map(rank_in_triangle, middle) if r is not None})
    if needed:
        tri.partition(needed)
    values = [0.0 if (r := rank_in_triangle(k)) is None else float(tri[r]) for k in middle]
    return (values[0] + values[1]) / 2.0


def check_median_rule(median: str) -> None:
    if median not in MEDIAN_RULES:
        raise ValueError(f"median must be 'distinct' or 'all', got {median!r}")


def median_distance(
    X: Any, *, median: MedianRule = "all", max_samples: int | None = None, seed: int = 0
) -> float:
    """Square root of the median squared Euclidean distance between the rows of ``X: (n, d)``.

    ``median`` picks the distances (see the module docstring). Exact on all rows unless ``max_samples`` is
    given and n exceeds it: then on a seeded random subsample of ``max_samples`` rows.
    """
    check_median_rule(median)
    (X,) = check_paired(X, names=("X",))
    A, scale = normalised(X)
    if max_samples is not None and A.shape[0] > max_samples:
        A = A[np.sort(np.random.default_rng(seed).choice(A.shape[0], max_samples, replace=False))]
    return float(np.sqrt(median_squared(squared_distances(A), median))) * scale
