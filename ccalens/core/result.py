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


#: How far past +-1 rounding may carry a score bounded by +-1 by definition (a ratio of float64 norms and inner
#: products: a relative error of a few thousand units of roundoff, 2^-40 ~ 9e-13); such a score is clipped.
ROUNDING_EXCESS = 2.0**-40


def clip_unit(value: float | None) -> float | None:
    """``value`` clipped to [-1, 1] when it exceeds the bound by rounding only (at most :data:`ROUNDING_EXCESS`)."""
    if value is None or not math.isfinite(value):
        return value
    if 1.0 < value <= 1.0 + ROUNDING_EXCESS:
        return 1.0
    if -1.0 - ROUNDING_EXCESS <= value < -1.0:
        return -1.0
    return value


def angular_distance(score: float) -> float | None:
    """``arccos(score)``: the angle between the two (centred) kernels, a metric; None outside [-1, 1]."""
    score = clip_unit(score)
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

    def __post_init__(self) -> None:
        # every score and mean correlation here lies in [-1, 1] by definition: rounding must not carry it past
        for name in ("score", "mean_rho", "mean_rho2"):
            value = getattr(self, name)
            if isinstance(value, float):
                object.__setattr__(self, name, clip_unit(value))

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
    """Pairwise similarity: ``scores[i, j] = measure(R_i, R_j)``, square ``(L, L)`` over ``names``, or rectangular
    ``(L_a, L_b)`` with rows ``names`` and columns ``col_names`` (e.g. the layers of two models).

    ``mean_rho`` (CCA family) and ``null_mean_rho`` (the mean rho of unrelated data of the same n and kept ranks,
    CCA family) have the shape of ``scores``; ``rank: (L,)`` dimensions kept per representation (CCA family, square
    matrices); ``details`` the measure's options and the plan taken. Cells not computed are NaN. ``edge_corrected``
    and ``at_edge`` (CCA family): each cell's score over its noise-edge corrected correlations and how many of
    its correlations lie at the noise edge (NaN where no noise model applies; :mod:`ccalens.core.noise_edge`).
    """

    measure: str
    scores: np.ndarray
    names: tuple[str, ...]
    mean_rho: np.ndarray | None = None
    rank: np.ndarray | None = None
    details: dict[str, Any] = field(default_factory=dict)
    null_mean_rho: np.ndarray | None = None
    col_names: tuple[str, ...] | None = None
    edge_corrected: np.ndarray | None = field(default=None, repr=False)
    at_edge: np.ndarray | None = field(default=None, repr=False)

    @property
    def row_names(self) -> tuple[str, ...]:
        return self.names

    @property
    def column_names(self) -> tuple[str, ...]:
        return self.names if self.col_names is None else self.col_names

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"measure": self.measure, "names": list(self.names), "scores": _nan_to_none(self.scores)}
        if self.col_names is not None:
            out["col_names"] = list(self.col_names)
        for key in ("mean_rho", "null_mean_rho"):
            value = getattr(self, key)
            if value is not None:
                out[key] = _nan_to_none(value)
        if self.rank is not None:
            out["rank"] = self.rank.tolist()
        if self.details:
            out["details"] = _jsonable(self.details)
        return out

    def to_frame(self) -> Any:
        """A pandas ``DataFrame`` of the scores (rows ``names``, columns ``column_names``); needs pandas."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("to_frame needs pandas: pip install pandas (or use to_dict())") from exc
        return pd.DataFrame(self.scores, index=list(self.row_names), columns=list(self.column_names))


def _nan_to_none(a: np.ndarray) -> list[Any]:
    """Nested lists with NaN as None (valid JSON)."""
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.asarray(a, dtype=np.float64)]
