"""Training of the models, in files with one job each (this module gathers their public names):

* :mod:`ccalens.models.train_config`: :class:`TrainConfig` (hyper-parameters, the papers' presets) and
  :class:`TrainingHistory`;
* :mod:`ccalens.models.checkpoints`: checkpoint files, loaded with ``torch.load(weights_only=True)`` only;
* :mod:`ccalens.models.loop`: :func:`train_classifier` (seeded, resumable) and :func:`train_network`, the one way
  a network is trained for a (sensor, seed);
* :mod:`ccalens.models.inference`: :func:`predict_logits`, :func:`extract_penultimate`.
"""

from __future__ import annotations

from ccalens.models.checkpoints import list_checkpoints, load_checkpoint
from ccalens.models.inference import extract_penultimate, predict_logits
from ccalens.models.loop import DataSpec, class_weights, seed_everything, train_classifier, train_network
from ccalens.models.train_config import TrainConfig, TrainingHistory

__all__ = [
    "DataSpec",
    "TrainConfig",
    "TrainingHistory",
    "class_weights",
    "extract_penultimate",
    "list_checkpoints",
    "load_checkpoint",
    "predict_logits",
    "seed_everything",
    "train_classifier",
    "train_network",
]
