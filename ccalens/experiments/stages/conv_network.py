"""Stage ``[conv_network]``: a small CNN on the pix view's images, its SVCCA studies on conv layers by DFT-CCA (SVCCA
appendix C), and a layer-by-layer comparison of two seeds with :func:`ccalens.compare_models` (all activations through
:mod:`ccalens.extract`)."""

from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Any

import numpy as np

from ccalens.experiments.activations import LOGITS, layer_activations
from ccalens.experiments.common import scores
from ccalens.experiments.learning_dynamics import convergence_steps, learning_dynamics, spread_checkpoints
from ccalens.experiments.paths import out_path
from ccalens.experiments.stages.context import RunContext
from ccalens.experiments.stages.networks import stage_sensor
from ccalens.experiments.stages.svcca import (
    CONVERGED,
    _write_two_initialisations,
    learning_dynamics_conclusion,
    two_initialisations_conclusion,
)
from ccalens.experiments.two_initialisations import two_init_heatmap
from ccalens.io import write_csv, write_json
from ccalens.report import heatmaps, svcca_plots
from ccalens.report.html import format_number

__all__ = ["conv_network_stage"]


def _pix_cnn(n_classes: int, width: int, mean: np.ndarray, std: np.ndarray) -> Any:
    """An untrained :class:`~ccalens.models.nets.PixCNN` standardising its inputs with ``mean``, ``std``."""
    from ccalens.models.nets import PixCNN

    model = PixCNN(n_classes=n_classes, width=width)
    model.set_input_normalization(mean, std)
    return model


def _train_cnn(make_model: Any, train: Any, val: Any, recipe: Any, seed: int, checkpoint_dir: Any) -> Any:
    """One seed's CNN, ``(model, history)`` (a unit of work of the run's workers)."""
    from ccalens.models.loop import train_network

    return train_network(make_model, train, val, recipe, seed=seed, checkpoint_dir=checkpoint_dir)


