"""Compression (Raghu et al. 2017, Fig. 5): replace a layer's activations by their projection on its top-k SVCCA
directions (against another initialisation's same layer, or against the logits), run the rest of the network and
measure accuracy against k; PCA and random-subspace projections are the baselines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ccalens.experiments.activations import layer_activations
from ccalens.experiments.bases import (
    cca_bases,
    k_grid,
    pca_basis,
    project_features,
    random_orthonormal_basis,
)
from ccalens.experiments.common import scores

__all__ = ["compression"]

def compression(
    model: Any,
    layer: str,
    X_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    reference_train: np.ndarray,
    *,
    y_train: np.ndarray | None = None,
    k_values: Sequence[int] | None = None,
    keep: str = "singular_values",
    threshold: float = 0.99,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy of ``model`` when ``layer``'s output is replaced by its projection on k directions.

    Directions are fitted on the layer's activations for ``X_train: (n, ...)``: ``svcca`` (top-k canonical
    directions after SVCCA's rule on each side, ``keep``/``threshold`` as :func:`ccalens.svcca`, by default the
    appendix's 99% of the sum of the singular values, against ``reference_train: (n, q)``, e.g. the same
    layer of another initialisation, or the logits), ``pca`` (top-k principal directions) and
    ``random_projection`` (k random orthonormal directions, ``repeats`` draws, mean and std).
    Returns ``{"layer", "width", "k", "methods": {name: {"accuracy_mean", "accuracy_std", "macro_f1_mean",
    "macro_f1_std"} lists}, "baseline": {...}, "correlations", "keep", "threshold"}``; with ``y_train: (n,)``
    (the labels of ``X_train``) each method also has ``train_accuracy_mean`` ... lists and ``baseline`` a
    ``train`` entry, the train and test lines of the SVCCA paper's compression figure.
    """
    import torch

    from ccalens.models.inference import predict_logits

    modules = dict(model.named_modules())
    if layer not in modules:
        raise ValueError(f"layer {layer!r} is not a sub-module of {type(model).__name__}")
    acts = layer_activations(model, X_train, [layer])[layer]
    if acts.ndim != 2:
        raise ValueError(f"compression needs a 2-D layer output, {layer!r} gives {acts.shape}")
    width = acts.shape[1]
    y_val = np.asarray(y_val).astype(np.int64)
    n_classes = int(getattr(model.classifier, "out_features", int(y_val.max()) + 1))
    svcca_b, _, corr = cca_bases(acts, reference_train, threshold, keep=keep)
    pca_b = pca_basis(acts)
    ks = sorted({min(int(k), width) for k in (k_values or k_grid(n_classes, width))})

    splits = [("", np.asarray(X_val), y_val)]
    if y_train is not None:
        y_train = np.asarray(y_train).astype(np.int64)
        if y_train.shape[0] != np.asarray(X_train).shape[0]:
            raise ValueError(f"y_train has {y_train.shape[0]} labels for {np.asarray(X_train).shape[0]} X_train rows")
        splits.append(("train_", np.asarray(X_train), y_train))

    def evaluate(basis: Any, comps: np.ndarray) -> dict[str, float]:
        def hook(_m: Any, _inp: Any, out: Any) -> Any:
            flat = out.detach().cpu().numpy().astype(np.float64)
            return torch.as_tensor(project_features(flat, basis, comps), dtype=out.dtype, device=out.device)

        handle = modules[layer].register_forward_hook(hook)
        try:
            found: dict[str, float] = {}
            for prefix, X_split, y_split in splits:
                logits = predict_logits(model, X_split)
                found.update({prefix + k: v for k, v in scores(y_split, logits.argmax(axis=1), n_classes).items()})
        finally:
            handle.remove()
        return found

    base_logits = predict_logits(model, np.asarray(X_val))
    baseline = scores(y_val, base_logits.argmax(axis=1), n_classes)
    if y_train is not None:
        baseline["train"] = scores(y_train, predict_logits(model, np.asarray(X_train)).argmax(axis=1), n_classes)
    metrics = [prefix + m for prefix, _, _ in splits for m in ("accuracy", "macro_f1")]
    methods: dict[str, dict[str, list[float]]] = {}
    fixed = {"svcca": svcca_b, "pca": pca_b}  # one basis each; random_projection draws `repeats` per k
    for name in (*fixed, "random_projection"):
        cols: dict[str, list[float]] = {f"{m}_{s}": [] for m in metrics for s in ("mean", "std")}
        for k in ks:
            runs = []
            if name in fixed:
                runs.append(evaluate(fixed[name], np.arange(min(k, fixed[name].rank))))
            else:
                for rep in range(repeats):
                    rng = np.random.default_rng([seed, k, rep])
                    rb = random_orthonormal_basis(acts, k, rng)
                    runs.append(evaluate(rb, np.arange(k)))
            for metric in metrics:
                vals = np.array([r[metric] for r in runs])
                cols[f"{metric}_mean"].append(float(vals.mean()))
                cols[f"{metric}_std"].append(float(vals.std(ddof=1)) if vals.size > 1 else 0.0)
        methods[name] = cols
    return {
        "layer": layer,
        "width": width,
        "k": ks,
        "svcca_rank": svcca_b.rank,
        "methods": methods,
        "baseline": baseline,
        "correlations": corr,
        "keep": keep,
        "threshold": threshold,
    }
