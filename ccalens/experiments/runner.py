"""Run an experiment config (TOML) end to end: train the networks, run the experiments, write every number to
JSON and CSV, the figures (PNG + SVG) and one HTML report.

Config tables (see ``ccalens/experiments/configs/*.toml``); a stage runs when its table is present:

* ``[data]`` dataset and sensors (:func:`ccalens.experiments.sources.load_source`), ``[model]`` model kwargs;
* ``[training]``: ``preset`` (a :class:`~ccalens.models.training.TrainConfig` class method), ``seeds`` (at
  least 2), and any TrainConfig field as an override;
* ``[projection]`` same-sensor experiment (features X2 from another seed), ``[projection.retrain_hparams]`` overrides
  of the retraining hyper-parameters (default: the training ones);
* ``[cross_sensor]`` the grid of all sensor pairs (same keys as ``[projection]``);
* ``[fusion]`` (:class:`~ccalens.experiments.fusion.FusionConfig` keys, ``pairs``);
* ``[learning_dynamics]``, ``[two_initialisations]``, ``[compression]``: SVCCA-paper studies on one sensor;
* ``[sanity]``: the invariance and A/B/C figures (no training needed).

Output folder: ``report.html``, ``results.json`` (key numbers), ``config.toml`` (the config used),
``timings.json``, ``models/``, ``projection/``, ``cross_sensor/``, ``fusion/``, ``svcca/``, ``sanity/``.

Safety: sensor (view) names become file names, so they must match :data:`~ccalens.experiments.paths.SAFE_NAME_PATTERN`
(letters, digits, ``_ - .``, no leading dot); every path written or read under the output folder goes through
:func:`~ccalens.experiments.paths.out_path` / :func:`~ccalens.experiments.paths.check_inside` and must resolve inside
it (a planted symbolic link to elsewhere is refused); checkpoints load with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import copy
import itertools
import json
import time
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ccalens.experiments import svcca_studies
from ccalens.experiments.common import NetworkFeatures, RetrainConfig
from ccalens.experiments.config_types import check_config_types
from ccalens.experiments.cross_sensor import run_sensor_grid
from ccalens.experiments.fusion import FusionConfig, run_fusion
from ccalens.experiments.paths import check_inside, check_name, out_path
from ccalens.experiments.projection import ProjectionConfig, ProjectionResult, run_projection_pairs
from ccalens.experiments.sources import Source, load_source
from ccalens.io import atomic_write_bytes, atomic_write_text, write_csv, write_json
from ccalens.report import plots
from ccalens.report.html import Report

__all__ = ["builtin_config", "list_builtin_configs", "load_config", "run_config", "run_demo"]

_KNOWN_TABLES = {"title", "description", "threads", "data", "model", "training", "projection", "cross_sensor", "fusion",
                 "learning_dynamics", "two_initialisations", "compression", "sanity", "report"}


def list_builtin_configs() -> list[str]:
    """Names of the configs shipped in ``ccalens/experiments/configs`` (without ``.toml``)."""
    folder = resources.files("ccalens.experiments") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def builtin_config(name: str) -> Path:
    """Path of a shipped config by name (``"demo"``, ``"shl2018"``, ...)."""
    path = Path(str(resources.files("ccalens.experiments") / "configs" / f"{name}.toml"))
    if not path.is_file():
        raise FileNotFoundError(f"no built-in config {name!r}; available: {list_builtin_configs()}")
    return path


def load_config(path: str | Path) -> tuple[dict[str, Any], str]:
    """Parse a TOML config (a path, or the name of a built-in one); returns ``(config, text)``."""
    p = Path(path)
    if not p.is_file() and not str(path).endswith(".toml"):
        p = builtin_config(str(path))
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    text = p.read_text(encoding="utf-8")
    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config {p} is not valid TOML: {e}") from e
    unknown = set(cfg) - _KNOWN_TABLES
    if unknown:
        raise ValueError(f"config {p}: unknown tables/keys {sorted(unknown)}; known: {sorted(_KNOWN_TABLES)}")
    check_config_types(cfg, str(p))
    return cfg, text


# ------------------------------------------------------------------------------------------------ training
_TRAINING_PRESETS = ("multiview_default", "shl_paper", "cifar_resnet_paper")


def _stage_sensor(cfg: Mapping[str, Any], table: str, sensors: list[str]) -> str:
    """The ``sensor`` key of ``[table]`` (default: the first sensor), checked to be one of ``sensors``."""
    sensor = cfg[table].get("sensor", sensors[0])
    if sensor not in sensors:
        raise ValueError(f"[{table}] sensor must be one of the data's sensors {sensors}, got {sensor!r}")
    return sensor


def _train_config(cfg: Mapping[str, Any]) -> Any:
    from ccalens.models.training import TrainConfig

    tcfg = dict(cfg.get("training", {}))
    preset = tcfg.pop("preset", "multiview_default")
    tcfg.pop("seeds", None)
    if "lr_milestones" in tcfg:
        tcfg["lr_milestones"] = tuple(tcfg["lr_milestones"])
    if preset not in _TRAINING_PRESETS:
        raise ValueError(f"[training] preset must be one of {list(_TRAINING_PRESETS)}, got {preset!r}")
    return getattr(TrainConfig, preset)(**tcfg)


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


class _Networks:
    """Trains (or resumes) one network per (sensor, seed) and keeps its features and last layer."""

    def __init__(self, source: Source, cfg: Mapping[str, Any], out: Path, progress: bool) -> None:
        self.source, self.cfg, self.root, self.progress = source, cfg, out, progress
        for sensor in source.sensors:
            check_name(sensor, "sensor (view) name")
        seeds = cfg.get("training", {}).get("seeds", [0, 1])
        if not isinstance(seeds, list | tuple) or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
            raise ValueError(f"[training] seeds must be a list of integers, got {seeds!r}")
        self.seeds = [int(s) for s in seeds]
        if len(self.seeds) < 1:
            raise ValueError("[training] seeds must list at least one seed")
        self.train_config = _train_config(cfg)
        self.models: dict[tuple[str, int], Any] = {}
        self.features: dict[tuple[str, int], NetworkFeatures] = {}
        self.summary: list[dict[str, Any]] = []
        self.checkpointed: set[tuple[str, int]] = set()
        for table in ("learning_dynamics", "two_initialisations", "compression"):
            if table in cfg:
                _stage_sensor(cfg, table, source.sensors)
        if "learning_dynamics" in cfg:
            self.checkpointed.add((_stage_sensor(cfg, "learning_dynamics", source.sensors), self.seeds[0]))

    def train_all(self) -> None:
        from ccalens.models.training import TrainConfig, extract_penultimate, seed_everything, train_classifier

        runs = [(s, seed) for s in self.source.sensors for seed in self.seeds]
        bar = tqdm(runs, desc="training networks", disable=not self.progress)
        for sensor, seed in bar:
            bar.set_postfix_str(f"{sensor} seed {seed}")
            t0 = time.perf_counter()
            every = int(self.cfg.get("learning_dynamics", {}).get("checkpoint_every", 25))
            tc = TrainConfig(**{**self.train_config.to_dict(), "seed": seed, "progress": False,
                                "lr_milestones": tuple(self.train_config.lr_milestones),
                                "checkpoint_every": every if (sensor, seed) in self.checkpointed else 0})
            seed_everything(seed)
            model = self.source.make_model(sensor)
            history = train_classifier(
                model,
                self.source.train_data(sensor, tc.batch_size),
                (self.source.val[sensor], self.source.y_val),
                tc,
                checkpoint_dir=self.ckpt_dir(sensor, seed),
            )
            self.checkpoints(sensor, seed)  # what training wrote must still lie inside the output folder
            model.eval()
            feats = NetworkFeatures(
                name=f"{sensor}/seed{seed}",
                train=extract_penultimate(model, self.source.train[sensor]).astype(np.float64),
                val=extract_penultimate(model, self.source.val[sensor]).astype(np.float64),
                weight=model.classifier.weight.detach().numpy().astype(np.float64),
                bias=model.classifier.bias.detach().numpy().astype(np.float64),
            )
            logits = feats.logits(feats.val)
            from ccalens.experiments.common import scores

            s = scores(self.source.y_val, logits.argmax(axis=1), self.source.n_classes)
            self.models[(sensor, seed)] = model
            self.features[(sensor, seed)] = feats
            atomic_write_bytes(out_path(self.root, "models", f"{sensor}_seed{seed}_features.npz"), _npz_bytes(
                features_train=feats.train, features_val=feats.val, classifier_weight=feats.weight,
                classifier_bias=feats.bias, y_train=self.source.y_train, y_val=self.source.y_val))
            self.summary.append({"sensor": sensor, "seed": seed, "n_features": feats.n_features,
                                 "val_accuracy": s["accuracy"], "val_macro_f1": s["macro_f1"],
                                 "epochs": tc.epochs, "steps": history.total_steps,
                                 "wall_time_s": time.perf_counter() - t0})
        write_json(out_path(self.root, "models", "training.json"),
                   {"config": self.train_config.to_dict(), "runs": self.summary})
        write_csv(out_path(self.root, "models", "training.csv"), self.summary)

    def ckpt_dir(self, sensor: str, seed: int) -> Path:
        """``out/models/checkpoints/{sensor}_seed{seed}``, checked to resolve inside the output folder, as is
        every checkpoint already there (a planted link to a file elsewhere is refused before training resumes)."""
        folder = out_path(self.root, "models", "checkpoints", f"{sensor}_seed{seed}")
        self._check_checkpoints(folder)
        return folder

    def checkpoints(self, sensor: str, seed: int) -> list[tuple[int, Path]]:
        """``(step, path)`` of the checkpoints of one network, each checked to resolve inside the output folder."""
        return self._check_checkpoints(self.ckpt_dir(sensor, seed))

    def _check_checkpoints(self, folder: Path) -> list[tuple[int, Path]]:
        from ccalens.models.training import list_checkpoints

        found = list_checkpoints(folder)
        for _, path in found:
            check_inside(self.root, path, "checkpoint")
        return found


# ------------------------------------------------------------------------------------------------- stages
def _retrain_config(table: Mapping[str, Any], nets: _Networks) -> RetrainConfig:
    """The networks' own training recipe (optimizer, epochs, lr schedule), overridden by ``retrain_hparams``."""
    return RetrainConfig.from_training(nets.train_config.to_dict(), dict(table.get("retrain_hparams", {})))


