"""Projection experiment on the grid of all sensor pairs (Moreau et al. 2021, Fig. 5).

Cell (a, b): the network trained on sensor a (first seed) has its features projected on canonical directions
computed against the network trained on sensor b; the diagonal uses another initialisation on the same sensor.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ccalens.experiments.common import NetworkFeatures
from ccalens.experiments.projection import ProjectionConfig, ProjectionResult, run_projection

__all__ = ["run_sensor_grid"]


def run_sensor_grid(
    nets: Mapping[tuple[str, int], NetworkFeatures],
    sensors: Sequence[str],
    seeds: Sequence[int],
    y_train: np.ndarray,
    y_val: np.ndarray,
    config: ProjectionConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    progress: bool = False,
) -> dict[tuple[str, str], ProjectionResult]:
    """``{(a, b): ProjectionResult}`` for every ordered pair of ``sensors``.

    ``nets[(sensor, seed)]``: features of each trained network; row networks use ``seeds[0]``; the diagonal
    needs ``seeds[1]`` (left out with a single seed). With ``out_dir``, each cell is saved as ``{a}_vs_{b}``.
    """
    if not seeds:
        raise ValueError("seeds must list at least one seed")
    missing = [(s, seeds[0]) for s in sensors if (s, seeds[0]) not in nets]
    if missing:
        raise KeyError(f"no features for {missing}")
    grid: dict[tuple[str, str], ProjectionResult] = {}
    pairs = list(itertools.product(sensors, sensors))
    for a, b in tqdm(pairs, desc="sensor grid", disable=not progress):
        if a == b:
            if len(seeds) < 2 or (a, seeds[1]) not in nets:
                continue
            ref = nets[(a, seeds[1])]
        else:
            ref = nets[(b, seeds[0])]
        res = run_projection(nets[(a, seeds[0])], ref.train, y_train, y_val, config, reference=ref.name)
        if out_dir is not None:
            res.save(out_dir, f"{a}_vs_{b}")
        grid[(a, b)] = res
    return grid
