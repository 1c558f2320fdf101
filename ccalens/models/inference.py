"""Inference in eval mode without gradients: logits and penultimate features of a model, in batches."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

__all__ = ["ArrayLike", "as_tensor", "extract_penultimate", "predict_logits"]

ArrayLike = np.ndarray | torch.Tensor


def as_tensor(x: ArrayLike, name: str, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(dtype)
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x)).to(dtype)
    raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")



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
                Xt = as_tensor(X, "X", torch.float32)
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

