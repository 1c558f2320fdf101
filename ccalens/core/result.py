"""Result types shared by every measure (core and conv): one pair, and many pairs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SimilarityMatrix", "SimilarityResult", "angular_distance"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def angular_distance(score: float) -> float | None:
    """``arccos(score)``: the angle between the two (centred) kernels, a metric; None outside [-1, 1]."""
    return float(math.acos(score)) if -1.0 <= score <= 1.0 else None


@dataclass(frozen=True)
class SimilarityResult:
    """One similarity measure between two representations ``X: (n, p)`` and ``Y: (n, q)``.

    The same fields for every measure, core and conv (``None`` where a measure has no such value).

    Attributes:
        measure: name of the measure.
        score: the measure's own summary (1 = same up to the measure's invariances).
        mean_rho: mean canonical correlation (CCA family only).
        mean_rho2: mean squared canonical correlation (CCA family only).
        correlations: ``(k,)`` canonical correlations, descending (CCA family only).
        n_samples: samples used.
        details: measure-specific extras only (SVCCA's rule and explained fractions, RBF bandwidths, ...).
        rank_x, rank_y: dimensions kept on each side (CCA family: after the cut-off, SVCCA: after truncation).
        weights: ``(k,)`` PWCCA weights of the correlations, summing to 1 (PWCCA only).
        distance: the metric form where one exists: Procrustes ``sqrt(2 - 2 score)`` (the orthogonal Procrustes
            distance of the centred, unit-Frobenius representations), CKA ``arccos(score)`` (angular).
        null_mean_rho: mean rho that unrelated data of the same n and ranks give (CCA family; None until set).
    """

    measure: str
    score: float
    mean_rho: float | None = None
    mean_rho2: float | None = None
    correlations: np.ndarray | None = field(default=None, repr=False)
    n_samples: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    rank_x: int | None = None
    rank_y: int | None = None
    weights: np.ndarray | None = field(default=None, repr=False)
    distance: float | None = None
    null_mean_rho: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (arrays as lists)."""
        out: dict[str, Any] = {
            "measure": self.measure,
            "score": self.score,
            "mean_rho": self.mean_rho,
            "mean_rho2": self.mean_rho2,
            "n_samples": self.n_samples,
            "rank_x": self.rank_x,
            "rank_y": self.rank_y,
            "distance": self.distance,
            "null_mean_rho": self.null_mean_rho,
        }
        if self.correlations is not None:
            out["correlations"] = self.correlations.tolist()
        if self.weights is not None:
            out["weights"] = self.weights.tolist()
        out["details"] = _jsonable(self.details)
        return out


@dataclass(frozen=True)
class SimilarityMatrix:
    """Pairwise similarity of L representations: ``scores: (L, L)``, ``scores[i, j] = measure(R_i, R_j)``.

    ``mean_rho: (L, L)`` for the CCA family; ``rank: (L,)`` dimensions kept per representation (CCA family);
    ``details`` the measure's options (e.g. SVCCA's rule and threshold).
    """

    measure: str
    scores: np.ndarray
    names: tuple[str, ...]
    mean_rho: np.ndarray | None = None
    rank: np.ndarray | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"measure": self.measure, "names": list(self.names), "scores": self.scores.tolist()}
        if self.mean_rho is not None:
            out["mean_rho"] = self.mean_rho.tolist()
        if self.rank is not None:
            out["rank"] = self.rank.tolist()
        if self.details:
            out["details"] = _jsonable(self.details)
        return out
