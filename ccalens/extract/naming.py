"""Layer names of a torch model: listing, resolving (with close-name hints) and the weights' fingerprint."""

from __future__ import annotations

import difflib
import hashlib
from typing import TYPE_CHECKING, Any

from .transforms import OUTPUT

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["LayerNotFoundError", "layer_names", "list_layers", "model_fingerprint", "require_module", "resolve_layers"]


class LayerNotFoundError(KeyError):
    """A layer name that the model does not have (the message lists close names)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def require_module(model: Any) -> None:
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def list_layers(model: torch.nn.Module, *, leaves_only: bool = False) -> list[str]:
    """Names of the model's submodules (``named_modules`` order, the root excluded), usable as ``layers``."""
    require_module(model)
    return [
        name
        for name, module in model.named_modules()
        if name and (not leaves_only or next(module.children(), None) is None)
    ]


def layer_names(layers: Any, what: str = "layers") -> list[str]:
    """``layers`` (a module name or an iterable of names) as a non-empty list of distinct strings; a TypeError or
    ValueError naming ``what`` otherwise."""
    if isinstance(layers, str):
        layers = [layers]
    try:
        names = list(layers)
    except TypeError:
        raise TypeError(f"{what} must be a module name or a list of names, got {layers!r}") from None
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError(f"{what} must be a non-empty list of module names (see list_layers), got {layers!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} contains duplicates: {names}")
    return names


def resolve_layers(model: torch.nn.Module, layers: Any) -> dict[str, torch.nn.Module | None]:
    """Layer name -> submodule, in the given order; :data:`OUTPUT` (``"output"``), unless the model has a
    submodule of that name, maps to None: the model's own output."""
    layers = layer_names(layers)
    modules = dict(model.named_modules())
    modules.pop("", None)
    out: dict[str, torch.nn.Module | None] = {}
    for name in layers:
        if name == OUTPUT and name not in modules:
            out[name] = None
            continue
        if name not in modules:
            close = difflib.get_close_matches(name, list(modules), n=5, cutoff=0.5)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            avail = ", ".join(list(modules)[:20]) + (", ..." if len(modules) > 20 else "")
            raise LayerNotFoundError(
                f"no module named {name!r} in {type(model).__name__}{hint} (list_layers(model) gives all "
                f"names, and {OUTPUT!r} the model's output; first ones: {avail})"
            )
        out[name] = modules[name]
    return out


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha256 of the model's state dict (names, shapes, dtypes, values): detects other weights on resume."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if not isinstance(tensor, torch.Tensor):
            continue
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()
