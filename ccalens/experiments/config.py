"""Typed, strict experiment configs: one frozen dataclass per TOML table and one parser.

:func:`parse_config` turns the dictionary of a TOML file into an :class:`ExperimentConfig`. Every table is read
the same way: an unknown key or a value of the wrong type raises a one-line
:class:`~ccalens.errors.UserInputError` (a ValueError) naming the table and the key (``[sanity] unknown key
'n_sampels'; expected one of ['abc_samples', 'n_samples', 'seed']``, ``[projection] repeats must be a number (an
integer), got the string 'three'``); the dataclasses' own checks (ranges, choices) are reported with the table's
name in front. A stage runs when its table is present (its field is not None).

Tables: ``[data]`` (:class:`DataConfig`), ``[model]`` (:class:`ModelConfig`), ``[training]``
(:class:`TrainingConfig`, a :class:`~ccalens.models.train_config.TrainConfig` preset plus overrides), ``[projection]``
and ``[cross_sensor]`` (:class:`~ccalens.experiments.projection.ProjectionConfig`; the sub-table ``retrain_hparams``
overrides the networks' own recipe, :class:`~ccalens.experiments.common.RetrainConfig`), ``[fusion]``
(:class:`FusionStageConfig`), ``[learning_dynamics]``, ``[two_initialisations]``, ``[compression]``,
``[conv_network]`` (the SVCCA studies, :mod:`~ccalens.experiments.config_svcca`), ``[language_model]``
(:class:`~ccalens.experiments.language_model.LanguageModelConfig`, its own corpus and model: no trained networks
needed), ``[sanity]``, ``[report]``; top-level keys ``title``,
``description``, ``threads`` (per process) and ``workers`` (processes; 0: one per core).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ccalens.errors import UnknownKeyError, UserInputError
from ccalens.experiments.common import RetrainConfig
from ccalens.experiments.config_svcca import (
    CompressionConfig,
    ConvNetworkConfig,
    LearningDynamicsConfig,
    TwoInitialisationsConfig,
)
from ccalens.experiments.config_values import (
    check_one_of,
    check_positive,
    coerce,
    describe,
    read_table,
    sub_table,
    type_name,
)
from ccalens.experiments.fusion import FusionConfig
from ccalens.experiments.language_model import LanguageModelConfig
from ccalens.experiments.projection import ProjectionConfig

__all__ = [
    "DataConfig",
    "ExperimentConfig",
    "FusionStageConfig",
    "LanguageModelConfig",
    "ModelConfig",
    "ReportConfig",
    "SanityConfig",
    "TrainingConfig",
    "parse_config",
]

TRAINING_PRESETS = ("multiview_default", "shl_paper", "cifar_resnet_paper")
_DATASETS = ("multiple_features", "shl2018", "cifar10")
# keys of [data] and [model] that each dataset reads (a key another dataset reads would be silently ignored)
_DATA_KEYS = {"multiple_features": {"views"}, "shl2018": {"root", "n_val", "sensors", "cache_dir"},
              "cifar10": {"root", "augment", "normalization"}}
_MODEL_KEYS = {"multiple_features": {"hidden", "dropout"}, "shl2018": {"input_size"},
               "cifar10": {"depth", "n", "shortcut"}}


# ------------------------------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class DataConfig:
    """``[data]``: the dataset and its options (see :func:`ccalens.experiments.sources.load_source`).

    ``views``: digit views (multiple_features); ``root``: the data folder (shl2018, cifar10); ``n_val``: SHL
    validation segments (a count, or a fraction < 1); ``sensors``: SHL sensor name = channel; ``cache_dir``:
    SHL spectrogram cache; ``augment``: CIFAR crop-and-flip; ``normalization``: CIFAR's per-channel statistics
    (``"cifar"``, default) or ImageNet's (``"imagenet"``, Moreau et al.'s code).
    """

    dataset: str = "multiple_features"
    views: tuple[str, ...] | None = None
    root: str | None = None
    n_val: int | float | None = None
    sensors: dict[str, str] | None = None
    cache_dir: str | None = None
    augment: bool | None = None
    normalization: str | None = None

    def __post_init__(self) -> None:
        check_one_of("data", "dataset", self.dataset, _DATASETS)
        if self.normalization is not None:
            check_one_of("data", "normalization", self.normalization, ("cifar", "imagenet"))
        for key in sorted(self._set_keys() - _DATA_KEYS[self.dataset]):
            raise UserInputError(f"[data] {key} does not apply to dataset {self.dataset!r} "
                             f"(it reads {sorted(_DATA_KEYS[self.dataset])})")

    def _set_keys(self) -> set[str]:
        return {f.name for f in dataclasses.fields(self) if f.name != "dataset" and getattr(self, f.name) is not None}

    def to_mapping(self) -> dict[str, Any]:
        """The keys that were set, as :func:`~ccalens.experiments.sources.load_source` reads them."""
        out: dict[str, Any] = {"dataset": self.dataset}
        for key in self._set_keys():
            value = getattr(self, key)
            out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class ModelConfig:
    """``[model]``: constructor arguments of the dataset's network (None = the network's default).

    ViewMLP (multiple_features): ``hidden``, ``dropout``; SHLCNN (shl2018): ``input_size``; CifarResNet (cifar10):
    ``depth``, ``n``, ``shortcut``.
    """

    hidden: tuple[int, ...] | None = None
    dropout: float | None = None
    input_size: int | None = None
    depth: int | None = None
    n: int | None = None
    shortcut: str | None = None

    def to_kwargs(self) -> dict[str, Any]:
        """The arguments that were set."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}


