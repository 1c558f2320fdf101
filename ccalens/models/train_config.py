"""Hyper-parameters of a training run (:class:`TrainConfig`, with the papers' presets) and its per-epoch record
(:class:`TrainingHistory`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ccalens.recipes import check_recipe, scheduled_lr

__all__ = ["TrainConfig", "TrainingHistory", "check_recipe", "scheduled_lr"]



@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train_classifier`.

    optimizer: 'adam' or 'sgd' (SGD uses ``momentum``; Adam ignores it). ``weight_decay`` is the L2 penalty of
    the torch optimizers. lr_milestones: the learning rate is multiplied by ``lr_gamma`` at each milestone,
    counted in optimizer steps (``lr_milestone_unit='step'``, the ResNet paper's 32k/48k iterations) or in
    epochs (``'epoch'``). max_steps: stop after that many optimizer steps in total (None = run all epochs).
    checkpoint_every: save a checkpoint every that many steps (0 = off). class_weighted: cross-entropy
    weighted by ``n / (n_classes * count_c)`` computed on the training labels.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    epochs: int = 10
    batch_size: int = 64
    class_weighted: bool = False
    lr_milestones: tuple[int, ...] = ()
    lr_milestone_unit: str = "epoch"
    lr_gamma: float = 0.1
    max_steps: int | None = None
    checkpoint_every: int = 0
    seed: int = 0
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        self.lr_milestones = check_recipe(self)
        if self.max_steps is not None and int(self.max_steps) < 0:
            raise ValueError(f"max_steps must be None or >= 0, got {self.max_steps}")
        if int(self.checkpoint_every) < 0:
            raise ValueError(f"checkpoint_every must be >= 0 (0 = off), got {self.checkpoint_every}")

    @classmethod
    def shl_paper(cls, **overrides: Any) -> TrainConfig:
        """Moreau et al. (2021): Adam lr 1e-3, weight decay 1e-3, batch 64, 50 epochs, class-weighted loss."""
        base = dict(
            optimizer="adam", lr=1e-3, weight_decay=1e-3, epochs=50, batch_size=64, class_weighted=True
        )
        return cls(**{**base, **overrides})

    @classmethod
    def cifar_resnet_paper(cls, **overrides: Any) -> TrainConfig:
        """He et al. (2016), CIFAR-10: SGD momentum 0.9, lr 0.1 divided by 10 at 32k and 48k steps.

        Stops at 64k steps; weight decay 1e-4, batch 128 (``epochs`` is only an upper bound, ``max_steps``
        ends the run).
        """
        base = dict(
            optimizer="sgd",
            lr=0.1,
            momentum=0.9,
            weight_decay=1e-4,
            batch_size=128,
            epochs=200,
            lr_milestones=(32000, 48000),
            lr_milestone_unit="step",
            lr_gamma=0.1,
            max_steps=64000,
        )
        return cls(**{**base, **overrides})

    @classmethod
    def multiview_default(cls, **overrides: Any) -> TrainConfig:
        """ViewMLP on the UCI digits: Adam lr 1e-3, weight decay 1e-4, batch 64, 40 epochs, lr / 10 at 30."""
        base = dict(
            optimizer="adam",
            lr=1e-3,
            weight_decay=1e-4,
            epochs=40,
            batch_size=64,
            lr_milestones=(30,),
            lr_milestone_unit="epoch",
            class_weighted=False,
        )
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["lr_milestones"] = list(self.lr_milestones)
        return d


@dataclass
class TrainingHistory:
    """Per-epoch record of a run. ``checkpoints``: ``(step, path)`` pairs in step order; ``resumed_from_step``: the
    step the last call started from (0: trained from the initialisation; ``total_steps``: nothing left to train)."""

    epoch: list[int] = field(default_factory=list)
    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    val_macro_f1: list[float] = field(default_factory=list)
    checkpoints: list[tuple[int, str]] = field(default_factory=list)
    total_steps: int = 0
    wall_time_s: float = 0.0
    resumed_from_step: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["checkpoints"] = [[int(s), str(p)] for s, p in self.checkpoints]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingHistory:
        d = dict(d)
        d["checkpoints"] = [(int(s), str(p)) for s, p in d.get("checkpoints", [])]
        return cls(**d)