def _seed_pairs(nets: _Networks, pairs: int, table: str) -> list[tuple[int, int]]:
    """Moreau et al.'s pairs: seed i against seed i + P, for i < P (P = ``pairs``)."""
    if len(nets.seeds) < 2 * pairs:
        raise ValueError(
            f"[{table}] pairs = {pairs} needs at least {2 * pairs} seeds in [training] seeds (seed i is compared "
            f"with seed i + {pairs}), got {len(nets.seeds)}: add seeds or lower pairs"
        )
    return [(nets.seeds[i], nets.seeds[i + pairs]) for i in range(pairs)]


def _projection_cfg(table: Mapping[str, Any], nets: _Networks) -> ProjectionConfig:
    return ProjectionConfig.from_mapping({k: v for k, v in table.items() if k != "retrain_hparams"},
                                         _retrain_config(table, nets))


def _at_nc(res: ProjectionResult, metric: str) -> dict[str, Any]:
    nc = res.n_classes
    row: dict[str, Any] = {"network": res.name, "directions from": res.reference}
    for clf in res.classifiers:
        row[f"baseline ({clf})"] = res.baseline[clf][metric]
        for m in res.methods:
            try:
                row[f"{m} @nc ({clf})"] = res.score_at(m, nc, clf, metric)
            except KeyError:
                pass
    return row