def conv_network_stage(ctx: RunContext) -> dict[str, Any]:
    """Train :class:`~ccalens.models.nets.PixCNN` twice (two seeds) with the run's training recipe, then: learning
    dynamics of its layers (DFT-CCA on the conv maps), the two-initialisation study, and ``compare_models`` of the
    two seeds (``conv="dft"``) as a heat map."""
    from ccalens.extract.compare import compare_models
    from ccalens.models.checkpoints import list_checkpoints
    from ccalens.models.inference import predict_logits

    t, nets = ctx.config.conv_network, ctx.nets
    assert t is not None
    source = nets.source
    sensor = stage_sensor("conv_network", t.sensor, nets.sensors)
    X_train, X_val = source.train[sensor], source.val[sensor]
    if X_train.shape[1] != 240:
        raise ValueError(f"[conv_network] sensor must be the 240-feature pix view (a 16 x 15 image), got {sensor!r} "
                         f"with {X_train.shape[1]} features")
    folder = out_path(ctx.out, "conv_network")
    sec = ctx.report.section("A CNN on the pix images: SVCCA studies on conv layers (DFT-CCA) and two seeds compared")
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)

    make_model = functools.partial(_pix_cnn, source.n_classes, t.width, mean, std)

    models, rows, jobs = {}, [], []
    for k, seed in enumerate(t.seeds):
        recipe = dataclasses.replace(nets.train_config, epochs=t.epochs, progress=False,
                                     checkpoint_every=t.checkpoint_every if k == 0 else 0,
                                     lr_milestones=tuple(m for m in nets.train_config.lr_milestones if m < t.epochs))
        jobs.append((make_model, (X_train, source.y_train), (X_val, source.y_val), recipe, seed,
                     out_path(folder, "checkpoints", f"seed{seed}")))
    for seed, (model, history) in zip(t.seeds, ctx.workers.map(_train_cnn, jobs, desc="training CNNs"), strict=True):
        models[seed] = model
        logits = predict_logits(model, X_val)
        s = scores(source.y_val, logits.argmax(axis=1), source.n_classes)
        rows.append({"seed": seed, "val_accuracy": s["accuracy"], "val_macro_f1": s["macro_f1"],
                     "steps": history.total_steps})
    sec.tables.append(("PixCNN (conv 16, conv 32 + pool, conv 32, fc 64) on the pix images", rows))
    probe = X_train if t.probe_samples is None else X_train[:: max(1, X_train.shape[0] // t.probe_samples)]
    layers = [*models[t.seeds[0]].feature_layer_names(), LOGITS]

    # learning dynamics of the first seed: conv layers by DFT-CCA, dense ones by SVCCA
    ckpts = spread_checkpoints(list_checkpoints(out_path(folder, "checkpoints", f"seed{t.seeds[0]}")),
                               t.max_checkpoints)
    results: dict[str, Any] = {"conv_network_training": rows}
    sentences = [f"The CNN reaches validation accuracy {format_number(rows[0]['val_accuracy'])} and "
                 f"{format_number(rows[1]['val_accuracy'])} with its two seeds."]
    if len(ckpts) >= 2:
        reference = models[t.seeds[0]]
        ld = learning_dynamics(functools.partial(copy.deepcopy, reference), ckpts, probe, layers, keep=t.keep,
                               threshold=t.threshold, conv="maps", progress=ctx.progress, workers=ctx.workers)
        write_json(out_path(folder, "learning_dynamics.json"), ld)
        fig = ctx.figure(svcca_plots.plot_learning_dynamics, ld, out_path(folder, "learning_dynamics"),
                                           title=f"PixCNN learning dynamics (seed {t.seeds[0]}): SVCCA to final, "
                                                 "conv layers by DFT-CCA")
        sec.add_figure(fig, ctx.out, "Learning dynamics of the CNN's layers (conventions: "
                       + ", ".join(f"{k} {v}" for k, v in ld["conventions"].items()) + ")")
        ld_rows = [{"layer": r["layer"], "convention": ld["conventions"][r["layer"]],
                    **{k: v for k, v in r.items() if k != "layer"}} for r in convergence_steps(ld, (CONVERGED,))]
        sec.tables.append(("CNN learning dynamics: convergence per layer", ld_rows))
        results["conv_network_learning_dynamics"] = ld_rows
        sentences.append(learning_dynamics_conclusion(ld_rows))

    # two initialisations: SVCCA (DFT for two maps) beside PWCCA and linear CKA
    acts = {seed: layer_activations(models[seed], probe, layers, conv="maps") for seed in t.seeds}
    ti = two_init_heatmap(acts[t.seeds[0]], acts[t.seeds[1]], keep=t.keep, threshold=t.threshold)
    _write_two_initialisations(ctx, sec, ti, folder, "PixCNN", (t.seeds[0], t.seeds[1]))
    results["conv_network_two_initialisations_diagonal"] = dict(
        zip(ti["layers_a"], np.diag(ti["similarity"]).tolist(), strict=True))
    sentences.append(two_initialisations_conclusion(ti["similarity"]))

    # the one-call comparison of the two seeds, streamed through ccalens.extract
    sim = compare_models(models[t.seeds[0]], models[t.seeds[1]], probe.astype(np.float32),
                         layers_a=[*layers[:-1], "output"], layers_b=[*layers[:-1], "output"], measure="svcca",
                         conv="dft", keep=t.keep, threshold=t.threshold,
                         model_names=(f"seed {t.seeds[0]}", f"seed {t.seeds[1]}"))
    write_json(out_path(folder, "compare_models.json"), sim.to_dict())
    fig = ctx.figure(heatmaps.plot_similarity_matrix, sim, out_path(folder, "compare_models"))
    sec.add_figure(fig, ctx.out, "ccalens.compare_models of the two seeds (SVCCA, conv maps by DFT-CCA)")
    write_csv(out_path(folder, "compare_models.csv"), [
        {"layer_a": a, "layer_b": b, "svcca": float(sim.scores[i, j])}
        for i, a in enumerate(sim.row_names) for j, b in enumerate(sim.column_names)])
    sec.add_files([out_path(folder, name) for name in ("compare_models.json", "compare_models.csv")], ctx.out)
    sec.conclusion = " ".join(s for s in sentences if s)
    return results
