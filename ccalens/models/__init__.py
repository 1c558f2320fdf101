"""Models in plain torch (each exposes ``.features(x)`` and ``.classifier``) and the training loop."""

from ccalens.models.nets import SHLCNN, CifarResNet, ViewMLP, named_feature_layers

__all__ = ["SHLCNN", "CifarResNet", "ViewMLP", "named_feature_layers"]
