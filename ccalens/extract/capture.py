"""Capture: forward hooks on named modules, run batch by batch in eval mode under no_grad, model restored."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .batching import batch_len, input_dtype, model_devices, prepare_batches, to_device
from .ids import normalise_ids
from .naming import list_layers, require_module, resolve_layers
from .transforms import OUTPUT, apply_transform, model_output, resolve_transforms, token_rows

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "ActivationBatch",
    "LayerCapture",
    "LayerSummary",
    "attention_mask",
    "describe_layers",
    "iter_activations",
]


@dataclass
class ActivationBatch:
    """One batch of activations: rows ``start .. start + len(ids)`` of the data.

    ``arrays[layer]``: ``(rows, *output_shape)`` (conv maps ``(rows, C, H, W)``, or what ``transform`` made of
    them), in the order of the requested layers; ``arrays`` is empty for a batch skipped on resume. With
    ``tokens=True``, rows are the batch's (unpadded) tokens and ``ids`` the sample id of each token.
    ``mask``: the batch's ``attention_mask`` ``(batch, tokens)`` when its inputs were a mapping holding one.
    """

    start: int
    ids: np.ndarray
    arrays: dict[str, np.ndarray]
    mask: np.ndarray | None = None


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    import torch

    if t.dtype in (torch.bfloat16,):
        t = t.float()
    return t.numpy()


class _Capture:
    """Forward hooks on named modules; each output (transformed on its device first) is copied to the CPU, or with
    ``on_device`` cloned where it is (a copy either way: in-place ops after the module cannot change it)."""

    def __init__(
        self, modules: dict[str, torch.nn.Module], transforms: dict[str, Any], strict_calls: bool = True,
        on_device: bool = False,
    ) -> None:
        self.modules = modules
        self.transforms = transforms
        self.strict_calls = strict_calls
        self.on_device = on_device
        self.outputs: dict[str, list[Any]] = {name: [] for name in modules}
        self.handles: list[Any] = []

    def __enter__(self) -> _Capture:
        try:
            for name, module in self.modules.items():
                self.handles.append(module.register_forward_hook(self._hook(name)))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def _hook(self, name: str) -> Any:
        def hook(module: Any, args: Any, output: Any) -> None:
            try:  # e.g. RNNs return (output, hidden), HuggingFace blocks tuples: keep the first tensor
                out = model_output(output, f"layer {name!r} ({type(module).__name__})")
            except TypeError:
                if not self.strict_calls:
                    return
                raise TypeError(
                    f"layer {name!r} ({type(module).__name__}) returned {type(output).__name__}, not a "
                    "tensor; hook a submodule that returns a tensor"
                ) from None
            self.add(name, out)

        return hook

    def add(self, name: str, out: Any) -> None:
        """Keep one output of layer ``name`` (transformed, detached, on the CPU or on its device)."""
        out = apply_transform(name, out.detach(), self.transforms.get(name))
        if hasattr(out, "detach"):
            out = out.detach().clone() if self.on_device else out.detach().to("cpu", copy=True)
        self.outputs.setdefault(name, []).append(out)

    def clear(self) -> None:
        for outs in self.outputs.values():
            outs.clear()

    def collect(self, n: int) -> dict[str, np.ndarray]:
        arrays = {}
        for name, outs in self.outputs.items():
            if not outs and not self.strict_calls:
                continue
            if not outs:
                raise RuntimeError(
                    f"layer {name!r} was not called during the forward pass (is it used by forward()?)"
                )
            if len(outs) > 1 and self.strict_calls:
                raise RuntimeError(
                    f"layer {name!r} was called {len(outs)} times in one forward pass (a shared module); "
                    "its activations are ambiguous: hook a module that runs once"
                )
            last = outs[-1]
            if hasattr(last, "detach"):
                arr = last if self.on_device else _to_numpy(last)
            else:
                arr = np.asarray(last)
            if (arr.ndim == 0 or arr.shape[0] != n) and self.strict_calls:
                raise RuntimeError(
                    f"layer {name!r} output has shape {tuple(arr.shape)}, whose first axis is not the batch "
                    f"of {n} samples (a sequence-first module?); hook a module with batch-first outputs"
                )
            arrays[name] = arr
            outs.clear()
        return arrays


def _forward_fn(model: torch.nn.Module, forward: Any) -> Any:
    """``f(inputs) -> output``: ``model(inputs)`` / ``model(**inputs)``, a method named ``forward``, or
    ``forward(model, inputs)``."""
    if forward is None:
        call = model
    elif isinstance(forward, str):
        call = getattr(model, forward, None)
        if not callable(call):
            raise AttributeError(f"forward={forward!r}: {type(model).__name__} has no method {forward!r}")
    elif callable(forward):
        return lambda inputs: forward(model, inputs)
    else:
        raise TypeError(f"forward must be None, a method name or a callable (model, inputs), got {forward!r}")
    return lambda inputs: call(**inputs) if isinstance(inputs, Mapping) else call(inputs)


class LayerCapture:
    """A model prepared to give its named layers' outputs batch by batch (the one capture path).

    ``with LayerCapture(model, layers, ...) as cap: arrays = cap.run(inputs)``: on entry the model moves to
    ``device`` and goes to eval mode and the hooks are registered; :meth:`run` runs one batch under
    ``no_grad`` and returns ``{layer: (rows, ...)}`` in ``layers`` order (tokens as samples with ``tokens=True``);
    on exit the hooks are removed and every submodule's train/eval flag and the model's device are restored.
    ``on_device``: the outputs stay torch tensors on the model's device (for statistics computed there,
    :mod:`ccalens.core.device`) instead of NumPy copies on the host.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        layers: Sequence[str] | str,
        *,
        device: Any = None,
        flatten: bool = False,
        transform: Any = None,
        tokens: bool = False,
        forward: Any = None,
        strict_calls: bool = True,
        on_device: bool = False,
    ) -> None:
        import torch

        require_module(model)
        self.on_device = on_device
        resolved = resolve_layers(model, layers)
        self.model = model
        self.names = list(resolved)
        self.tokens = tokens
        self._modules = {name: module for name, module in resolved.items() if module is not None}
        self._transforms = resolve_transforms(transform, flatten, self.names)
        self._call = _forward_fn(model, forward)
        self._strict = strict_calls
        devices = model_devices(model)
        self.device = (
            torch.device(device) if device is not None else (next(iter(devices)) if len(devices) == 1 else None)
        )
        if self.device is None:
            self.device = torch.device("cpu")
        self._move = len(devices) == 1 and next(iter(devices)) != self.device
        self._original_device = next(iter(devices)) if devices else None
        self._in_dtype = input_dtype(model)
        self._modes: dict[Any, bool] = {}
        self._capture: _Capture | None = None

    def __enter__(self) -> LayerCapture:
        self._modes = {m: m.training for m in self.model.modules()}
        try:
            if self._move:
                self.model.to(self.device)
            self.model.eval()
            self._capture = _Capture(self._modules, self._transforms, strict_calls=self._strict,
                                     on_device=self.on_device).__enter__()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._capture is not None:
            self._capture.__exit__()
            self._capture = None
        for m, was_training in self._modes.items():
            m.training = was_training
        self._modes = {}
        if self._move and self._original_device is not None:
            self.model.to(self._original_device)

    def run(self, inputs: Any, ids: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """The layers' outputs on one batch of ``inputs`` and the ids of their rows (``ids`` repeated per token
        with ``tokens=True``)."""
        import torch

        if self._capture is None:
            raise RuntimeError("LayerCapture.run needs the capture entered: with LayerCapture(...) as cap: ...")
        n = batch_len(inputs, 0)
        self._capture.clear()  # outputs recorded while another capture ran the same model are not this batch's
        with torch.no_grad():
            output = self._call(to_device(inputs, self.device, self._in_dtype))
        if len(self._modules) < len(self.names):
            self._capture.add(OUTPUT, model_output(output, f"{type(self.model).__name__} (layer {OUTPUT!r})"))
        collected = self._capture.collect(n)
        arrays = {name: collected[name] for name in self.names if name in collected}
        if self.tokens:
            mask = attention_mask(inputs)
            rows = None
            for name, arr in arrays.items():
                arrays[name], rows = token_rows(name, arr, mask)
            if ids is not None and rows is not None:
                ids = ids[rows]
        return arrays, ids


def iter_activations(
    model: torch.nn.Module,
    data: Any,
    layers: Sequence[str] | str,
    *,
    batch_size: int | None = 256,
    device: Any = None,
    sample_ids: Any = None,
    ids_position: int | str | None = None,
    flatten: bool = False,
    transform: Any = None,
    tokens: bool = False,
    forward: Any = None,
    progress: bool = True,
    skip_rows: Any = None,
    _strict_calls: bool = True,
) -> Iterator[ActivationBatch]:
    """Yield :class:`ActivationBatch` es of the named layers' outputs, batch by batch.

    Runs in eval mode under ``torch.no_grad()``; the hooks are removed, every submodule's train/eval flag
    and the model's device are restored when the iteration ends or is abandoned. ``skip_rows(start,
    stop) -> bool`` may say that a batch is not needed (resume): it is then yielded with no arrays and
    the model is not run on it. See :func:`extract` for the arguments.
    """
    import torch

    capture = LayerCapture(
        model,
        layers,
        device=device,
        flatten=flatten,
        transform=transform,
        tokens=tokens,
        forward=forward,
        strict_calls=_strict_calls,
    )
    if ids_position is not None and sample_ids is not None:
        raise ValueError("give sample ids either as sample_ids or through ids_position, not both")
    prepared = prepare_batches(data, batch_size, ids_position)
    ids_all = None
    if sample_ids is not None:
        ids_all = np.asarray(
            sample_ids.detach().cpu().numpy() if hasattr(sample_ids, "detach") else sample_ids
        )
        if prepared.n_samples is not None:
            ids_all = normalise_ids(ids_all, prepared.n_samples, "sample_ids")
        else:
            ids_all = normalise_ids(ids_all, ids_all.shape[0] if ids_all.ndim == 1 else -1, "sample_ids")

    from tqdm.auto import tqdm

    bar = tqdm(
        total=prepared.n_batches, desc=f"extract {type(model).__name__}", unit="batch", disable=not progress
    )
    start = 0
    try:
        with capture, torch.no_grad():
            for inputs, batch_ids in prepared.batches:
                n = batch_len(inputs, 0)
                stop = start + n
                if batch_ids is None:
                    if ids_all is not None:
                        if stop > len(ids_all):
                            raise ValueError(
                                f"sample_ids has {len(ids_all)} ids but the data yields more samples"
                            )
                        batch_ids = ids_all[start:stop]
                    else:
                        batch_ids = np.arange(start, stop, dtype=np.int64)
                mask = attention_mask(inputs)
                if skip_rows is not None and skip_rows(start, stop):
                    yield ActivationBatch(start, batch_ids, {}, mask)
                else:
                    arrays, ids = capture.run(inputs, batch_ids)
                    assert ids is not None
                    yield ActivationBatch(start, ids, arrays, mask)
                start = stop
                bar.update(1)
        if ids_all is not None and start != len(ids_all):
            raise ValueError(f"sample_ids has {len(ids_all)} ids but the data yielded {start} samples")
    finally:
        bar.close()


def attention_mask(inputs: Any) -> np.ndarray | None:
    """The ``attention_mask`` ``(batch, tokens)`` of mapping inputs, or None."""
    if not isinstance(inputs, Mapping) or inputs.get("attention_mask") is None:
        return None
    mask = inputs["attention_mask"]
    return mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)


