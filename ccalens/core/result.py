"""Result types shared by every measure (core and conv): one pair, and many pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SimilarityMatrix", "SimilarityResult"]


@dataclass(frozen=True)
class SimilarityResult:
    """One similarity measure between two representations.

    Attributes:
        measure: name of the measure.
        score: the measure's own summary (in [0, 1]; 1 = same up to the measure's invariances).
        mean_rho: mean canonical correlation (CCA family only, else None).
        mean_rho2: mean squared canonical correlation (CCA family only, else None).
        correlations: ``(k,)`` canonical correlations, descending (CCA family only, else None).
        n_samples: samples used.
        details: measure-specific values (kept dimensions, PWCCA weights, distances...).
    """

    measure: str
    score: float
    mean_rho: float | None = None
    mean_rho2: float | None = None
    correlations: np.ndarray | None = field(default=None, repr=False)
    n_samples: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        out: dict[str, Any] = {
            "measure": self.measure,
            "score": self.score,
            "mean_rho": self.mean_rho,
            "mean_rho2": self.mean_rho2,
            "n_samples": self.n_samples,
        }
        if self.correlations is not None:
            out["correlations"] = self.correlations.tolist()
        out["details"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.details.items()}
        return out


@dataclass(frozen=True)
class SimilarityMatrix:
    """Pairwise similarity of L representations: ``scores: (L, L)``, ``scores[i, j] = measure(R_i, R_j)``."""

    measure: str
    scores: np.ndarray
    names: tuple[str, ...]
    mean_rho: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"measure": self.measure, "names": list(self.names), "scores": self.scores.tolist()}
        if self.mean_rho is not None:
            out["mean_rho"] = self.mean_rho.tolist()
        return out
