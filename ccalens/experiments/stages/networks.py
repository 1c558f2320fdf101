"""The trained networks of a run: one per (sensor, seed), trained (or resumed) with
:func:`ccalens.models.loop.train_network`, with their penultimate features and last layer kept for the stages."""

from __future__ import annotations

import dataclasses
import functools
import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from ccalens.experiments.common import NetworkFeatures, scores
from ccalens.experiments.config import ExperimentConfig
from ccalens.experiments.parallel import Workers
from ccalens.experiments.paths import check_inside, check_name, out_path
from ccalens.experiments.sources import Source, load_source
from ccalens.experiments.stages.context import RunContext
from ccalens.io import atomic_write_bytes, write_csv, write_json
from ccalens.report.html import format_number

__all__ = ["Networks", "networks_conclusion", "networks_stage", "stage_sensor", "train_one"]


def stage_sensor(table: str, sensor: str | None, sensors: list[str]) -> str:
    """The ``sensor`` key of ``[table]`` (None: the first sensor), checked to be one of ``sensors``."""
    chosen = sensors[0] if sensor is None else sensor
    if chosen not in sensors:
        raise ValueError(f"[{table}] sensor must be one of the data's sensors {sensors}, got {chosen!r}")
    return chosen


def _check_stages(config: ExperimentConfig, sensors: list[str]) -> None:
    """Every sensor a stage names is one of the data's, and there are seeds for every network pair a stage
    compares (checked before any training, which may take hours)."""
    assert config.training is not None
    n_seeds = len(config.training.seeds)
    for table in ("projection", "cross_sensor"):
        stage = getattr(config, table)
        if stage is not None and n_seeds < 2 * stage.pairs:
            raise ValueError(
                f"[{table}] pairs = {stage.pairs} needs at least {2 * stage.pairs} seeds in [training] seeds (seed i "
                f"is compared with seed i + {stage.pairs}), got {n_seeds}: add seeds or lower pairs")
    for table in ("learning_dynamics", "two_initialisations", "compression"):
        stage = getattr(config, table)
        if stage is not None:
            stage_sensor(table, stage.sensor, sensors)
    if config.fusion is not None:
        for pair in config.fusion.pairs or ():
            if not all(s in sensors for s in pair):
                raise ValueError(f"[fusion] pairs must list pairs of the data's sensors {sensors}, got {list(pair)!r}")


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


