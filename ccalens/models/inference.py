"""Inference in eval mode without gradients: logits and penultimate features of a model, in batches, through
:func:`ccalens.extract.extract` (the one capture path)."""

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


def _batched_apply(model: nn.Module, X: ArrayLike | DataLoader, batch_size: int, forward: str | None) -> np.ndarray:
    """``model(X)`` (``forward=None``) or ``model.<forward>(X)`` in batches through :func:`ccalens.extract.extract`
    (the one capture path: eval mode, no_grad, modes restored, the model left on its device)."""
    from ccalens.extract import extract

    if not isinstance(X, np.ndarray | torch.Tensor | DataLoader):
        raise TypeError(f"X must be a numpy array, a torch tensor or a DataLoader, got {type(X).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not isinstance(X, DataLoader) and len(X) == 0:
        raise ValueError("X is empty")
    data = X.detach() if isinstance(X, torch.Tensor) else X
    return extract(model, data, "output", forward=forward, batch_size=batch_size, progress=False)["output"]


def predict_logits(model: nn.Module, X: ArrayLike | DataLoader, batch_size: int = 512) -> np.ndarray:
    """Logits ``(n_samples, n_classes)``, eval mode, no gradients. X: ``(n_samples, ...)`` or a DataLoader."""
    return _batched_apply(model, X, batch_size, None)


def extract_penultimate(model: nn.Module, X: ArrayLike | DataLoader, batch_size: int = 512) -> np.ndarray:
    """Penultimate features ``model.features(X)``: ``(n_samples, d)``, eval mode, no gradients."""
    if not hasattr(model, "features"):
        raise TypeError(f"model must have a features(x) method, got {type(model).__name__}")
    return _batched_apply(model, X, batch_size, "features")