def _stage_projection(cfg: Mapping[str, Any], nets: _Networks, out: Path, report: Report, metric: str,
                      results: dict[str, Any], progress: bool) -> None:
    table = cfg["projection"]
    pcfg = _projection_cfg(table, nets)
    seed_pairs = _seed_pairs(nets, pcfg.pairs, "projection")
    described = ", ".join(f"{a} vs {b}" for a, b in seed_pairs)
    retrain = pcfg.retrain_config
    sec = report.section("Projection experiment, same sensor (Moreau et al. 2021, section 4.2)")
    sec.paragraphs.append(
        f"Penultimate features of each network are projected on k directions fitted on training features only; "
        f"canonical directions come from another initialisation on the same sensor ({len(seed_pairs)} network "
        f"pair(s): seeds {described}). Curves: mean and population std (ddof = 0, as the paper's code) over the "
        f"pairs and, for random methods, {pcfg.repeats} nested draws per pair; dotted lines: k = number of classes "
        "and CCA_highest's score there; dashed: no projection."
        + (f" The retrained last layer starts from the network's own weights (init = {retrain.init!r}) and runs "
           f"{retrain.epochs} epochs of {retrain.optimizer} at lr {retrain.lr:g}"
           + (f", multiplied by {retrain.lr_gamma:g} at {retrain.lr_milestone_unit}s "
              f"{', '.join(str(m) for m in retrain.lr_milestones)}" if retrain.lr_milestones else "")
           + "." if pcfg.retrain else ""))
    rows = []
    for sensor in nets.source.sensors:
        pairs = [(nets.features[(sensor, a)], nets.features[(sensor, b)]) for a, b in seed_pairs]
        res = run_projection_pairs([(net, ref.train) for net, ref in pairs], nets.source.y_train,
                                   nets.source.y_val, pcfg, name=sensor, references=[ref.name for _, ref in pairs],
                                   progress=progress)
        stem = f"{sensor}_" + "_".join(f"seed{a}_vs_seed{b}" for a, b in seed_pairs)
        files = res.save(out_path(out, "projection"), stem)
        fig = plots.plot_projection(res, out_path(out, "projection", stem), metric=metric)
        sec.add_figure(fig, out, f"{sensor}: projection on k directions ({metric})")
        sec.add_files(list(files.values()), out)
        rows.append(_at_nc(res, metric))
    sec.tables.insert(0, (f"Validation {metric} at k = nc = {nets.source.n_classes}", rows))
    write_csv(out_path(out, "projection", "at_nc.csv"), rows)
    results["projection_same_sensor_at_nc"] = rows


