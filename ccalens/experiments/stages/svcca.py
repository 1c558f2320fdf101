"""Stage of the SVCCA paper's studies on one sensor's networks: learning dynamics, two initialisations and
compression (Raghu et al. 2017)."""

from __future__ import annotations

import copy
import functools
import itertools
import warnings
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ccalens.experiments.activations import LOGITS, layer_activations
from ccalens.experiments.compression import compression
from ccalens.experiments.learning_dynamics import convergence_steps, learning_dynamics, spread_checkpoints
from ccalens.experiments.paths import out_path
from ccalens.experiments.stages.context import RunContext
from ccalens.experiments.stages.networks import Networks, stage_sensor
from ccalens.experiments.two_initialisations import convention_caption, two_init_heatmap
from ccalens.io import write_csv, write_json
from ccalens.report import heatmaps, svcca_plots
from ccalens.report.html import Section, format_number, format_percent
from ccalens.report.uncertainty_plots import format_interval, interval_note, plot_scores_with_null

__all__ = [
    "compression_conclusion",
    "compression_k_needed",
    "learning_dynamics_conclusion",
    "matching_layer_intervals",
    "svcca_stage",
    "two_initialisations_conclusion",
]

CONVERGED = 0.9  # SVCCA to the final representation at which a layer counts as converged
KEPT = 0.95  # share of the uncompressed score a compression must keep
CONFIDENCE = 0.95  # level of the bootstrap intervals of the headline similarities


