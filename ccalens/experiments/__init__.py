"""Experiments of Moreau et al. (2021) and Raghu et al. (2017, SVCCA) on top of the CCA engine.

* :mod:`~ccalens.experiments.projection`: projection of penultimate features on k directions (the seven methods'
  bases in :mod:`~ccalens.experiments.bases`);
* :mod:`~ccalens.experiments.cross_sensor`: the same on the grid of all sensor pairs;
* :mod:`~ccalens.experiments.fusion`: CCA fusion vs logit averaging, principal angles;
* :mod:`~ccalens.experiments.language_model`: a stacked LSTM language model's learning dynamics (SVCCA App. 6);
* the SVCCA studies, one module each: :mod:`~ccalens.experiments.learning_dynamics`,
  :mod:`~ccalens.experiments.two_initialisations`, :mod:`~ccalens.experiments.compression`,
  :mod:`~ccalens.experiments.sanity` (layer activations shared in :mod:`~ccalens.experiments.activations`);
* :mod:`~ccalens.experiments.config`: the typed, strict experiment configs (one frozen dataclass per TOML table);
* :mod:`~ccalens.experiments.stages`: the stages of a run (train the networks, each experiment), each taking a
  ``RunContext`` and returning its results;
* :mod:`~ccalens.experiments.runner`: ``run_config(path, out_dir)`` and ``run_demo(out_dir)`` (TOML configs in
  ``ccalens/experiments/configs``).

Importing this package needs numpy and scipy only; torch, matplotlib and scikit-learn are imported by the
functions that use them (``pip install ccalens[experiments]``).
"""

from ccalens.experiments.bases import METHODS, k_grid, project
from ccalens.experiments.common import NetworkFeatures, RetrainConfig, train_linear_layers
from ccalens.experiments.config import ExperimentConfig, parse_config
from ccalens.experiments.cross_sensor import run_sensor_grid
from ccalens.experiments.fusion import FusionConfig, FusionResult, fusion_study, run_fusion
from ccalens.experiments.projection import ProjectionConfig, run_projection
from ccalens.experiments.projection_result import ProjectionResult

__all__ = [
    "METHODS",
    "ExperimentConfig",
    "FusionConfig",
    "FusionResult",
    "NetworkFeatures",
    "ProjectionConfig",
    "ProjectionResult",
    "RetrainConfig",
    "fusion_study",
    "k_grid",
    "parse_config",
    "project",
    "run_config",
    "run_demo",
    "run_fusion",
    "run_projection",
    "run_sensor_grid",
    "train_linear_layers",
]


def run_config(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Lazy alias of :func:`ccalens.experiments.runner.run_config` (the runner imports matplotlib)."""
    from ccalens.experiments.runner import run_config as _run_config

    return _run_config(*args, **kwargs)


def run_demo(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Lazy alias of :func:`ccalens.experiments.runner.run_demo`."""
    from ccalens.experiments.runner import run_demo as _run_demo

    return _run_demo(*args, **kwargs)
