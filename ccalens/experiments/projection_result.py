"""The scores of one projection experiment (:mod:`ccalens.experiments.projection`) and their summaries.

:class:`ProjectionResult` holds one record per (method, k, pair, repeat, classifier), the unprojected baseline and
the first pair's canonical correlations; it summarises them over pairs and random draws (mean and population std),
reads curves and single scores, and saves JSON and CSV files.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ccalens.io import write_csv, write_json

__all__ = ["ProjectionResult"]


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation (ddof = 0, as ``np.std`` in the code of Moreau et al.)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=0))


@dataclass
class ProjectionResult:
    """Every score of one projection experiment.

    ``records``: one dict per (method, k, pair, repeat, classifier) with ``k_effective`` (k capped at the number
    of directions of the method), ``accuracy`` and ``macro_f1``. ``baseline``: the unprojected scores per
    classifier (mean over pairs). ``canonical_correlations`` and ``pca_ranks``: of the first pair, after PCA.
    """

    name: str
    reference: str
    n_classes: int
    n_features: int
    k_grid: list[int]
    methods: list[str]
    repeats: int
    records: list[dict[str, Any]]
    baseline: dict[str, dict[str, float]]
    canonical_correlations: np.ndarray
    pca_ranks: tuple[int, int]
    config: dict[str, Any]
    wall_time_s: float = 0.0
    references: list[str] = field(default_factory=list)

    @property
    def n_pairs(self) -> int:
        return max(1, len({r.get("pair", 0) for r in self.records}))

    @property
    def classifiers(self) -> list[str]:
        return sorted({r["classifier"] for r in self.records}, key=["original", "retrained"].index)

    def summary(self) -> list[dict[str, Any]]:
        """Mean and std (ddof = 0) over pairs and random draws per (method, k, classifier), for both metrics."""
        groups: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
        for r in self.records:
            groups[(r["method"], r["k"], r["classifier"])].append(r)
        rows = []
        for (method, k, clf), rs in groups.items():
            row: dict[str, Any] = {"method": method, "k": k, "k_effective": rs[0]["k_effective"], "classifier": clf,
                                   "n_runs": len(rs)}
            for metric in ("accuracy", "macro_f1"):
                row[f"{metric}_mean"], row[f"{metric}_std"] = _mean_std([r[metric] for r in rs])
            rows.append(row)
        order = {m: i for i, m in enumerate(self.methods)}
        rows.sort(key=lambda r: (r["classifier"], order[r["method"]], r["k"]))
        return rows

    def curve(self, method: str, classifier: str = "original", metric: str = "accuracy") -> tuple[
        np.ndarray, np.ndarray, np.ndarray
    ]:
        """``(k, mean, std)`` arrays for one method/classifier/metric."""
        rows = [r for r in self.summary() if r["method"] == method and r["classifier"] == classifier]
        if not rows:
            raise KeyError(f"no scores for method={method!r}, classifier={classifier!r}")
        rows.sort(key=lambda r: r["k"])
        return (
            np.array([r["k"] for r in rows]),
            np.array([r[f"{metric}_mean"] for r in rows]),
            np.array([r[f"{metric}_std"] for r in rows]),
        )

    def score_at(self, method: str, k: int, classifier: str = "original", metric: str = "accuracy") -> float:
        ks, mean, _ = self.curve(method, classifier, metric)
        hit = np.flatnonzero(ks == k)
        if hit.size == 0:
            raise KeyError(f"k={k} is not in the grid {ks.tolist()}")
        return float(mean[hit[0]])

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reference": self.reference,
            "n_classes": self.n_classes,
            "n_features": self.n_features,
            "k_grid": self.k_grid,
            "methods": self.methods,
            "repeats": self.repeats,
            "pairs": self.n_pairs,
            "references": self.references,
            "pca_ranks": list(self.pca_ranks),
            "baseline": self.baseline,
            "canonical_correlations": self.canonical_correlations,
            "config": self.config,
            "wall_time_s": self.wall_time_s,
            "summary": self.summary(),
            "records": self.records,
        }

    def save(self, out_dir: str | Path, stem: str) -> dict[str, Path]:
        """``{stem}.json`` (everything), ``{stem}_summary.csv`` and ``{stem}_records.csv``."""
        out_dir = Path(out_dir)
        return {
            "json": write_json(out_dir / f"{stem}.json", self.to_dict()),
            "summary_csv": write_csv(out_dir / f"{stem}_summary.csv", self.summary()),
            "records_csv": write_csv(out_dir / f"{stem}_records.csv", self.records),
        }
