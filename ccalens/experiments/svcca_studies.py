"""Experiments of the SVCCA paper (Raghu et al. 2017; DESIGN.md section 5).

* :func:`learning_dynamics`: for each layer and each saved checkpoint, SVCCA similarity to the layer's final
  representation (paper Fig. 4: lower layers converge first).
* :func:`two_init_heatmap`: layer x layer SVCCA similarity between two trainings of one architecture.
* :func:`compression`: replace a layer's activations by their projection on its top-k SVCCA directions
  (computed against another initialisation's same layer, or against the logits), run the rest of the network,
  and measure accuracy against k (paper Fig. 5); PCA and random-subspace projections are the baselines.
* :func:`invariance_sanity`: the invariance figure (App. 1): a real neuron (:func:`demo_activations`, a network of
  the demo) mixed with other top neurons by a permutation, a rotation or a scaling is recovered by CCA; a
  neuron-by-neuron correlation loses it under permutation and rotation (it is invariant to per-neuron scaling).
* :func:`abc_example`: the SVCCA appendix's A/B/C example. A (50 dimensions); B = 50 directions aligned with A
  + 150 noise directions; C = the same 50 aligned directions + 150 useful, different ones. CCA (and SVCCA's
  mean) give both pairs correlations of 1; the number of directions the SVD keeps (~50 for B, ~200 for C) is
  what tells them apart (:func:`svd_kept_dimensions`).

Layer activations come from forward hooks on the modules named by
:func:`ccalens.models.named_feature_layers` plus the classifier (logits). Convolutional outputs
``(N, C, H, W)`` are averaged over positions (the "pooled" convention of DESIGN.md section 2, ``(N, C)``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ccalens.core.measures import cca, linear_cka, svcca
from ccalens.experiments.common import scores
from ccalens.experiments.projection import (
    cca_bases,
    k_grid,
    pca_basis,
    project_features,
    random_orthonormal_basis,
)

__all__ = [
    "abc_example",
    "compression",
    "demo_activations",
    "invariance_sanity",
    "layer_activations",
    "learning_dynamics",
    "svd_kept_dimensions",
    "two_init_heatmap",
]

LOGITS = "logits"


def layer_activations(
    model: Any, X: Any, layers: Sequence[str], *, batch_size: int = 512, conv: str = "pooled"
) -> dict[str, np.ndarray]:
    """Outputs of the named sub-modules (and ``"logits"``) on ``X: (n, ...)`` through :func:`ccalens.extract.extract`
    (eval mode, no_grad, modes and hooks restored): name -> ``(n, d)``, or ``(n, C, H, W)`` for conv maps when
    ``conv="maps"`` (for DFT-CCA); ``conv="pooled"`` averages them over positions."""
    from ccalens.extract import extract

    if conv not in ("pooled", "maps"):
        raise ValueError(f"conv must be 'pooled' or 'maps', got {conv!r}")
    names = ["output" if nm == LOGITS else nm for nm in layers]
    acts = extract(model, np.asarray(X, dtype=np.float32), names, batch_size=batch_size, progress=False,
                   transform="mean" if conv == "pooled" else None)
    return {nm: np.asarray(acts["output" if nm == LOGITS else nm], dtype=np.float64) for nm in layers}


def _svcca_rule(keep: str, threshold: float, variance: float | None) -> tuple[str, float]:
    """SVCCA's ``(keep, threshold)``; ``variance=f`` (old spelling) means ``("variance", f)``."""
    return ("variance", float(variance)) if variance is not None else (keep, float(threshold))


def _pair_score(A: np.ndarray, B: np.ndarray, measure: str, keep: str, threshold: float) -> tuple[Any, str]:
    """``measure`` of two activations and the convention used: DFT-CCA (SVCCA appendix C) when both are conv maps,
    else dense CCA (a map against a vector: the map pooled over positions, its zero frequency)."""
    from ccalens.conv import conv_similarity
    from ccalens.core import measures

    options: dict[str, Any] = {"keep": keep, "threshold": threshold} if measure == "svcca" else {}
    if A.ndim == 4 and B.ndim == 4:
        return conv_similarity(A, B, convention="dft", measure=measure, **options), "dft"
    pooled = [Z.mean(axis=(2, 3)) if Z.ndim == 4 else Z for Z in (A, B)]
    convention = "pooled" if A.ndim == 4 or B.ndim == 4 else "dense"
    return measures.MEASURES[measure](*pooled, **options), convention


