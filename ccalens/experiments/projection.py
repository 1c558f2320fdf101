"""Projection experiment of Moreau et al. (2021), section 4.2 (DESIGN.md section 3).

A trained network gives penultimate features X1 (train ``(n, p)``, validation ``(m, p)``) and a last layer
(W, b). A basis change B of the feature space is fitted on the TRAIN features only; validation (and, for the
retrained layer, training) features are projected on k of its directions with the oblique projector
``P = B^+ diag(mask) B`` and the mean is added back: ``X' = mean + (X - mean) @ P.T``. Seven ways to pick the
directions (:data:`METHODS`):

* ``cca_highest`` / ``cca_lowest`` / ``cca_random``: the k canonical directions of X1 (against features X2 of
  the same training samples from another network, discarded afterwards) with the highest / lowest / random
  correlations; both sides are first reduced by PCA keeping 99.99% of the variance;
* ``max_activation``: the k neurons with the largest max |activation|; ``random_selection``: k random neurons
  (other neurons are set to their training mean);
* ``random_projection``: k random orthonormal directions; ``pca``: the top k principal directions.

Scores: the ORIGINAL last layer on projected validation features, and a last layer RETRAINED on projected
training features (:func:`ccalens.experiments.common.train_linear_layers`). Metrics: accuracy and macro F1, kept
in a :class:`~ccalens.experiments.projection_result.ProjectionResult`.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ccalens.experiments.bases import (
    CCA_METHODS,
    METHODS,
    RANDOM_METHODS,
    Basis,
    cca_basis,
    identity_basis,
    k_grid,
    method_directions,
    pca_basis,
    project_features,
    random_orthonormal_basis,
)
from ccalens.experiments.common import (
    NetworkFeatures,
    RetrainConfig,
    scores,
    train_linear_layers,
)
from ccalens.experiments.parallel import Workers
from ccalens.experiments.projection_result import ProjectionResult

__all__ = [
    "ProjectionConfig",
    "run_projection",
    "run_projection_pairs",
    "run_projection_views",
]

@dataclass(frozen=True)
class ProjectionConfig:
    """Settings of :func:`run_projection` (defaults: DESIGN.md section 3)."""

    methods: tuple[str, ...] = METHODS
    repeats: int = 5
    pairs: int = 3
    k_values: tuple[int, ...] | None = None
    pca_variance: float = 0.9999
    retrain: bool = True
    retrain_config: RetrainConfig = field(default_factory=RetrainConfig)
    seed: int = 0
    #: replicates of the 95% bootstrap interval of each network pair's mean canonical correlation (0 = none)
    bootstrap: int = 200

    def __post_init__(self) -> None:
        if isinstance(self.bootstrap, bool) or int(self.bootstrap) < 0 or int(self.bootstrap) == 1:
            raise ValueError(f"bootstrap must be 0 (no interval) or a number of replicates >= 2, got {self.bootstrap}")
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {list(self.methods)}")
        if int(self.repeats) < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if int(self.pairs) < 1:
            raise ValueError(f"pairs must be >= 1, got {self.pairs}")
        if self.k_values is not None and (not self.k_values or min(self.k_values) < 1):
            raise ValueError(f"k_values must be positive integers, got {self.k_values}")
        if not 0 < self.pca_variance <= 1:
            raise ValueError(f"pca_variance must be in (0, 1], got {self.pca_variance}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "methods": list(self.methods),
            "repeats": self.repeats,
            "pairs": self.pairs,
            "k_values": None if self.k_values is None else list(self.k_values),
            "pca_variance": self.pca_variance,
            "retrain": self.retrain,
            "retrain_config": self.retrain_config.to_dict(),
            "seed": self.seed,
            "bootstrap": self.bootstrap,
        }


def _nested_draws(
    method: str, ks: Sequence[int], rng: np.random.Generator, *, X_train: np.ndarray, cca: Basis | None,
    neurons: Basis,
) -> list[tuple[int, int, Basis, np.ndarray]]:
    """One random draw of ``method`` and its prefixes for every k: ``(k, k_effective, basis, components)``.

    The k-subsets are nested (the directions kept at k are among those kept at every larger k), so a curve
    varies with k only, not with a new draw at every point (Moreau et al. draw once per repeat).
    """
    p = X_train.shape[1]
    if method == "cca_random":
        assert cca is not None
        order = rng.permutation(cca.rank)
        return [(k, min(k, cca.rank), cca, np.sort(order[: min(k, cca.rank)])) for k in ks]
    if method == "random_selection":
        order = rng.permutation(p)
        return [(k, min(k, p), neurons, np.sort(order[: min(k, p)])) for k in ks]
    full = random_orthonormal_basis(X_train, p, rng)  # random_projection: the first k of one Haar basis
    return [(k, min(k, p), full, np.arange(min(k, p))) for k in ks]


def _view_key(name: str) -> int:
    """A stable integer for a view's name, so that every view gets its own random draws."""
    return zlib.crc32(name.encode("utf-8"))


