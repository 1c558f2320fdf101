"""Stage of the fusion study: CCA fusion against logit averaging on pairs of sensors (one seed)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ccalens.experiments.fusion import FUSION_METHODS, run_fusion
from ccalens.experiments.paths import out_path
from ccalens.experiments.stages.context import RunContext
from ccalens.report import plots
from ccalens.report.html import count, format_number, format_percent

__all__ = ["angles_note", "fusion_conclusion", "fusion_stage"]


def fusion_conclusion(rows: list[dict[str, Any]], metric: str) -> str:
    """The finding, from the table rows: how often CCA-sum fusion predicts what logit averaging predicts, and
    their mean scores."""
    if not rows:
        return ""
    agree = [r["agree CCA-sum/logit"] for r in rows]
    lowest = min(rows, key=lambda r: r["agree CCA-sum/logit"])
    cca = float(np.mean([r["CCA-sum SVM"] for r in rows]))
    logit = float(np.mean([r["logit avg"] for r in rows]))
    return (f"CCA-sum fusion predicts the same class as logit averaging on {format_percent(float(np.mean(agree)))} "
            f"of the validation samples on average over the {count(len(rows), 'sensor pair')} (lowest: "
            f"{format_percent(lowest['agree CCA-sum/logit'])} for {lowest['pair']}); its mean {metric} is "
            f"{format_number(cca)} against {format_number(logit)} for logit averaging.")


def angles_note(rows: list[dict[str, Any]]) -> str:
    """What the principal angles say, from this run's numbers: the weights geometry against its random-subspace
    baseline, and the variates geometry."""
    weights = float(np.mean([r["median angle a centred weights (deg)"] for r in rows]))
    random = float(np.mean([r["median angle a random subspace (deg)"] for r in rows]))
    variates = float(np.mean([r["median angle a centred variates (deg)"] for r in rows]))
    close = abs(weights - random) <= 0.1 * random
    verdict = ("about as far as" if close else "closer than" if weights < random else "farther than")
    text = (f"In feature coordinates, the class components and the top nc canonical weight vectors are "
            f"{format_number(weights)} degrees apart (median angle, mean over pairs), {verdict} random directions of "
            f"the same PCA space ({format_number(random)} degrees)")
    if close:
        text += (": whitened canonical weights lie along low-variance directions, so that geometry says little "
                 "about shared class information")
    return text + f". Measured on the samples (the variates), the angle is {format_number(variates)} degrees."


def fusion_stage(ctx: RunContext) -> dict[str, Any]:
    """Every configured pair of sensors (default: all pairs), first seed's networks."""
    fcfg = ctx.config.fusion
    assert fcfg is not None
    nets, out, metric = ctx.nets, ctx.out, ctx.metric
    sensors = nets.sensors
    if len(sensors) < 2:
        raise ValueError(f"[fusion] needs at least two sensors, the data has {sensors}")
    s0 = nets.seeds[0]
    pairs = list(fcfg.pairs) if fcfg.pairs else list(itertools.combinations(sensors, 2))
    named = {s: nets.features[(s, s0)] for s in sensors}
    fres = run_fusion(named, nets.source.y_train, nets.source.y_val, pairs=pairs, config=fcfg.settings,
                      out_dir=out_path(out, "fusion"), progress=ctx.progress)
    sec = ctx.report.section("Fusion: CCA fusion vs logit averaging")
    sec.paragraphs.append(
        f"CCA fusion (PCA {format_percent(fcfg.settings.pca_variance, 2)} of the variance, CCA on training "
        f"features, canonical variates summed or concatenated, {fcfg.settings.svm_kernel} SVM) against averaging "
        "the two networks' logits. Principal angles: between the class components (rows of W) and the top nc "
        "canonical directions; 'variates' measures them on the training samples (invariant to the feature "
        "coordinates), 'centred' removes the common shift of the logits (nc - 1 dimensions).")
    fig = plots.plot_fusion(fres, out_path(out, "fusion", "fusion"), methods=FUSION_METHODS, metric=metric)
    sec.add_figure(fig, out, f"Fusion scores ({metric}) and agreement with logit averaging")
    rows = []
    for r in fres:
        rows.append({
            "pair": f"{r.view_a} + {r.view_b}",
            "a alone": r.scores["view_a"][metric], "b alone": r.scores["view_b"][metric],
            "logit avg": r.scores["logit_average"][metric], "prob avg": r.scores["probability_average"][metric],
            "CCA-sum SVM": r.scores["cca_sum_svm"][metric], "CCA-concat SVM": r.scores["cca_concat_svm"][metric],
            "CCA-sum top nc SVM": r.scores["cca_sum_top_nc_svm"][metric],
            "raw concat SVM": r.scores["raw_concat_svm"][metric],
            "agree CCA-sum/logit": r.agreement_with_logit_average["cca_sum_svm"],
            "agree top-nc/logit": r.agreement_with_logit_average["cca_sum_top_nc_svm"],
            "median angle a centred variates (deg)": float(np.median(r.principal_angles_deg["a_centred_variates"])),
            "max angle a centred variates (deg)": max(r.principal_angles_deg["a_centred_variates"]),
            "median angle a centred weights (deg)": float(np.median(r.principal_angles_deg["a_centred_weights"])),
            "median angle a random subspace (deg)": float(np.median(r.principal_angles_deg["a_random_weights"])),
        })
    sec.conclusion = fusion_conclusion(rows, metric)
    sec.paragraphs.append(angles_note(rows))
    sec.tables.append((f"Fusion, validation {metric}", rows))
    sec.add_files([out_path(out, "fusion", "fusion.json"), out_path(out, "fusion", "fusion.csv"),
                   out_path(out, "fusion", "fusion_angles.csv")], out)
    return {"fusion": rows}
