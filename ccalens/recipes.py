"""Optimiser recipes shared by ccalens's two trainers: the torch training loop (:mod:`ccalens.models.loop`, with
:class:`~ccalens.models.train_config.TrainConfig`) and the batched numpy last-layer trainer
(:func:`ccalens.experiments.common.train_linear_layers`, with ``RetrainConfig``): one check of the fields and one
learning-rate schedule. A leaf module (no torch), so that importing ``ccalens.experiments`` stays numpy-only."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_recipe", "scheduled_lr"]


def check_recipe(recipe: Any) -> tuple[int, ...]:
    """Check the optimiser fields shared by every trainer's config (``optimizer``, ``lr``, ``weight_decay``,
    ``momentum``, ``epochs``, ``batch_size``, ``lr_milestones``, ``lr_milestone_unit``, ``lr_gamma``); a
    ValueError naming the field otherwise. Returns the milestones as a tuple of ints."""
    if recipe.optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {recipe.optimizer!r}")
    if not (recipe.lr > 0 and math.isfinite(recipe.lr)):
        raise ValueError(f"lr must be a positive number, got {recipe.lr}")
    if recipe.weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {recipe.weight_decay}")
    if not 0 <= recipe.momentum < 1:
        raise ValueError(f"momentum must lie in [0, 1), got {recipe.momentum}")
    if int(recipe.epochs) < 1:
        raise ValueError(f"epochs must be >= 1, got {recipe.epochs}")
    if int(recipe.batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {recipe.batch_size}")
    milestones = tuple(int(m) for m in recipe.lr_milestones)
    if any(m < 0 for m in milestones):
        raise ValueError(f"lr_milestones must be non-negative, got {list(milestones)}")
    if recipe.lr_milestone_unit not in ("epoch", "step"):
        raise ValueError(f"lr_milestone_unit must be 'epoch' or 'step', got {recipe.lr_milestone_unit!r}")
    if not 0 < recipe.lr_gamma <= 1:
        raise ValueError(f"lr_gamma must lie in (0, 1], got {recipe.lr_gamma}")
    return milestones


def scheduled_lr(recipe: Any, steps_done: int, epoch: int) -> float:
    """Learning rate after ``steps_done`` optimizer steps, in epoch ``epoch`` (0-based): ``lr`` times ``lr_gamma``
    for each milestone reached (counted in steps or epochs, ``lr_milestone_unit``)."""
    t = steps_done if recipe.lr_milestone_unit == "step" else epoch
    return float(recipe.lr * recipe.lr_gamma ** sum(1 for m in recipe.lr_milestones if t >= m))