def learning_dynamics(
    model_factory: Callable[[], Any],
    checkpoints: Sequence[tuple[int, str | os.PathLike[str]]],
    X: np.ndarray,
    layers: Sequence[str],
    *,
    keep: str = "singular_values",
    threshold: float = 0.99,
    conv: str = "maps",
    variance: float | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """SVCCA similarity of each layer at each checkpoint to the same layer at the LAST checkpoint.

    ``checkpoints``: ``(step, path)`` in step order (``ccalens.models.training.list_checkpoints``);
    ``X: (n, ...)`` probe inputs. Dense layers: one :func:`~ccalens.core.measures.similarity_matrix` per layer over
    the T checkpoints, asking only the T pairs against the final state (each checkpoint's representation prepared
    once). Conv layers (``conv="maps"``): DFT-CCA (SVCCA appendix C) per checkpoint. Returns ``{"steps": [T],
    "layers": [L], "similarity": (L, T), "mean_rho": (L, T), "null_mean_rho": (L, T), "conventions": {layer:
    "dense" | "dft"}, "keep", "threshold"}``.
    """
    from ccalens.core.measures import similarity_matrix
    from ccalens.models.training import load_checkpoint

    keep, threshold = _svcca_rule(keep, threshold, variance)
    if len(checkpoints) < 2:
        raise ValueError(f"checkpoints must hold at least 2 checkpoints, got {len(checkpoints)}")
    model = model_factory()
    acts = []
    for _step, path in tqdm(checkpoints, desc="checkpoints", disable=not progress, leave=False):
        load_checkpoint(path, model)
        acts.append(layer_activations(model, X, layers, conv=conv))
    T = len(checkpoints)
    sim = np.zeros((len(layers), T))
    rho = np.zeros_like(sim)
    null = np.full_like(sim, np.nan)
    conventions: dict[str, str] = {}
    for li, nm in enumerate(layers):
        reps = [a[nm] for a in acts]
        if reps[0].ndim == 4:
            for t in range(T):
                res, conventions[nm] = _pair_score(reps[t], reps[-1], "svcca", keep, threshold)
                sim[li, t], rho[li, t] = res.score, res.mean_rho
            continue
        conventions[nm] = "dense"
        matrix = similarity_matrix(reps, "svcca", keep=keep, threshold=threshold, pairs=[(t, T - 1) for t in range(T)])
        sim[li], rho[li] = matrix.scores[:, -1], matrix.mean_rho[:, -1]  # type: ignore[index]
        null[li] = matrix.null_mean_rho[:, -1]  # type: ignore[index]
    return {"steps": [int(s) for s, _ in checkpoints], "layers": list(layers), "similarity": sim, "mean_rho": rho,
            "null_mean_rho": null, "conventions": conventions, "keep": keep, "threshold": threshold}


#: Measures of the two-initialisation study: SVCCA (the paper's) and two that are fair across widths.
TWO_INIT_MEASURES = ("svcca", "pwcca", "linear_cka")


def two_init_heatmap(
    acts_a: dict[str, np.ndarray],
    acts_b: dict[str, np.ndarray],
    *,
    keep: str = "singular_values",
    threshold: float = 0.99,
    variance: float | None = None,
) -> dict[str, Any]:
    """Layer x layer similarity between two trainings: ``similarity[i, j] = svcca(A layer i, B layer j)``, and the
    same with PWCCA and linear CKA (``measures[name]``).

    SVCCA's score is the mean of ``min(m1, m2)`` correlations: a narrow layer (few kept directions) against a wide
    one can reach 1 when its few directions all lie in the wide layer's span, above the diagonal of equal layers.
    PWCCA (weights from A's layer) and linear CKA do not reward the narrower side that way, so they are shown beside
    it. ``acts_a``, ``acts_b``: layer name -> ``(n, d)`` or conv maps ``(n, C, H, W)`` (DFT-CCA between two maps,
    see :func:`_pair_score`). Returns ``{"layers_a", "layers_b", "similarity", "measures", "null_mean_rho",
    "ranks_a", "ranks_b", "conventions", "keep", "threshold"}``.
    """
    from ccalens.core.measures import similarity_matrix

    keep, threshold = _svcca_rule(keep, threshold, variance)
    la, lb = list(acts_a), list(acts_b)
    dense = all(acts_a[a].ndim == 2 for a in la) and all(acts_b[b].ndim == 2 for b in lb)
    out: dict[str, np.ndarray] = {}
    null = np.full((len(la), len(lb)), np.nan)
    ranks_a = np.zeros(len(la), dtype=np.int64)
    ranks_b = np.zeros(len(lb), dtype=np.int64)
    conventions: dict[str, str] = {}
    for measure in TWO_INIT_MEASURES:
        options: dict[str, Any] = {"keep": keep, "threshold": threshold} if measure == "svcca" else {}
        if dense:  # every representation prepared once, the cross pairs only
            reps = [acts_a[a] for a in la] + [acts_b[b] for b in lb]
            cross = [(i, len(la) + j) for i in range(len(la)) for j in range(len(lb))]
            m = similarity_matrix(reps, measure, pairs=cross, **options)
            out[measure] = m.scores[: len(la), len(la) :].copy()
            if measure == "svcca":
                null = m.null_mean_rho[: len(la), len(la) :].copy()  # type: ignore[index]
                ranks_a, ranks_b = m.rank[: len(la)].copy(), m.rank[len(la) :].copy()  # type: ignore[index]
            conventions = {f"{a}|{b}": "dense" for a in la for b in lb}
            continue
        grid = np.zeros((len(la), len(lb)))
        for i, a in enumerate(la):
            for j, b in enumerate(lb):
                if measure == "linear_cka" and (acts_a[a].ndim == 4 or acts_b[b].ndim == 4):
                    # CKA has no DFT form: conv maps are pooled over positions
                    pooled = [Z.mean(axis=(2, 3)) if Z.ndim == 4 else Z for Z in (acts_a[a], acts_b[b])]
                    res, conv = linear_cka(*pooled), "pooled"
                else:
                    res, conv = _pair_score(acts_a[a], acts_b[b], measure, keep, threshold)
                grid[i, j] = res.score
                conventions[f"{a}|{b}"] = conv if measure == "svcca" else conventions.get(f"{a}|{b}", conv)
                if measure == "svcca":
                    ranks_a[i], ranks_b[j] = res.rank_x or 0, res.rank_y or 0
                    null[i, j] = np.nan if res.null_mean_rho is None else res.null_mean_rho
        out[measure] = grid
    return {"layers_a": la, "layers_b": lb, "similarity": out["svcca"], "measures": out, "null_mean_rho": null,
            "ranks_a": ranks_a.tolist(), "ranks_b": ranks_b.tolist(), "conventions": conventions, "keep": keep,
            "threshold": threshold}


def compression(
    model: Any,
    layer: str,
    X_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    reference_train: np.ndarray,
    *,
    k_values: Sequence[int] | None = None,
    variance: float = 0.99,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy of ``model`` when ``layer``'s output is replaced by its projection on k directions.

    Directions are fitted on the layer's activations for ``X_train: (n, ...)``: ``svcca`` (top-k canonical
    directions after keeping ``variance`` of each side, against ``reference_train: (n, q)``, e.g. the same
    layer of another initialisation, or the logits), ``pca`` (top-k principal directions) and
    ``random_projection`` (k random orthonormal directions, ``repeats`` draws, mean and std).
    Returns ``{"layer", "width", "k", "methods": {name: {"accuracy_mean", "accuracy_std", "macro_f1_mean",
    "macro_f1_std"} lists}, "baseline": {...}, "correlations"}``.
    """
    import torch

    modules = dict(model.named_modules())
    if layer not in modules:
        raise ValueError(f"layer {layer!r} is not a sub-module of {type(model).__name__}")
    acts = layer_activations(model, X_train, [layer])[layer]
    if acts.ndim != 2:
        raise ValueError(f"compression needs a 2-D layer output, {layer!r} gives {acts.shape}")
    width = acts.shape[1]
    y_val = np.asarray(y_val).astype(np.int64)
    n_classes = int(getattr(model.classifier, "out_features", int(y_val.max()) + 1))
    svcca_b, _, corr = cca_bases(acts, reference_train, variance)
    pca_b = pca_basis(acts)
    ks = sorted({min(int(k), width) for k in (k_values or k_grid(n_classes, width))})

    def evaluate(basis: Any, comps: np.ndarray) -> dict[str, float]:
        def hook(_m: Any, _inp: Any, out: Any) -> Any:
            flat = out.detach().cpu().numpy().astype(np.float64)
            return torch.as_tensor(project_features(flat, basis, comps), dtype=out.dtype)

        handle = modules[layer].register_forward_hook(hook)
        try:
            model.eval()
            with torch.no_grad():
                logits = model(torch.as_tensor(np.asarray(X_val), dtype=torch.float32)).numpy()
        finally:
            handle.remove()
        return scores(y_val, logits.argmax(axis=1), n_classes)

    with torch.no_grad():
        model.eval()
        base_logits = model(torch.as_tensor(np.asarray(X_val), dtype=torch.float32)).numpy()
    baseline = scores(y_val, base_logits.argmax(axis=1), n_classes)
    methods: dict[str, dict[str, list[float]]] = {}
    for name in ("svcca", "pca", "random_projection"):
        cols: dict[str, list[float]] = {key: [] for key in
                                        ("accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std")}
        for k in ks:
            runs = []
            if name == "svcca":
                runs.append(evaluate(svcca_b, np.arange(min(k, svcca_b.rank))))
            elif name == "pca":
                runs.append(evaluate(pca_b, np.arange(min(k, pca_b.rank))))
            else:
                for rep in range(repeats):
                    rng = np.random.default_rng([seed, k, rep])
                    rb = random_orthonormal_basis(acts, k, rng)
                    runs.append(evaluate(rb, np.arange(k)))
            for metric in ("accuracy", "macro_f1"):
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
    }


def demo_activations(view: str = "pix", seed: int = 0, epochs: int = 20) -> np.ndarray:
    """Penultimate activations ``(2000, 128)`` of a network of the demo: a :class:`ccalens.models.ViewMLP`
    (256-128, ReLU) trained with the demo's recipe (``TrainConfig.multiview_default``, ``epochs`` epochs) on one
    view of the bundled UCI digits (training part), evaluated on all 2,000 digits. Needs torch; a few seconds."""
    from ccalens.data.multiview import load_multiple_features
    from ccalens.models import ViewMLP
    from ccalens.models.training import TrainConfig, extract_penultimate, seed_everything, train_classifier

    ds = load_multiple_features([view])
    X, y = ds.views[view], ds.labels
    seed_everything(seed)
    model = ViewMLP(X.shape[1], ds.n_classes, hidden=(256, 128), dropout=0.2)
    train = X[ds.train_idx]
    std = train.std(axis=0, dtype=np.float64)
    model.set_input_normalization(train.mean(axis=0, dtype=np.float64), np.where(std > 0, std, 1.0))
    config = TrainConfig.multiview_default(epochs=int(epochs), seed=seed, progress=False, lr_milestones=())
    train_classifier(model, (train, y[ds.train_idx]), None, config)
    return extract_penultimate(model, X).astype(np.float64)


def _abs_corr(a: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``|corr(a, B[:, j])|`` for each column of ``B: (n, k)``; ``a: (n,)``."""
    ac, Bc = a - a.mean(), B - B.mean(axis=0)
    return np.abs(ac @ Bc) / np.sqrt((ac @ ac) * (Bc**2).sum(axis=0))


def invariance_sanity(
    activations: np.ndarray | None = None,
    *,
    n: int = 2000,
    d: int = 32,
    top_k: int = 10,
    noise_levels: Sequence[float] = (0.0, 0.25, 0.5, 1.0, 2.0),
    seed: int = 0,
) -> dict[str, Any]:
    """The SVCCA paper's invariance figure (App. 1): a neuron mixed with other top neurons by a permutation, a
    rotation or a per-neuron scaling is recovered by CCA; a neuron-by-neuron correlation is not (except under
    scaling, to which a correlation is invariant).

    activations: ``(n_samples, width)`` of a layer of a trained network (e.g. :func:`demo_activations`); None:
    synthetic ``(n, d)`` neurons with a decaying spectrum. The ``top_k`` neurons of largest variance form
    ``X: (n_samples, top_k)``; the neuron studied is the top one, column 0. For each transform T (identity,
    permutation with no fixed point, random rotation, per-neuron scaling in [0.1, 10]) and each noise level
    sigma, ``Y = T(X + sigma * E)`` (E: Gaussian noise scaled by each neuron's std), and:

    - ``neuron_cca``: the canonical correlation between the neuron (``(n, 1)``) and Y: CCA finds the combination
      of Y's neurons that recovers it (1 without noise, whatever T);
    - ``neuron_corr``: ``|corr(neuron, Y[:, 0])|``, the neuron in the same slot after T: 1 for the identity and
      the scaling, the correlation with whichever neuron or mixture lands there otherwise;
    - ``cca``: the mean canonical correlation of X and Y (the whole top-k layer) and ``neuronwise``: the mean
      ``|corr(X_i, Y_i)|`` over the k slots.

    Returns ``{"source", "neurons" (the top-k column indices), "noise_levels", "transforms", "cca", "neuronwise",
    "neuron_cca", "neuron_corr"}``, the four arrays ``(T, S)``, and ``"trace"``: the neuron and its CCA
    reconstruction from ``T(X)`` (no noise) on the first 200 samples, per transform.
    """
    rng = np.random.default_rng(seed)
    if activations is None:
        source = f"synthetic ({n} x {d}, decaying spectrum)"
        layer = rng.standard_normal((int(n), int(d))) * np.linspace(1.0, 0.3, int(d))
    else:
        layer = np.asarray(activations, dtype=np.float64)
        source = f"activations {layer.shape[0]} x {layer.shape[1]}"
        if layer.ndim != 2 or not np.isfinite(layer).all():
            raise ValueError(f"activations must be a finite (n_samples, width) array, got shape {layer.shape}")
    std = layer.std(axis=0)
    alive = int((std > 1e-12 * max(float(std.max()), 1e-300)).sum())
    if int(top_k) < 2 or int(top_k) > alive:
        raise ValueError(f"top_k must lie in 2..{alive} (the neurons that vary), got {top_k}")
    if layer.shape[0] < 2 * int(top_k):
        raise ValueError(f"need at least 2 * top_k = {2 * int(top_k)} samples, got {layer.shape[0]}")
    top = np.argsort(-std, kind="stable")[: int(top_k)]
    X = layer[:, top]
    k = X.shape[1]
    perm = rng.permutation(k)
    while np.any(perm == np.arange(k)):  # no neuron stays in its slot
        perm = rng.permutation(k)
    rot = np.linalg.qr(rng.standard_normal((k, k)))[0]
    scale = np.exp(rng.uniform(np.log(0.1), np.log(10.0), k))
    transforms: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "identity": lambda Z: Z,
        "permutation": lambda Z: Z[:, perm],
        "rotation": lambda Z: Z @ rot,
        "scaling": lambda Z: Z * scale,
    }
    noise = rng.standard_normal(X.shape) * X.std(axis=0)
    shape = (len(transforms), len(noise_levels))
    whole, neuronwise, neuron_cca, neuron_corr = (np.zeros(shape) for _ in range(4))
    neuron = X[:, 0]
    trace: dict[str, Any] = {"neuron": neuron[:200]}
    for ti, (name, T) in enumerate(transforms.items()):
        for si, sigma in enumerate(noise_levels):
            Y = T(X + float(sigma) * noise)
            whole[ti, si] = cca(X, Y).score
            Xc, Yc = X - X.mean(0), Y - Y.mean(0)
            neuronwise[ti, si] = float(np.mean(np.abs((Xc * Yc).sum(0)) / np.sqrt((Xc**2).sum(0) * (Yc**2).sum(0))))
            neuron_cca[ti, si] = cca(neuron[:, None], Y).score
            neuron_corr[ti, si] = float(_abs_corr(neuron, Y[:, :1])[0])
        # the CCA direction of T(X) for the neuron, i.e. its least-squares reconstruction from T(X)
        Y = T(X)
        Yc = np.column_stack([Y - Y.mean(0), np.ones(Y.shape[0])])
        coef = np.linalg.lstsq(Yc, neuron, rcond=None)[0]
        trace[name] = (Yc @ coef)[:200]
    return {
        "source": source,
        "neurons": top.tolist(),
        "noise_levels": list(noise_levels),
        "transforms": list(transforms),
        "cca": whole,
        "neuronwise": neuronwise,
        "neuron_cca": neuron_cca,
        "neuron_corr": neuron_corr,
        "trace": trace,
    }


