"""Activations out of PyTorch models by module name: forward hooks, eval mode, no_grad, aligned sample ids.

``extract(model, data, ["layer1", "fc"])`` runs the model over the data in batches (eval mode, no
gradients, on the chosen device), captures the output of each named module with a forward hook, and
returns them with the sample id of every row, in memory or written to an :class:`ActivationStore`
(resumable). torch is imported inside the functions, so ``ccalens.extract`` imports without it.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ccalens.core.stats import SufficientStats

from ._exports import HOOKS
from .store import (
    ActivationStore,
    SampleMismatchError,
    ShardWriter,
    _normalise_ids,
    _WriterLock,
    check_compatible,
    stats_from_store,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = list(HOOKS)


# ------------------------------------------------------------------------------------------- layer names
class LayerNotFoundError(KeyError):
    """A layer name that the model does not have (the message lists close names)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _require_module(model: Any) -> None:
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def list_layers(model: torch.nn.Module, *, leaves_only: bool = False) -> list[str]:
    """Names of the model's submodules (``named_modules`` order, the root excluded), usable as ``layers``."""
    _require_module(model)
    return [
        name
        for name, module in model.named_modules()
        if name and (not leaves_only or next(module.children(), None) is None)
    ]


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
    _require_module(model)
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


def _resolve_layers(model: torch.nn.Module, layers: Any) -> dict[str, torch.nn.Module]:
    if isinstance(layers, str):
        layers = [layers]
    try:
        layers = list(layers)
    except TypeError:
        raise TypeError(f"layers must be a module name or a list of names, got {layers!r}") from None
    if not layers or not all(isinstance(n, str) for n in layers):
        raise TypeError(f"layers must be a non-empty list of module names (see list_layers), got {layers!r}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers contains duplicates: {layers}")
    modules = dict(model.named_modules())
    modules.pop("", None)
    out = {}
    for name in layers:
        if name not in modules:
            close = difflib.get_close_matches(name, list(modules), n=5, cutoff=0.5)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            avail = ", ".join(list(modules)[:20]) + (", ..." if len(modules) > 20 else "")
            raise LayerNotFoundError(
                f"no module named {name!r} in {type(model).__name__}{hint} (list_layers(model) gives all "
                f"names; first ones: {avail})"
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


# ------------------------------------------------------------------------------------------- data
@dataclass
class _Data:
    batches: Iterator[tuple[Any, np.ndarray | None]]
    n_batches: int | None
    n_samples: int | None


def _is_array(x: Any) -> bool:
    import torch

    return isinstance(x, (torch.Tensor, np.ndarray))


def _array_batches(inputs: Any, ids: np.ndarray | None, batch_size: int | None) -> _Data:
    n = int(inputs.shape[0])
    step = n if batch_size is None else batch_size
    starts = range(0, n, max(1, step))

    def gen() -> Iterator[tuple[Any, np.ndarray | None]]:
        for s in starts:
            yield inputs[s : s + step], None if ids is None else ids[s : s + step]

    return _Data(gen(), len(starts), n)


def _prepare_data(data: Any, batch_size: int | None, ids_position: int | None) -> _Data:
    """Normalise ``data`` into batches of ``(inputs, ids or None)``."""
    import torch
    from torch.utils.data import DataLoader, Dataset, RandomSampler

    if isinstance(data, tuple) and len(data) == 2 and _is_array(data[0]) and not _is_array(data[1]):
        inputs, ids = data
        return _array_batches(
            inputs, _normalise_ids(ids, int(inputs.shape[0]), "data[1] (sample ids)"), batch_size
        )
    if isinstance(data, tuple) and len(data) == 2 and _is_array(data[0]) and _is_array(data[1]):
        inputs, ids = data
        if np.ndim(ids) == 1 and int(ids.shape[0]) == int(inputs.shape[0]) and len(inputs.shape) > 1:
            return _array_batches(
                inputs, _normalise_ids(ids, int(inputs.shape[0]), "data[1] (sample ids)"), batch_size
            )
        raise ValueError(
            f"data as a pair must be (inputs, sample_ids) with one id per input; got shapes "
            f"{tuple(inputs.shape)} and {tuple(np.shape(ids))}"
        )
    if isinstance(data, np.ndarray):
        if data.dtype.kind not in "fiub":
            raise TypeError(f"data must be numeric, got dtype {data.dtype}")
        return _array_batches(torch.from_numpy(np.ascontiguousarray(data)), None, batch_size)
    if isinstance(data, torch.Tensor):
        return _array_batches(data, None, batch_size)
    if isinstance(data, DataLoader):
        sampler = getattr(data.batch_sampler, "sampler", data.sampler)
        if isinstance(sampler, RandomSampler) and ids_position is None:
            raise ValueError(
                "data is a shuffling DataLoader: the order of samples differs between runs, so features "
                "of two models (or a resumed extraction) cannot be aligned. Use shuffle=False, or have "
                "each batch carry the sample ids and pass ids_position"
            )
        try:
            n_batches = len(data)
        except TypeError:
            n_batches = None
        try:
            n_samples = len(data.dataset)  # type: ignore[arg-type]
        except TypeError:
            n_samples = None
        if data.drop_last:
            n_samples = None
        return _Data(_split_batches(data, ids_position), n_batches, n_samples)
    if isinstance(data, Dataset) and hasattr(data, "__len__"):
        loader = DataLoader(data, batch_size=batch_size or len(data), shuffle=False)  # type: ignore[arg-type]
        return _Data(_split_batches(loader, ids_position), len(loader), len(data))  # type: ignore[arg-type]
    if hasattr(data, "__iter__") and not isinstance(data, (str, bytes, dict)):
        try:
            n_batches = len(data)
        except TypeError:
            n_batches = None
        return _Data(_split_batches(data, ids_position), n_batches, None)
    raise TypeError(
        "data must be a torch DataLoader or Dataset, a tensor or ndarray of inputs, a pair "
        f"(inputs, sample_ids), or an iterable of batches; got {type(data).__name__}"
    )


def _split_batches(batches: Any, ids_position: int | None) -> Iterator[tuple[Any, np.ndarray | None]]:
    for k, batch in enumerate(batches):
        if isinstance(batch, (tuple, list)):
            if not batch:
                raise ValueError(f"batch {k} is empty")
            inputs = batch[0]
            ids = None
            if ids_position is not None:
                if not -len(batch) <= ids_position < len(batch):
                    raise IndexError(f"ids_position={ids_position} but batch {k} has {len(batch)} elements")
                ids = batch[ids_position]
        elif isinstance(batch, dict):
            raise TypeError(
                f"batch {k} is a dict; yield the model inputs (or a tuple whose first element is the inputs) "
                "from your iterable instead"
            )
        else:
            if ids_position is not None:
                raise ValueError(f"ids_position={ids_position} but batch {k} is not a tuple or list")
            inputs, ids = batch, None
        n = _batch_len(inputs, k)
        yield inputs, None if ids is None else _normalise_ids(ids, n, f"sample ids of batch {k}")


def _batch_len(inputs: Any, k: int) -> int:
    shape = getattr(inputs, "shape", None)
    if shape is None or len(shape) == 0:
        raise TypeError(
            f"inputs of batch {k} must be a tensor or array with a batch axis, got {type(inputs).__name__}"
        )
    return int(shape[0])


# ------------------------------------------------------------------------------------------- capture
@dataclass
class ActivationBatch:
    """One batch of activations: rows ``start .. start + len(ids)`` of the data.

    ``arrays[layer]``: ``(rows, *output_shape)`` (conv maps ``(rows, C, H, W)``, or ``(rows, C*H*W)`` with
    ``flatten=True``); ``arrays`` is empty for a batch skipped on resume.
    """

    start: int
    ids: np.ndarray
    arrays: dict[str, np.ndarray]


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    import torch

    if t.dtype in (torch.bfloat16,):
        t = t.float()
    return t.numpy()


class _Capture:
    """Forward hooks on named modules; copies each output to the CPU (a copy: in-place ops after the module
    cannot change it)."""

    def __init__(self, modules: dict[str, torch.nn.Module], strict_calls: bool = True) -> None:
        self.modules = modules
        self.strict_calls = strict_calls
        self.outputs: dict[str, list[Any]] = {name: [] for name in modules}
        self.handles: list[Any] = []

    def __enter__(self) -> _Capture:
        for name, module in self.modules.items():
            self.handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def _hook(self, name: str) -> Any:
        import torch

        def hook(module: Any, args: Any, output: Any) -> None:
            out = output
            if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
                out = out[0]  # e.g. RNNs return (output, hidden): keep the output
            if not isinstance(out, torch.Tensor):
                if not self.strict_calls:
                    return
                raise TypeError(
                    f"layer {name!r} ({type(module).__name__}) returned {type(output).__name__}, not a "
                    "tensor; hook a submodule that returns a tensor"
                )
            self.outputs[name].append(out.detach().to("cpu", copy=True))

        return hook

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
            arr = _to_numpy(outs[-1])
            if (arr.ndim == 0 or arr.shape[0] != n) and self.strict_calls:
                raise RuntimeError(
                    f"layer {name!r} output has shape {tuple(arr.shape)}, whose first axis is not the batch "
                    f"of {n} samples (a sequence-first module?); hook a module with batch-first outputs"
                )
            arrays[name] = arr
            outs.clear()
        return arrays


def _model_devices(model: torch.nn.Module) -> set[Any]:
    return {t.device for t in list(model.parameters()) + list(model.buffers())}


def _input_dtype(model: torch.nn.Module) -> Any:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def _to_device(inputs: Any, device: Any, dtype: Any) -> Any:
    import torch

    if isinstance(inputs, np.ndarray):
        inputs = torch.from_numpy(np.ascontiguousarray(inputs))
    if isinstance(inputs, torch.Tensor):
        if dtype is not None and inputs.is_floating_point() and inputs.dtype != dtype:
            inputs = inputs.to(dtype)
        return inputs.to(device)
    raise TypeError(f"model inputs must be a tensor or ndarray, got {type(inputs).__name__}")


def iter_activations(
    model: torch.nn.Module,
    data: Any,
    layers: Sequence[str] | str,
    *,
    batch_size: int | None = 256,
    device: Any = None,
    sample_ids: Any = None,
    ids_position: int | None = None,
    flatten: bool = False,
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

    _require_module(model)
    modules = _resolve_layers(model, layers)
    if batch_size is not None and (
        not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if ids_position is not None and sample_ids is not None:
        raise ValueError("give sample ids either as sample_ids or through ids_position, not both")
    prepared = _prepare_data(data, batch_size, ids_position)
    ids_all = None
    if sample_ids is not None:
        ids_all = np.asarray(
            sample_ids.detach().cpu().numpy() if hasattr(sample_ids, "detach") else sample_ids
        )
        if prepared.n_samples is not None:
            ids_all = _normalise_ids(ids_all, prepared.n_samples, "sample_ids")
        else:
            ids_all = _normalise_ids(ids_all, ids_all.shape[0] if ids_all.ndim == 1 else -1, "sample_ids")

    devices = _model_devices(model)
    target = (
        torch.device(device) if device is not None else (next(iter(devices)) if len(devices) == 1 else None)
    )
    if target is None:
        target = torch.device("cpu")
    move = len(devices) == 1 and next(iter(devices)) != target
    original_device = next(iter(devices)) if devices else None
    modes = {m: m.training for m in model.modules()}
    in_dtype = _input_dtype(model)

    from tqdm.auto import tqdm

    bar = tqdm(
        total=prepared.n_batches, desc=f"extract {type(model).__name__}", unit="batch", disable=not progress
    )
    start = 0
    try:
        if move:
            model.to(target)
        model.eval()
        with _Capture(modules, strict_calls=_strict_calls) as capture, torch.no_grad():
            for inputs, batch_ids in prepared.batches:
                n = _batch_len(inputs, 0)
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
                if skip_rows is not None and skip_rows(start, stop):
                    yield ActivationBatch(start, batch_ids, {})
                else:
                    model(_to_device(inputs, target, in_dtype))
                    arrays = capture.collect(n)
                    if flatten:
                        arrays = {k: v.reshape(n, -1) for k, v in arrays.items()}
                    yield ActivationBatch(start, batch_ids, arrays)
                start = stop
                bar.update(1)
        if ids_all is not None and start != len(ids_all):
            raise ValueError(f"sample_ids has {len(ids_all)} ids but the data yielded {start} samples")
    finally:
        bar.close()
        for m, was_training in modes.items():
            m.training = was_training
        if move and original_device is not None:
            model.to(original_device)


# ------------------------------------------------------------------------------------------- results
@dataclass
class Activations:
    """Activations in memory: ``acts[layer]`` is ``(n, *output_shape)``; ``acts.sample_ids`` is ``(n,)``."""

    arrays: dict[str, np.ndarray]
    sample_ids: np.ndarray
    layers: list[str] = field(default_factory=list)

    def __getitem__(self, layer: str) -> np.ndarray:
        try:
            return self.arrays[layer]
        except KeyError:
            raise KeyError(f"no layer {layer!r}; extracted: {list(self.arrays)}") from None

    @property
    def n_samples(self) -> int:
        return int(self.sample_ids.shape[0])

    def check_aligned(self, other: Activations | StoredActivations) -> None:
        """Raise :class:`SampleMismatchError` unless ``other`` holds the same sample ids in the same order."""
        _compare_ids(self.sample_ids, other.sample_ids, "these activations", "other")

    def stats(self, layers: Sequence[str] | None = None, transform: Any = None) -> SufficientStats:
        """:class:`SufficientStats` of the given layers (default all); ``transform`` maps non-2-D outputs."""
        names = list(self.arrays) if layers is None else list(layers)
        blocks = []
        for name in names:
            arr = self[name]
            arr = transform(arr) if transform is not None else arr
            if arr.ndim != 2:
                raise ValueError(f"layer {name!r} has shape {arr.shape}; pass transform= or flatten=True")
            blocks.append(arr)
        return SufficientStats.from_arrays(*blocks, names=tuple(names))


@dataclass
class StoredActivations:
    """Activations written to an :class:`ActivationStore` under ``model_name``; read them lazily."""

    store: ActivationStore
    model_name: str
    layers: list[str]

    @property
    def keys(self) -> list[tuple[str, str]]:
        """``[(model_name, layer), ...]`` for :func:`stats_from_store` / :func:`aligned_batches`."""
        return [(self.model_name, layer) for layer in self.layers]

    @property
    def sample_ids(self) -> np.ndarray:
        return self.store.sample_ids(self.model_name, self.layers[0])

    def __getitem__(self, layer: str) -> np.ndarray:
        """The whole layer loaded in memory (use the store's iterators for big layers)."""
        if layer not in self.layers:
            raise KeyError(f"no layer {layer!r}; extracted: {self.layers}")
        return self.store.load(self.model_name, layer)

    def check_aligned(self, other: Activations | StoredActivations) -> None:
        _compare_ids(self.sample_ids, other.sample_ids, f"{self.model_name}", "other")

    def stats(
        self, layers: Sequence[str] | None = None, transform: Any = None, progress: bool = False
    ) -> SufficientStats:
        names = self.layers if layers is None else list(layers)
        return stats_from_store(
            self.store, [(self.model_name, n) for n in names], transform=transform, progress=progress
        )


def _compare_ids(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise SampleMismatchError(f"{name_a} has {a.shape[0]} samples but {name_b} has {b.shape[0]}")
    if a.dtype.kind != b.dtype.kind or not np.array_equal(a, b):
        k = int(np.argmax(a != b)) if a.dtype.kind == b.dtype.kind else 0
        raise SampleMismatchError(
            f"sample ids differ between {name_a} and {name_b}: first at row {k} "
            f"({a[k].item()!r} vs {b[k].item()!r})"
        )


# ------------------------------------------------------------------------------------------- extract
def extract(
    model: torch.nn.Module,
    data: Any,
    layers: Sequence[str] | str,
    *,
    batch_size: int | None = 256,
    device: Any = None,
    sample_ids: Any = None,
    ids_position: int | None = None,
    store: ActivationStore | None = None,
    model_name: str | None = None,
    flatten: bool = False,
    progress: bool = True,
    shard_rows: int | None = None,
    overwrite: bool = False,
) -> Activations | StoredActivations:
    """Outputs of the named modules of ``model`` for every sample of ``data``.

    Args:
        model: a ``torch.nn.Module``; run in eval mode under ``no_grad`` (modes, device and hooks restored).
        data: a ``DataLoader`` (not shuffling, unless ids come in the batches), a ``Dataset``, a tensor or
            ndarray of inputs ``(n, ...)``, a pair ``(inputs, sample_ids)``, or any iterable of batches.
            A batch is the inputs, or a tuple/list whose first element is the inputs.
        layers: module names (see :func:`list_layers`); an unknown name raises ``KeyError`` with close names.
        batch_size: for tensors, arrays and datasets (a DataLoader keeps its own).
        device: where to run (default: the model's device); the model is moved there and back.
        sample_ids: ids of all samples in data order ``(n,)``, ints or strings (default ``0..n-1``).
        ids_position: instead, each batch tuple carries its ids at this position (e.g. 2 for (x, y, id)).
        store: write to this :class:`ActivationStore` under ``model_name`` instead of returning arrays.
            An interrupted extraction resumes: committed shards are kept (their ids are checked against
            the data) and the model is run only on the rest; other weights or settings raise
            :class:`StoreMismatchError`. A committed shard that fails its checksum is extracted again
            (with a warning naming it). The layers' writer locks are taken first: a layer that another
            writer holds raises :class:`LayerLockedError`, and nothing is deleted or written.
        flatten: reshape each output to ``(n, features)``; by default conv maps keep ``(n, C, H, W)``.
        progress: show a tqdm progress bar.
        shard_rows, overwrite: rows per shard (default ~64 MB shards); start the stored layers again.

    Returns:
        :class:`Activations` (in memory) or, with ``store``, :class:`StoredActivations`.
    """
    if store is None:
        if model_name is not None:
            raise ValueError("model_name is only used with store=")
        arrays: dict[str, list[np.ndarray]] = {}
        ids: list[np.ndarray] = []
        names = [layers] if isinstance(layers, str) else list(layers)
        gen = iter_activations(
            model,
            data,
            names,
            batch_size=batch_size,
            device=device,
            sample_ids=sample_ids,
            ids_position=ids_position,
            flatten=flatten,
            progress=progress,
        )
        try:
            for batch in gen:
                ids.append(batch.ids)
                for name, arr in batch.arrays.items():
                    arrays.setdefault(name, []).append(arr)
        finally:
            gen.close()  # restores the model (hooks, modes, device) even if the caller's code raised
        if not ids:
            raise ValueError("data yielded no samples")
        return Activations(
            arrays={name: np.concatenate(parts) for name, parts in arrays.items()},
            sample_ids=np.concatenate(ids),
            layers=names,
        )
    return _extract_to_store(
        model,
        data,
        layers,
        store,
        model_name,
        batch_size=batch_size,
        device=device,
        sample_ids=sample_ids,
        ids_position=ids_position,
        flatten=flatten,
        progress=progress,
        shard_rows=shard_rows,
        overwrite=overwrite,
    )


def _extract_to_store(
    model: torch.nn.Module,
    data: Any,
    layers: Sequence[str] | str,
    store: ActivationStore,
    model_name: str | None,
    *,
    shard_rows: int | None,
    overwrite: bool,
    **kwargs: Any,
) -> StoredActivations:
    import torch

    if not isinstance(store, ActivationStore):
        raise TypeError(f"store must be an ActivationStore, got {type(store).__name__}")
    if model_name is None:
        raise ValueError("model_name is required with store= (it names the folder root/<model_name>/)")
    _require_module(model)
    names = [layers] if isinstance(layers, str) else list(layers)
    modules = _resolve_layers(model, names)
    settings = {
        "model_class": type(model).__qualname__,
        "model_fingerprint": model_fingerprint(model),
        "flatten": bool(kwargs["flatten"]),
        "torch": torch.__version__,
    }
    layer_settings = {name: {**settings, "module": type(mod).__name__} for name, mod in modules.items()}

    # every layer's writer lock first (LayerLockedError if another writer holds one), before anything is
    # deleted or read: an overwrite must not wipe the shards that another process is writing
    locks: dict[str, _WriterLock] = {}
    try:
        for name in names:
            locks[name] = store._lock_layer(model_name, name)
        committed, stored_ids = _prepare_layers(store, model_name, names, layer_settings, overwrite)
    except BaseException:
        for lock in locks.values():
            lock.release()
        raise
    resume_rows = min(committed.values())

    def skip(start: int, stop: int) -> bool:
        return stop <= resume_rows

    writers: dict[str, ShardWriter] = {}
    n_total = 0
    gen = iter_activations(model, data, names, skip_rows=skip, **kwargs)
    try:
        for batch in gen:
            stop = batch.start + len(batch.ids)
            n_total = stop
            if not batch.arrays:  # resumed: already on disk for every layer; check the ids only
                for name in names:
                    ref = stored_ids[name][batch.start : stop]
                    if ref.dtype.kind != batch.ids.dtype.kind or not np.array_equal(ref, batch.ids):
                        k = int(np.argmax(ref != batch.ids)) if ref.dtype.kind == batch.ids.dtype.kind else 0
                        raise SampleMismatchError(
                            f"{model_name}/{name}: sample id at row {batch.start + k} is "
                            f"{batch.ids[k].item()!r} but the store (from an earlier run) has "
                            f"{ref[k].item()!r}. The data order changed since the interrupted run; resume "
                            "with the same data in the same order, or pass overwrite=True."
                        )
                continue
            for name, arr in batch.arrays.items():
                if name not in writers:
                    writers[name] = ShardWriter(
                        store,
                        model_name,
                        name,
                        sample_shape=arr.shape[1:],
                        dtype=arr.dtype,
                        shard_rows=shard_rows,
                        settings=layer_settings[name],
                        lock=locks[name],
                    )
                writers[name].write(batch.start, arr, batch.ids)
        if n_total == 0:
            raise ValueError("data yielded no samples")
        for name in names:
            if name not in writers:  # every row was already committed by an earlier run
                info = store.info(model_name, name)
                writers[name] = ShardWriter(
                    store,
                    model_name,
                    name,
                    sample_shape=info.sample_shape,
                    dtype=info.dtype,
                    shard_rows=shard_rows,
                    settings=layer_settings[name],
                    lock=locks[name],
                )
            writers[name].finish(n_total)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    finally:
        gen.close()
        for lock in locks.values():  # layers without a writer yet (a writer releases its own when it ends)
            lock.release()
    return StoredActivations(store, model_name, names)


def _prepare_layers(
    store: ActivationStore,
    model_name: str,
    names: Sequence[str],
    layer_settings: dict[str, dict[str, Any]],
    overwrite: bool,
) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """Under the layers' locks: delete them (``overwrite``), or check an earlier run's settings and shards (a
    corrupted shard is cut off with a warning, to be extracted again). Returns the rows committed per layer and
    their sample ids."""
    committed: dict[str, int] = {}
    stored_ids: dict[str, np.ndarray] = {}
    for name in names:
        if overwrite:
            store._delete_files(model_name, name)
        if (model_name, name) in store:
            manifest = store.manifest(model_name, name)
            check_compatible(manifest, f"{model_name}/{name} in {store.root}", settings=layer_settings[name])
            manifest = store._repair(model_name, name, manifest)
            committed[name] = int(manifest["n_samples"])
            stored_ids[name] = store.sample_ids(model_name, name, allow_incomplete=True)
        else:
            committed[name] = 0
    return committed, stored_ids