def _stage_cross(cfg: Mapping[str, Any], nets: _Networks, out: Path, report: Report, metric: str,
                 results: dict[str, Any], progress: bool) -> None:
    table = cfg["cross_sensor"]
    pcfg = _projection_cfg(table, nets)
    sensors = nets.source.sensors
    seed_pairs = _seed_pairs(nets, pcfg.pairs, "cross_sensor")
    grid = run_sensor_grid(nets.features, sensors, seed_pairs, nets.source.y_train, nets.source.y_val, pcfg,
                           out_dir=out_path(out, "cross_sensor"), progress=progress)
    sec = report.section("Projection experiment, grid of sensor pairs (Moreau et al. 2021, Fig. 5)")
    sec.paragraphs.append(
        "Column: the network whose features are projected (\"data from\"); row: the network whose features define "
        "the canonical directions (\"CCA with\"; diagonal: the same sensor, another seed), as in the paper's Fig. 5. "
        f"Network pairs: seeds {', '.join(f'{a} vs {b}' for a, b in seed_pairs)}.")
    nc = nets.source.n_classes
    clfs = grid[next(iter(grid))].classifiers
    for clf in clfs:
        fig = plots.plot_sensor_grid(grid, sensors, out_path(out, "cross_sensor", f"grid_{clf}"),
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
        fig = plots.plot_heatmap(rel, sensors, sensors, out_path(out, "cross_sensor", "cca_highest_at_nc"),
                                 title=f"CCA_highest at k = {nc}, relative to no projection ({clfs[0]} layer)",
                                 colorbar_label=f"{metric} / unprojected {metric}", xlabel="directions from",
                                 ylabel="projected network", vmin=0, vmax=max(1.0, float(np.nanmax(rel))))
        sec.add_figure(fig, out, "CCA_highest at k = nc for every pair, relative to the unprojected score")
    rows = [_at_nc(res, metric) for res in grid.values()]
    sec.tables.append((f"Validation {metric} at k = nc", rows))
    write_csv(out_path(out, "cross_sensor", "at_nc.csv"), rows)
    write_json(out_path(out, "cross_sensor", "grid.json"), {"sensors": sensors, "cca_highest_at_nc": M,
                                                    "relative_to_baseline": rel, "classifier": clfs[0]})
    sec.add_files([out_path(out, "cross_sensor", "at_nc.csv"), out_path(out, "cross_sensor", "grid.json")], out)
    results["cross_sensor_at_nc"] = rows


def _stage_fusion(cfg: Mapping[str, Any], nets: _Networks, out: Path, report: Report, metric: str,
                  results: dict[str, Any], progress: bool) -> None:
    table = dict(cfg["fusion"])
    sensors = nets.source.sensors
    if len(sensors) < 2:
        raise ValueError("[fusion] needs at least two sensors")
    s0 = nets.seeds[0]
    pairs = [tuple(p) for p in table.get("pairs", [])] or list(itertools.combinations(sensors, 2))
    for pair in pairs:
        if len(pair) != 2 or not all(isinstance(s, str) and s in sensors for s in pair):
            raise ValueError(f"[fusion] pairs must list pairs of the data's sensors {sensors}, got {list(pair)!r}")
    named = {s: nets.features[(s, s0)] for s in sensors}
    fres = run_fusion(named, nets.source.y_train, nets.source.y_val, pairs=pairs,  # type: ignore[arg-type]
                      config=FusionConfig.from_mapping(table), out_dir=out_path(out, "fusion"), progress=progress)
    sec = report.section("Fusion: CCA fusion vs logit averaging (DESIGN section 4)")
    sec.paragraphs.append(
        "CCA fusion (PCA 99.99%, CCA on training features, canonical variates summed or concatenated, linear SVM) "
        "against averaging the two networks' logits. Principal angles: between the class components (rows of W) "
        "and the top nc canonical directions; 'variates' measures them on the training samples (invariant to the "
        "feature coordinates), 'centred' removes the common shift of the logits (nc - 1 dimensions).")
    fig = plots.plot_fusion(fres, out_path(out, "fusion", "fusion"), metric=metric)
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
        })
    sec.tables.append((f"Fusion, validation {metric}", rows))
    sec.add_files([out_path(out, "fusion", "fusion.json"), out_path(out, "fusion", "fusion.csv"),
                   out_path(out, "fusion", "fusion_angles.csv")], out)
    results["fusion"] = rows


