"""Learning dynamics (Raghu et al. 2017, Fig. 4): for each layer and each saved checkpoint, SVCCA similarity to
the layer's final representation (lower layers converge first)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ccalens.core.validation import SvccaRule
from ccalens.experiments.activations import layer_activations, pair_score
from ccalens.experiments.parallel import Workers

__all__ = ["convergence_steps", "learning_dynamics", "spread_checkpoints"]

def learning_dynamics(
    model_factory: Callable[[], Any],
    checkpoints: Sequence[tuple[int, str | os.PathLike[str]]],
    X: np.ndarray,
    layers: Sequence[str],
    *,
    keep: str = "singular_values",
    threshold: float = 0.99,
    conv: str = "maps",
    progress: bool = False,
    workers: Workers | None = None,
    tokens: bool = False,
) -> dict[str, Any]:
    """SVCCA similarity of each layer at each checkpoint to the same layer at the LAST checkpoint.

    ``checkpoints``: ``(step, path)`` in step order (``ccalens.models.checkpoints.list_checkpoints``);
    ``X: (n, ...)`` probe inputs. Dense layers: one :func:`~ccalens.core.measures.similarity_matrix` per layer over
    the checkpoints, asking only the pairs against the final state (each checkpoint's representation prepared
    once). Conv layers (``conv="maps"``): DFT-CCA (SVCCA appendix C) per checkpoint. ``tokens=True``: ``X: (n, T)``
    token ids of a sequence model, each position a sample (a layer's ``(n * T, d)`` hidden states). ``workers``:
    the checkpoints are split in one contiguous run per worker process (``model_factory`` must then be picklable,
    e.g. ``functools.partial(copy.deepcopy, model)``); each pair's score is the same however they are split. Returns
    ``{"steps": [T], "layers": [L], "similarity": (L, T), "mean_rho": (L, T), "null_mean_rho": (L, T),
    "conventions": {layer: "dense" | "dft"}, "keep", "threshold"}``.
    """
    SvccaRule(keep, threshold)  # validated once, before any checkpoint is read
    if len(checkpoints) < 2:
        raise ValueError(f"checkpoints must hold at least 2 checkpoints, got {len(checkpoints)}")
    T = len(checkpoints)
    parts = min(workers.workers if workers is not None else 1, T - 1)
    runs = [r for r in np.array_split(np.arange(T - 1), parts) if r.size]
    units = [(model_factory, [checkpoints[i] for i in run] + [checkpoints[-1]], X, list(layers), keep, threshold,
              conv, progress and len(runs) == 1, tokens) for run in runs]
    done = (workers or Workers(1)).map(_against_final, units, desc="learning dynamics" if progress else None)
    sim = np.zeros((len(layers), T))
    rho = np.zeros_like(sim)
    null = np.full_like(sim, np.nan)
    for run, (s_run, r_run, n_run, _) in zip(runs, done, strict=True):
        sim[:, run], rho[:, run], null[:, run] = s_run[:, :-1], r_run[:, :-1], n_run[:, :-1]
    sim[:, -1], rho[:, -1], null[:, -1] = done[0][0][:, -1], done[0][1][:, -1], done[0][2][:, -1]
    return {"steps": [int(s) for s, _ in checkpoints], "layers": list(layers), "similarity": sim, "mean_rho": rho,
            "null_mean_rho": null, "conventions": done[0][3], "keep": keep, "threshold": threshold}


def _against_final(
    model_factory: Callable[[], Any],
    checkpoints: Sequence[tuple[int, str | os.PathLike[str]]],
    X: np.ndarray,
    layers: Sequence[str],
    keep: str,
    threshold: float,
    conv: str,
    progress: bool,
    tokens: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, str]]:
    """Similarity ``(L, t)`` (and mean rho, null mean rho) of each layer at each of ``checkpoints`` to the same
    layer at the last of them, and each layer's convention (a unit of work of :func:`learning_dynamics`)."""
    from ccalens.core.measures import similarity_matrix
    from ccalens.models.checkpoints import load_checkpoint

    model = model_factory()
    acts = []
    for _step, path in tqdm(checkpoints, desc="checkpoints", disable=not progress, leave=False):
        load_checkpoint(path, model)
        acts.append(layer_activations(model, X, layers, conv=conv, tokens=tokens))
    T = len(checkpoints)
    sim = np.zeros((len(layers), T))
    rho = np.zeros_like(sim)
    null = np.full_like(sim, np.nan)
    conventions: dict[str, str] = {}
    for li, nm in enumerate(layers):
        reps = [a[nm] for a in acts]
        if reps[0].ndim == 4:
            for t in range(T):
                res, conventions[nm] = pair_score(reps[t], reps[-1], "svcca", keep, threshold)
                sim[li, t], rho[li, t] = res.score, res.mean_rho
            continue
        conventions[nm] = "dense"
        matrix = similarity_matrix(reps, "svcca", keep=keep, threshold=threshold, pairs=[(t, T - 1) for t in range(T)])
        sim[li], rho[li] = matrix.scores[:, -1], matrix.mean_rho[:, -1]  # type: ignore[index]
        null[li] = matrix.null_mean_rho[:, -1]  # type: ignore[index]
    return sim, rho, null, conventions


def spread_checkpoints(checkpoints: Sequence[tuple[int, Any]], most: int) -> list[tuple[int, Any]]:
    """At most ``most`` of ``checkpoints`` (``(step, path)`` in step order), evenly spread, first and last kept."""
    if len(checkpoints) <= most:
        return list(checkpoints)
    keep = np.unique(np.linspace(0, len(checkpoints) - 1, most).astype(int))
    return [checkpoints[i] for i in keep]


def convergence_steps(ld: dict[str, Any], levels: Sequence[float]) -> list[dict[str, Any]]:
    """Per layer (input to output): the first checkpoint step whose SVCCA to the final representation reaches each
    of ``levels`` (the last checkpoint scores 1, so every layer reaches every level by then at the latest)."""
    rows = []
    for i, layer in enumerate(ld["layers"]):
        sim = np.asarray(ld["similarity"][i], dtype=np.float64)
        row: dict[str, Any] = {"layer": layer}
        for level in levels:
            hit = np.flatnonzero(sim >= level)
            row[f"first step with SVCCA >= {level}"] = int(ld["steps"][hit[0]]) if hit.size else None
        row["SVCCA at first checkpoint"] = float(sim[0])
        rows.append(row)
    return rows
