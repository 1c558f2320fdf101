"""The training loop: seeded, resumable, with periodic checkpoints for the learning-dynamics experiment.

Determinism (CPU): :func:`train_network` seeds the model's initialisation (:func:`seed_everything`); inside
:func:`train_classifier` every epoch starts with ``torch.manual_seed(f(seed, epoch))`` (shuffling, dropout,
data augmentation in the main process), and each checkpoint stores the global torch RNG state, so a run
resumed from any checkpoint ends with the same weights as an uninterrupted run.

Checkpoints (:mod:`ccalens.models.checkpoints`): with ``checkpoint_every = k > 0`` they are written at step 0
(the initialisation), every k optimizer steps and at the last step; with ``k = 0`` and a ``checkpoint_dir``, at
the last step only.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ccalens.metrics import accuracy, macro_f1
from ccalens.models.checkpoints import (
    check_resumable,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from ccalens.models.inference import ArrayLike, as_tensor, predict_logits
from ccalens.models.train_config import TrainConfig, TrainingHistory
from ccalens.recipes import scheduled_lr

__all__ = ["DataSpec", "class_weights", "seed_everything", "train_classifier", "train_network"]

DataSpec = tuple[ArrayLike, ArrayLike] | DataLoader


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



def _token_ids(X: Any) -> bool:
    """Whether inputs are token ids (int32/int64, kept as int64 for an embedding); others become float32."""
    dtype = X.dtype
    return dtype in (torch.int32, torch.int64) if isinstance(dtype, torch.dtype) else np.dtype(dtype) in (
        np.dtype(np.int32), np.dtype(np.int64))


def _check_pair(data: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise TypeError(f"{name} must be a DataLoader or a pair (X, y), got {type(data).__name__}")
    X = as_tensor(data[0], f"{name}[0] (X)", torch.int64 if _token_ids(data[0]) else torch.float32)
    y = as_tensor(data[1], f"{name}[1] (y)", torch.int64)
    if y.ndim not in (1, 2):
        raise ValueError(f"{name}[1] (y) must be labels (n,) or per-position labels (n, T), got shape {tuple(y.shape)}")
    if y.ndim == 2 and (X.ndim < 2 or X.shape[1] != y.shape[1]):
        raise ValueError(f"{name}: per-position labels {tuple(y.shape)} need inputs (n, {y.shape[1]}, ...), "
                         f"got {tuple(X.shape)}")
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


def _evaluate(model: nn.Module, val: Any, n_classes: int, batch_size: int) -> tuple[float, float]:
    if isinstance(val, DataLoader):
        logits = predict_logits(model, val)
        y = np.concatenate([np.asarray(b[1]) for b in val])
    else:
        X, yt = val
        logits = predict_logits(model, X, batch_size=max(batch_size, 256))
        y = yt.numpy()
    pred = logits.argmax(axis=-1)  # (n,) or, with per-position labels (n, T), (n, T)
    return accuracy(y.ravel(), pred.ravel()), macro_f1(y.ravel(), pred.ravel(), n_classes)


@dataclasses.dataclass
class _Progress:
    """Where a run stands: what a checkpoint saves and a resumed run restores."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    loss_sum: float = 0.0
    loss_count: int = 0
    rng_state: torch.Tensor | None = None
    history: TrainingHistory = dataclasses.field(default_factory=TrainingHistory)


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def _resume(ckpt_dir: Path, model: nn.Module, opt: torch.optim.Optimizer, config: TrainConfig,
            resume: bool) -> _Progress:
    """The state of the newest checkpoint in ``ckpt_dir`` (weights and optimizer loaded) when resuming; a fresh
    state otherwise (older checkpoints are deleted: a fresh run must not mix with them)."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    existing = list_checkpoints(ckpt_dir)
    if existing and resume:
        ckpt = load_checkpoint(existing[-1][1], model)
        check_resumable(ckpt.get("config", {}), config.to_dict(), ckpt_dir)
        opt.load_state_dict(ckpt["optimizer"])
        return _Progress(step=int(ckpt["step"]), epoch=int(ckpt["epoch"]), batch_in_epoch=int(ckpt["batch_in_epoch"]),
                         loss_sum=float(ckpt["loss_sum"]), loss_count=int(ckpt["loss_count"]),
                         rng_state=ckpt["rng_state"], history=TrainingHistory.from_dict(ckpt["history"]))
    for _, p in existing:
        p.unlink()
    return _Progress()


def _save(ckpt_dir: Path | None, model: nn.Module, opt: torch.optim.Optimizer, config: TrainConfig,
          state: _Progress) -> None:
    if ckpt_dir is None:
        return
    path = checkpoint_path(ckpt_dir, state.step)
    history = state.history
    history.checkpoints = [c for c in history.checkpoints if c[0] != state.step] + [(state.step, str(path))]
    save_checkpoint(ckpt_dir, state.step, {  # tensors and plain data only: loadable with torch.load(weights_only=True)
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "step": int(state.step),
        "epoch": int(state.epoch),
        "batch_in_epoch": int(state.batch_in_epoch),
        "loss_sum": float(state.loss_sum),
        "loss_count": int(state.loss_count),
        "rng_state": torch.get_rng_state(),
        "history": history.to_dict(),
        "config": config.to_dict(),
    })


def _epoch_batches(train: Any, config: TrainConfig, state: _Progress) -> Iterator:
    """The batches of ``state.epoch`` from ``state.batch_in_epoch`` on, with the epoch's seeds set."""
    torch.manual_seed(_epoch_seed(config.seed, state.epoch))
    if isinstance(train, DataLoader):
        if train.generator is not None:
            train.generator.manual_seed(_epoch_seed(config.seed, state.epoch))
        it: Iterator = iter(train)
        for _ in range(state.batch_in_epoch):
            next(it)
    else:
        _, it = _batches_tensor(train[0], train[1], config.batch_size, config.seed, state.epoch, state.batch_in_epoch)
    if state.batch_in_epoch > 0 and state.rng_state is not None:
        torch.set_rng_state(state.rng_state)
    state.rng_state = None
    return it