def _probe(nets: _Networks, sensor: str, n: int | None) -> np.ndarray:
    X = nets.source.train[sensor]
    return X if n is None or n >= X.shape[0] else X[:: max(1, X.shape[0] // n)][:n]


def _layers(model: Any) -> list[str]:
    from ccalens.models import named_feature_layers

    return [*named_feature_layers(model), svcca_studies.LOGITS]


def _stage_svcca(cfg: Mapping[str, Any], nets: _Networks, out: Path, report: Report, metric: str,
                 results: dict[str, Any], progress: bool) -> None:
    sec = report.section("SVCCA-paper studies (Raghu et al. 2017)")
    folder = out_path(out, "svcca")
    s0 = nets.seeds[0]
    if "learning_dynamics" in cfg:
        t = cfg["learning_dynamics"]
        sensor = _stage_sensor(cfg, "learning_dynamics", nets.source.sensors)
        model = nets.models[(sensor, s0)]
        X = _probe(nets, sensor, t.get("probe_samples"))
        ckpts = nets.checkpoints(sensor, s0)
        max_ckpts = int(t.get("max_checkpoints", 40))
        if len(ckpts) > max_ckpts:
            keep = np.unique(np.linspace(0, len(ckpts) - 1, max_ckpts).astype(int))
            ckpts = [ckpts[i] for i in keep]
        ld = svcca_studies.learning_dynamics(lambda: copy.deepcopy(model), ckpts, X, _layers(model),
                                             variance=float(t.get("variance", 0.99)), progress=progress)
        write_json(out_path(folder, "learning_dynamics.json"), {"sensor": sensor, **ld})
        write_csv(out_path(folder, "learning_dynamics.csv"), [
            {"layer": layer, "step": step, "svcca_to_final": ld["similarity"][i, j]}
            for i, layer in enumerate(ld["layers"]) for j, step in enumerate(ld["steps"])])
        fig = plots.plot_learning_dynamics(ld, out_path(folder, "learning_dynamics"),
                                           title=f"Learning dynamics ({sensor}, seed {s0}): SVCCA to final")
        sec.add_figure(fig, out, "Learning dynamics: SVCCA similarity of each layer to its final representation")
        sec.add_files([out_path(folder, "learning_dynamics.json"), out_path(folder, "learning_dynamics.csv")], out)
        # step at which each layer first reaches 0.9 of its final similarity
        rows = []
        for i, layer in enumerate(ld["layers"]):
            hit = np.flatnonzero(ld["similarity"][i] >= 0.9)
            rows.append({"layer": layer, "first step with SVCCA >= 0.9": int(ld["steps"][hit[0]]) if hit.size else None,
                         "SVCCA at first checkpoint": float(ld["similarity"][i, 0])})
        sec.tables.append(("Learning dynamics: convergence per layer", rows))
        results["learning_dynamics"] = rows
    if "two_initialisations" in cfg and len(nets.seeds) >= 2:
        t = cfg["two_initialisations"]
        sensor = _stage_sensor(cfg, "two_initialisations", nets.source.sensors)
        X = _probe(nets, sensor, t.get("probe_samples"))
        ma, mb = nets.models[(sensor, nets.seeds[0])], nets.models[(sensor, nets.seeds[1])]
        layers = _layers(ma)
        acts_a = svcca_studies.layer_activations(ma, X, layers)
        acts_b = svcca_studies.layer_activations(mb, X, layers)
        ti = svcca_studies.two_init_heatmap(acts_a, acts_b, variance=float(t.get("variance", 0.99)))
        write_json(out_path(folder, "two_initialisations.json"), {"sensor": sensor, **ti})
        write_csv(out_path(folder, "two_initialisations.csv"), [
            {"layer_seed_a": a, "layer_seed_b": b, "svcca": ti["similarity"][i, j]}
            for i, a in enumerate(ti["layers_a"]) for j, b in enumerate(ti["layers_b"])])
        fig = plots.plot_heatmap(ti["similarity"], ti["layers_a"], ti["layers_b"],
                                 out_path(folder, "two_initialisations"),
                                 title=f"SVCCA between two initialisations ({sensor})", colorbar_label="SVCCA",
                                 xlabel=f"layer, seed {nets.seeds[1]}", ylabel=f"layer, seed {nets.seeds[0]}")
        sec.add_figure(fig, out, "Layer x layer SVCCA similarity between two trainings")
        sec.add_files([out_path(folder, "two_initialisations.json"), out_path(folder, "two_initialisations.csv")], out)
        results["two_initialisations_diagonal"] = dict(zip(ti["layers_a"], np.diag(ti["similarity"]).tolist(),
                                                           strict=True))
    if "compression" in cfg:
        t = cfg["compression"]
        sensor = _stage_sensor(cfg, "compression", nets.source.sensors)
        model = nets.models[(sensor, s0)]
        other = nets.models[(sensor, nets.seeds[1])] if len(nets.seeds) > 1 else None
        X = _probe(nets, sensor, t.get("probe_samples"))
        layers = list(t.get("layers", [nm for nm in _layers(model) if nm != svcca_studies.LOGITS]))
        acts = svcca_studies.layer_activations(model, X, [*layers, svcca_studies.LOGITS])
        acts_o = svcca_studies.layer_activations(other, X, layers) if other is not None else {}
        comps = []
        for layer in tqdm(layers, desc="compression", disable=not progress):
            if acts[layer].ndim != 2 or acts[layer].shape[1] < 2:
                continue
            for ref in t.get("references", ["other_seed", "logits"]):
                if ref == "other_seed" and other is None:
                    continue
                ref_train = acts_o[layer] if ref == "other_seed" else acts[svcca_studies.LOGITS]
                comp = svcca_studies.compression(
                    model, layer, X, nets.source.val[sensor], nets.source.y_val, ref_train,
                    variance=float(t.get("variance", 0.99)), repeats=int(t.get("repeats", 3)),
                    k_values=t.get("k_values"))
                comp.update({"reference": ref, "n_classes": nets.source.n_classes})
                comps.append(comp)
        if comps:
            write_json(out_path(folder, "compression.json"), {"sensor": sensor, "results": comps})
            write_csv(out_path(folder, "compression.csv"), [
                {"layer": c["layer"], "reference": c["reference"], "method": m, "k": k,
                 "accuracy_mean": cols["accuracy_mean"][i], "accuracy_std": cols["accuracy_std"][i],
                 "macro_f1_mean": cols["macro_f1_mean"][i], "macro_f1_std": cols["macro_f1_std"][i]}
                for c in comps for m, cols in c["methods"].items() for i, k in enumerate(c["k"])])
            fig = plots.plot_compression(comps, out_path(folder, "compression"), metric=metric)
            sec.add_figure(fig, out, f"Compression of {sensor} layers on top-k SVCCA directions vs PCA and random")
            sec.add_files([out_path(folder, "compression.json"), out_path(folder, "compression.csv")], out)


def _stage_sanity(cfg: Mapping[str, Any], out: Path, report: Report, results: dict[str, Any]) -> None:
    t = cfg["sanity"]
    folder = out_path(out, "sanity")
    sec = report.section("Sanity figures (SVCCA paper)")
    inv = svcca_studies.invariance_sanity(n=int(t.get("n_samples", 2000)), seed=int(t.get("seed", 0)))
    abc = svcca_studies.abc_example(n=int(t.get("abc_samples", 4000)), seed=int(t.get("seed", 0)))
    write_json(out_path(folder, "invariance.json"), inv)
    write_json(out_path(folder, "abc.json"), abc)
    write_csv(out_path(folder, "invariance.csv"), [
        {"transform": tr, "noise_std": s, "cca": inv["cca"][i, j], "neuronwise": inv["neuronwise"][i, j]}
        for i, tr in enumerate(inv["transforms"]) for j, s in enumerate(inv["noise_levels"])])
    rows = [{"pair": f"A vs {p[1]}", "plain CCA (mean rho)": abc[p]["cca"], "SVCCA (mean rho)": abc[p]["svcca"]}
            for p in ("AB", "AC")]
    write_csv(out_path(folder, "abc.csv"), rows)
    sec.add_figure(plots.plot_invariance(inv, out_path(folder, "invariance")), out,
                   "CCA is unchanged by permuting, rotating or scaling neurons; a neuron-wise correlation is not")
    sec.add_figure(plots.plot_abc(abc, out_path(folder, "abc")), out,
                   "A/B/C: plain CCA scores both pairs alike, SVCCA separates them")
    sec.tables.append(("A/B/C example", rows))
    sec.add_files([out_path(folder, name) for name in ("invariance.json", "invariance.csv", "abc.json", "abc.csv")],
                  out)
    results["abc"] = rows


# --------------------------------------------------------------------------------------------------- main
def run_config(path: str | Path, out_dir: str | Path, *, progress: bool = True,
               overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run the experiment config at ``path`` (or a built-in config name) into ``out_dir``.

    ``overrides``: tables merged over the file's (one level deep), e.g. ``{"training": {"epochs": 5}}``.
    Returns the key numbers (also in ``results.json``); the report is ``out_dir/report.html``.
    """
    cfg, text = load_config(path)
    if overrides:
        for key, val in overrides.items():
            if isinstance(val, Mapping) and isinstance(cfg.get(key), dict):
                cfg[key] = {**cfg[key], **val}
            elif val is None:
                cfg.pop(key, None)
            else:
                cfg[key] = val
        text += "\n# overrides applied by the caller:\n# " + json.dumps(overrides) + "\n"
    return _run(cfg, text, Path(out_dir), progress)


def _run(cfg: dict[str, Any], text: str, out: Path, progress: bool) -> dict[str, Any]:
    """Limit torch's and the BLAS libraries' threads to ``threads`` (default 1: the matrices of the demo are
    small, and on a busy machine idle OpenMP/BLAS threads spin, which costs up to 8x), run, restore."""
    import contextlib

    threads = int(cfg.get("threads", 1))
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0 = the libraries' defaults), got {threads}")
    with contextlib.ExitStack() as stack:
        if threads > 0:
            try:
                from threadpoolctl import threadpool_limits

                stack.enter_context(threadpool_limits(limits=threads))
            except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
                pass
            try:
                import torch

                previous = torch.get_num_threads()
                torch.set_num_threads(threads)
                stack.callback(torch.set_num_threads, previous)
            except ImportError:  # pragma: no cover - the sanity-only configs need no torch
                pass
        return _run_stages(cfg, text, out, progress)


def _run_stages(cfg: dict[str, Any], text: str, out: Path, progress: bool) -> dict[str, Any]:
    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_path(out, "config.toml"), text)
    metric = cfg.get("report", {}).get("metric", "accuracy")
    if metric not in ("accuracy", "macro_f1"):
        raise ValueError(f"[report] metric must be 'accuracy' or 'macro_f1', got {metric!r}")
    report = Report(title=cfg.get("title", "ccalens experiments"), config_text=text)
    if cfg.get("description"):
        report.intro.append(cfg["description"])
    results: dict[str, Any] = {"title": report.title, "metric": metric}
    timings: dict[str, float] = {}

    def timed(name: str, fn: Any, *args: Any) -> None:
        t0 = time.perf_counter()
        fn(*args)
        timings[name] = time.perf_counter() - t0
        if progress:
            tqdm.write(f"[ccalens] {name} done in {timings[name]:.1f} s")

    needs_nets = any(k in cfg for k in ("projection", "cross_sensor", "fusion", "learning_dynamics",
                                        "two_initialisations", "compression"))
    if needs_nets:
        t0 = time.perf_counter()
        source = load_source(cfg.get("data", {}), cfg.get("model"))
        timings["load data"] = time.perf_counter() - t0
        nets = _Networks(source, cfg, out, progress)
        timed("training", nets.train_all)
        sec = report.section("Networks")
        sec.paragraphs.append(f"Data: {source.name}; sensors: {', '.join(source.sensors)}; "
                              f"{len(source.y_train)} training / {len(source.y_val)} validation samples.")
        sec.tables.append(("Validation scores of the trained networks", nets.summary))
        sec.add_files([out_path(out, "models", "training.json"), out_path(out, "models", "training.csv")], out)
        results["networks"] = nets.summary
        if "projection" in cfg:
            timed("projection (same sensor)", _stage_projection, cfg, nets, out, report, metric, results, progress)
        if "cross_sensor" in cfg:
            timed("projection (sensor grid)", _stage_cross, cfg, nets, out, report, metric, results, progress)
        if "fusion" in cfg:
            timed("fusion", _stage_fusion, cfg, nets, out, report, metric, results, progress)
        if any(k in cfg for k in ("learning_dynamics", "two_initialisations", "compression")):
            timed("SVCCA studies", _stage_svcca, cfg, nets, out, report, metric, results, progress)
    if "sanity" in cfg:
        timed("sanity figures", _stage_sanity, cfg, out, report, results)
    timings["total"] = time.perf_counter() - t_start
    report.timings = timings
    results["timings_s"] = timings
    write_json(out_path(out, "timings.json"), timings)
    write_json(out_path(out, "results.json"), results)
    report.write(out_path(out, "report.html"))
    if progress:
        tqdm.write(f"[ccalens] report: {out / 'report.html'} ({timings['total']:.1f} s)")
    return results


def run_demo(out_dir: str | Path, quick: bool = False, progress: bool = True) -> dict[str, Any]:
    """The main job: train networks on the six bundled digit views (2 seeds each), run the projection
    experiment on each view and on the grid of view pairs, the fusion study, the SVCCA studies and the sanity
    figures, and write ``out_dir/report.html``. ``quick``: three views and short training (a smoke test)."""
    overrides: dict[str, Any] | None = None
    if quick:
        overrides = {
            "data": {"views": ["fou", "kar", "zer"]},
            "training": {"epochs": 8, "lr_milestones": [6]},
            "projection": {"repeats": 2, "retrain_hparams": {"epochs": 4}},
            "cross_sensor": {"repeats": 2},
            "learning_dynamics": {"sensor": "kar", "checkpoint_every": 48},
            "two_initialisations": {"sensor": "kar"},
            "compression": {"sensor": "kar"},
        }
    return run_config(builtin_config("demo"), out_dir, progress=progress, overrides=overrides)