def svd_kept_dimensions(Z: np.ndarray, threshold: float = 0.99) -> dict[str, int]:
    """How many top principal directions of ``Z: (n, d)`` the SVD step of SVCCA keeps, under both rules.

    ``'singular_values'`` (the SVCCA appendix): the fewest m with ``sum_{i<=m} s_i >= threshold * sum s``, ``s`` the
    singular values of the centred data; ``'variance'`` (Kornblith et al.'s reading): the same with ``s_i ** 2``.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold}")
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2:
        raise ValueError(f"Z must be (n_samples, n_features), got shape {Z.shape}")
    s = np.linalg.svd(Z - Z.mean(axis=0), compute_uv=False)
    out = {}
    for rule, w in (("singular_values", s), ("variance", s**2)):
        cum = np.cumsum(w)
        # relative slack so that exact ties (e.g. 0.99 * 50 equal values) do not depend on round-off
        out[rule] = int(np.searchsorted(cum, threshold * cum[-1] * (1 - 1e-12)) + 1)
    return out


def _ranks(res: Any) -> tuple[int | None, int | None]:
    """Kept ranks of an SVCCA result (typed fields where the result has them, else its details)."""
    return tuple(  # type: ignore[return-value]
        getattr(res, key, None) if getattr(res, key, None) is not None else res.details.get(key)
        for key in ("rank_x", "rank_y")
    )


def abc_example(
    n: int = 4000, seed: int = 0, noise_std: float = 1e-3, threshold: float = 0.99
) -> dict[str, Any]:
    """The A/B/C example of the SVCCA appendix (Raghu et al. 2017, B.0.1): why the SVD step matters.

    A (50 neurons): 50 independent unit-variance directions, randomly mixed.
    B (200): 50 directions aligned with A (copies of A's) + 150 noise directions (independent, std ``noise_std``).
    C (200): the same 50 directions aligned with A (and B) + 150 useful, different directions (independent of A,
    unit variance).

    CCA finds the 50 shared directions in both pairs: 50 correlations of 1 for A-B and for A-C, so neither the
    mean over all rho (plain CCA) nor the SVCCA mean (CCA after each side's SVD; A has only 50 dimensions, so at
    most 50 correlations either way) tells the pairs apart. What does is the SVD itself: B needs ~50 directions to
    reach ``threshold`` of its singular values (the appendix's rule), C ~200 (``kept``; the variance rule agrees
    here). Returns ``{"n_samples", "noise_std", "threshold", "dims": {A, B, C}, "kept": {A, B, C: {rule: m}},
    "AB", "AC": {"cca", "svcca", "cca_correlations", "svcca_correlations", "svcca_ranks"}}``; ``svcca`` is
    :func:`ccalens.core.measures.svcca` with its default rule, ``svcca_ranks`` the dimensions it kept.
    """
    if int(n) < 400:
        raise ValueError(f"n must be >= 400 (twice the 200 dimensions of B and C), got {n}")
    if not noise_std >= 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    rng = np.random.default_rng(seed)

    def mix(Z: np.ndarray) -> np.ndarray:
        return Z @ np.linalg.qr(rng.standard_normal((Z.shape[1], Z.shape[1])))[0]

    shared = rng.standard_normal((n, 50))
    A = mix(shared)
    B = mix(np.hstack([shared, noise_std * rng.standard_normal((n, 150))]))
    C = mix(np.hstack([shared, rng.standard_normal((n, 150))]))
    out: dict[str, Any] = {
        "n_samples": int(n),
        "noise_std": float(noise_std),
        "threshold": float(threshold),
        "dims": {"A": A.shape[1], "B": B.shape[1], "C": C.shape[1]},
        "kept": {name: svd_kept_dimensions(Z, threshold) for name, Z in (("A", A), ("B", B), ("C", C))},
    }
    for pair, Y in (("AB", B), ("AC", C)):
        plain = cca(A, Y)
        sv = svcca(A, Y)
        out[pair] = {
            "cca": plain.mean_rho,
            "svcca": sv.mean_rho,
            "cca_correlations": plain.correlations,
            "svcca_correlations": sv.correlations,
            "svcca_ranks": list(_ranks(sv)),
        }
    return out