def _prepare(train: DataSpec, val: DataSpec | None, config: TrainConfig, n_classes: int) -> tuple[Any, Any, Any, int]:
    """``(train, val, train labels or None, batches per epoch)`` with pairs checked and turned into tensors."""
    if isinstance(train, DataLoader):
        labels = _loader_labels(train) if config.class_weighted else None
        n_batches = len(train)
    else:
        train = _check_pair(train, "train")
        labels = train[1].numpy()
        n_batches, _ = _batches_tensor(train[0], train[1], config.batch_size, config.seed, 0, 0)
    if labels is not None and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"train labels must lie in 0..{n_classes - 1} (the classifier has {n_classes} outputs)")
    val_data = None if val is None else (val if isinstance(val, DataLoader) else _check_pair(val, "val"))
    return train, val_data, labels, n_batches


def train_classifier(
    model: nn.Module,
    train: DataSpec,
    val: DataSpec | None,
    config: TrainConfig,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
) -> TrainingHistory:
    """Train ``model`` (which must have a ``classifier: nn.Linear``) with cross-entropy.

    train, val: ``(X, y)`` pairs (X: ``(n_samples, ...)`` array or tensor, float32, or int64 token ids when
    given as int32/int64; y: ``(n_samples,)`` ints in ``0..n_classes-1``, or ``(n_samples, T)`` per-position
    labels for a model giving ``(n_samples, T, n_classes)`` logits, e.g. a language model's next tokens; the
    loss and the validation scores then run over all positions) or DataLoaders yielding ``(x, y)`` batches;
    val may be None. With ``checkpoint_dir`` and ``resume=True``, training continues from the newest checkpoint
    there (same weights at the end as an uninterrupted run). Returns the per-epoch :class:`TrainingHistory`; the
    model is left in eval mode.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    classifier = getattr(model, "classifier", None)
    if not isinstance(classifier, nn.Linear):
        raise TypeError("model must have a `classifier` attribute of type nn.Linear")
    n_classes = classifier.out_features
    device = torch.device(config.device)
    model.to(device)
    train, val_data, train_labels, n_batches = _prepare(train, val, config, n_classes)
    weight = None
    if config.class_weighted:
        weight = torch.from_numpy(class_weights(train_labels, n_classes)).to(device)
    criterion = nn.CrossEntropyLoss(weight=weight)
    opt = _make_optimizer(model, config)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    state = _resume(ckpt_dir, model, opt, config, resume) if ckpt_dir is not None else _Progress()
    history = state.history
    history.resumed_from_step = state.step

    max_steps = config.max_steps if config.max_steps is not None else config.epochs * n_batches
    total = min(max_steps, config.epochs * n_batches)
    t0 = time.perf_counter()
    bar = tqdm(total=total, initial=min(state.step, total), disable=not config.progress, desc="train", leave=False,
               unit="step")
    if state.step == 0 and config.checkpoint_every > 0 and not history.checkpoints:
        _save(ckpt_dir, model, opt, config, state)
    last_saved = history.checkpoints[-1][0] if history.checkpoints else -1
    try:
        while state.epoch < config.epochs and (state.step < max_steps or state.batch_in_epoch > 0):
            it = _epoch_batches(train, config, state)
            model.train()
            for lr_group in opt.param_groups:
                lr_group["lr"] = scheduled_lr(config, state.step, state.epoch)
            for batch in it:
                if state.step >= max_steps:
                    break
                xb, yb = batch[0].to(device), batch[1].to(device)
                lr = scheduled_lr(config, state.step, state.epoch)
                for lr_group in opt.param_groups:
                    lr_group["lr"] = lr
                opt.zero_grad(set_to_none=True)
                out = model(xb)  # (batch, C) logits, or (batch, T, C) with per-position labels (batch, T)
                loss = criterion(out.reshape(-1, out.shape[-1]), yb.reshape(-1))
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss.item()} at step {state.step}; lower the learning rate")
                loss.backward()
                opt.step()
                state.step += 1
                state.batch_in_epoch += 1
                state.loss_sum += float(loss.detach()) * xb.shape[0]
                state.loss_count += xb.shape[0]
                bar.update(1)
                if config.checkpoint_every > 0 and state.step % config.checkpoint_every == 0:
                    _save(ckpt_dir, model, opt, config, state)
                    last_saved = state.step
            if state.batch_in_epoch == 0:
                break
            last_epoch = state.epoch == config.epochs - 1 and state.batch_in_epoch >= n_batches
            if (state.step >= max_steps or last_epoch) and ckpt_dir is not None and last_saved != state.step:
                _save(ckpt_dir, model, opt, config, state)
                last_saved = state.step
            _end_epoch(model, opt, config, state, val_data, n_classes, bar)
    finally:
        bar.close()
    history.total_steps = state.step
    history.wall_time_s += time.perf_counter() - t0
    model.eval()
    return history


def _end_epoch(model: nn.Module, opt: torch.optim.Optimizer, config: TrainConfig, state: _Progress, val_data: Any,
               n_classes: int, bar: Any) -> None:
    """Record the epoch (loss, learning rate, validation scores) and move to the next one."""
    history = state.history
    history.epoch.append(state.epoch)
    history.step.append(state.step)
    history.train_loss.append(state.loss_sum / max(state.loss_count, 1))
    history.lr.append(float(opt.param_groups[0]["lr"]))
    if val_data is not None:
        acc, f1 = _evaluate(model, val_data, n_classes, config.batch_size)
        history.val_accuracy.append(acc)
        history.val_macro_f1.append(f1)
        bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", val_acc=f"{acc:.3f}", val_f1=f"{f1:.3f}")
    else:
        bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}")
    state.epoch += 1
    state.batch_in_epoch = 0
    state.loss_sum, state.loss_count = 0.0, 0


def train_network(
    make_model: Callable[[], nn.Module],
    train: DataSpec,
    val: DataSpec | None,
    config: TrainConfig,
    *,
    seed: int,
    checkpoint_dir: str | os.PathLike | None = None,
) -> tuple[nn.Module, TrainingHistory]:
    """The one way a network is trained for a (sensor, seed): seed every generator with ``seed``, build the model
    with ``make_model()`` (its initialisation follows from the seed), train it with ``config`` (its ``seed``
    replaced by ``seed``) and return ``(model in eval mode, history)``; resumes from ``checkpoint_dir``."""
    run_config = dataclasses.replace(config, seed=int(seed))
    seed_everything(int(seed))
    model = make_model()
    history = train_classifier(model, train, val, run_config, checkpoint_dir=checkpoint_dir)
    return model, history