def run_projection(
    net: NetworkFeatures,
    X2_train: np.ndarray,
    y_train: np.ndarray,
    y_val: np.ndarray,
    config: ProjectionConfig | None = None,
    *,
    reference: str = "X2",
    progress: bool = False,
) -> ProjectionResult:
    """Run the projection experiment on one network against one reference (one pair; see
    :func:`run_projection_pairs`). ``X2_train: (n, q)``: the reference's features of the same training samples."""
    return run_projection_pairs([(net, X2_train)], y_train, y_val, config, name=net.name, references=[reference],
                                progress=progress)


def run_projection_pairs(
    pairs: Sequence[tuple[NetworkFeatures, np.ndarray]],
    y_train: np.ndarray,
    y_val: np.ndarray,
    config: ProjectionConfig | None = None,
    *,
    name: str,
    references: Sequence[str] | None = None,
    progress: bool = False,
    workers: Workers | None = None,
) -> ProjectionResult:
    """Run the projection experiment on several network pairs of one view (Moreau et al.: seed i against seed
    i + P), pooling the scores: the spread is over pairs and random draws, so deterministic methods get a band.

    ``pairs``: ``(net, X2_train)`` with ``net`` the projected network's features (train ``(n, p)``, val
    ``(m, p)``) and last layer, ``X2_train: (n, q)`` the reference network's features of the same training
    samples; ``y_train: (n,)``, ``y_val: (m,)`` labels in 0..c-1. ``name`` (the view) seeds the random draws.
    ``workers``: processes the pairs are spread over (None: this process); the result does not depend on them.
    """
    return run_projection_views([(name, pairs, references)], y_train, y_val, config, progress=progress,
                                workers=workers)[0]


def run_projection_views(
    views: Sequence[tuple[str, Sequence[tuple[NetworkFeatures, np.ndarray]], Sequence[str] | None]],
    y_train: np.ndarray,
    y_val: np.ndarray,
    config: ProjectionConfig | None = None,
    *,
    progress: bool = False,
    workers: Workers | None = None,
) -> list[ProjectionResult]:
    """:func:`run_projection_pairs` for several ``(name, pairs, references)`` at once, every pair of every view one
    unit of work for ``workers`` (so that the processes stay busy across views); one result per view, in order."""
    config = config or ProjectionConfig()
    y_train = np.asarray(y_train).astype(np.int64).ravel()
    y_val = np.asarray(y_val).astype(np.int64).ravel()
    units: list[tuple[Any, ...]] = []
    plans = []
    for name, pairs, references in views:
        if not pairs:
            raise ValueError("pairs is empty: give at least one (network, reference features) pair")
        refs = list(references) if references is not None else [f"reference {i}" for i in range(len(pairs))]
        if len(refs) != len(pairs):
            raise ValueError(f"references has {len(refs)} names for {len(pairs)} pairs")
        first = pairs[0][0]
        c, p = first.n_classes, first.n_features
        for net, _ in pairs:
            if (net.n_classes, net.n_features) != (c, p):
                raise ValueError(f"every pair must have the same classes and width; {net.name} differs from "
                                 f"{first.name}")
        ks = list(config.k_values) if config.k_values is not None else k_grid(c, p)
        ks = sorted({min(int(k), p) for k in ks})
        plans.append((name, refs, c, p, ks, len(units), len(pairs)))
        units += [(index, net, X2_train, y_train, y_val, ks, config, _view_key(name))
                  for index, (net, X2_train) in enumerate(pairs)]
    t0 = time.perf_counter()
    pool = workers or Workers(1, progress=progress)
    desc = f"projection {views[0][0]}" if len(views) == 1 else f"projection ({len(views)} views)"
    done = pool.map(_project_pair, units, desc=desc)
    wall = (time.perf_counter() - t0) / len(views)
    out = []
    for name, refs, c, p, ks, start, count in plans:
        records: list[dict[str, Any]] = []
        for pair_records, _, _, _ in done[start : start + count]:
            records.extend(pair_records)
        baselines = [b for _, b, _, _ in done[start : start + count]]
        baseline = {
            clf: {metric: float(np.mean([b[clf][metric] for b in baselines])) for metric in baselines[0][clf]}
            for clf in baselines[0]
        }
        _, _, correlations, ranks = done[start]
        out.append(ProjectionResult(
            name=name,
            reference=refs[0] if len(refs) == 1 else f"{len(refs)} references",
            n_classes=c,
            n_features=p,
            k_grid=ks,
            methods=list(config.methods),
            repeats=config.repeats,
            records=records,
            baseline=baseline,
            canonical_correlations=correlations,
            pca_ranks=ranks,
            config=config.to_dict(),
            wall_time_s=wall,
            references=refs,
        ))
    return out


