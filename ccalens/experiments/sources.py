"""Data sources of the experiment configs: for each sensor (view), its inputs, labels and a model factory.

* ``multiple_features``: the bundled UCI digits, six views, :class:`ccalens.models.ViewMLP` per view;
* ``shl2018``: an SHL 2018 folder (``[data] root``), one 48 x 48 spectrogram channel per sensor, the SHL CNN;
* ``cifar10``: a CIFAR-10 python folder (``[data] root``), one "sensor" (the images), a CIFAR ResNet trained
  with crop-and-flip augmentation; validation = the test batch (as in the paper).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ccalens.experiments.paths import check_name

__all__ = ["Source", "load_source"]


@dataclass
class Source:
    """Inputs per sensor: ``train[s]: (n, ...)``, ``val[s]: (m, ...)`` float32; labels ``y_train (n,)``,
    ``y_val (m,)``; ``make_model(sensor)`` builds an untrained model; ``train_data(sensor)`` what
    :func:`ccalens.models.loop.train_classifier` takes (a pair, or a DataLoader for augmentation)."""

    name: str
    sensors: list[str]
    n_classes: int
    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    y_train: np.ndarray
    y_val: np.ndarray
    model_kind: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    augment: bool = False
    description: dict[str, str] = field(default_factory=dict)

    def make_model(self, sensor: str) -> Any:
        from ccalens.models import SHLCNN, CifarResNet, ViewMLP

        if self.model_kind == "view_mlp":
            X = self.train[sensor]
            model = ViewMLP(X.shape[1], self.n_classes, **self.model_kwargs)
            std = X.std(axis=0, dtype=np.float64)
            std[std <= 0] = 1.0
            model.set_input_normalization(X.mean(axis=0, dtype=np.float64), std)
            return model
        if self.model_kind == "shl_cnn":
            return SHLCNN(n_classes=self.n_classes, in_channels=self.train[sensor].shape[1], **self.model_kwargs)
        if self.model_kind == "cifar_resnet":
            kwargs = {k: v for k, v in self.model_kwargs.items() if not k.startswith("_")}
            return CifarResNet(n_classes=self.n_classes, **kwargs)
        raise ValueError(f"unknown model kind {self.model_kind!r}")

    def train_data(self, sensor: str, batch_size: int) -> Any:
        if not self.augment:
            return (self.train[sensor], self.y_train)
        import torch
        from torch.utils.data import DataLoader

        from ccalens.data.cifar import CifarAugmented

        ds = CifarAugmented(torch.as_tensor(self.train[sensor]), torch.as_tensor(self.y_train), augment=True,
                            mean=self.model_kwargs.get("_mean"), std=self.model_kwargs.get("_std"))
        return DataLoader(ds, batch_size=batch_size, shuffle=True)


def _folder(data: Mapping[str, Any], key: str) -> str | None:
    """``[data] key``, a folder the user names (read from, or for ``cache_dir`` a cache written to): a non-empty
    string without NUL characters, or None when absent."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\0" in value:
        raise ValueError(f"[data] {key} must be a non-empty folder path (a string), got {value!r}")
    return value


def load_source(data: Mapping[str, Any], model: Mapping[str, Any] | None = None) -> Source:
    """Build the :class:`Source` described by a config's ``[data]`` (and ``[model]``) tables."""
    data = dict(data)
    model_kwargs = dict(model or {})
    dataset = data.get("dataset", "multiple_features")
    if dataset == "multiple_features":
        from ccalens.data.multiview import load_multiple_features

        ds = load_multiple_features(data.get("views"))
        return Source(
            name="UCI multiple features (handwritten digits)",
            sensors=list(ds.view_names),
            n_classes=ds.n_classes,
            train={v: ds.views[v][ds.train_idx] for v in ds.view_names},
            val={v: ds.views[v][ds.val_idx] for v in ds.view_names},
            y_train=ds.labels[ds.train_idx],
            y_val=ds.labels[ds.val_idx],
            model_kind="view_mlp",
            model_kwargs={k: (tuple(v) if isinstance(v, list) else v) for k, v in model_kwargs.items()},
            description=dict(ds.description),
        )
    if dataset == "shl2018":
        from ccalens.data.shl import SHLDataset

        if "root" not in data:
            raise ValueError("[data] root must name the SHL 2018 folder (holding train/) for dataset 'shl2018'")
        table = data.get("sensors", {"gyrometer": "Gyr_y", "accelerometer": "Acc_norm", "magnetometer": "Mag_norm"})
        if not isinstance(table, Mapping) or not table:
            raise ValueError(f"[data.sensors] must be a non-empty table of sensor name = SHL channel, got {table!r}")
        sensors = dict(table)
        for sensor, channel in sensors.items():
            check_name(sensor, "[data.sensors] key (sensor name)")
            check_name(channel, f"[data.sensors] {sensor} (SHL channel name)")
        n_val = data.get("n_val", 3310)
        shl = SHLDataset(_folder(data, "root"), "train", cache_dir=_folder(data, "cache_dir"), n_val=n_val,
                         progress=True)
        train, val = {}, {}
        y_train = y_val = None
        for sensor, channel in sensors.items():
            train[sensor], y_train = shl.arrays([channel], "train")
            val[sensor], y_val = shl.arrays([channel], "val")
        assert y_train is not None and y_val is not None
        return Source(
            name="SHL 2018", sensors=list(sensors), n_classes=8, train=train, val=val,
            y_train=np.asarray(y_train), y_val=np.asarray(y_val), model_kind="shl_cnn",
            model_kwargs=model_kwargs, description={s: f"spectrogram of {c}" for s, c in sensors.items()},
        )
    if dataset == "cifar10":
        from ccalens.data.cifar import load_cifar10

        if "root" not in data:
            raise ValueError("[data] root must name the CIFAR-10 python folder for dataset 'cifar10'")
        cd = load_cifar10(_folder(data, "root"), statistics=str(data.get("normalization", "cifar")))
        kwargs = {**model_kwargs, "_mean": cd.mean, "_std": cd.std}
        src = Source(
            name="CIFAR-10", sensors=["images"], n_classes=10,
            train={"images": cd.x_train.numpy()}, val={"images": cd.x_test.numpy()},
            y_train=cd.y_train.numpy(), y_val=cd.y_test.numpy(), model_kind="cifar_resnet",
            model_kwargs=kwargs, augment=bool(data.get("augment", True)),
            description={"images": "32 x 32 RGB images (validation = test batch)"},
        )
        return src
    raise ValueError(f"[data] dataset must be 'multiple_features', 'shl2018' or 'cifar10', got {dataset!r}")
