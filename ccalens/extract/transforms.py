"""What is kept of a captured output: conv maps as they are, flattened or averaged; tokens as samples.

Applied to the torch tensor on the model's device, before the copy to the CPU, so a pooled conv map crosses
the bus as ``(batch, C)`` rather than ``(batch, C, H, W)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["OUTPUT", "TRANSFORMS", "apply_transform", "model_output", "resolve_transforms", "token_rows"]

#: the layer name of the model's own output (its logits): ``extract(model, data, ["fc1", "output"])``
OUTPUT = "output"

#: named transforms: ``"none"`` keeps the output, ``"flatten"`` gives ``(batch, prod(rest))``, ``"mean"``
#: averages every axis after the channel axis 1 (global average pooling of ``(batch, C, H, W)`` maps)
TRANSFORMS = ("none", "flatten", "mean")

Transform = Callable[[Any], Any] | None


def _named(name: str) -> Transform:
    if name == "none":
        return None
    if name == "flatten":
        return lambda t: t.reshape(t.shape[0], -1)
    return lambda t: t.mean(dim=tuple(range(2, t.ndim))) if t.ndim > 2 else t


def _one(value: Any, where: str) -> Transform:
    if value is None:
        return None
    if isinstance(value, str):
        if value not in TRANSFORMS:
            raise ValueError(f"{where} must be one of {', '.join(map(repr, TRANSFORMS))} or a callable, got {value!r}")
        return _named(value)
    if callable(value):
        return value
    raise TypeError(f"{where} must be one of {', '.join(map(repr, TRANSFORMS))}, a callable or None, got {value!r}")


def resolve_transforms(transform: Any, flatten: bool, layers: Sequence[str]) -> dict[str, Transform]:
    """One transform (or None) per layer from ``transform``: None, a name in :data:`TRANSFORMS`, a callable
    (tensor ``(batch, ...)`` -> ``(batch, ...)``), or a mapping layer -> one of those (missing layers: kept)."""
    if flatten:
        if transform not in (None, "flatten"):
            raise ValueError(f"give flatten=True or transform={transform!r}, not both")
        transform = "flatten"
    if isinstance(transform, Mapping):
        unknown = sorted(set(transform) - set(layers))
        if unknown:
            raise ValueError(f"transform names layers that are not extracted: {unknown} (layers: {list(layers)})")
        return {name: _one(transform.get(name), f"transform[{name!r}]") for name in layers}
    resolved = _one(transform, "transform")
    return dict.fromkeys(layers, resolved)


def apply_transform(name: str, tensor: Any, transform: Transform) -> Any:
    """``transform(tensor)``, checked to keep the batch axis."""
    if transform is None:
        return tensor
    out = transform(tensor)
    if not hasattr(out, "shape") or len(out.shape) == 0 or out.shape[0] != tensor.shape[0]:
        raise ValueError(
            f"the transform of layer {name!r} turned shape {tuple(tensor.shape)} into "
            f"{tuple(getattr(out, 'shape', ()))}: it must keep the batch axis first"
        )
    return out


def model_output(output: Any, what: str) -> Any:
    """The tensor of a model's or module's output: itself, ``.logits`` / ``["logits"]`` of a HuggingFace
    ``ModelOutput`` or dict, else the first tensor of a mapping, dataclass, tuple or list."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    logits = output.get("logits") if isinstance(output, Mapping) else getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, Mapping):
        values: list[Any] = list(output.values())
    elif dataclasses.is_dataclass(output) and not isinstance(output, type):
        values = [getattr(output, f.name) for f in dataclasses.fields(output)]
    elif isinstance(output, (tuple, list)):
        values = list(output)
    else:
        values = []
    for value in values:
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"{what} returned {type(output).__name__}, which holds no tensor")


def token_rows(name: str, arr: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Tokens as samples: ``(batch, tokens, features)`` -> ``(kept tokens, features)`` and the batch row of each.

    ``mask: (batch, tokens)`` (an attention mask: nonzero = a real token, 0 = padding) drops the padding rows.
    """
    if arr.ndim != 3:
        raise ValueError(
            f"layer {name!r} gives shape {arr.shape}; with tokens as samples every layer must give "
            "(batch, tokens, features)"
        )
    batch, tokens = arr.shape[:2]
    if mask is None:
        keep = np.ones((batch, tokens), dtype=bool)
    else:
        keep = np.asarray(mask) != 0
        if keep.shape != (batch, tokens):
            raise ValueError(
                f"attention_mask has shape {keep.shape} but layer {name!r} gives {tokens} tokens for {batch} "
                f"samples (shape {arr.shape})"
            )
    rows = np.nonzero(keep)[0]
    if hasattr(arr, "detach"):  # a tensor on its device: the mask goes there (it is small)
        import torch

        return arr[torch.as_tensor(keep, device=arr.device)], rows
    return arr[keep], rows
