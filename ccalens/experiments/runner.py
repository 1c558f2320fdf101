"""Run an experiment config (TOML) end to end: train the networks, run the experiments, write every number to
JSON and CSV, the figures (PNG + SVG) and one HTML report.

Config tables (see ``ccalens/experiments/configs/*.toml``), read strictly by
:func:`ccalens.experiments.config.parse_config` (an unknown key or a wrong type is an error naming it); a stage
runs when its table is present:

* ``[data]`` dataset and sensors (:func:`ccalens.experiments.sources.load_source`), ``[model]`` model kwargs;
* ``[training]``: ``preset`` (a :class:`~ccalens.models.train_config.TrainConfig` class method), ``seeds`` (at
  least 2), and any TrainConfig field as an override;
* ``[projection]`` same-sensor experiment (features X2 from another seed), ``[projection.retrain_hparams]`` overrides
  of the retraining hyper-parameters (default: the training ones);
* ``[cross_sensor]`` the grid of all sensor pairs (same keys as ``[projection]``);
* ``[fusion]`` (:class:`~ccalens.experiments.fusion.FusionConfig` keys, ``pairs``);
* ``[learning_dynamics]``, ``[two_initialisations]``, ``[compression]``: SVCCA-paper studies on one sensor;
* ``[conv_network]``: a CNN on the pix images; ``[language_model]``: a stacked LSTM language model on text that
  ships with Python (SVCCA paper App. 6; it trains its own model);
* ``[sanity]``: the invariance and A/B/C figures (no training needed).

Each stage (:mod:`ccalens.experiments.stages`) takes the :class:`~ccalens.experiments.stages.RunContext`, writes its
files and report section (opening with a conclusion computed from its numbers) and returns its part of
``results.json``; this module sequences them and times them.

Output folder: ``report.html``, ``results.json`` (key numbers), ``findings.md`` (the conclusions and timings, as
the README quotes them: :mod:`ccalens.report.findings`), ``config.toml`` (the config used), ``timings.json``,
``models/``, ``projection/``, ``cross_sensor/``, ``fusion/``, ``svcca/``, ``conv_network/``, ``language_model/``,
``sanity/``.

Safety: sensor (view) names become file names, so they must match :data:`~ccalens.experiments.paths.SAFE_NAME_PATTERN`
(letters, digits, ``_ - .``, no leading dot); every path written or read under the output folder goes through
:func:`~ccalens.experiments.paths.out_path` / :func:`~ccalens.experiments.paths.check_inside` and must resolve inside
it (a planted symbolic link to elsewhere is refused); checkpoints load with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import contextlib
import json
import time
import tomllib
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ccalens.errors import UserInputError
from ccalens.experiments.config import ExperimentConfig, parse_config
from ccalens.experiments.parallel import Workers, available_cores
from ccalens.experiments.paths import out_path
from ccalens.experiments.stages import (
    RunContext,
    conv_network_stage,
    cross_sensor_stage,
    fusion_stage,
    language_model_stage,
    networks_stage,
    projection_stage,
    sanity_stage,
    svcca_stage,
)
from ccalens.io import atomic_write_text, write_json
from ccalens.report.findings import findings_markdown
from ccalens.report.html import Report

__all__ = ["builtin_config", "list_builtin_configs", "load_config", "run_config", "run_demo"]


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


def _read_toml(path: str | Path) -> tuple[dict[str, Any], str]:
    """``(TOML document as a dict, its text)`` of a config file, or of a built-in config by name."""
    p = Path(path)
    if not p.is_file() and not str(path).endswith(".toml"):
        p = builtin_config(str(path))
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    text = p.read_text(encoding="utf-8")
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as e:
        raise UserInputError(f"config {p} is not valid TOML: {e}") from e


def _parse(raw: Mapping[str, Any], source: str | Path) -> ExperimentConfig:
    try:
        return parse_config(raw)
    except ValueError as e:
        raise type(e)(f"config {source}: {e}") from e


def load_config(path: str | Path) -> tuple[ExperimentConfig, str]:
    """Read and check a TOML config (a path, or the name of a built-in one); returns ``(config, text)``."""
    raw, text = _read_toml(path)
    return _parse(raw, path), text


def run_config(path: str | Path, out_dir: str | Path, *, progress: bool = True,
               overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run the experiment config at ``path`` (or a built-in config name) into ``out_dir``.

    ``overrides``: tables merged over the file's (one level deep), e.g. ``{"training": {"epochs": 5}}``; None
    as a value removes the table. Returns the key numbers (also in ``results.json``); the report is
    ``out_dir/report.html``.
    """
    raw, text = _read_toml(path)
    if overrides:
        for key, val in overrides.items():
            if isinstance(val, Mapping) and isinstance(raw.get(key), dict):
                raw[key] = {**raw[key], **val}
            elif val is None:
                raw.pop(key, None)
            else:
                raw[key] = val
        text += "\n# overrides applied by the caller:\n# " + json.dumps(overrides) + "\n"
    return _run(_parse(raw, path), text, Path(out_dir), progress)


