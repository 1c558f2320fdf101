"""Models in plain torch (each exposes ``.features(x)`` and ``.classifier``) and the training loop."""

from ccalens.models.inference import extract_penultimate, predict_logits
from ccalens.models.loop import seed_everything, train_classifier, train_network
from ccalens.models.nets import SHLCNN, ViewMLP, named_feature_layers
from ccalens.models.resnet import CifarResNet
from ccalens.models.train_config import TrainConfig, TrainingHistory

__all__ = [
    "SHLCNN",
    "CifarResNet",
    "TrainConfig",
    "TrainingHistory",
    "ViewMLP",
    "extract_penultimate",
    "named_feature_layers",
    "predict_logits",
    "seed_everything",
    "train_classifier",
    "train_network",
]
