"""Stage ``[language_model]``: the SVCCA paper's App. 6, learning dynamics of a stacked LSTM language model
(:mod:`ccalens.experiments.language_model`), with its held-out loss against the unigram baseline and a conclusion on
whether the lower layers converge first, computed from the run's numbers."""

from __future__ import annotations

import itertools
from typing import Any

from ccalens.experiments.language_model import language_model_dynamics
from ccalens.experiments.paths import out_path
from ccalens.experiments.stages.context import RunContext
from ccalens.io import write_csv, write_json
from ccalens.report import svcca_plots
from ccalens.report.html import format_number

__all__ = ["language_model_conclusion", "language_model_stage"]


def _step_key(level: float) -> str:
    return f"first step with SVCCA >= {level}"


def language_model_conclusion(held_out: dict[str, float], rows: list[dict[str, Any]], levels: list[float],
                              checkpoint_every: int) -> str:
    """What the run shows: whether the model learned more than a one-character context (held-out loss against the
    bigram and unigram losses), and, at each SVCCA level, whether the layers reach it in order from the input up (a
    tie is a shared checkpoint, at the resolution of ``checkpoint_every`` steps)."""
    loss, unigram, bigram = held_out["loss"], held_out["unigram_loss"], held_out["bigram_loss"]
    context = ("uses more than the current character" if loss < bigram else
               "does not beat a one-character context" if loss < unigram else "does not beat character frequencies")
    sentences = [f"The LSTM's held-out loss is {format_number(loss)} nats per character against "
                 f"{format_number(bigram)} for the bigram baseline (next-character frequencies given the current "
                 f"one) and {format_number(unigram)} for the unigram (character frequencies): it {context} "
                 f"(next-character accuracy {format_number(held_out['accuracy'])})."]
    verdicts = []
    for level in levels:
        steps = [r[_step_key(level)] for r in rows]
        ordered = all(a is not None and b is not None and a <= b for a, b in itertools.pairwise(steps))
        strict = ordered and all(a < b for a, b in itertools.pairwise(steps))
        listing = ", ".join(f"{r['layer']} at step {s}" if s is not None else f"{r['layer']} never"
                            for r, s in zip(rows, steps, strict=True))
        how = ("strictly in order from the input up" if strict else
               "in order from the input up, some at the same checkpoint" if ordered else
               "not in order from the input up")
        verdicts.append(ordered)
        sentences.append(f"SVCCA {level} to the final representation is reached {how}: {listing}.")
    if all(verdicts):
        sentences.append("Verdict: lower layers converge first (or together), as the SVCCA paper's App. 6 reports; "
                         f"checkpoints are {checkpoint_every} steps apart.")
    else:
        sentences.append("Verdict: the run does not support the claim that lower layers converge first; checkpoints "
                         f"are {checkpoint_every} steps apart.")
    return " ".join(sentences)


def language_model_stage(ctx: RunContext) -> dict[str, Any]:
    """Train the stacked LSTM on the Python Language Reference's help topics, measure SVCCA of each LSTM layer at
    each checkpoint to its final representation on held-out windows, and write ``language_model/`` and a report
    section."""
    t = ctx.config.language_model
    assert t is not None
    folder = out_path(ctx.out, "language_model")
    sec = ctx.report.section("App. 6: learning dynamics of a stacked LSTM language model")
    res = language_model_dynamics(t, out_path(folder, "checkpoints"), progress=ctx.progress, workers=ctx.workers)
    ld = res["dynamics"]
    write_json(out_path(folder, "language_model.json"), res)
    write_csv(out_path(folder, "learning_dynamics.csv"), [
        {"layer": layer, "step": step, "svcca_to_final": float(ld["similarity"][i, j])}
        for i, layer in enumerate(ld["layers"]) for j, step in enumerate(ld["steps"])])
    corpus, model = res["corpus"], res["model"]
    sec.tables.append(("Corpus and model", [{
        "corpus": corpus["name"], "Python": corpus["python"], "characters": corpus["characters"],
        "vocabulary": corpus["vocab_size"], "training windows": corpus["train_sequences"],
        "held-out windows": corpus["probe_sequences"], "window": corpus["seq_len"],
        "probe tokens (samples)": corpus["probe_tokens"],
        "LSTM layers x hidden": f"{model['layers']} x {model['hidden']}",
        "parameters": model["parameters"], "training steps": res["training"]["total_steps"]}]))
    sec.tables.append(("Held-out next-character prediction (nats per character)", [{
        "LSTM loss": res["held_out"]["loss"], "bigram loss (baseline)": res["held_out"]["bigram_loss"],
        "unigram loss (baseline)": res["held_out"]["unigram_loss"],
        "LSTM accuracy": res["held_out"]["accuracy"]}]))
    fig = ctx.figure(svcca_plots.plot_learning_dynamics, ld, out_path(folder, "learning_dynamics"),
                     title=f"Stacked LSTM ({model['layers']} layers) on the Python Language Reference: SVCCA of "
                           "each layer to its final hidden states")
    rule = f"{t.threshold:.0%} of the sum of " + ("singular values" if t.keep == "singular_values" else "variance")
    sec.add_figure(fig, ctx.out, f"Learning dynamics of the LSTM layers: SVCCA ({rule}) of each layer's hidden states "
                   "at each checkpoint to its final ones, every held-out position a sample")
    sec.tables.append(("LSTM learning dynamics: convergence per layer", res["convergence"]))
    sec.add_files([out_path(folder, "language_model.json"), out_path(folder, "learning_dynamics.csv")], ctx.out)
    sec.conclusion = language_model_conclusion(res["held_out"], res["convergence"], res["levels"],
                                               t.checkpoint_every)
    return {"language_model_held_out": res["held_out"], "language_model_convergence": res["convergence"]}
