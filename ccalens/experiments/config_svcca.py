"""The SVCCA studies' tables, one frozen dataclass each (read by :func:`ccalens.experiments.config.parse_config`).

``[learning_dynamics]``, ``[two_initialisations]``, ``[conv_network]`` and ``[compression]``: the sensor, probes,
checkpoints or layers each study uses, and SVCCA's ``keep``/``threshold`` rule (checked as the table is read).
"""

from __future__ import annotations

from dataclasses import dataclass

from ccalens.core.validation import SVCCA_THRESHOLD
from ccalens.errors import UserInputError
from ccalens.experiments.config_values import check_bootstrap, check_positive, check_svcca_rule

__all__ = ["CompressionConfig", "ConvNetworkConfig", "LearningDynamicsConfig", "TwoInitialisationsConfig"]


@dataclass(frozen=True)
class LearningDynamicsConfig:
    """``[learning_dynamics]``: SVCCA of each layer to its final representation, along the training of
    ``sensor`` (default: the first) with the first seed; a checkpoint every ``checkpoint_every`` optimizer steps,
    at most ``max_checkpoints`` analysed; ``probe_samples`` training inputs (None = all)."""

    sensor: str | None = None
    checkpoint_every: int = 25
    max_checkpoints: int = 40
    probe_samples: int | None = None
    keep: str = "singular_values"
    threshold: float = SVCCA_THRESHOLD

    def __post_init__(self) -> None:
        check_positive("learning_dynamics", checkpoint_every=self.checkpoint_every,
                       max_checkpoints=self.max_checkpoints, probe_samples=self.probe_samples)
        check_svcca_rule("learning_dynamics", self.keep, self.threshold)


@dataclass(frozen=True)
class TwoInitialisationsConfig:
    """``[two_initialisations]``: layer x layer SVCCA between the first two seeds' networks of ``sensor``;
    ``bootstrap``: replicates of the 95% interval of each matching layer's SVCCA (0 = no interval)."""

    sensor: str | None = None
    probe_samples: int | None = None
    keep: str = "singular_values"
    threshold: float = SVCCA_THRESHOLD
    bootstrap: int = 200

    def __post_init__(self) -> None:
        check_positive("two_initialisations", probe_samples=self.probe_samples)
        check_svcca_rule("two_initialisations", self.keep, self.threshold)
        check_bootstrap("two_initialisations", self.bootstrap)


@dataclass(frozen=True)
class ConvNetworkConfig:
    """``[conv_network]``: a small CNN (:class:`~ccalens.models.nets.PixCNN`) trained on ``sensor`` (the pix view's
    16 x 15 images) with each of ``seeds``, ``epochs`` epochs of the run's training recipe, a checkpoint every
    ``checkpoint_every`` steps; its SVCCA studies run on the conv layers by DFT-CCA, and the two seeds are compared
    layer by layer with :func:`ccalens.compare_models`."""

    sensor: str = "pix"
    seeds: tuple[int, ...] = (0, 1)
    epochs: int = 20
    width: int = 16
    checkpoint_every: int = 24
    max_checkpoints: int = 21
    probe_samples: int | None = None
    keep: str = "singular_values"
    threshold: float = SVCCA_THRESHOLD

    def __post_init__(self) -> None:
        check_positive("conv_network", epochs=self.epochs, width=self.width, checkpoint_every=self.checkpoint_every,
                  max_checkpoints=self.max_checkpoints, probe_samples=self.probe_samples)
        if len(self.seeds) != 2 or len(set(self.seeds)) != 2:
            raise UserInputError(f"[conv_network] seeds must be two different seeds, got {list(self.seeds)}")
        check_svcca_rule("conv_network", self.keep, self.threshold)


_COMPRESSION_REFERENCES = ("other_seed", "logits")


@dataclass(frozen=True)
class CompressionConfig:
    """``[compression]``: a layer of ``sensor``'s first network replaced by its projection on the top-k SVCCA
    directions found against each of ``references`` (``other_seed``: the same layer of the second seed;
    ``logits``: the network's own logits); ``layers`` (None = every feature layer), ``k_values`` (None = a grid),
    ``repeats`` random draws."""

    sensor: str | None = None
    layers: tuple[str, ...] | None = None
    references: tuple[str, ...] = _COMPRESSION_REFERENCES
    probe_samples: int | None = None
    keep: str = "singular_values"
    threshold: float = SVCCA_THRESHOLD
    repeats: int = 3
    k_values: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        bad = [r for r in self.references if r not in _COMPRESSION_REFERENCES]
        if bad or not self.references:
            raise UserInputError(f"[compression] references must be a non-empty subset of "
                             f"{list(_COMPRESSION_REFERENCES)}, got {list(self.references)}")
        if self.k_values is not None and (not self.k_values or min(self.k_values) < 1):
            raise UserInputError(f"[compression] k_values must be positive integers, got {list(self.k_values)}")
        check_positive("compression", probe_samples=self.probe_samples, repeats=self.repeats)
        check_svcca_rule("compression", self.keep, self.threshold)