def _project_pair(
    index: int,
    net: NetworkFeatures,
    X2_train: np.ndarray,
    y_train: np.ndarray,
    y_val: np.ndarray,
    ks: list[int],
    config: ProjectionConfig,
    view: int,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]], np.ndarray, tuple[int, int]]:
    """Every (method, k, draw) of one pair: its records, its unprojected baseline, its canonical correlations."""
    X1_train = np.asarray(net.train, dtype=np.float64)
    X1_val = np.asarray(net.val, dtype=np.float64)
    if y_train.shape[0] != X1_train.shape[0]:
        raise ValueError(f"y_train has {y_train.shape[0]} labels, {net.name} has {X1_train.shape[0]} training rows")
    if y_val.shape[0] != X1_val.shape[0]:
        raise ValueError(f"y_val has {y_val.shape[0]} labels, {net.name} has {X1_val.shape[0]} validation rows")
    c, p = net.n_classes, net.n_features
    cca = None
    correlations = np.zeros(0)
    ranks = (0, 0)
    if any(m in CCA_METHODS for m in config.methods):
        cca, correlations, ranks = cca_basis(X1_train, X2_train, config.pca_variance)
    pca = pca_basis(X1_train) if "pca" in config.methods else None
    neurons = identity_basis(X1_train)

    # tasks: (method, k, repeat, k_effective, basis, components); the first task is the unprojected baseline
    baseline_task = "__baseline__"
    tasks: list[tuple[str, int, int, int, Basis, np.ndarray]] = [(baseline_task, p, 0, p, neurons, np.arange(p))]
    method_index = {m: i for i, m in enumerate(METHODS)}
    for method in config.methods:
        if method in RANDOM_METHODS:
            for rep in range(config.repeats):
                rng = np.random.default_rng([config.seed, view, index, method_index[method], rep])
                for k, k_eff, basis, comps in _nested_draws(method, ks, rng, X_train=X1_train, cca=cca,
                                                            neurons=neurons):
                    tasks.append((method, k, rep, k_eff, basis, comps))
            continue
        for k in ks:
            basis, comps = method_directions(method, k, X_train=X1_train, cca=cca, pca=pca, neurons=neurons)
            tasks.append((method, k, 0, int(comps.size), basis, comps))

    baseline: dict[str, dict[str, float]] = {}
    records: list[dict[str, Any]] = []
    retrain = config.retrain_config
    group = retrain.group_size
    for start in range(0, len(tasks), group):
        chunk = tasks[start : start + group]
        vals = [project_features(X1_val, basis, comps) for (_, _, _, _, basis, comps) in chunk]
        layers: list[tuple[np.ndarray, np.ndarray]] = []
        if config.retrain:
            trains = [project_features(X1_train, basis, comps) for (_, _, _, _, basis, comps) in chunk]
            layers = train_linear_layers(trains, y_train, c, retrain, initial_layer=(net.weight, net.bias))
            del trains
        for j, (method, k, rep, k_eff, _, _) in enumerate(chunk):
            s_orig = scores(y_val, net.logits(vals[j]).argmax(axis=1), c)
            s_re = None
            if config.retrain:
                W, b = layers[j]
                s_re = scores(y_val, (vals[j] @ W.T + b).argmax(axis=1), c)
            if method == baseline_task:
                baseline["original"] = s_orig
                if s_re is not None:
                    baseline["retrained"] = s_re
                continue
            base = {"method": method, "k": k, "k_effective": k_eff, "pair": index, "repeat": rep}
            records.append({**base, "classifier": "original", **s_orig})
            if s_re is not None:
                records.append({**base, "classifier": "retrained", **s_re})
    return records, baseline, correlations, ranks
