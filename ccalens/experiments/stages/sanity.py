"""Stage of the SVCCA paper's sanity figures on synthetic data: invariances of CCA and the A/B/C example."""

from __future__ import annotations

from typing import Any

import numpy as np

from ccalens.experiments.paths import out_path
from ccalens.experiments.sanity import abc_example, invariance_sanity
from ccalens.experiments.stages.context import RunContext
from ccalens.io import write_csv, write_json
from ccalens.report import plots
from ccalens.report.html import format_number, format_percent, words

__all__ = ["sanity_conclusion", "sanity_stage"]


def sanity_conclusion(inv: dict[str, Any], rows: list[dict[str, Any]], kept: dict[str, Any] | None = None,
                      threshold: float | None = None) -> str:
    """The finding, from the numbers: CCA's score without noise under every transform against the neuron-wise
    correlation's, and the A/B/C scores of plain CCA and SVCCA (with ``kept``, the directions the SVD keeps of
    each of A, B, C)."""
    cca, neuron = np.asarray(inv["cca"], dtype=float), np.asarray(inv["neuronwise"], dtype=float)
    j = int(np.argmin(np.abs(np.asarray(inv["noise_levels"], dtype=float))))
    moved = [i for i, t in enumerate(inv["transforms"]) if t != "identity"] or list(range(len(inv["transforms"])))
    worst = min(moved, key=lambda i: neuron[i, j])
    low, high = format_number(float(cca[moved, j].min())), format_number(float(cca[moved, j].max()))
    text = (f"Without noise, CCA scores {low if low == high else f'between {low} and {high}'} under "
            f"{words([inv['transforms'][i] for i in moved])} of the neurons, while the neuron-wise correlation "
            f"falls to {format_number(float(neuron[worst, j]))} under {inv['transforms'][worst]}.")
    if len(rows) == 2:
        ab, ac = rows
        text += (f" A/B/C example: plain CCA scores {ab['pair']} at {format_number(ab['plain CCA (mean rho)'])} "
                 f"and {ac['pair']} at {format_number(ac['plain CCA (mean rho)'])}; SVCCA at "
                 f"{format_number(ab['SVCCA (mean rho)'])} and {format_number(ac['SVCCA (mean rho)'])}")
        kept = {name: k.get("singular_values") for name, k in (kept or {}).items() if isinstance(k, dict)}
        if kept.get("B") is not None and kept.get("C") is not None and threshold is not None:
            text += (f"; the SVD keeps {kept['B']} directions of B and {kept['C']} of C "
                     f"({format_percent(threshold, 0)} of the sum of singular values)")
        text += "."
    return text


def sanity_stage(ctx: RunContext) -> dict[str, Any]:
    """The invariance figure and the A/B/C example (no training)."""
    t = ctx.config.sanity
    assert t is not None
    out = ctx.out
    folder = out_path(out, "sanity")
    sec = ctx.report.section("Sanity figures (SVCCA paper)")
    layer = None
    if ctx.networks is not None:  # a real layer: the penultimate features of the first network (SVCCA App. 1)
        sensor, seed = ctx.networks.sensors[0], ctx.networks.seeds[0]
        layer = ctx.networks.features[(sensor, seed)].train
    inv = (invariance_sanity(layer, seed=t.seed) if layer is not None
           else invariance_sanity(n=t.n_samples, seed=t.seed))
    abc = abc_example(n=t.abc_samples, seed=t.seed)
    write_json(out_path(folder, "invariance.json"), inv)
    write_json(out_path(folder, "abc.json"), abc)
    write_csv(out_path(folder, "invariance.csv"), [
        {"transform": tr, "noise_std": s, "cca": inv["cca"][i, j], "neuronwise": inv["neuronwise"][i, j]}
        for i, tr in enumerate(inv["transforms"]) for j, s in enumerate(inv["noise_levels"])])
    kept = abc.get("kept", {})
    rows = [{"pair": f"A vs {p[1]}", "plain CCA (mean rho)": abc[p]["cca"], "SVCCA (mean rho)": abc[p]["svcca"],
             f"directions the SVD keeps of {p[1]}": (kept.get(p[1]) or {}).get("singular_values")}
            for p in ("AB", "AC")]
    write_csv(out_path(folder, "abc.csv"), rows)
    sec.conclusion = sanity_conclusion(inv, rows, abc.get("kept"), abc.get("threshold"))
    source = inv.get("source", "synthetic")
    sec.add_figure(ctx.figure(plots.plot_invariance, inv, out_path(folder, "invariance")), out,
                   f"A neuron ({source}) mixed with other top neurons: CCA recovers it under permutation, rotation "
                   "and scaling; a neuron-by-neuron correlation is invariant to per-neuron scaling but not to "
                   "permutation or rotation; below, the appendix's recovered signal: the neuron and the direction "
                   "CCA finds in T(X) over the first 60 sample ids, for each transform")
    sec.add_figure(ctx.figure(plots.plot_abc, abc, out_path(folder, "abc")), out,
                   "A/B/C (SVCCA appendix B.0.1): CCA and SVCCA score both pairs near 1; the number of directions "
                   "the SVD keeps (about 50 for B, about 200 for C) tells them apart")
    sec.tables.append(("A/B/C example", rows))
    sec.add_files([out_path(folder, name) for name in ("invariance.json", "invariance.csv", "abc.json", "abc.csv")],
                  out)
    return {"abc": rows}
