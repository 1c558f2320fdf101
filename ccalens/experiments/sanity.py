"""Sanity figures of the SVCCA paper (Raghu et al. 2017).

* :func:`invariance_sanity`: the invariance figure (App. 1): a real neuron (:func:`demo_activations`, a network of
  the demo) mixed with other top neurons by a permutation, a rotation or a scaling is recovered by CCA; a
  neuron-by-neuron correlation loses it under permutation and rotation (it is invariant to per-neuron scaling).
* :func:`abc_example`: the SVCCA appendix's A/B/C example. A (50 dimensions); B = 50 directions aligned with A
  + 150 noise directions; C = the same 50 aligned directions + 150 useful, different ones. CCA (and SVCCA's
  mean) give both pairs correlations of 1; the number of directions the SVD keeps (50 for B, about 200 for C) is
  what tells them apart (:func:`svd_kept_dimensions`), but only while B's noise is small enough
  (:func:`abc_noise_bound`, :func:`abc_noise_sweep`): with the appendix's rule (99% of the sum of singular values)
  each of the 150 noise directions adds its std to the sum, so B keeps only its 50 shared directions when that std
  is at most 50 (1 - t) / (150 t) = 0.0034 (t = 0.99); the variance rule tolerates its square root, 0.058.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ccalens.core.measures import cca, svcca

__all__ = [
    "abc_example", "abc_noise_bound", "abc_noise_sweep", "demo_activations", "invariance_sanity", "svd_kept_dimensions",
]

ABC_SHARED, ABC_EXTRA = 50, 150  # A's dimensions (shared with B and C); B's noise and C's useful extra dimensions

def demo_activations(view: str = "pix", seed: int = 0, epochs: int = 20) -> np.ndarray:
    """Penultimate activations ``(2000, 128)`` of a network of the demo: a :class:`ccalens.models.ViewMLP`
    (256-128, ReLU) trained with the demo's recipe (``TrainConfig.multiview_default``, ``epochs`` epochs) on one
    view of the bundled UCI digits (training part), evaluated on all 2,000 digits. Needs torch; a few seconds."""
    from ccalens.data.multiview import load_multiple_features
    from ccalens.models import TrainConfig, ViewMLP, extract_penultimate, seed_everything, train_classifier

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


def abc_noise_bound(threshold: float = 0.99, rule: str = "singular_values", shared: int = ABC_SHARED,
                    noise: int = ABC_EXTRA) -> float:
    """The largest noise std at which the population B of :func:`abc_example` (``shared`` unit-variance
    directions, ``noise`` directions of std sigma) keeps only its shared directions under ``rule`` at
    ``threshold``: the shared directions hold ``shared / (shared + noise * w)`` of the sum, with ``w = sigma``
    (``"singular_values"``) or ``sigma**2`` (``"variance"``), which is ``>= threshold`` while
    ``w <= shared (1 - threshold) / (noise threshold)``."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold}")
    w = shared * (1.0 - threshold) / (noise * threshold)
    if rule == "singular_values":
        return float(w)
    if rule == "variance":
        return float(np.sqrt(w))
    raise ValueError(f"rule must be 'singular_values' or 'variance', got {rule!r}")


def abc_noise_sweep(noise_levels: Sequence[float], n: int = 4000, seed: int = 0,
                    threshold: float = 0.99) -> dict[str, Any]:
    """Directions the SVD keeps of B (and of C) in :func:`abc_example` at each of ``noise_levels`` (B's noise
    std), under both rules, with each rule's :func:`abc_noise_bound`. Returns ``{"noise_levels": [m],
    "B": {rule: [m]}, "C": {rule: count}, "bound": {rule: sigma}, "shared": 50, "threshold"}``."""
    levels = [float(v) for v in noise_levels]
    if not levels or any(not v >= 0 for v in levels):
        raise ValueError(f"noise_levels must be non-negative numbers, got {list(noise_levels)}")
    kept_b: dict[str, list[int]] = {"singular_values": [], "variance": []}
    for sigma in levels:
        _, B, C = _abc_views(n, seed, sigma)
        for rule, m in svd_kept_dimensions(B, threshold).items():
            kept_b[rule].append(m)
    return {"noise_levels": levels, "B": kept_b, "C": svd_kept_dimensions(C, threshold),
            "bound": {rule: abc_noise_bound(threshold, rule) for rule in kept_b}, "shared": ABC_SHARED,
            "threshold": float(threshold)}


def _abc_views(n: int, seed: int, noise_std: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``(n, 50)``, B ``(n, 200)``, C ``(n, 200)`` of :func:`abc_example` (the same draws for every noise std)."""
    rng = np.random.default_rng(seed)

    def mix(Z: np.ndarray) -> np.ndarray:
        return Z @ np.linalg.qr(rng.standard_normal((Z.shape[1], Z.shape[1])))[0]

    shared = rng.standard_normal((n, ABC_SHARED))
    A = mix(shared)
    B = mix(np.hstack([shared, noise_std * rng.standard_normal((n, ABC_EXTRA))]))
    C = mix(np.hstack([shared, rng.standard_normal((n, ABC_EXTRA))]))
    return A, B, C


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
    A, B, C = _abc_views(int(n), seed, float(noise_std))
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