def _probe_rows(n_rows: int, n: int | None) -> slice:
    """The training rows a study probes with: all of them, or ``n`` spread evenly."""
    return slice(None) if n is None or n >= n_rows else slice(0, n * max(1, n_rows // n), max(1, n_rows // n))


def _probe(nets: Networks, sensor: str, n: int | None) -> np.ndarray:
    X = nets.source.train[sensor]
    return X[_probe_rows(X.shape[0], n)]


def _probe_labels(nets: Networks, n: int | None) -> np.ndarray:
    """The labels of :func:`_probe`'s rows."""
    y = np.asarray(nets.source.y_train)
    return y[_probe_rows(y.shape[0], n)]


def _layers(model: Any) -> list[str]:
    from ccalens.models import named_feature_layers

    return [*named_feature_layers(model), LOGITS]


def learning_dynamics_conclusion(rows: list[dict[str, Any]]) -> str:
    """Which layer reaches SVCCA >= 0.9 to its final representation first and which last, and whether they do so
    in order from the input up."""
    reached = [(r[f"first step with SVCCA >= {CONVERGED}"], i, r["layer"]) for i, r in enumerate(rows)
               if r[f"first step with SVCCA >= {CONVERGED}"] is not None]
    if not reached:
        return ""
    first, last = min(reached), max(reached)
    steps = [s for s, _, _ in sorted(reached, key=lambda x: x[1])]
    order = ("converge in order from the input up" if all(a <= b for a, b in itertools.pairwise(steps))
             else "do not converge in order from the input up")
    return (f"Learning dynamics: layer {first[2]} is the first to reach SVCCA {CONVERGED} to its final "
            f"representation (step {first[0]}), {last[2]} the last (step {last[0]}); the layers {order}.")


def two_initialisations_conclusion(similarity: np.ndarray) -> str:
    """Mean SVCCA of matching layers (the diagonal) against that of different layers (off the diagonal)."""
    sim = np.asarray(similarity, dtype=float)
    n = min(sim.shape)
    diag = float(np.mean(np.diag(sim)[:n]))
    mask = ~np.eye(*sim.shape, dtype=bool)
    off = float(np.mean(sim[mask])) if mask.any() else float("nan")
    return (f"Two initialisations: matching layers have mean SVCCA {format_number(diag)} against "
            f"{format_number(off)} between different layers.")


def _smallest_k(ks: list[int], values: list[float], target: float) -> int | None:
    for k, v in zip(ks, values, strict=True):
        if v >= target:
            return int(k)
    return None


def compression_k_needed(comps: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """For each compressed layer and reference, the smallest k (among those tried) whose mean score keeps 95% of
    the uncompressed one, per method (None: no k tried does)."""
    rows = []
    for c in comps:
        target = KEPT * c["baseline"][metric]
        row: dict[str, Any] = {"layer": c["layer"], "reference": c["reference"], "width": c.get("width"),
                               f"uncompressed {metric}": c["baseline"][metric]}
        for m, cols in c["methods"].items():
            row[f"k ({m})"] = _smallest_k(c["k"], cols[f"{metric}_mean"], target)
        rows.append(row)
    return rows


def compression_conclusion(rows: list[dict[str, Any]], metric: str) -> str:
    """The finding, from :func:`compression_k_needed`'s rows: k needed with SVCCA directions, and with PCA."""
    def say(row: dict[str, Any], m: str) -> str:
        k = row.get(f"k ({m})")
        return "no k tried" if k is None else f"k = {k}"

    parts = [f"{r['layer']} (width {r['width']}, directions against {r['reference'].replace('_', ' ')}): "
             f"{say(r, 'svcca')} with SVCCA, {say(r, 'pca')} with PCA" for r in rows]
    if not parts:
        return ""
    return f"Compression: keeping {format_percent(KEPT, 0)} of the {metric} takes " + "; ".join(parts) + "."


def _learning_dynamics(ctx: RunContext, sec: Section) -> list[dict[str, Any]]:
    t, nets, out = ctx.config.learning_dynamics, ctx.nets, ctx.out
    assert t is not None
    folder = out_path(out, "svcca")
    s0 = nets.seeds[0]
    sensor = stage_sensor("learning_dynamics", t.sensor, nets.sensors)
    model = nets.models[(sensor, s0)]
    X = _probe(nets, sensor, t.probe_samples)
    ckpts = spread_checkpoints(nets.checkpoints(sensor, s0), t.max_checkpoints)
    ld = learning_dynamics(functools.partial(copy.deepcopy, model), ckpts, X, _layers(model), keep=t.keep,
                           threshold=t.threshold, progress=ctx.progress, workers=ctx.workers)
    write_json(out_path(folder, "learning_dynamics.json"), {"sensor": sensor, **ld})
    write_csv(out_path(folder, "learning_dynamics.csv"), [
        {"layer": layer, "step": step, "svcca_to_final": ld["similarity"][i, j]}
        for i, layer in enumerate(ld["layers"]) for j, step in enumerate(ld["steps"])])
    fig = ctx.figure(svcca_plots.plot_learning_dynamics, ld, out_path(folder, "learning_dynamics"),
                                       title=f"Learning dynamics ({sensor}, seed {s0}): SVCCA to final")
    sec.add_figure(fig, out, "Learning dynamics: SVCCA similarity of each layer to its final representation")
    sec.add_files([out_path(folder, "learning_dynamics.json"), out_path(folder, "learning_dynamics.csv")], out)
    rows = convergence_steps(ld, (CONVERGED,))
    sec.tables.append(("Learning dynamics: convergence per layer", rows))
    return rows


def _two_initialisations(ctx: RunContext, sec: Section) -> dict[str, Any]:
    t, nets, out = ctx.config.two_initialisations, ctx.nets, ctx.out
    assert t is not None
    folder = out_path(out, "svcca")
    sensor = stage_sensor("two_initialisations", t.sensor, nets.sensors)
    X = _probe(nets, sensor, t.probe_samples)
    ma, mb = nets.models[(sensor, nets.seeds[0])], nets.models[(sensor, nets.seeds[1])]
    layers = _layers(ma)
    acts_a = layer_activations(ma, X, layers, conv="maps")  # conv layers by DFT-CCA, never pooled
    acts_b = layer_activations(mb, X, layers, conv="maps")
    ti = two_init_heatmap(acts_a, acts_b, keep=t.keep, threshold=t.threshold)
    if t.bootstrap:
        ti["diagonal_interval"] = matching_layer_intervals(
            acts_a, acts_b, ti, keep=t.keep, threshold=t.threshold, n_resamples=t.bootstrap)
    _write_two_initialisations(ctx, sec, ti, folder, f"{sensor}", (nets.seeds[0], nets.seeds[1]))
    return ti


def matching_layer_intervals(
    acts_a: dict[str, np.ndarray],
    acts_b: dict[str, np.ndarray],
    ti: dict[str, Any],
    *,
    keep: str,
    threshold: float,
    n_resamples: int,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """A :data:`CONFIDENCE` interval (:func:`ccalens.bootstrap`'s default, half-sampling; ``n_resamples`` replicates
    from merges of block statistics) of the SVCCA of each pair of matching layers (the diagonal of ``ti``, the
    result of :func:`~ccalens.experiments.two_initialisations.two_init_heatmap` of ``acts_a``, ``acts_b``: layer ->
    ``(n, d)``). One row per pair: ``layer_a``, ``layer_b``, ``svcca`` (the estimate), ``low``, ``high``, ``bias``
    (the estimate's bias from the half-samples; None for conv maps, which have no statistics bootstrap),
    ``null_mean_rho``, ``interval`` (text)."""
    from ccalens.core.null import SmallSampleWarning
    from ccalens.core.uncertainty import bootstrap

    rows = []
    for i in range(min(len(ti["layers_a"]), len(ti["layers_b"]))):
        a, b = ti["layers_a"][i], ti["layers_b"][i]
        estimate, null = float(ti["similarity"][i, i]), float(ti["null_mean_rho"][i, i])
        low = high = bias = None
        if acts_a[a].ndim == 2 and acts_b[b].ndim == 2:
            with warnings.catch_warnings():  # the heat map gave its small-sample warning already
                warnings.simplefilter("ignore", SmallSampleWarning)
                boot = bootstrap(acts_a[a], acts_b[b], "svcca", n_resamples=n_resamples,
                                 confidence_level=CONFIDENCE, seed=seed, keep=keep, threshold=threshold)
            low, high = boot.confidence_interval
            bias = float(boot.bias)
        rows.append({"layer_a": a, "layer_b": b, "svcca": estimate, "low": low, "high": high, "bias": bias,
                     "null_mean_rho": null if np.isfinite(null) else None, "confidence_level": CONFIDENCE,
                     "n_resamples": n_resamples, "interval": format_interval(estimate, low, high)})
    return rows


def _diagonal_bounds(ti: dict[str, Any]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(low, high)`` matrices of ``ti``'s shape, finite on the diagonal where an interval was computed."""
    rows = ti.get("diagonal_interval")
    if not rows:
        return None, None
    low, high = np.full(np.shape(ti["similarity"]), np.nan), np.full(np.shape(ti["similarity"]), np.nan)
    for i, row in enumerate(rows):
        if row["low"] is not None:
            low[i, i], high[i, i] = row["low"], row["high"]
    return low, high


def _write_two_initialisations(
    ctx: RunContext, sec: Section, ti: dict[str, Any], folder: Any, label: str, seeds: tuple[int, int],
    stem: str = "two_initialisations",
) -> None:
    """JSON/CSV of a two-initialisation study, and its figure: SVCCA beside PWCCA and linear CKA (fair across
    widths), with the note on SVCCA's mean over min(m1, m2) computed from the run's ranks."""
    out = ctx.out
    low, high = _diagonal_bounds(ti)
    bounds = {} if low is None or high is None else {"svcca_low": low, "svcca_high": high}
    write_json(out_path(folder, f"{stem}.json"), {"network": label, **ti})
    write_csv(out_path(folder, f"{stem}.csv"), [
        {"layer_seed_a": a, "layer_seed_b": b, **{m: ti["measures"][m][i, j] for m in ti["measures"]},
         **{k: None if not np.isfinite(v[i, j]) else v[i, j] for k, v in bounds.items()},
         "null_mean_rho": ti["null_mean_rho"][i, j], "convention": ti["conventions"].get(f"{a}|{b}", "")}
        for i, a in enumerate(ti["layers_a"]) for j, b in enumerate(ti["layers_b"])])
    fig = ctx.figure(
        heatmaps.plot_measure_heatmaps,
        ti["measures"], ti["layers_a"], ti["layers_b"], out_path(folder, stem),
        title=f"Two initialisations ({label}): seed {seeds[0]} (rows) against seed {seeds[1]} (columns)",
        xlabel=f"layer, seed {seeds[1]}", ylabel=f"layer, seed {seeds[0]}")
    sec.add_figure(fig, out, f"{label}: layer x layer similarity between two trainings (SVCCA, PWCCA, linear CKA). "
                             f"{convention_caption(ti['conventions'])}")
    fig = ctx.figure(
        plot_scores_with_null,
        ti["similarity"], ti["null_mean_rho"], ti["layers_a"], ti["layers_b"], out_path(folder, f"{stem}_null"),
        title=f"Two initialisations ({label}): SVCCA (null mean)", xlabel=f"layer, seed {seeds[1]}",
        ylabel=f"layer, seed {seeds[0]}", low=low, high=high)
    interval = ("; the matching layers (diagonal) also show their 95% bootstrap interval" if low is not None
                else "")
    sec.add_figure(fig, out, f"{label}: SVCCA of every pair of layers, in brackets the mean canonical correlation "
                             f"that unrelated data of the same size and kept ranks would reach (null){interval}")
    if ti.get("diagonal_interval"):
        sec.tables.append((f"{label}: SVCCA of matching layers, {format_percent(CONFIDENCE, 0)} bootstrap interval", [
            {"layer (seed a)": r["layer_a"], "layer (seed b)": r["layer_b"], "SVCCA [95% interval]": r["interval"],
             "estimated bias": r["bias"], "null mean rho": r["null_mean_rho"], "replicates": r["n_resamples"]}
            for r in ti["diagonal_interval"]]))
        caveat = interval_note(ti["diagonal_interval"], "svcca")
        if caveat:
            sec.paragraphs.append(f"{label}, matching layers: {caveat}")
    note = svcca_width_note(ti)
    if note:
        sec.paragraphs.append(note)
    sec.add_files([out_path(folder, f"{stem}.json"), out_path(folder, f"{stem}.csv")], out)


def svcca_width_note(ti: dict[str, Any]) -> str:
    """What SVCCA's mean over min(m1, m2) correlations does when the widths differ, from this run's numbers: the
    largest off-diagonal SVCCA that exceeds the diagonal, with the kept ranks, and PWCCA / linear CKA there."""
    sim = np.asarray(ti["similarity"], dtype=float)
    n = min(sim.shape)
    diag = np.diag(sim)[:n]
    best = None
    for i in range(sim.shape[0]):
        for j in range(sim.shape[1]):
            if i != j and sim[i, j] > max(diag[min(i, n - 1)], diag[min(j, n - 1)]) + 1e-9:
                if best is None or sim[i, j] > sim[best]:
                    best = (i, j)
    if best is None:
        return ("SVCCA averages min(m1, m2) canonical correlations, m the directions each side keeps; in this run no "
                "pair of different layers scores above the matching layers.")
    i, j = best
    ra, rb = ti["ranks_a"][i], ti["ranks_b"][j]
    text = (f"SVCCA averages min(m1, m2) canonical correlations, m the directions each side keeps: "
            f"{ti['layers_a'][i]} of the first seed against {ti['layers_b'][j]} of the second reads "
            f"{format_number(sim[i, j])} (kept {ra} and {rb} directions), above both matching-layer scores, because "
            f"the narrower side's few directions lie inside the wider one's span.")
    verdicts = []
    for name, label in (("pwcca", "PWCCA"), ("linear_cka", "linear CKA")):
        grid = np.asarray(ti["measures"][name], dtype=float)
        own = np.diag(grid)[: min(grid.shape)]
        matching = max(own[min(i, len(own) - 1)], own[min(j, len(own) - 1)])
        above = grid[i, j] > matching + 1e-9
        verdicts.append(f"{label} reads {format_number(grid[i, j])} there, "
                        f"{'above' if above else 'not above'} its matching-layer scores ({format_number(matching)})")
    return text + " Beside it, " + "; ".join(verdicts) + "."


def _compression(ctx: RunContext, sec: Section) -> list[dict[str, Any]]:
    t, nets, out, metric = ctx.config.compression, ctx.nets, ctx.out, ctx.metric
    assert t is not None
    folder = out_path(out, "svcca")
    sensor = stage_sensor("compression", t.sensor, nets.sensors)
    model = nets.models[(sensor, nets.seeds[0])]
    other = nets.models[(sensor, nets.seeds[1])] if len(nets.seeds) > 1 else None
    X = _probe(nets, sensor, t.probe_samples)
    y_probe = _probe_labels(nets, t.probe_samples)
    layers = list(t.layers) if t.layers is not None else [nm for nm in _layers(model) if nm != LOGITS]
    acts = layer_activations(model, X, [*layers, LOGITS])
    acts_o = layer_activations(other, X, layers) if other is not None else {}
    if other is None and "other_seed" in t.references:
        sec.paragraphs.append("Compression against another seed: not run, [training] seeds lists a single seed.")
    comps = []
    for layer in tqdm(layers, desc="compression", disable=not ctx.progress):
        if acts[layer].ndim != 2 or acts[layer].shape[1] < 2:
            continue
        for ref in t.references:
            if ref == "other_seed" and other is None:
                continue
            ref_train = acts_o[layer] if ref == "other_seed" else acts[LOGITS]
            comp = compression(
                model, layer, X, nets.source.val[sensor], nets.source.y_val, ref_train, y_train=y_probe,
                keep=t.keep, threshold=t.threshold, repeats=t.repeats,
                k_values=None if t.k_values is None else list(t.k_values))
            comp.update({"reference": ref, "n_classes": nets.source.n_classes})
            comps.append(comp)
    if comps:
        write_json(out_path(folder, "compression.json"), {"sensor": sensor, "results": comps})
        write_csv(out_path(folder, "compression.csv"), [
            {"layer": c["layer"], "reference": c["reference"], "method": m, "k": k,
             "accuracy_mean": cols["accuracy_mean"][i], "accuracy_std": cols["accuracy_std"][i],
             "macro_f1_mean": cols["macro_f1_mean"][i], "macro_f1_std": cols["macro_f1_std"][i],
             **{key: cols[key][i] for key in ("train_accuracy_mean", "train_accuracy_std") if key in cols}}
            for c in comps for m, cols in c["methods"].items() for i, k in enumerate(c["k"])])
        fig = ctx.figure(svcca_plots.plot_compression, comps, out_path(folder, "compression"), metric=metric)
        rule = "sum of the singular values" if t.keep == "singular_values" else "variance"
        sec.add_figure(fig, out, f"Compression of {sensor} layers on top-k SVCCA directions (SVCCA keeps "
                                 f"{format_percent(t.threshold, 0)} of the {rule} of each side first) vs PCA and "
                                 f"random directions: validation (solid) and training (dotted) {metric}, as the "
                                 "SVCCA paper's Fig. 5")
        sec.add_files([out_path(folder, "compression.json"), out_path(folder, "compression.csv")], out)
    return comps


def svcca_stage(ctx: RunContext) -> dict[str, Any]:
    """The configured studies among learning dynamics, two initialisations and compression, in one section."""
    cfg = ctx.config
    sec = ctx.report.section("SVCCA-paper studies (Raghu et al. 2017)")
    results: dict[str, Any] = {}
    sentences = []
    if cfg.learning_dynamics is not None:
        rows = _learning_dynamics(ctx, sec)
        results["learning_dynamics"] = rows
        sentences.append(learning_dynamics_conclusion(rows))
    if cfg.two_initialisations is not None and len(ctx.nets.seeds) >= 2:
        ti = _two_initialisations(ctx, sec)
        results["two_initialisations_diagonal"] = dict(zip(ti["layers_a"], np.diag(ti["similarity"]).tolist(),
                                                           strict=True))
        if ti.get("diagonal_interval"):
            results["two_initialisations_diagonal_interval"] = {
                r["layer_a"]: {k: r[k] for k in ("svcca", "low", "high", "bias", "confidence_level", "interval")}
                for r in ti["diagonal_interval"]}
        sentences.append(two_initialisations_conclusion(ti["similarity"]))
    elif cfg.two_initialisations is not None:
        sec.paragraphs.append("Two initialisations: not run, [training] seeds lists a single seed (two are needed).")
    if cfg.compression is not None:
        needed = compression_k_needed(_compression(ctx, sec), ctx.metric)
        if needed:
            sec.tables.append((f"Compression: smallest k that keeps {format_percent(KEPT, 0)} of the {ctx.metric}",
                               needed))
            results["compression_k_needed"] = needed
        sentences.append(compression_conclusion(needed, ctx.metric))
    sec.conclusion = " ".join(s for s in sentences if s)
    return results
