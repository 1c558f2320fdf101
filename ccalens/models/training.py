"""Training loop: seeded, resumable, with periodic checkpoints for the learning-dynamics experiment.

Determinism (CPU): the caller seeds the model's initialisation (:func:`seed_everything`); inside
:func:`train_classifier` every epoch starts with ``torch.manual_seed(f(seed, epoch))`` (shuffling, dropout,
data augmentation in the main process), and each checkpoint stores the global torch RNG state, so a run
resumed from any checkpoint ends with the same weights as an uninterrupted run.

Checkpoints: ``checkpoint_dir/step_{step:08d}.pt``, written atomically (temporary file + ``os.replace``), each
a dict with ``model`` (state dict), ``optimizer``, ``step``, ``epoch``, ``batch_in_epoch``, ``rng_state``,
``history`` and ``config``: tensors and plain Python data only, so that they load with
``torch.load(weights_only=True)``, the only way this module loads them (a checkpoint holding anything else,
e.g. a planted pickle that would run code, is refused with a ValueError naming the file). With
``checkpoint_every = k > 0`` they are written at step 0 (the initialisation), every k optimizer steps and at the
last step; with ``k = 0`` and a ``checkpoint_dir``, at the last step only.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ccalens.io import save_torch
from ccalens.metrics import accuracy, macro_f1

__all__ = [
    "TrainConfig",
    "TrainingHistory",
    "class_weights",
    "extract_penultimate",
    "list_checkpoints",
    "load_checkpoint",
    "predict_logits",
    "seed_everything",
    "train_classifier",
]

ArrayLike = np.ndarray | torch.Tensor
DataSpec = tuple[ArrayLike, ArrayLike] | DataLoader

_CHECKPOINT_PREFIX = "step_"
# Fields that must agree between a checkpoint and the config of the run that resumes it.
_RESUME_FIELDS = (
    "optimizer",
    "lr",
    "weight_decay",
    "momentum",
    "batch_size",
    "class_weighted",
    "seed",
    "lr_milestones",
    "lr_milestone_unit",
    "lr_gamma",
)


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train_classifier`.

    optimizer: 'adam' or 'sgd' (SGD uses ``momentum``; Adam ignores it). ``weight_decay`` is the L2 penalty of
    the torch optimizers. lr_milestones: the learning rate is multiplied by ``lr_gamma`` at each milestone,
    counted in optimizer steps (``lr_milestone_unit='step'``, the ResNet paper's 32k/48k iterations) or in
    epochs (``'epoch'``). max_steps: stop after that many optimizer steps in total (None = run all epochs).
    checkpoint_every: save a checkpoint every that many steps (0 = off). class_weighted: cross-entropy
    weighted by ``n / (n_classes * count_c)`` computed on the training labels.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    epochs: int = 10
    batch_size: int = 64
    class_weighted: bool = False
    lr_milestones: tuple[int, ...] = ()
    lr_milestone_unit: str = "epoch"
    lr_gamma: float = 0.1
    max_steps: int | None = None
    checkpoint_every: int = 0
    seed: int = 0
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum}")
        if int(self.epochs) < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        self.lr_milestones = tuple(int(m) for m in self.lr_milestones)
        if any(m < 0 for m in self.lr_milestones):
            raise ValueError(f"lr_milestones must be non-negative, got {self.lr_milestones}")
        if self.lr_milestone_unit not in ("epoch", "step"):
            raise ValueError(f"lr_milestone_unit must be 'epoch' or 'step', got {self.lr_milestone_unit!r}")
        if not 0 < self.lr_gamma <= 1:
            raise ValueError(f"lr_gamma must lie in (0, 1], got {self.lr_gamma}")
        if self.max_steps is not None and int(self.max_steps) < 0:
            raise ValueError(f"max_steps must be None or >= 0, got {self.max_steps}")
        if int(self.checkpoint_every) < 0:
            raise ValueError(f"checkpoint_every must be >= 0 (0 = off), got {self.checkpoint_every}")

    @classmethod
    def shl_paper(cls, **overrides: Any) -> TrainConfig:
        """Moreau et al. (2021): Adam lr 1e-3, weight decay 1e-3, batch 64, 50 epochs, class-weighted loss."""
        base = dict(
            optimizer="adam", lr=1e-3, weight_decay=1e-3, epochs=50, batch_size=64, class_weighted=True
        )
        return cls(**{**base, **overrides})

    @classmethod
    def cifar_resnet_paper(cls, **overrides: Any) -> TrainConfig:
        """He et al. (2016), CIFAR-10: SGD momentum 0.9, lr 0.1 divided by 10 at 32k and 48k steps.

        Stops at 64k steps; weight decay 1e-4, batch 128 (``epochs`` is only an upper bound, ``max_steps``
        ends the run).
        """
        base = dict(
            optimizer="sgd",
            lr=0.1,
            momentum=0.9,
            weight_decay=1e-4,
            batch_size=128,
            epochs=200,
            lr_milestones=(32000, 48000),
            lr_milestone_unit="step",
            lr_gamma=0.1,
            max_steps=64000,
        )
        return cls(**{**base, **overrides})

    @classmethod
    def multiview_default(cls, **overrides: Any) -> TrainConfig:
        """ViewMLP on the UCI digits: Adam lr 1e-3, weight decay 1e-4, batch 64, 40 epochs, lr / 10 at 30."""
        base = dict(
            optimizer="adam",
            lr=1e-3,
            weight_decay=1e-4,
            epochs=40,
            batch_size=64,
            lr_milestones=(30,),
            lr_milestone_unit="epoch",
            class_weighted=False,
        )
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["lr_milestones"] = list(self.lr_milestones)
        return d


@dataclass
class TrainingHistory:
    """Per-epoch record of a run. ``checkpoints``: ``(step, path)`` pairs in step order."""

    epoch: list[int] = field(default_factory=list)
    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    val_macro_f1: list[float] = field(default_factory=list)
    checkpoints: list[tuple[int, str]] = field(default_factory=list)
    total_steps: int = 0
    wall_time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["checkpoints"] = [[int(s), str(p)] for s, p in self.checkpoints]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingHistory:
        d = dict(d)
        d["checkpoints"] = [(int(s), str(p)) for s, p in d.get("checkpoints", [])]
        return cls(**d)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (call before building a model)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 (seeds the legacy global generator on purpose)
    torch.manual_seed(seed)


def class_weights(labels: ArrayLike, n_classes: int) -> np.ndarray:
    """Balanced class weights ``n / (n_classes * count_c)``: ``(n_classes,)`` float32.

    A class absent from ``labels`` gets weight 0 (it never contributes to the loss anyway).
    """
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).ravel()
    if y.size == 0:
        raise ValueError("labels is empty")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got range {y.min()}..{y.max()}")
    counts = np.bincount(y.astype(np.int64), minlength=n_classes).astype(np.float64)
    w = np.divide(y.size, n_classes * counts, out=np.zeros(n_classes), where=counts > 0)
    return w.astype(np.float32)


def _as_tensor(x: ArrayLike, name: str, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(dtype)
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x)).to(dtype)
    raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")


def _check_pair(data: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise TypeError(f"{name} must be a DataLoader or a pair (X, y), got {type(data).__name__}")
    X = _as_tensor(data[0], f"{name}[0] (X)", torch.float32)
    y = _as_tensor(data[1], f"{name}[1] (y)", torch.int64)
    if y.ndim != 1:
        raise ValueError(f"{name}[1] (y) must be 1-D labels, got shape {tuple(y.shape)}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: X has {X.shape[0]} samples but y has {y.shape[0]}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return X, y


def _loader_labels(loader: DataLoader) -> np.ndarray:
    ds = loader.dataset
    for attr in ("targets", "labels"):
        if hasattr(ds, attr):
            return np.asarray(getattr(ds, attr))
    return np.concatenate([np.asarray(b[1]) for b in loader])


def _batched_apply(model: nn.Module, X: ArrayLike | DataLoader, batch_size: int, fn_name: str) -> np.ndarray:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(iter(model.parameters())).device
    fn = model if fn_name == "forward" else getattr(model, fn_name)
    was_training = model.training
    model.eval()
    outs = []
    try:
        with torch.no_grad():
            if isinstance(X, DataLoader):
                for batch in X:
                    xb = batch[0] if isinstance(batch, tuple | list) else batch
                    outs.append(fn(xb.to(device)).cpu())
            else:
                Xt = _as_tensor(X, "X", torch.float32)
                for i in range(0, Xt.shape[0], batch_size):
                    outs.append(fn(Xt[i : i + batch_size].to(device)).cpu())
    finally:
        model.train(was_training)
    if not outs:
        raise ValueError("X is empty")
    return torch.cat(outs).numpy()


def predict_logits(model: nn.Module, X: ArrayLike | DataLoader, batch_size: int = 512) -> np.ndarray:
    """Logits ``(n_samples, n_classes)``, eval mode, no gradients. X: ``(n_samples, ...)`` or a DataLoader."""
    return _batched_apply(model, X, batch_size, "forward")


def extract_penultimate(model: nn.Module, X: ArrayLike | DataLoader, batch_size: int = 512) -> np.ndarray:
    """Penultimate features ``model.features(X)``: ``(n_samples, d)``, eval mode, no gradients."""
    if not hasattr(model, "features"):
        raise TypeError(f"model must have a features(x) method, got {type(model).__name__}")
    return _batched_apply(model, X, batch_size, "features")


def list_checkpoints(checkpoint_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, path)`` of the checkpoints in a folder, in step order."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.glob(f"{_CHECKPOINT_PREFIX}*.pt"):
        stem = p.stem[len(_CHECKPOINT_PREFIX) :]
        if stem.isdigit():
            found.append((int(stem), p))
    return sorted(found)


_CHECKPOINT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "model": dict,
    "optimizer": dict,
    "step": int,
    "epoch": int,
    "batch_in_epoch": int,
    "loss_sum": (float, int),
    "loss_count": int,
    "rng_state": torch.Tensor,
    "history": dict,
    "config": dict,
}


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None) -> dict[str, Any]:
    """Read a checkpoint (a dict, see the module docstring); with ``model``, also load its weights into it.

    Loaded with ``torch.load(weights_only=True)`` only (tensors and plain data; never arbitrary pickled objects):
    a file holding anything else, or missing a field, raises a one-line ValueError naming it.
    """
    path = Path(path)
    fix = f"delete the checkpoint folder {path.parent} (or re-train with resume=False)"
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"checkpoint {path} was refused: it holds more than tensors and plain data, which could run code when "
            f"loaded ({reason[:200]}); {fix}"
        ) from e
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"checkpoint {path} is not a readable torch checkpoint ({type(e).__name__}); {fix}") from e
    if not isinstance(ckpt, dict):
        raise ValueError(f"checkpoint {path} must hold a dict, got {type(ckpt).__name__}; {fix}")
    for key, kind in _CHECKPOINT_FIELDS.items():
        if key not in ckpt:
            raise ValueError(f"checkpoint {path} has no {key!r} field; {fix}")
        if not isinstance(ckpt[key], kind) or isinstance(ckpt[key], bool):
            raise ValueError(f"checkpoint {path}: field {key!r} has the wrong type {type(ckpt[key]).__name__}; {fix}")
    if model is not None:
        try:
            model.load_state_dict(ckpt["model"])
        except (RuntimeError, KeyError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"checkpoint {path} does not fit the model ({first[:200]}); {fix}") from e
    return ckpt


def _epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + 7919 * (epoch + 1)) % (2**63 - 1)


def _batches_tensor(
    X: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, epoch: int, start: int
) -> tuple[int, Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    n = X.shape[0]
    g = torch.Generator().manual_seed(_epoch_seed(seed, epoch) ^ 0x5EED)
    perm = torch.randperm(n, generator=g)
    n_batches = math.ceil(n / batch_size)
    if n_batches > 1 and n - (n_batches - 1) * batch_size == 1:
        n_batches -= 1  # a final batch of one sample breaks BatchNorm; drop it

    def gen() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for b in range(start, n_batches):
            idx = perm[b * batch_size : (b + 1) * batch_size]
            yield X[idx], y[idx]

    return n_batches, gen()


def _current_lr(config: TrainConfig, step: int, epoch: int) -> float:
    t = step if config.lr_milestone_unit == "step" else epoch
    return config.lr * config.lr_gamma ** sum(1 for m in config.lr_milestones if t >= m)


def _evaluate(model: nn.Module, val: Any, n_classes: int, batch_size: int) -> tuple[float, float]:
    if isinstance(val, DataLoader):
        logits = predict_logits(model, val)
        y = np.concatenate([np.asarray(b[1]) for b in val])
    else:
        X, yt = val
        logits = predict_logits(model, X, batch_size=max(batch_size, 256))
        y = yt.numpy()
    pred = logits.argmax(axis=1)
    return accuracy(y, pred), macro_f1(y, pred, n_classes)


def train_classifier(
    model: nn.Module,
    train: DataSpec,
    val: DataSpec | None,
    config: TrainConfig,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
) -> TrainingHistory:
    """Train ``model`` (which must have a ``classifier: nn.Linear``) with cross-entropy.

    train, val: ``(X, y)`` pairs (X: ``(n_samples, ...)`` array or tensor, y: ``(n_samples,)`` ints in
    ``0..n_classes-1``) or DataLoaders yielding ``(x, y)`` batches; val may be None. With ``checkpoint_dir``
    and ``resume=True``, training continues from the newest checkpoint there (same weights at the end as an
    uninterrupted run). Returns the per-epoch :class:`TrainingHistory`; the model is left in eval mode.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    classifier = getattr(model, "classifier", None)
    if not isinstance(classifier, nn.Linear):
        raise TypeError("model must have a `classifier` attribute of type nn.Linear")
    n_classes = classifier.out_features
    device = torch.device(config.device)
    model.to(device)

    if isinstance(train, DataLoader):
        loader: DataLoader | None = train
        Xtr = ytr = None
        train_labels = _loader_labels(train) if config.class_weighted else None
        n_batches = len(train)
    else:
        loader = None
        Xtr, ytr = _check_pair(train, "train")
        train_labels = ytr.numpy()
        n_batches, _ = _batches_tensor(Xtr, ytr, config.batch_size, config.seed, 0, 0)
    if train_labels is not None and (train_labels.min() < 0 or train_labels.max() >= n_classes):
        raise ValueError(
            f"train labels must lie in 0..{n_classes - 1} (the classifier has {n_classes} outputs)"
        )
    val_data = None if val is None else (val if isinstance(val, DataLoader) else _check_pair(val, "val"))

    weight = None
    if config.class_weighted:
        weight = torch.from_numpy(class_weights(train_labels, n_classes)).to(device)
    criterion = nn.CrossEntropyLoss(weight=weight)
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )

    history = TrainingHistory()
    step, epoch, batch_in_epoch = 0, 0, 0
    loss_sum, loss_count = 0.0, 0
    rng_state: torch.Tensor | None = None
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt_dir is not None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        existing = list_checkpoints(ckpt_dir)
        if existing and resume:
            ckpt = load_checkpoint(existing[-1][1], model)
            saved_cfg = ckpt.get("config", {})
            mismatched = [f for f in _RESUME_FIELDS if f in saved_cfg and saved_cfg[f] != config.to_dict()[f]]
            if mismatched:
                raise ValueError(
                    f"checkpoint_dir {ckpt_dir} holds a run with a different config "
                    f"({', '.join(mismatched)}); use another folder or resume=False"
                )
            opt.load_state_dict(ckpt["optimizer"])
            step, epoch, batch_in_epoch = int(ckpt["step"]), int(ckpt["epoch"]), int(ckpt["batch_in_epoch"])
            loss_sum, loss_count = float(ckpt["loss_sum"]), int(ckpt["loss_count"])
            rng_state = ckpt["rng_state"]
            history = TrainingHistory.from_dict(ckpt["history"])
        elif existing:
            for _, p in existing:  # a fresh run must not mix with an older one's checkpoints
                p.unlink()

    def save_checkpoint() -> None:
        if ckpt_dir is None:
            return
        path = ckpt_dir / f"{_CHECKPOINT_PREFIX}{step:08d}.pt"
        history.checkpoints = [c for c in history.checkpoints if c[0] != step] + [(step, str(path))]
        state = {  # tensors and plain data only: loadable with torch.load(weights_only=True)
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "step": int(step),
            "epoch": int(epoch),
            "batch_in_epoch": int(batch_in_epoch),
            "loss_sum": float(loss_sum),
            "loss_count": int(loss_count),
            "rng_state": torch.get_rng_state(),
            "history": history.to_dict(),
            "config": config.to_dict(),
        }
        save_torch(path, state)

    max_steps = config.max_steps if config.max_steps is not None else config.epochs * n_batches
    total = min(max_steps, config.epochs * n_batches)
    t0 = time.perf_counter()
    bar = tqdm(
        total=total,
        initial=min(step, total),
        disable=not config.progress,
        desc="train",
        leave=False,
        unit="step",
    )
    if step == 0 and config.checkpoint_every > 0 and not history.checkpoints:
        save_checkpoint()
    last_saved = history.checkpoints[-1][0] if history.checkpoints else -1
    try:
        while epoch < config.epochs and (step < max_steps or batch_in_epoch > 0):
            torch.manual_seed(_epoch_seed(config.seed, epoch))
            if loader is not None:
                if loader.generator is not None:
                    loader.generator.manual_seed(_epoch_seed(config.seed, epoch))
                it: Iterator = iter(loader)
                for _ in range(batch_in_epoch):
                    next(it)
            else:
                _, it = _batches_tensor(Xtr, ytr, config.batch_size, config.seed, epoch, batch_in_epoch)
            if batch_in_epoch > 0 and rng_state is not None:
                torch.set_rng_state(rng_state)
            rng_state = None
            model.train()
            for lr_group in opt.param_groups:
                lr_group["lr"] = _current_lr(config, step, epoch)
            for batch in it:
                if step >= max_steps:
                    break
                xb, yb = batch[0].to(device), batch[1].to(device)
                lr = _current_lr(config, step, epoch)
                for lr_group in opt.param_groups:
                    lr_group["lr"] = lr
                opt.zero_grad(set_to_none=True)
                loss = criterion(model(xb), yb)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"loss became {loss.item()} at step {step}; lower the learning rate"
                    )
                loss.backward()
                opt.step()
                step += 1
                batch_in_epoch += 1
                loss_sum += float(loss.detach()) * xb.shape[0]
                loss_count += xb.shape[0]
                bar.update(1)
                if config.checkpoint_every > 0 and step % config.checkpoint_every == 0:
                    save_checkpoint()
                    last_saved = step
            if batch_in_epoch == 0:
                break
            if step >= max_steps or (epoch == config.epochs - 1 and batch_in_epoch >= n_batches):
                if ckpt_dir is not None and last_saved != step:
                    save_checkpoint()
                    last_saved = step
            history.epoch.append(epoch)
            history.step.append(step)
            history.train_loss.append(loss_sum / max(loss_count, 1))
            history.lr.append(float(opt.param_groups[0]["lr"]))
            if val_data is not None:
                acc, f1 = _evaluate(model, val_data, n_classes, config.batch_size)
                history.val_accuracy.append(acc)
                history.val_macro_f1.append(f1)
                bar.set_postfix(
                    loss=f"{history.train_loss[-1]:.3f}", val_acc=f"{acc:.3f}", val_f1=f"{f1:.3f}"
                )
            else:
                bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}")
            epoch += 1
            batch_in_epoch = 0
            loss_sum, loss_count = 0.0, 0
    finally:
        bar.close()
    history.total_steps = step
    history.wall_time_s += time.perf_counter() - t0
    model.eval()
    return history