def _run(cfg: ExperimentConfig, text: str, out: Path, progress: bool) -> dict[str, Any]:
    """Limit torch's and the BLAS libraries' threads to ``threads`` (default 1: the matrices of the demo are
    small, and on a busy machine idle OpenMP/BLAS threads spin, which costs up to 8x), run, restore."""
    with contextlib.ExitStack() as stack:
        if cfg.threads > 0:
            try:
                from threadpoolctl import threadpool_limits

                stack.enter_context(threadpool_limits(limits=cfg.threads))
            except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
                pass
            if cfg.needs_torch:  # the sanity-only configs need no torch
                import torch

                previous = torch.get_num_threads()
                torch.set_num_threads(cfg.threads)
                stack.callback(torch.set_num_threads, previous)
        return _run_stages(cfg, text, out, progress)


_Stage = Callable[[RunContext], dict[str, Any]]


def _stages(cfg: ExperimentConfig) -> list[tuple[str, _Stage]]:
    """``(name, stage)`` in the order they run; a stage runs when its table is in the config."""
    stages: list[tuple[str, _Stage]] = []
    if cfg.needs_networks:
        stages.append(("training", networks_stage))
    if cfg.projection is not None:
        stages.append(("projection (same sensor)", projection_stage))
    if cfg.cross_sensor is not None:
        stages.append(("projection (sensor grid)", cross_sensor_stage))
    if cfg.fusion is not None:
        stages.append(("fusion", fusion_stage))
    if cfg.svcca_studies:
        stages.append(("SVCCA studies", svcca_stage))
    if cfg.conv_network is not None:
        stages.append(("CNN on the pix images", conv_network_stage))
    if cfg.language_model is not None:
        stages.append(("LSTM language model", language_model_stage))
    if cfg.sanity is not None:
        stages.append(("sanity figures", sanity_stage))
    return stages


def _run_stages(cfg: ExperimentConfig, text: str, out: Path, progress: bool) -> dict[str, Any]:
    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_path(out, "config.toml"), text)
    report = Report(title=cfg.title, config_text=text)
    if cfg.description:
        report.intro.append(cfg.description)
    workers = Workers(cfg.workers, threads=cfg.threads, progress=progress)
    ctx = RunContext(config=cfg, out=out, report=report, progress=progress, workers=workers)
    results: dict[str, Any] = {"title": cfg.title, "metric": ctx.metric}
    timings: dict[str, float] = {}
    with workers:
        for name, stage in _stages(cfg):
            t0 = time.perf_counter()
            results.update(stage(ctx))
            timings[name] = time.perf_counter() - t0
            if progress:
                tqdm.write(f"[ccalens] {name} done in {timings[name]:.1f} s")
        t0 = time.perf_counter()
        ctx.wait_for_figures()  # drawn by the workers while the stages ran
        timings["waiting for figures"] = time.perf_counter() - t0
    results["conclusions"] = {s.title: s.conclusion for s in report.sections if s.conclusion}
    timings["total"] = time.perf_counter() - t_start
    report.timings = timings
    results["timings_s"] = timings
    results["machine"] = {"cores": available_cores(), "workers": workers.workers, "threads": cfg.threads}
    write_json(out_path(out, "timings.json"), timings)
    write_json(out_path(out, "results.json"), results)
    atomic_write_text(out_path(out, "findings.md"), findings_markdown(results))
    report.write(out_path(out, "report.html"))
    if progress:
        tqdm.write(f"[ccalens] report: {out / 'report.html'} ({timings['total']:.1f} s)")
    return results


def run_demo(out_dir: str | Path, quick: bool = False, progress: bool = True) -> dict[str, Any]:
    """The main job: train networks on the six bundled digit views (4 seeds each), run the projection
    experiment on each view and on the grid of view pairs, the fusion study, the SVCCA studies, a CNN on the pix
    images (DFT-CCA studies, two seeds compared), a stacked LSTM language model's learning dynamics and the sanity
    figures, and write ``out_dir/report.html``.
    ``quick``: three views and short training (a smoke test)."""
    overrides: dict[str, Any] | None = None
    if quick:
        overrides = {
            "data": {"views": ["kar", "pix", "zer"]},
            "training": {"epochs": 8, "lr_milestones": [6]},
            "projection": {"repeats": 2, "retrain_hparams": {"epochs": 4}},
            "cross_sensor": {"repeats": 2},
            "learning_dynamics": {"sensor": "kar", "checkpoint_every": 48},
            "two_initialisations": {"sensor": "kar"},
            "compression": {"sensor": "kar"},
            "conv_network": {"epochs": 3, "checkpoint_every": 24},
            "language_model": {"epochs": 2, "lr_milestones": [1]},
        }
    return run_config(builtin_config("demo"), out_dir, progress=progress, overrides=overrides)
