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

__all__ = ["AGREEMENT_COLUMNS", "agreement_rows", "angles_note", "fusion_conclusion", "fusion_stage", "fusion_verdict"]

#: column of the agreement table -> fusion method (each one's prediction agreement with logit averaging)
AGREEMENT_COLUMNS: dict[str, str] = {
    "network a alone": "view_a",
    "network b alone": "view_b",
    "probability average": "probability_average",
    "penultimate concat + linear SVM": "raw_concat_svm",
    "CCA-sum SVM": "cca_sum_svm",
    "CCA-concat SVM": "cca_concat_svm",
    "CCA-sum top nc SVM": "cca_sum_top_nc_svm",
}


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


def agreement_rows(results: list[Any]) -> list[dict[str, Any]]:
    """Per pair: each method's agreement with logit averaging (:data:`AGREEMENT_COLUMNS`), and the median principal
    angle of side a (centred variates) with its random-subspace null (mean, 5th percentile)."""
    rows = []
    for r in results:
        null = r.angle_null["a"]["centred_variates"]
        rows.append({
            "pair": f"{r.view_a} + {r.view_b}",
            **{f"agree {col}": r.agreement_with_logit_average[m] for col, m in AGREEMENT_COLUMNS.items()},
            "median angle a centred variates (deg)": null["observed_median_deg"],
            "random subspaces: mean (deg)": null["mean_deg"],
            "random subspaces: 5th percentile (deg)": null["p05_deg"],
            "random subspaces drawn": null["draws"],
        })
    return rows


def fusion_verdict(rows: list[dict[str, Any]]) -> str:
    """Whether this run supports "CCA-sum fusion is logit averaging", from :func:`agreement_rows`: CCA-sum's
    agreement against the baselines that make no use of CCA (each network alone, the penultimate features
    concatenated), the top-nc variant (the mechanism's direct test) and the principal angles against their null.
    The claim is called supported only when CCA-sum agrees more often than every such baseline in most pairs, the
    top-nc variant agrees at least as often as full CCA-sum on average, and the angles lie below the null's 5th
    percentile in most pairs."""
    if not rows:
        return ""
    n = len(rows)
    mean = {col: float(np.mean([r[f"agree {col}"] for r in rows])) for col in AGREEMENT_COLUMNS}
    baselines = ("network a alone", "network b alone", "penultimate concat + linear SVM")
    beaten = {b: sum(r["agree CCA-sum SVM"] > r[f"agree {b}"] for r in rows) for b in baselines}
    beats_all = sum(all(r["agree CCA-sum SVM"] > r[f"agree {b}"] for b in baselines) for r in rows)
    below = sum(r["median angle a centred variates (deg)"] < r["random subspaces: 5th percentile (deg)"]
                for r in rows)
    observed = float(np.mean([r["median angle a centred variates (deg)"] for r in rows]))
    null_mean = float(np.mean([r["random subspaces: mean (deg)"] for r in rows]))
    null_p05 = float(np.mean([r["random subspaces: 5th percentile (deg)"] for r in rows]))
    agreement = "; ".join(
        f"{col} {format_percent(mean[col])}" + (f" (CCA-sum higher in {beaten[col]} of {n})" if col in beaten else "")
        for col in AGREEMENT_COLUMNS)
    text = (f"Agreement with logit averaging, mean over the {count(n, 'pair')}: {agreement}. The top nc canonical "
            f"variates are {format_number(observed)} degrees from the class components (median angle, network a, "
            f"centred) against {format_number(null_mean)} degrees for {rows[0]['random subspaces drawn']} random "
            f"subspaces of the same dimension and features (5th percentile {format_number(null_p05)}); below the 5th "
            f"percentile in {below} of {n} pairs. ")
    majority = n / 2
    mechanism = below > majority
    top_nc_holds = mean["CCA-sum top nc SVM"] >= mean["CCA-sum SVM"]
    if beats_all > majority and top_nc_holds and mechanism:
        return text + ("Verdict: supported: CCA-sum fusion agrees with logit averaging more often than every "
                       f"baseline without CCA in {beats_all} of {n} pairs, and its top nc directions carry it.")
    reasons = []
    if beats_all <= majority:
        reasons.append(f"CCA-sum agrees more often than every baseline without CCA in only {beats_all} of {n} pairs")
    if not top_nc_holds:
        reasons.append(f"the top nc canonical directions alone agree less often "
                       f"({format_percent(mean['CCA-sum top nc SVM'])}) than all of them "
                       f"({format_percent(mean['CCA-sum SVM'])})")
    if not mechanism:
        reasons.append(f"the angles are below the random-subspace 5th percentile in only {below} of {n} pairs")
    geometry = (" The top nc canonical directions are nonetheless closer to the class components than chance."
                if mechanism else "")
    verdict = "Verdict: the claim that CCA-sum fusion is logit averaging is not supported: "
    return text + verdict + "; ".join(reasons) + "." + geometry


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
    fig = ctx.figure(plots.plot_fusion, fres, out_path(out, "fusion", "fusion"), methods=FUSION_METHODS, metric=metric)
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
    baselines = agreement_rows(fres)
    sec.conclusion = f"{fusion_conclusion(rows, metric)} {fusion_verdict(baselines)}"
    sec.paragraphs.append(angles_note(rows))
    sec.tables.append((f"Fusion, validation {metric}", rows))
    sec.tables.append(("Prediction agreement with logit averaging, and the principal angles between the class "
                       "components and the top nc canonical variates against random subspaces of the same features",
                       baselines))
    sec.add_files([out_path(out, "fusion", "fusion.json"), out_path(out, "fusion", "fusion.csv"),
                   out_path(out, "fusion", "fusion_angles.csv")], out)
    return {"fusion": rows, "fusion_agreement": baselines}
