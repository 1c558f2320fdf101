"""Projection experiment on the grid of all sensor pairs (Moreau et al. 2021, Fig. 5).

Cell (a, b): the network trained on sensor a (first seed) has its features projected on canonical directions
computed against the network trained on sensor b; the diagonal uses another initialisation on the same sensor.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ccalens.experiments.common import NetworkFeatures
from ccalens.experiments.parallel import Workers
from ccalens.experiments.projection import ProjectionConfig, run_projection_views
from ccalens.experiments.projection_result import ProjectionResult

__all__ = ["run_sensor_grid"]


def run_sensor_grid(
    nets: Mapping[tuple[str, int], NetworkFeatures],
    sensors: Sequence[str],
    seed_pairs: Sequence[tuple[int, int]],
    y_train: np.ndarray,
    y_val: np.ndarray,
    config: ProjectionConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    progress: bool = False,
    workers: Workers | None = None,
) -> dict[tuple[str, str], ProjectionResult]:
    """``{(a, b): ProjectionResult}`` for every ordered pair of ``sensors``: the network of sensor ``a`` is
    projected on canonical directions found against the network of sensor ``b``.

    ``nets[(sensor, seed)]``: features of each trained network. ``seed_pairs``: ``(s, t)`` pairs; for each one,
    ``a``'s seed-``s`` network meets ``b``'s seed-``t`` network (Moreau et al.: seed i against seed i + P, also
    across sensors), and the cell pools the pairs. With ``out_dir``, each cell is saved as ``{a}_vs_{b}``.
    ``workers``: processes the cells' pairs are spread over (None: this process).
    """
    if not seed_pairs:
        raise ValueError("seed_pairs must list at least one (seed, seed) pair")
    missing = sorted({(s, seed) for s in sensors for pair in seed_pairs for seed in pair} - set(nets))
    if missing:
        raise KeyError(f"no features for {missing}")
    cells = list(itertools.product(sensors, sensors))
    views = []
    for a, b in cells:
        pairs = [(nets[(a, s)], nets[(b, t)]) for s, t in seed_pairs]
        views.append((f"{a}<-{b}", [(net, ref.train) for net, ref in pairs], [ref.name for _, ref in pairs]))
    results = run_projection_views(views, y_train, y_val, config, progress=progress, workers=workers)
    grid: dict[tuple[str, str], ProjectionResult] = {}
    for (a, b), res in zip(cells, results, strict=True):
        if out_dir is not None:
            res.save(out_dir, f"{a}_vs_{b}")
        grid[(a, b)] = res
    return grid