class Networks:
    """Trains (or resumes) one network per (sensor, seed) of ``source`` and keeps its model, features and
    validation scores. ``out``: the run's output folder (``models/`` is written there)."""

    def __init__(self, source: Source, config: ExperimentConfig, out: Path, progress: bool) -> None:
        if config.training is None:
            raise ValueError("[training] is needed to train networks")
        self.source, self.root, self.progress = source, out, progress
        for sensor in source.sensors:
            check_name(sensor, "sensor (view) name")
        _check_stages(config, source.sensors)
        self.seeds = list(config.training.seeds)
        self.train_config = config.training.train
        self.models: dict[tuple[str, int], Any] = {}
        self.features: dict[tuple[str, int], NetworkFeatures] = {}
        self.summary: list[dict[str, Any]] = []
        ld = config.learning_dynamics
        self.checkpoint_every = ld.checkpoint_every if ld is not None else 0
        self.checkpointed = set() if ld is None else {(stage_sensor("learning_dynamics", ld.sensor, source.sensors),
                                                        self.seeds[0])}

    @property
    def sensors(self) -> list[str]:
        return self.source.sensors

    def train_all(self, workers: Workers | None = None) -> list[dict[str, Any]]:
        """Train every network (``workers``: processes the networks are spread over; None: this process); write
        ``models/`` (features, ``training.json``, ``training.csv``); returns one summary row per network (sensor,
        seed, validation scores, epochs, steps, wall time)."""
        runs = [(s, seed) for s in self.source.sensors for seed in self.seeds]
        jobs = []
        for sensor, seed in runs:
            every = self.checkpoint_every if (sensor, seed) in self.checkpointed else 0
            tc = dataclasses.replace(self.train_config, progress=False, checkpoint_every=every)
            jobs.append((self.source, sensor, seed, tc, self.ckpt_dir(sensor, seed)))
        pool = workers or Workers(1, progress=self.progress)
        trained = pool.map(train_one, jobs, desc="training networks")
        for (sensor, seed), (_, _, _, tc, _), (model, history, wall) in zip(runs, jobs, trained, strict=True):
            self.checkpoints(sensor, seed)  # what training wrote must still lie inside the output folder
            feats = self._keep(sensor, seed, model)
            s = scores(self.source.y_val, feats.logits(feats.val).argmax(axis=1), self.source.n_classes)
            self.summary.append({"sensor": sensor, "seed": seed, "n_features": feats.n_features,
                                 "val_accuracy": s["accuracy"], "val_macro_f1": s["macro_f1"],
                                 "epochs": tc.epochs, "steps": history.total_steps,
                                 "resumed_from_step": history.resumed_from_step, "wall_time_s": wall})
        write_json(out_path(self.root, "models", "training.json"),
                   {"config": self.train_config.to_dict(), "runs": self.summary})
        write_csv(out_path(self.root, "models", "training.csv"), self.summary)
        return self.summary

    def _keep(self, sensor: str, seed: int, model: Any) -> NetworkFeatures:
        """Keep the trained model and its features (float64), written to ``models/{sensor}_seed{seed}_features.npz``."""
        from ccalens.models.inference import extract_penultimate

        feats = NetworkFeatures(
            name=f"{sensor}/seed{seed}",
            train=extract_penultimate(model, self.source.train[sensor]).astype(np.float64),
            val=extract_penultimate(model, self.source.val[sensor]).astype(np.float64),
            weight=model.classifier.weight.detach().numpy().astype(np.float64),
            bias=model.classifier.bias.detach().numpy().astype(np.float64),
        )
        self.models[(sensor, seed)] = model
        self.features[(sensor, seed)] = feats
        atomic_write_bytes(out_path(self.root, "models", f"{sensor}_seed{seed}_features.npz"), _npz_bytes(
            features_train=feats.train, features_val=feats.val, classifier_weight=feats.weight,
            classifier_bias=feats.bias, y_train=self.source.y_train, y_val=self.source.y_val))
        return feats

    def seed_pairs(self, pairs: int, table: str) -> list[tuple[int, int]]:
        """Moreau et al.'s pairs: seed i against seed i + P, for i < P (P = ``pairs``)."""
        if len(self.seeds) < 2 * pairs:
            raise ValueError(
                f"[{table}] pairs = {pairs} needs at least {2 * pairs} seeds in [training] seeds (seed i is compared "
                f"with seed i + {pairs}), got {len(self.seeds)}: add seeds or lower pairs"
            )
        return [(self.seeds[i], self.seeds[i + pairs]) for i in range(pairs)]

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
        from ccalens.models.checkpoints import list_checkpoints

        found = list_checkpoints(folder)
        for _, path in found:
            check_inside(self.root, path, "checkpoint")
        return found


def train_one(source: Source, sensor: str, seed: int, config: Any, checkpoint_dir: Path) -> tuple[Any, Any, float]:
    """Train (or resume) the network of one (sensor, seed) with :func:`ccalens.models.loop.train_network`: ``(model,
    history, wall time in s)``; a unit of work for :class:`~ccalens.experiments.parallel.Workers`."""
    from ccalens.models.loop import train_network

    t0 = time.perf_counter()
    model, history = train_network(functools.partial(source.make_model, sensor),
                                   source.train_data(sensor, config.batch_size), (source.val[sensor], source.y_val),
                                   config, seed=seed, checkpoint_dir=checkpoint_dir)
    return model, history, time.perf_counter() - t0


def networks_conclusion(summary: list[dict[str, Any]], metric: str) -> str:
    """The validation scores of the trained networks: lowest, highest (with their sensor and seed) and mean."""
    if not summary:
        return ""
    key = f"val_{metric}"
    low, high = min(summary, key=lambda r: r[key]), max(summary, key=lambda r: r[key])
    mean = float(np.mean([r[key] for r in summary]))
    return (f"The {len(summary)} networks reach a validation {metric} from {format_number(low[key])} "
            f"({low['sensor']}, seed {low['seed']}) to {format_number(high[key])} ({high['sensor']}, seed "
            f"{high['seed']}), {format_number(mean)} on average.")


def networks_stage(ctx: RunContext) -> dict[str, Any]:
    """Load the data, train (or resume) every network, and set ``ctx.networks``."""
    cfg, out = ctx.config, ctx.out
    source = load_source(cfg.data.to_mapping(), cfg.model.to_kwargs())
    nets = Networks(source, cfg, out, ctx.progress)
    summary = nets.train_all(ctx.workers)
    ctx.networks = nets
    sec = ctx.report.section("Networks")
    sec.conclusion = networks_conclusion(summary, ctx.metric)
    sec.paragraphs.append(f"Data: {source.name}; sensors: {', '.join(source.sensors)}; "
                          f"{len(source.y_train)} training / {len(source.y_val)} validation samples.")
    sec.tables.append(("Validation scores of the trained networks", summary))
    sec.add_files([out_path(out, "models", "training.json"), out_path(out, "models", "training.csv")], out)
    return {"networks": summary}
