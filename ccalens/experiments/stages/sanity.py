"""Stage of the SVCCA paper's sanity figures on synthetic data: invariances of CCA and the A/B/C example."""

from __future__ import annotations

from typing import Any

import numpy as np

from ccalens.experiments.paths import out_path
from ccalens.experiments.sanity import abc_example, abc_noise_sweep, invariance_sanity
from ccalens.experiments.stages.context import RunContext
from ccalens.io import write_csv, write_json
from ccalens.report import svcca_plots
from ccalens.report.html import format_number, format_percent, words

__all__ = ["sanity_conclusion", "sanity_stage"]


def sanity_conclusion(inv: dict[str, Any], rows: list[dict[str, Any]], abc: dict[str, Any] | None = None,
                      sweep: dict[str, Any] | None = None) -> str:
    """The finding, from the numbers: CCA's score without noise under every transform against the neuron-wise
    correlation's; the A/B/C scores of plain CCA and SVCCA, the directions the SVD keeps of B and C under each
    rule at the example's noise (``abc``) and the noise std up to which each rule keeps only B's shared
    directions (``sweep``)."""
    cca, neuron = np.asarray(inv["cca"], dtype=float), np.asarray(inv["neuronwise"], dtype=float)
    j = int(np.argmin(np.abs(np.asarray(inv["noise_levels"], dtype=float))))
    moved = [i for i, t in enumerate(inv["transforms"]) if t != "identity"] or list(range(len(inv["transforms"])))
    worst = min(moved, key=lambda i: neuron[i, j])
    low, high = format_number(float(cca[moved, j].min())), format_number(float(cca[moved, j].max()))
    text = (f"Without noise, CCA scores {low if low == high else f'between {low} and {high}'} under "
            f"{words([inv['transforms'][i] for i in moved])} of the neurons, while the neuron-wise correlation "
            f"falls to {format_number(float(neuron[worst, j]))} under {inv['transforms'][worst]}.")
    if len(rows) != 2:
        return text
    ab, ac = rows
    text += (f" A/B/C example: plain CCA scores {ab['pair']} at {format_number(ab['plain CCA (mean rho)'])} "
             f"and {ac['pair']} at {format_number(ac['plain CCA (mean rho)'])}; SVCCA at "
             f"{format_number(ab['SVCCA (mean rho)'])} and {format_number(ac['SVCCA (mean rho)'])}.")
    if abc is None:
        return text
    kept, t = abc["kept"], float(abc["threshold"])
    text += (f" With B's noise std {abc['noise_std']:g}, the SVD keeps {kept['B']['singular_values']} of B's "
             f"{abc['dims']['B']} directions and {kept['C']['singular_values']} of C's by the appendix's rule "
             f"({format_percent(t, 0)} of the sum of singular values), {kept['B']['variance']} and "
             f"{kept['C']['variance']} by the variance rule.")
    if sweep is not None:
        bound = sweep["bound"]
        shared = sweep["shared"]
        separates = [rule for rule in ("singular_values", "variance") if kept["B"][rule] <= shared]
        verdict = ("both rules tell B from C here" if len(separates) == 2 else
                   "only the variance rule tells B from C here" if separates == ["variance"] else
                   "only the appendix's rule tells B from C here" if separates else
                   "neither rule tells B from C at this noise")
        levels = sweep["noise_levels"]
        agree = sum((sweep["B"][rule][i] <= shared) == (sigma <= bound[rule])
                    for rule in bound for i, sigma in enumerate(levels))
        text += (f" Verdict: {verdict}. B keeps only its {shared} shared directions while its noise std is at most "
                 f"{bound['singular_values']:.2g} by the appendix's rule (each of its noise directions adds its std "
                 f"to the sum of singular values) and {bound['variance']:.2g} by the variance rule (its square); "
                 f"the sweep over {len(levels)} noise levels agrees with these bounds at {agree} of its "
                 f"{len(levels) * len(bound)} points.")
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
    abc = abc_example(n=t.abc_samples, seed=t.seed, noise_std=t.abc_noise_std)
    sweep = abc_noise_sweep(t.abc_noise_levels, n=t.abc_samples, seed=t.seed)
    write_json(out_path(folder, "invariance.json"), inv)
    write_json(out_path(folder, "abc.json"), {**abc, "noise_sweep": sweep})
    write_csv(out_path(folder, "invariance.csv"), [
        {"transform": tr, "noise_std": s, "cca": inv["cca"][i, j], "neuronwise": inv["neuronwise"][i, j]}
        for i, tr in enumerate(inv["transforms"]) for j, s in enumerate(inv["noise_levels"])])
    kept = abc.get("kept", {})
    rows = [{"pair": f"A vs {p[1]}", "plain CCA (mean rho)": abc[p]["cca"], "SVCCA (mean rho)": abc[p]["svcca"],
             "directions the SVD keeps of B or C (sum of singular values)": kept[p[1]]["singular_values"],
             "directions the SVD keeps of B or C (variance)": kept[p[1]]["variance"]}
            for p in ("AB", "AC")]
    write_csv(out_path(folder, "abc.csv"), rows)
    write_csv(out_path(folder, "abc_noise_sweep.csv"), [
        {"noise_std": sigma, "kept_B_singular_values": sweep["B"]["singular_values"][i],
         "kept_B_variance": sweep["B"]["variance"][i]} for i, sigma in enumerate(sweep["noise_levels"])])
    sec.conclusion = sanity_conclusion(inv, rows, abc, sweep)
    source = inv.get("source", "synthetic")
    sec.add_figure(ctx.figure(svcca_plots.plot_invariance, inv, out_path(folder, "invariance")), out,
                   f"A neuron ({source}) mixed with other top neurons: CCA recovers it under permutation, rotation "
                   "and scaling; a neuron-by-neuron correlation is invariant to per-neuron scaling but not to "
                   "permutation or rotation; below, the appendix's recovered signal: the neuron and the direction "
                   "CCA finds in T(X) over the first 60 sample ids, for each transform")
    sec.add_figure(ctx.figure(svcca_plots.plot_abc, abc, out_path(folder, "abc"), sweep), out,
                   f"A/B/C (SVCCA appendix B.0.1), {abc['n_samples']} samples, B's noise std {abc['noise_std']:g}: "
                   "CCA and SVCCA score both pairs alike (top); the directions the SVD keeps of A, B and C under "
                   "each rule (bottom left) and of B against its noise std, with each rule's bound (bottom right)")
    sec.tables.append(("A/B/C example", rows))
    sec.add_files([out_path(folder, name) for name in ("invariance.json", "invariance.csv", "abc.json", "abc.csv",
                                                       "abc_noise_sweep.csv")], out)
    return {"abc": rows}
