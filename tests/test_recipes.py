"""One recipe check and one learning-rate schedule for the torch trainer (TrainConfig) and the numpy last-layer
trainer (RetrainConfig)."""

from __future__ import annotations

import math

import pytest

from ccalens.experiments.common import RetrainConfig
from ccalens.recipes import scheduled_lr


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("momentum", 1.5, "momentum must lie in"), ("lr", math.inf, "lr must be a positive number"),
     ("optimizer", "rmsprop", "optimizer must be"), ("lr_milestones", (-1,), "lr_milestones must be")],
)
def test_both_configs_refuse_the_same_recipe_errors(field, value, message):
    from ccalens.models.train_config import TrainConfig

    for cls in (TrainConfig, RetrainConfig):
        with pytest.raises(ValueError, match=message):
            cls(**{field: value})


@pytest.mark.parametrize("unit", ["epoch", "step"])
def test_both_trainers_follow_one_schedule(unit):
    cfg = RetrainConfig(lr=0.1, lr_milestones=(2, 5), lr_milestone_unit=unit, lr_gamma=0.5)
    for epoch in range(7):
        for steps_done in range(7):
            assert cfg.lr_at(steps_done + 1, epoch) == scheduled_lr(cfg, steps_done, epoch)
    assert scheduled_lr(cfg, 5, 5) == pytest.approx(0.025)
    assert scheduled_lr(cfg, 1, 1) == 0.1
