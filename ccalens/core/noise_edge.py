"""Canonical correlations corrected for the noise dimensions: what the sample values say about the population.

Sample canonical correlations are biased upward, and most where population correlations are 0: a direction
with no shared signal still finds a correlation of order ``sqrt(rank / n)`` among the noise dimensions. In the
proportional regime (Bao, Hu, Pan & Zhou 2019, *Canonical correlation coefficients of high-dimensional Gaussian
vectors: finite rank case*, Ann. Statist. 47), with ``c1 = p' / m``, ``c2 = q' / m`` the noise dimensions of
each side over the sample size, a population squared correlation ``t`` gives the sample value

    lambda(t) = t (1 - c1 + c1 / t) (1 - c2 + c2 / t)          when t > t_c = sqrt(c1 c2 / ((1 - c1)(1 - c2))),

and any ``t <= t_c`` (0 included) gives a sample value at the edge of the noise,
``d+ = (sqrt(c1 (1 - c2)) + sqrt(c2 (1 - c1)))^2``. :func:`edge_corrected_correlations` inverts this: each
sample squared correlation above ``d+`` is mapped back to ``t`` (the larger root of
``(1 - c1)(1 - c2) t^2 + ((1 - c1) c2 + (1 - c2) c1 - lambda) t + c1 c2 = 0``), the others to 0. The noise
dimensions are those not taken by the correlations found: ``p' = rank_x - k``, ``q' = rank_y - k``,
``m = n - 1 - k`` for ``k`` detected correlations, iterated from ``k = 0`` until ``k`` is stable (fewer noise
dimensions lower the edge, so ``k`` only grows).

What it cannot do: a population correlation below ``sqrt(t_c)`` is indistinguishable from 0 at this n (it
gives the same sample value as 0) and is counted as 0, so a population with many small but non-zero
correlations is underestimated by about their mean. ``validation/coverage_study.py`` measures the effect.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .result import SimilarityResult

__all__ = ["EdgeCorrection", "EdgeScore", "edge_corrected_correlations", "edge_corrected_score"]


class EdgeCorrection(NamedTuple):
    """``corrected: (k,)`` population correlations (0 below the edge), ``detected`` of them above the noise edge
    (``None``: no noise model applies, the sides fill the samples), ``threshold`` the smallest population
    correlation told from 0 at this n (``sqrt(t_c)``)."""

    corrected: np.ndarray
    detected: int | None
    threshold: float


def _invert(squared: np.ndarray, c1: float, c2: float) -> tuple[np.ndarray, float]:
    a, b = 1.0 - c1, 1.0 - c2
    edge = (np.sqrt(c1 * b) + np.sqrt(c2 * a)) ** 2
    linear = squared - (a * c2 + b * c1)
    root = (linear + np.sqrt(np.maximum(linear * linear - 4.0 * a * b * c1 * c2, 0.0))) / (2.0 * a * b)
    t = np.where(squared > edge, np.clip(root, 0.0, 1.0), 0.0)
    return t, float(np.sqrt(np.sqrt(c1 * c2 / (a * b))))


def edge_corrected_correlations(correlations: np.ndarray, n_samples: int, rank_x: int, rank_y: int) -> EdgeCorrection:
    """Population canonical correlations estimated from ``correlations: (k,)`` (descending) of ``n_samples``
    samples and sides of ranks ``rank_x``, ``rank_y`` (see the module docstring).

    When the sides leave no room for noise (``rank_x + rank_y >= n_samples - 1``) the correlations are returned
    unchanged with ``detected=None``."""
    rho = np.clip(np.asarray(correlations, dtype=np.float64), 0.0, 1.0)
    if rho.size == 0 or rank_x + rank_y >= n_samples - 1:
        return EdgeCorrection(rho, None, float("nan"))
    squared = rho**2
    detected = 0
    for _ in range(rho.size + 1):
        m = n_samples - 1 - detected
        t, threshold = _invert(squared, (rank_x - detected) / m, (rank_y - detected) / m)
        found = int(np.count_nonzero(t))
        if found <= detected:
            break
        detected = found
    return EdgeCorrection(np.sqrt(t), detected, threshold)


class EdgeScore(NamedTuple):
    """A CCA-family score from its edge-corrected correlations: ``score``, ``detected`` of ``total`` correlations
    above the noise edge (``None``: no noise model applies) and ``threshold`` as in :class:`EdgeCorrection`."""

    score: float
    detected: int | None
    total: int
    threshold: float


def edge_corrected_score(result: SimilarityResult) -> EdgeScore:
    """The score of a CCA-family ``result`` (the mean, or PWCCA's weighted mean) over its edge-corrected
    correlations, at its own sample size and ranks."""
    rho = np.asarray(result.correlations if result.correlations is not None else (), dtype=np.float64)
    if rho.size == 0 or result.rank_x is None or result.rank_y is None:
        return EdgeScore(float(result.score), None, int(rho.size), float("nan"))
    fix = edge_corrected_correlations(rho, result.n_samples, result.rank_x, result.rank_y)
    weights = result.weights
    score = float(np.dot(weights, fix.corrected)) if weights is not None else float(fix.corrected.mean())
    return EdgeScore(score, fix.detected, int(rho.size), fix.threshold)
