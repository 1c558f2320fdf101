"""Networks of the experiments, in plain torch.

Every model has the same three-part interface used by the CCA experiments:

- ``features(x) -> (batch, d)``: the penultimate representation, after the last non-linearity and before the
  last linear layer;
- ``classifier: nn.Linear``: the last layer (``d -> n_classes``);
- ``forward(x) = classifier(dropout(features(x)))``; the dropout (if any) is the identity in eval mode, so in
  eval mode ``forward(x) == classifier(features(x))`` exactly.

``named_feature_layers(model)`` lists the sub-module names whose outputs are worth hooking (e.g. to record
every layer at every checkpoint in the learning-dynamics experiment); the last name is always the module whose
output equals ``features(x)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ccalens.models.resnet import CifarResNet

__all__ = [
    "ARCHITECTURES", "SHLCNN", "CharLSTM", "PixCNN", "ViewMLP", "load_model", "named_feature_layers",
]


def named_feature_layers(model: nn.Module) -> list[str]:
    """Names (as in ``model.named_modules()``) of the layers worth hooking, input to output.

    The output of each named module is a post-activation representation; the last one is the penultimate
    representation returned by ``model.features``.
    """
    names = getattr(model, "feature_layer_names", None)
    if names is None:
        raise TypeError(
            f"model must be a ccalens model with feature_layer_names(), got {type(model).__name__}"
        )
    return list(names())


class ViewMLP(nn.Module):
    """Multi-layer perceptron for one view of a multi-view data set.

    x: ``(batch, in_features)`` RAW view features; they are standardised inside the model with the buffers
    ``input_mean`` / ``input_std`` (0 and 1 until :meth:`set_input_normalization` is called), so a trained
    model is self-contained. Hidden layers: Linear -> ReLU (-> Dropout between hidden layers).
    ``features(x)``: ``(batch, hidden[-1])``, the output of the last ReLU.
    """

    def __init__(
        self,
        in_features: int,
        n_classes: int,
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if int(in_features) < 1:
            raise ValueError(f"in_features must be a positive integer, got {in_features}")
        if int(n_classes) < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        hidden = tuple(int(h) for h in hidden)
        if len(hidden) == 0 or min(hidden) < 1:
            raise ValueError(f"hidden must be a non-empty sequence of positive widths, got {hidden}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.in_features = int(in_features)
        self.n_classes = int(n_classes)
        self.hidden = hidden
        self.register_buffer("input_mean", torch.zeros(self.in_features))
        self.register_buffer("input_std", torch.ones(self.in_features))
        body = nn.Sequential()
        width = self.in_features
        self._relu_names: list[str] = []
        for i, h in enumerate(hidden):
            if i > 0 and dropout > 0:
                body.add_module(f"drop{i}", nn.Dropout(dropout))
            body.add_module(f"fc{i}", nn.Linear(width, h))
            body.add_module(f"relu{i}", nn.ReLU())
            self._relu_names.append(f"body.relu{i}")
            width = h
        self.body = body
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(width, self.n_classes)

    @torch.no_grad()
    def set_input_normalization(
        self, mean: torch.Tensor | Sequence[float], std: torch.Tensor | Sequence[float]
    ) -> None:
        """Store the per-feature mean and std (``(in_features,)`` each) used to standardise the inputs.

        Zero (or non-finite) standard deviations are replaced by 1 so constant features pass through as 0.
        """
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(-1).clone()
        for name, t in (("mean", mean_t), ("std", std_t)):
            if t.numel() != self.in_features:
                raise ValueError(f"{name} must have {self.in_features} values, got {t.numel()}")
        if not torch.isfinite(mean_t).all():
            raise ValueError("mean must be finite")
        std_t[~torch.isfinite(std_t) | (std_t <= 0)] = 1.0
        self.input_mean.copy_(mean_t)
        self.input_std.copy_(std_t)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(batch, in_features)`` -> ``(batch, hidden[-1])``."""
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x must have shape (batch, {self.in_features}), got {tuple(x.shape)}")
        return self.body((x - self.input_mean) / self.input_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(batch, in_features)`` -> logits ``(batch, n_classes)``."""
        return self.classifier(self.dropout(self.features(x)))

    def feature_layer_names(self) -> list[str]:
        return list(self._relu_names)


class PixCNN(nn.Module):
    """A small CNN for the demo's ``pix`` view: its 240 pixel averages are a 16 x 15 image (values 0-6).

    x: ``(batch, 240)`` RAW view features (the same input as :class:`ViewMLP`, standardised inside the model with
    ``input_mean`` / ``input_std``), reshaped to ``(batch, 1, 16, 15)``. Layers: conv 3x3 (16) -> ReLU
    (``relu0``: 16 x 16 x 15 maps), conv 3x3 (32) -> ReLU -> 2x2 max-pool (``relu1``: 32 x 8 x 7), conv 3x3 (32)
    -> ReLU (``relu2``: 32 x 8 x 7), global average pool -> Linear (64) -> ReLU (``relu3``, the features) ->
    classifier. The conv layers' outputs are maps for DFT-CCA (``ccalens.conv``).
    """

    image_shape = (16, 15)

    def __init__(self, in_features: int = 240, n_classes: int = 10, width: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        if int(in_features) != self.image_shape[0] * self.image_shape[1]:
            raise ValueError(f"PixCNN takes the 240 pix features (a 16 x 15 image), got in_features={in_features}")
        if int(n_classes) < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        self.in_features, self.n_classes = int(in_features), int(n_classes)
        self.register_buffer("input_mean", torch.zeros(self.in_features))
        self.register_buffer("input_std", torch.ones(self.in_features))
        w = int(width)
        self.conv0, self.relu0 = nn.Conv2d(1, w, 3, padding=1), nn.ReLU()
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv2, self.relu2 = nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU()
        self.fc3, self.relu3 = nn.Linear(2 * w, 4 * w), nn.ReLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(4 * w, self.n_classes)

    set_input_normalization = ViewMLP.set_input_normalization

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(batch, 240)`` -> ``(batch, 4 * width)``."""
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x must have shape (batch, {self.in_features}), got {tuple(x.shape)}")
        z = ((x - self.input_mean) / self.input_std).reshape(-1, 1, *self.image_shape)
        z = self.relu0(self.conv0(z))
        z = self.relu1(self.pool1(self.conv1(z)))  # pool first: relu1's output is the pooled map
        z = self.relu2(self.conv2(z))
        return self.relu3(self.fc3(z.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(batch, 240)`` -> logits ``(batch, n_classes)``."""
        return self.classifier(self.dropout(self.features(x)))

    def feature_layer_names(self) -> list[str]:
        return ["relu0", "relu1", "relu2", "relu3"]


class SHLCNN(nn.Module):
    """CNN of Moreau et al. (2021) for 48 x 48 spectrograms of the SHL data, as their code builds it.

    Three blocks conv 3x3 (16, 32, 64 channels; padding 1, 1 and 0) -> ReLU -> 2x2 max-pool: 48 -> 24 -> 12
    -> 10 -> 5; flatten (64 x 5 x 5 = 1,600), dropout 0.25, FC 128 -> ReLU (the features), dropout 0.5,
    FC ``n_classes``. 229,256 parameters for one input channel and 8 classes.
    x: ``(batch, in_channels, input_size, input_size)``; ``features(x)``: ``(batch, 128)``.
    """

    def __init__(self, n_classes: int = 8, in_channels: int = 1, input_size: int = 48) -> None:
        super().__init__()
        if int(n_classes) < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        if int(in_channels) < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if int(input_size) < 16:
            raise ValueError(
                f"input_size must be >= 16 (two 2x2 poolings, an unpadded 3x3 convolution, a pooling), got {input_size}"
            )
        self.n_classes = int(n_classes)
        self.in_channels = int(in_channels)
        self.input_size = int(input_size)
        blocks = []
        c_in = self.in_channels
        for c_out, padding in ((16, 1), (32, 1), (64, 0)):
            blocks.append(nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=padding), nn.ReLU(), nn.MaxPool2d(2)))
            c_in = c_out
        self.block1, self.block2, self.block3 = blocks
        side = (self.input_size // 4 - 2) // 2
        self.conv_dropout = nn.Dropout(0.25)
        self.fc = nn.Linear(64 * side * side, 128)
        self.fc_relu = nn.ReLU()
        self.dropout = nn.Dropout(0.5)
        self.classifier = nn.Linear(128, self.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(batch, in_channels, input_size, input_size)`` -> ``(batch, 128)``."""
        expected = (self.in_channels, self.input_size, self.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"x must have shape (batch, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
            )
        h = self.block3(self.block2(self.block1(x)))
        h = self.conv_dropout(torch.flatten(h, 1))
        return self.fc_relu(self.fc(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))

    def feature_layer_names(self) -> list[str]:
        return ["block1", "block2", "block3", "fc_relu"]


class CharLSTM(nn.Module):
    """A stacked LSTM language model (Raghu et al. 2017, App. 6): embedding -> ``layers`` one-layer LSTMs
    ``lstm1 .. lstmL`` (batch first, each its own module so that each layer's hidden states can be hooked) ->
    ``classifier`` (next-token logits).

    x: ``(batch, T)`` token ids (int64). ``features(x)``: ``(batch, T, hidden)``, the top layer's hidden states;
    ``forward(x)``: ``(batch, T, vocab_size)``. A hook on ``lstmK`` sees ``(output, (h, c))``; the capture path
    keeps the first tensor, the hidden states ``(batch, T, hidden)`` of every position.
    """

    def __init__(self, vocab_size: int, embedding: int = 16, hidden: int = 32, layers: int = 3) -> None:
        super().__init__()
        for key, value in (("vocab_size", vocab_size), ("embedding", embedding), ("hidden", hidden),
                           ("layers", layers)):
            if int(value) < (2 if key == "vocab_size" else 1):
                raise ValueError(f"{key} must be >= {2 if key == 'vocab_size' else 1}, got {value}")
        self.vocab_size, self.n_layers = int(vocab_size), int(layers)
        self.embedding = nn.Embedding(self.vocab_size, int(embedding))
        width = int(embedding)
        for i in range(1, self.n_layers + 1):
            setattr(self, f"lstm{i}", nn.LSTM(width, int(hidden), batch_first=True))
            width = int(hidden)
        self.classifier = nn.Linear(int(hidden), self.vocab_size)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(batch, T)`` token ids -> ``(batch, T, hidden)``."""
        if x.ndim != 2 or x.is_floating_point():
            raise ValueError(f"x must be (batch, T) integer token ids, got shape {tuple(x.shape)} of {x.dtype}")
        z = self.embedding(x)
        for name in self.feature_layer_names():
            z, _ = getattr(self, name)(z)
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(batch, T)`` token ids -> next-token logits ``(batch, T, vocab_size)``."""
        return self.classifier(self.features(x))

    def feature_layer_names(self) -> list[str]:
        return [f"lstm{i}" for i in range(1, self.n_layers + 1)]


#: Architectures a model file may name (a fixed list: nothing named in a file is imported or executed);
#: ``CifarResNet`` is :mod:`ccalens.models.resnet`'s.
ARCHITECTURES: dict[str, type[nn.Module]] = {
    "ViewMLP": ViewMLP,
    "PixCNN": PixCNN,
    "SHLCNN": SHLCNN,
    "CifarResNet": CifarResNet,
    "CharLSTM": CharLSTM,
}


def load_model(path: str | Path) -> nn.Module:
    """A ccalens model file: ``{"architecture": name, "kwargs": {...}, "state_dict": {...}}`` (tensors and plain
    data, read with ``torch.load(weights_only=True)``; ``architecture`` defaults to ``"ViewMLP"``, the format of
    ``ccalens train-multiview``). Returns the model in eval mode. Errors name the file and what was expected."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a ccalens model file readable without running code ({exc})") from None
    if not isinstance(blob, dict) or "state_dict" not in blob or not isinstance(blob.get("kwargs", {}), dict):
        raise ValueError(f"{path}: expected a dict with 'architecture', 'kwargs' and 'state_dict'")
    name = blob.get("architecture", "ViewMLP")
    if name not in ARCHITECTURES:
        raise ValueError(f"{path}: architecture {name!r} is not one of {sorted(ARCHITECTURES)}")
    try:
        model = ARCHITECTURES[name](**blob.get("kwargs", {}))
        model.load_state_dict(blob["state_dict"])
    except (TypeError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: the weights do not fit a {name}({blob.get('kwargs', {})}): {first}") from None
    return model.eval()