def _train_config_type() -> type:
    from ccalens.models.train_config import TrainConfig

    return TrainConfig


@dataclass(frozen=True)
class TrainingConfig:
    """``[training]``: ``preset`` (a :class:`~ccalens.models.train_config.TrainConfig` class method), ``seeds``
    (one network per sensor and seed) and any TrainConfig field as an override, kept in ``train``."""

    preset: str = "multiview_default"
    seeds: tuple[int, ...] = (0, 1)
    train: Any = None  # TrainConfig: the preset with the overrides; seed, checkpoints and progress set per run

    def __post_init__(self) -> None:
        if not self.seeds:
            raise UserInputError("[training] seeds must list at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise UserInputError(f"[training] seeds must be different, got {list(self.seeds)}")


# set per network by the runner: a value in the file would be silently replaced
_TRAINING_RUN_FIELDS = ("seed", "progress", "checkpoint_every")


def _parse_training(table: dict[str, Any] | None) -> TrainingConfig:
    table = dict(table or {})
    preset = table.pop("preset", "multiview_default")
    if not isinstance(preset, str) or preset not in TRAINING_PRESETS:
        raise UserInputError(f"[training] preset must be one of {list(TRAINING_PRESETS)}, got {preset!r}")
    raw_seeds = table.pop("seeds", [0, 1])
    ok, seeds = coerce(tuple[int, ...], raw_seeds)
    if not ok:
        raise UserInputError(f"[training] seeds must be a list of integers, got {describe(raw_seeds)}")
    tc_type = _train_config_type()
    base = getattr(tc_type, preset)().to_dict()
    checked = read_table(tc_type, "training", table, skip=_TRAINING_RUN_FIELDS)  # types and ranges of the overrides
    overrides = {k: getattr(checked, k) for k in table}
    train = read_table(tc_type, "training", {}, extra={**base, **overrides, "lr_milestones": tuple(
        overrides.get("lr_milestones", base["lr_milestones"]))})
    return TrainingConfig(preset=preset, seeds=seeds, train=train)


def _parse_projection(name: str, table: dict[str, Any], training: TrainingConfig) -> ProjectionConfig:
    """``[projection]`` / ``[cross_sensor]``; the retrained last layer follows the networks' own recipe with
    ``[name.retrain_hparams]`` on top."""
    hparams = table.pop("retrain_hparams", {})
    if not isinstance(hparams, Mapping):
        raise UserInputError(f"[{name}.retrain_hparams] must be a table, got {describe(hparams)}")
    checked = read_table(RetrainConfig, f"{name}.retrain_hparams", hparams)  # types and ranges of the overrides
    overrides = {k: getattr(checked, k) for k in hparams}
    try:
        retrain = RetrainConfig.from_training(training.train.to_dict(), overrides)
    except ValueError as e:
        raise UserInputError(f"[{name}.retrain_hparams] {e}") from e
    return read_table(ProjectionConfig, name, table, skip=("retrain_config",), extra={"retrain_config": retrain})


@dataclass(frozen=True)
class FusionStageConfig:
    """``[fusion]``: the :class:`~ccalens.experiments.fusion.FusionConfig` keys and ``pairs`` (pairs of sensor
    names; None = every pair of sensors)."""

    settings: FusionConfig = field(default_factory=FusionConfig)
    pairs: tuple[tuple[str, str], ...] | None = None


def _parse_fusion(table: dict[str, Any]) -> FusionStageConfig:
    raw_pairs = table.pop("pairs", None)
    pairs = None
    if raw_pairs is not None:
        ok, pairs = coerce(tuple[tuple[str, ...], ...], raw_pairs)
        if not ok or any(len(p) != 2 for p in pairs):
            raise UserInputError(f"[fusion] pairs must be a list of pairs of sensor names, got {describe(raw_pairs)}")
    return FusionStageConfig(settings=read_table(FusionConfig, "fusion", table), pairs=pairs)


@dataclass(frozen=True)
class SanityConfig:
    """``[sanity]``: the SVCCA paper's invariance figure (``n_samples``) and A/B/C example (``abc_samples``; B's
    noise std ``abc_noise_std``; the directions the SVD keeps of B at each of ``abc_noise_levels``)."""

    n_samples: int = 2000
    abc_samples: int = 4000
    abc_noise_std: float = 0.01
    abc_noise_levels: tuple[float, ...] = (1e-3, 2e-3, 3e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive("sanity", n_samples=self.n_samples, abc_samples=self.abc_samples)
        if not self.abc_noise_std >= 0:
            raise UserInputError(f"[sanity] abc_noise_std must be >= 0, got {self.abc_noise_std}")
        if not self.abc_noise_levels or any(not v > 0 for v in self.abc_noise_levels):
            raise UserInputError(
                f"[sanity] abc_noise_levels must be positive numbers, got {list(self.abc_noise_levels)}")


@dataclass(frozen=True)
class ReportConfig:
    """``[report]``: ``metric`` of the tables and figures, ``accuracy`` or ``macro_f1``."""

    metric: str = "accuracy"

    def __post_init__(self) -> None:
        check_one_of("report", "metric", self.metric, ("accuracy", "macro_f1"))


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole config file; a stage's table is None when the file does not have it (the stage is skipped)."""

    title: str = "ccalens experiments"
    description: str = ""
    threads: int = 1
    workers: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig | None = None
    projection: ProjectionConfig | None = None
    cross_sensor: ProjectionConfig | None = None
    fusion: FusionStageConfig | None = None
    learning_dynamics: LearningDynamicsConfig | None = None
    two_initialisations: TwoInitialisationsConfig | None = None
    compression: CompressionConfig | None = None
    conv_network: ConvNetworkConfig | None = None
    language_model: LanguageModelConfig | None = None
    sanity: SanityConfig | None = None
    report: ReportConfig = field(default_factory=ReportConfig)

    @property
    def needs_networks(self) -> bool:
        """Whether a stage that analyses trained networks is present."""
        return any(getattr(self, t) is not None for t in ("projection", "cross_sensor", "fusion", "learning_dynamics",
                                                           "two_initialisations", "compression", "conv_network"))

    @property
    def needs_torch(self) -> bool:
        """Whether a stage trains or runs a torch model (the networks' stages, or ``[language_model]``)."""
        return self.needs_networks or self.language_model is not None

    @property
    def svcca_studies(self) -> bool:
        return any(getattr(self, t) is not None for t in ("learning_dynamics", "two_initialisations", "compression"))


_TOP_LEVEL = {"title": str, "description": str, "threads": int, "workers": int}
_TABLES = ("data", "model", "training", "projection", "cross_sensor", "fusion", "learning_dynamics",
           "two_initialisations", "compression", "conv_network", "language_model", "sanity", "report")


def parse_config(raw: Mapping[str, Any]) -> ExperimentConfig:
    """The :class:`ExperimentConfig` of a parsed TOML document (a dict); raises a one-line UserInputError naming the
    table and key of the first unknown key, wrong type or out-of-range value."""
    known = sorted([*_TOP_LEVEL, *_TABLES])
    for key in raw:
        if key not in known:
            raise UnknownKeyError(f"unknown top-level table or key {key!r}; expected one of {known}")
    top: dict[str, Any] = {}
    for key, kind in _TOP_LEVEL.items():
        if key in raw:
            ok, top[key] = coerce(kind, raw[key])
            if not ok:
                raise UserInputError(f"{key} must be {type_name(kind)}, got {describe(raw[key])}")
    if top.get("threads", 1) < 0:
        raise UserInputError(f"threads must be >= 0 (0 = the libraries' defaults), got {top['threads']}")
    if top.get("workers", 0) < 0:
        raise UserInputError(f"workers must be >= 0 (0 = one process per core), got {top['workers']}")
    tables = {name: sub_table(raw, name) for name in _TABLES}
    data = read_table(DataConfig, "data", tables["data"] or {})
    model = read_table(ModelConfig, "model", tables["model"] or {})
    for key in sorted(set(model.to_kwargs()) - _MODEL_KEYS[data.dataset]):
        raise UserInputError(f"[model] {key} does not apply to dataset {data.dataset!r} "
                         f"(its network takes {sorted(_MODEL_KEYS[data.dataset])})")
    network_tables = ("projection", "cross_sensor", "fusion", "learning_dynamics", "two_initialisations",
                      "compression", "conv_network")
    needs_training = tables["training"] is not None or any(tables[t] is not None for t in network_tables)
    training = _parse_training(tables["training"]) if needs_training else None
    parsed: dict[str, Any] = {}
    for name in ("projection", "cross_sensor"):
        if tables[name] is not None:
            assert training is not None
            parsed[name] = _parse_projection(name, tables[name], training)
    if tables["fusion"] is not None:
        parsed["fusion"] = _parse_fusion(tables["fusion"])
    for name, cls in (("learning_dynamics", LearningDynamicsConfig), ("two_initialisations", TwoInitialisationsConfig),
                      ("compression", CompressionConfig), ("conv_network", ConvNetworkConfig),
                      ("language_model", LanguageModelConfig), ("sanity", SanityConfig)):
        if tables[name] is not None:
            parsed[name] = read_table(cls, name, tables[name])
    report = read_table(ReportConfig, "report", tables["report"] or {})
    return ExperimentConfig(**top, data=data, model=model, training=training, report=report, **parsed)
