"""Learning dynamics (SVCCA paper, Fig. 4): the same numbers (to rounding) whether the checkpoints run in one
process or are split over the run's workers."""

from __future__ import annotations

import copy
import dataclasses
import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ccalens.experiments.learning_dynamics import learning_dynamics  # noqa: E402
from ccalens.experiments.parallel import Workers  # noqa: E402
from ccalens.models import ViewMLP  # noqa: E402
from ccalens.models.checkpoints import list_checkpoints  # noqa: E402
from ccalens.models.loop import TrainConfig, train_network  # noqa: E402


def test_learning_dynamics_split_over_workers_equals_one_process(tmp_path) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    X_all = (rng.standard_normal((3, 10))[y] + rng.standard_normal((300, 10))).astype(np.float32)
    recipe = dataclasses.replace(TrainConfig.multiview_default(), epochs=4, checkpoint_every=5, progress=False)
    model, _ = train_network(functools.partial(ViewMLP, 10, 3, hidden=(12, 6)), (X_all[:240], y[:240]),
                             (X_all[240:], y[240:]), recipe, seed=0, checkpoint_dir=tmp_path)
    ckpts = list_checkpoints(tmp_path)
    X = X_all[:240]
    layers = ["body.relu0", "body.relu1", "logits"]
    factory = functools.partial(copy.deepcopy, model)
    with Workers(1) as one, Workers(2) as two:
        a = learning_dynamics(factory, ckpts, X, layers, threshold=0.99, workers=one)
        b = learning_dynamics(factory, ckpts, X, layers, threshold=0.99, workers=two)
    assert a["steps"] == b["steps"] and len(a["steps"]) >= 3
    for key in ("similarity", "mean_rho", "null_mean_rho"):
        # the same pairs by the same code; similarity_matrix batches its products over the representations it is
        # given, so a different split rounds differently: a few eps of float64 on scores of order 1
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-12)
    np.testing.assert_allclose(a["similarity"][:, -1], 1.0, atol=1e-9)
    assert np.all(a["similarity"][:, 0] < 1.0) and a["conventions"] == b["conventions"]