@dataclass(frozen=True)
class LayerSummary:
    """One submodule: its name, type, parameter count and (if an example input was given) output shape."""

    name: str
    type: str
    n_params: int
    output_shape: tuple[int, ...] | None = None

    def __str__(self) -> str:
        shape = "" if self.output_shape is None else f" -> {tuple(self.output_shape)}"
        return f"{self.name:<32} {self.type:<20} {self.n_params:>10,d} params{shape}"


def describe_layers(
    model: torch.nn.Module, example_input: Any = None, *, device: Any = None
) -> list[LayerSummary]:
    """Every submodule with its type and parameter count; with ``example_input`` (a batch) also the
    output shape of each, from one forward pass in eval mode (mode and hooks restored afterwards)."""
    require_module(model)
    shapes: dict[str, tuple[int, ...]] = {}
    if example_input is not None:
        names = list_layers(model)
        gen = iter_activations(
            model, example_input, names, batch_size=None, device=device, progress=False, _strict_calls=False
        )
        try:
            batch = next(gen)
        finally:
            gen.close()
        shapes = {name: tuple(arr.shape) for name, arr in batch.arrays.items()}
    return [
        LayerSummary(
            name=name,
            type=type(module).__name__,
            n_params=sum(p.numel() for p in module.parameters()),
            output_shape=shapes.get(name),
        )
        for name, module in model.named_modules()
        if name
    ]
