"""The CIFAR-10 ResNet-(6n+2) of He et al. (2016) and its basic block, with the ``features(x)`` /
``classifier`` interface of :mod:`ccalens.models.nets` (listed there in ``ARCHITECTURES``)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["CifarResNet"]


class _BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a shortcut; output ReLU(F(x) + shortcut(x)).

    Option 'A': parameter-free shortcut (stride-2 subsampling, zero-padded extra channels).
    Option 'B': 1x1 conv + BN projection where the shape changes, identity elsewhere.
    'conv3x3': 3x3 conv (padding 1, no bias) + BN projection where the shape changes, identity elsewhere (the
    network Moreau et al. 2021 trained).
    """

    def __init__(self, c_in: int, c_out: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.stride = stride
        self.pad_channels = c_out - c_in
        self.mode = shortcut
        self.projection: nn.Module | None = None
        if shortcut in ("B", "conv3x3") and (stride != 1 or c_in != c_out):
            kernel = 1 if shortcut == "B" else 3
            self.projection = nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
                nn.BatchNorm2d(c_out),
            )

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.projection is not None:
            return self.projection(x)
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad_channels > 0:
            x = F.pad(x, (0, 0, 0, 0, 0, self.pad_channels))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self._shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR-10 (He et al. 2016, section 4.2).

    conv 3x3 16 -> BN -> ReLU, three stages of n basic blocks with 16, 32, 64 channels (stride 2 at the start
    of stages 2 and 3), global average pooling (the 64-d features), linear classifier.
    Give ``depth`` (20, 32, 44, 56, 110, ...) or ``n`` (depth = 6n + 2). ``shortcut``: 'A' (identity with zero
    padding, parameter-free; the paper's CIFAR choice), 'B' (1x1 conv + BN projection where the shape changes)
    or 'conv3x3' (3x3 conv + BN projection there).

    The network Moreau et al. (2021) actually trained (their code, after the pytorch-tutorial ResNet):
    ``CifarResNet(depth=38, shortcut="conv3x3")``, three stages of 6 blocks, 584,602 parameters (0.585M): the
    option-A ResNet-38's 561,370 plus two projections, 16 x 32 x 9 + 2 x 32 and 32 x 64 x 9 + 2 x 64
    (convolution weights, BN scale and shift) = 23,232. Their code keeps PyTorch's default initialisation;
    this class uses He initialisation (fan-out) for every variant.
    x: ``(batch, 3, 32, 32)``; ``features(x)``: ``(batch, 64)``.
    """

    def __init__(
        self, depth: int | None = 56, n: int | None = None, shortcut: str = "A", n_classes: int = 10
    ) -> None:
        super().__init__()
        if n is not None:
            n = int(n)
            if n < 1:
                raise ValueError(f"n must be >= 1, got {n}")
            if depth is not None and depth != 56 and depth != 6 * n + 2:
                raise ValueError(f"depth={depth} and n={n} disagree (depth must be 6n+2 = {6 * n + 2})")
            depth = 6 * n + 2
        if depth is None or (int(depth) - 2) % 6 != 0 or int(depth) < 8:
            raise ValueError(f"depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110, ...), got {depth}")
        if shortcut not in ("A", "B", "conv3x3"):
            raise ValueError(f"shortcut must be 'A', 'B' or 'conv3x3', got {shortcut!r}")
        if int(n_classes) < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        self.depth = int(depth)
        self.n = (self.depth - 2) // 6
        self.shortcut = shortcut
        self.n_classes = int(n_classes)
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        stages = []
        c_in = 16
        for i, c_out in enumerate((16, 32, 64)):
            blocks = []
            for j in range(self.n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(_BasicBlock(c_in, c_out, stride, shortcut))
                c_in = c_out
            stages.append(nn.Sequential(*blocks))
        self.stage1, self.stage2, self.stage3 = stages
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(64, self.n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(batch, 3, H, W)`` -> ``(batch, 64)`` globally average-pooled features."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x must have shape (batch, 3, H, W), got {tuple(x.shape)}")
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.stage3(self.stage2(self.stage1(h)))
        return self.pool(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def feature_layer_names(self) -> list[str]:
        names = ["relu"]
        for s in ("stage1", "stage2", "stage3"):
            names += [f"{s}.{j}" for j in range(self.n)]
        names.append("pool")
        return names
