"""Stages of the projection experiment (Moreau et al. 2021): same sensor (section 4.2) and the grid of sensor
pairs (Fig. 5). Each writes its files and report section and returns its rows of ``results.json``."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ccalens.experiments.cross_sensor import run_sensor_grid
from ccalens.experiments.parallel import Workers
from ccalens.experiments.paths import out_path
from ccalens.experiments.projection import ProjectionConfig, run_projection_views
from ccalens.experiments.projection_result import ProjectionResult
from ccalens.experiments.stages.context import RunContext
from ccalens.io import write_csv, write_json
from ccalens.report import heatmaps, plots
from ccalens.report.html import Section, count, format_percent, words
from ccalens.report.uncertainty_plots import format_interval, interval_note

__all__ = [
    "cross_sensor_stage",
    "pair_correlation_intervals",
    "plus_minus",
    "projection_conclusion",
    "projection_stage",
    "sensor_grid_conclusion",
    "spread_sentence",
]

CONFIDENCE = 0.95  # level of the bootstrap intervals of the mean canonical correlations


def pair_correlation_intervals(
    pairs: Sequence[tuple[str, np.ndarray, np.ndarray]], *, pca_variance: float, n_resamples: int, seed: int = 0,
    workers: Workers | None = None,
) -> list[dict[str, Any]]:
    """The mean canonical correlation that drives the projection, with a :data:`CONFIDENCE` bootstrap interval, for
    each ``(label, X1_train: (n, p), X2_train: (n, q))`` network pair (``workers``: processes the pairs are spread
    over; None: this process).

    The correlations are those of :func:`~ccalens.experiments.bases.cca_bases` (CCA after PCA of each side
    keeping ``pca_variance`` of its variance), i.e. SVCCA with ``keep="variance"``; the interval is
    :func:`ccalens.bootstrap`'s default (half-sampling) interval for the population value, from ``n_resamples``
    merges of block statistics. Rows:
    ``pair``, ``mean_rho``, ``low``, ``high``, ``bias`` (the estimate's bias, from the half-samples),
    ``null_mean_rho`` (unrelated data of the same n and kept ranks), ``ranks``, ``interval`` (text),
    ``confidence_level``, ``n_resamples``.
    """
    pool = workers or Workers(1)
    return pool.map(_pair_interval, [(label, X1, X2, pca_variance, n_resamples, seed) for label, X1, X2 in pairs],
                    desc="bootstrap intervals")


def _pair_interval(label: str, X1: np.ndarray, X2: np.ndarray, pca_variance: float, n_resamples: int,
                   seed: int) -> dict[str, Any]:
    """One row of :func:`pair_correlation_intervals`."""
    from ccalens.core.measures import svcca
    from ccalens.core.null import SmallSampleWarning
    from ccalens.core.uncertainty import bootstrap

    with warnings.catch_warnings():  # the projection reports its own sizes; no warning per replicate
        warnings.simplefilter("ignore", SmallSampleWarning)
        result = svcca(X1, X2, keep="variance", threshold=pca_variance)
        boot = bootstrap(X1, X2, "svcca", n_resamples=n_resamples, confidence_level=CONFIDENCE, seed=seed,
                         keep="variance", threshold=pca_variance)
    low, high = boot.confidence_interval
    null = result.null_mean_rho
    return {"pair": label, "mean_rho": float(result.score), "low": float(low), "high": float(high),
            "bias": float(boot.bias),
            "null_mean_rho": None if null is None else float(null), "ranks": [result.rank_x, result.rank_y],
            "interval": format_interval(result.score, low, high), "confidence_level": CONFIDENCE,
            "n_resamples": n_resamples}


def _interval_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"network pair": r["pair"], "mean canonical correlation [95% interval]": r["interval"],
             "estimated bias": r["bias"], "null mean rho": r["null_mean_rho"],
             "kept PCA ranks": f"{r['ranks'][0]} x {r['ranks'][1]}",
             "replicates": r["n_resamples"]} for r in rows]


def _at_nc(res: ProjectionResult, metric: str) -> dict[str, Any]:
    """One row of results: the unprojected score and each method's score at k = nc, per classifier, then each
    score's std (ddof = 0) over the network pairs and random draws (``... std`` keys, after the means)."""
    nc = res.n_classes
    row: dict[str, Any] = {"network": res.name, "directions from": res.reference}
    spread: dict[str, float] = {}
    for clf in res.classifiers:
        row[f"baseline ({clf})"] = res.baseline[clf][metric]
        for m in res.methods:
            try:
                row[f"{m} @nc ({clf})"] = res.score_at(m, nc, clf, metric)
            except KeyError:
                continue
            ks, _, std = res.curve(m, clf, metric)
            spread[f"{m} @nc ({clf}) std"] = float(std[np.flatnonzero(ks == nc)[0]])
    row.update(spread)
    return row


def plus_minus(value: float, std: float) -> str:
    """``0.827 ± 0.009``: a mean with its std, both with three decimals."""
    return f"{value:.3f} ± {std:.3f}"


def _display(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows for the page: each score with a std shown as ``mean ± std`` in one cell."""
    out = []
    for row in rows:
        shown = {}
        for key, value in row.items():
            if key.endswith(" std"):
                continue
            std = row.get(f"{key} std")
            shown[key] = value if std is None or value is None else plus_minus(value, std)
        out.append(shown)
    return out


def spread_sentence(rows: list[dict[str, Any]], method: str = "cca_highest", classifier: str = "original") -> str:
    """``method``'s score at k = nc per network, mean ± std over the pairs and draws, beside the unprojected score
    (empty when the rows carry no std)."""
    parts = [f"{r['network']} {plus_minus(r[f'{method} @nc ({classifier})'], r[f'{method} @nc ({classifier}) std'])}"
             f" of {r[f'baseline ({classifier})']:.3f}" for r in rows
             if r.get(f"{method} @nc ({classifier}) std") is not None]
    if not parts:
        return ""
    return (f"Per network, {method.replace('cca_', 'CCA_')} at k = nc with the {classifier} last layer (mean ± std "
            f"over the network pairs and draws, of the unprojected score): {', '.join(parts)}.")


def _retraining_sentence(pcfg: ProjectionConfig) -> str:
    if not pcfg.retrain:
        return ""
    retrain = pcfg.retrain_config
    unit = retrain.lr_milestone_unit if len(retrain.lr_milestones) == 1 else f"{retrain.lr_milestone_unit}s"
    schedule = (f", multiplied by {retrain.lr_gamma:g} at {unit} {words([str(m) for m in retrain.lr_milestones])}"
                if retrain.lr_milestones else "")
    return (f" The retrained last layer starts from the network's own weights (init = {retrain.init!r}) and runs "
            f"{retrain.epochs} epochs of {retrain.optimizer} at lr {retrain.lr:g}{schedule}.")


def _relative(rows: list[dict[str, Any]], method: str, classifier: str) -> list[float]:
    """``method``'s score at k = nc divided by the unprojected score, per row that has both."""
    out = []
    for row in rows:
        score, base = row.get(f"{method} @nc ({classifier})"), row.get(f"baseline ({classifier})")
        if score is not None and base:
            out.append(score / base)
    return out


def projection_conclusion(rows: list[dict[str, Any]], n_classes: int, metric: str) -> str:
    """The finding of the same-sensor experiment, from its rows: what CCA_highest (and CCA_lowest, for contrast)
    keep of the unprojected score at k = nc, averaged over the networks, for each last layer."""
    parts = []
    for clf, layer in (("original", "the original last layer"), ("retrained", "a retrained last layer")):
        high, low = _relative(rows, "cca_highest", clf), _relative(rows, "cca_lowest", clf)
        if not high:
            continue
        text = f"{format_percent(float(np.mean(high)))} with {layer}"
        if low:
            text += f" (CCA_lowest: {format_percent(float(np.mean(low)))})"
        parts.append(text)
    if not parts:
        return ""
    return (f"CCA_highest at k = nc = {n_classes} keeps on average {' and '.join(parts)} of the unprojected "
            f"{metric} over the {count(len(rows), 'sensor')}.")


def projection_stage(ctx: RunContext) -> dict[str, Any]:
    """Same sensor: each sensor's networks projected on canonical directions found against another seed."""
    pcfg = ctx.config.projection
    assert pcfg is not None
    nets, out, metric = ctx.nets, ctx.out, ctx.metric
    seed_pairs = nets.seed_pairs(pcfg.pairs, "projection")
    described = ", ".join(f"{a} vs {b}" for a, b in seed_pairs)
    sec = ctx.report.section("Projection experiment, same sensor (Moreau et al. 2021, section 4.2)")
    sec.paragraphs.append(
        f"Penultimate features of each network are projected on k directions fitted on training features only; "
        f"canonical directions come from another initialisation on the same sensor "
        f"({count(len(seed_pairs), 'network pair')}: seeds {described}). Curves: mean and population std "
        f"(ddof = 0, as the paper's code) over the pairs and, for random methods, {pcfg.repeats} nested draws per "
        "pair; dotted lines: k = number of classes "
        "and CCA_highest's score there; dashed: no projection." + _retraining_sentence(pcfg))
    rows = []
    correlations: list[tuple[str, np.ndarray, np.ndarray]] = []
    views = []
    for sensor in nets.sensors:
        pairs = [(nets.features[(sensor, a)], nets.features[(sensor, b)]) for a, b in seed_pairs]
        correlations += [(f"{sensor}: seed {a} vs seed {b}", net.train, ref.train)
                         for (a, b), (net, ref) in zip(seed_pairs, pairs, strict=True)]
        views.append((sensor, [(net, ref.train) for net, ref in pairs], [ref.name for _, ref in pairs]))
    results_by_view = run_projection_views(views, nets.source.y_train, nets.source.y_val, pcfg,
                                           progress=ctx.progress, workers=ctx.workers)
    for sensor, res in zip(nets.sensors, results_by_view, strict=True):
        stem = f"{sensor}_" + "_".join(f"seed{a}_vs_seed{b}" for a, b in seed_pairs)
        files = res.save(out_path(out, "projection"), stem)
        fig = ctx.figure(plots.plot_projection, res, out_path(out, "projection", stem), metric=metric)
        sec.add_figure(fig, out, f"{sensor}: projection on k directions ({metric})")
        sec.add_files(list(files.values()), out)
        rows.append(_at_nc(res, metric))
    nc = nets.source.n_classes
    sec.conclusion = " ".join(t for t in (projection_conclusion(rows, nc, metric), spread_sentence(rows)) if t)
    sec.tables.insert(0, (f"Validation {metric} at k = nc = {nc} (mean ± std over the network pairs and draws)",
                          _display(rows)))
    write_csv(out_path(out, "projection", "at_nc.csv"), rows)
    results: dict[str, Any] = {"projection_same_sensor_at_nc": rows}
    if pcfg.bootstrap:
        intervals = pair_correlation_intervals(correlations, pca_variance=pcfg.pca_variance,
                                               n_resamples=pcfg.bootstrap, seed=pcfg.seed, workers=ctx.workers)
        _report_intervals(sec, out, "projection", intervals, "the two networks of each pair", position=1)
        results["projection_mean_canonical_correlation"] = intervals
    return results


def _report_intervals(
    sec: Section, out: Path, folder: str, intervals: list[dict[str, Any]], between: str, position: int | None = None
) -> None:
    """The table, the bias note (when an interval lies beside its estimate) and the JSON file of the mean canonical
    correlations' bootstrap intervals of one stage (``folder``: its output folder)."""
    table = (f"Mean canonical correlation between {between} (training features, after PCA), "
             f"{format_percent(CONFIDENCE, 0)} bootstrap interval", _interval_table(intervals))
    if position is None:
        sec.tables.append(table)
    else:
        sec.tables.insert(position, table)
    note = interval_note(intervals, "mean_rho")
    if note:
        sec.paragraphs.append(f"Mean canonical correlations: {note}")
    path = out_path(out, folder, "mean_canonical_correlation.json")
    write_json(path, {"pairs": intervals})
    sec.add_files([path], out)


def sensor_grid_conclusion(sensors: list[str], relative: np.ndarray, metric: str, classifier: str) -> str:
    """The finding of the grid, from CCA_highest's score at k = nc relative to the unprojected one
    (``relative[i, j]``: sensor i projected on directions from sensor j): the diagonal's mean, the best and
    worst pairs of different sensors."""
    n = len(sensors)
    diag = [relative[i, i] for i in range(n) if np.isfinite(relative[i, i])]
    off = [(relative[i, j], sensors[i], sensors[j]) for i in range(n) for j in range(n)
           if i != j and np.isfinite(relative[i, j])]
    parts = []
    if diag:
        parts.append(f"With the {classifier} last layer and directions from another seed of the same sensor, "
                     f"CCA_highest at k = nc keeps "
                     f"{format_percent(float(np.mean(diag)))} of the unprojected {metric} on average")
    if off:
        best, worst = max(off), min(off)
        values = [v for v, _, _ in off]
        parts.append(f"across sensors it keeps from {format_percent(worst[0])} ({worst[1]} on directions from "
                     f"{worst[2]}) to {format_percent(best[0])} ({best[1]} on directions from {best[2]}), "
                     f"{format_percent(float(np.mean(values)))} on average over the {len(off)} pairs "
                     f"(std over the pairs {format_percent(float(np.std(values)))})")
    return "; ".join(parts) + "." if parts else ""


def cross_sensor_stage(ctx: RunContext) -> dict[str, Any]:
    """The grid: each sensor's network projected on canonical directions found against every sensor's."""
    pcfg = ctx.config.cross_sensor
    assert pcfg is not None
    nets, out, metric = ctx.nets, ctx.out, ctx.metric
    sensors = nets.sensors
    seed_pairs = nets.seed_pairs(pcfg.pairs, "cross_sensor")
    grid = run_sensor_grid(nets.features, sensors, seed_pairs, nets.source.y_train, nets.source.y_val, pcfg,
                           out_dir=out_path(out, "cross_sensor"), progress=ctx.progress, workers=ctx.workers)
    sec = ctx.report.section("Projection experiment, grid of sensor pairs (Moreau et al. 2021, Fig. 5)")
    sec.paragraphs.append(
        "Column: the network whose features are projected (\"data from\"); row: the network whose features define "
        "the canonical directions (\"CCA with\"; diagonal: the same sensor, another seed), as in the paper's Fig. 5. "
        f"Network pairs: seeds {', '.join(f'{a} vs {b}' for a, b in seed_pairs)}.")
    nc = nets.source.n_classes
    clfs = grid[next(iter(grid))].classifiers
    for clf in clfs:
        fig = ctx.figure(plots.plot_sensor_grid, grid, sensors, out_path(out, "cross_sensor", f"grid_{clf}"),
                                     methods=[m for m in ("cca_highest", "cca_lowest", "cca_random", "pca")
                                              if m in pcfg.methods], classifier=clf, metric=metric)
        sec.add_figure(fig, out, f"Grid of sensor pairs, {clf} last layer ({metric})")
    M = np.full((len(sensors), len(sensors)), np.nan)
    rel = np.full_like(M, np.nan)
    for (a, b), res in grid.items():
        if "cca_highest" in res.methods:
            i, j = sensors.index(a), sensors.index(b)
            M[i, j] = res.score_at("cca_highest", nc, clfs[0], metric)
            rel[i, j] = M[i, j] / max(res.baseline[clfs[0]][metric], 1e-12)
    if np.isfinite(M).any():
        fig = ctx.figure(heatmaps.plot_heatmap, rel, sensors, sensors,
                                 out_path(out, "cross_sensor", "cca_highest_at_nc"),
                                 title=f"CCA_highest at k = {nc}, relative to no projection ({clfs[0]} layer)",
                                 colorbar_label=f"{metric} / unprojected {metric}", xlabel="directions from",
                                 ylabel="projected network", vmin=0, vmax=max(1.0, float(np.nanmax(rel))))
        sec.add_figure(fig, out, "CCA_highest at k = nc for every pair, relative to the unprojected score")
        sec.conclusion = sensor_grid_conclusion(sensors, rel, metric, clfs[0])
    rows = [_at_nc(res, metric) for res in grid.values()]
    sec.tables.append((f"Validation {metric} at k = nc (mean ± std over the network pairs and draws)",
                       _display(rows)))
    results: dict[str, Any] = {"cross_sensor_at_nc": rows}
    if pcfg.bootstrap:  # the correlations of (a, b) and (b, a) are the same: each unordered pair once
        pairs = [(f"{a} seed {s} vs {b} seed {t}", nets.features[(a, s)].train, nets.features[(b, t)].train)
                 for i, a in enumerate(sensors) for b in sensors[i:] for s, t in seed_pairs]
        intervals = pair_correlation_intervals(pairs, pca_variance=pcfg.pca_variance, n_resamples=pcfg.bootstrap,
                                               seed=pcfg.seed, workers=ctx.workers)
        _report_intervals(sec, out, "cross_sensor", intervals, "the networks of each pair of sensors")
        results["cross_sensor_mean_canonical_correlation"] = intervals
    write_csv(out_path(out, "cross_sensor", "at_nc.csv"), rows)
    write_json(out_path(out, "cross_sensor", "grid.json"), {"sensors": sensors, "cca_highest_at_nc": M,
                                                    "relative_to_baseline": rel, "classifier": clfs[0]})
    sec.add_files([out_path(out, "cross_sensor", "at_nc.csv"), out_path(out, "cross_sensor", "grid.json")], out)
    return results
