"""``extract``: a model's layers over data, into memory or into the store (resumable through the writer)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ccalens.core.stats import SufficientStats

from .capture import iter_activations
from .catalogue import ActivationStore
from .files import WriterLock
from .manifest import check_compatible
from .naming import model_fingerprint, require_module, resolve_layers
from .reader import delete_layer_files
from .results import Activations, StoredActivations
from .transforms import OUTPUT
from .writer import ShardWriter

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["extract"]


def extract(
    model: torch.nn.Module,
    data: Any,
    layers: Sequence[str] | str,
    *,
    batch_size: int | None = 256,
    device: Any = None,
    sample_ids: Any = None,
    ids_position: int | str | None = None,
    store: ActivationStore | None = None,
    model_name: str | None = None,
    into: Any = None,
    transform: Any = None,
    tokens: bool = False,
    forward: Any = None,
    flatten: bool = False,
    progress: bool = True,
    shard_rows: int | None = None,
    overwrite: bool = False,
) -> Any:
    """Outputs of the named modules of ``model`` for every sample of ``data``: in memory, on disk, or streamed.

    Args:
        model: a ``torch.nn.Module``; run in eval mode under ``no_grad`` (modes, device and hooks restored).
        data: a ``DataLoader`` (not shuffling, unless ids come in the batches), a ``Dataset``, a tensor or
            ndarray of inputs ``(n, ...)``, a pair ``(inputs, sample_ids)``, a mapping of keyword inputs
            ``{"input_ids": (n, T), "attention_mask": (n, T), ...}``, or any iterable of batches. A batch is
            the inputs, a tuple/list whose first element is the inputs, or a mapping of keyword inputs
            (HuggingFace style: the model is called as ``model(**batch)``).
        layers: module names (see :func:`list_layers`), and ``"output"`` for the model's own output (a
            ``ModelOutput``'s ``logits``, or the first tensor of a tuple/dict output); an unknown name raises
            ``KeyError`` with close names.
        batch_size: for tensors, arrays, mappings and datasets (a DataLoader keeps its own).
        device: where to run (default: the model's device); the model is moved there and back.
        sample_ids: ids of all samples in data order ``(n,)``, ints or strings (default ``0..n-1``).
        ids_position: instead, each batch carries its ids at this position of a tuple (e.g. 2 for
            (x, y, id)) or under this key of a mapping (the key is not passed to the model).
        store: write to this :class:`ActivationStore` under ``model_name`` instead of returning arrays.
            An interrupted extraction resumes: committed shards are kept (their ids are checked against
            the data) and the model is run only on the rest; other weights or settings raise
            :class:`StoreMismatchError`. A committed shard that fails its checksum is extracted again
            (with a warning naming it). The layers' writer locks are taken first: a layer that another
            writer holds raises :class:`LayerLockedError`, and nothing is deleted or written.
        into: a streaming sink instead: any object with ``update(*blocks)``, fed each batch as one block per
            layer in ``layers`` order (``SufficientStats`` for 2-D blocks, ``ccalens.conv.DFTStats`` for two
            conv maps, a minibatch CKA...); nothing is kept in memory or written. ``update`` gets
            ``names=`` (the layer names) if it accepts it, and a sink with a ``names`` attribute gets them set.
            Returns ``into``.
        transform: what is kept of each output, computed on the model's device before the copy to the CPU:
            None / ``"none"`` (as it is), ``"flatten"`` ``(n, features)``, ``"mean"`` (average over every axis
            after the channel axis 1: global average pooling of ``(n, C, H, W)`` maps), a callable
            ``tensor (batch, ...) -> (batch, ...)``, or a mapping layer -> one of these.
        tokens: tokens as samples: every output ``(batch, tokens, features)`` becomes ``(tokens, features)``
            rows, padding dropped by the batch's ``attention_mask``; the sample ids repeat per token.
        forward: how to run the model on a batch: None (``model(inputs)``, ``model(**inputs)`` for a mapping),
            a method name (``"features"``: ``model.features(inputs)``; then ``"output"`` is what it returns),
            or a callable ``forward(model, inputs)``.
        flatten: the same as ``transform="flatten"`` (kept for compatibility).
        progress: show a tqdm progress bar.
        shard_rows, overwrite: rows per shard (default ~64 MB shards); start the stored layers again.

    Returns:
        :class:`Activations` (in memory), with ``store`` :class:`StoredActivations`, with ``into`` the sink.
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    run = {
        "batch_size": batch_size,
        "device": device,
        "sample_ids": sample_ids,
        "ids_position": ids_position,
        "flatten": flatten,
        "transform": transform,
        "tokens": tokens,
        "forward": forward,
        "progress": progress,
    }
    if into is not None:
        if store is not None or model_name is not None:
            raise ValueError("give either into= (a streaming sink) or store= / model_name=, not both")
        return _extract_into(model, data, names, into, **run)
    if store is None:
        if model_name is not None:
            raise ValueError("model_name is only used with store=")
        return _extract_in_memory(model, data, names, **run)
    return _extract_to_store(model, data, names, store, model_name, shard_rows=shard_rows, overwrite=overwrite, **run)


def _extract_in_memory(model: torch.nn.Module, data: Any, names: list[str], **run: Any) -> Activations:
    arrays: dict[str, list[np.ndarray]] = {}
    ids: list[np.ndarray] = []
    gen = iter_activations(model, data, names, **run)
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


def _extract_into(model: torch.nn.Module, data: Any, names: list[str], into: Any, **run: Any) -> Any:
    feed = sink_feeder(into, names)
    gen = iter_activations(model, data, names, **run)
    n_rows = 0
    try:
        for batch in gen:
            feed([batch.arrays[name] for name in names])
            n_rows += len(batch.ids)
    finally:
        gen.close()
    if n_rows == 0:
        raise ValueError("data yielded no samples")
    name_sink(into, names)
    return into


def sink_feeder(into: Any, names: Sequence[str]) -> Any:
    """``feed(blocks)`` calling ``into.update(*blocks)`` (with ``names=`` if its update takes it); a clear error
    for a sink without ``update`` and for conv maps fed to :class:`SufficientStats`."""
    update = getattr(into, "update", None)
    if not callable(update):
        raise TypeError(f"into must have an update(*blocks) method (e.g. SufficientStats()), got {type(into).__name__}")
    try:
        takes_names = "names" in inspect.signature(update).parameters
    except (TypeError, ValueError):  # builtins without a signature
        takes_names = False
    needs_2d = isinstance(into, SufficientStats)
    label = tuple(names)

    def feed(blocks: Sequence[np.ndarray]) -> None:
        if needs_2d:
            for name, block in zip(names, blocks, strict=True):
                if block.ndim != 2:
                    raise ValueError(
                        f"layer {name!r} gives blocks of shape {block.shape}; SufficientStats needs (n, features): "
                        "pass transform='mean' (global average pooling) or 'flatten', or tokens=True for "
                        "(batch, tokens, features) outputs"
                    )
        if takes_names:
            update(*blocks, names=label)
        else:
            update(*blocks)

    return feed


def name_sink(into: Any, names: Sequence[str]) -> None:
    """Give a sink that has a ``names`` attribute the layer names."""
    if hasattr(into, "names"):
        try:
            into.names = tuple(names)
        except AttributeError:  # a read-only property
            pass


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
    require_module(model)
    names = [layers] if isinstance(layers, str) else list(layers)
    modules = resolve_layers(model, names)
    settings = {
        "model_class": type(model).__qualname__,
        "model_fingerprint": model_fingerprint(model),
        "flatten": bool(kwargs["flatten"]),
        "torch": torch.__version__,
    }
    for key in ("transform", "tokens", "forward"):  # recorded only when used: older stores stay resumable
        if kwargs[key] not in (None, False):
            settings[key] = _describe(kwargs[key])
    layer_settings = {
        name: {**settings, "module": OUTPUT if mod is None else type(mod).__name__} for name, mod in modules.items()
    }

    # every layer's writer lock first (LayerLockedError if another writer holds one), before anything is
    # deleted or read: an overwrite must not wipe the shards that another process is writing
    locks: dict[str, WriterLock] = {}
    writers: dict[str, ShardWriter] = {}
    try:
        for name in names:
            locks[name] = store.lock_layer(model_name, name)
        for name in names:  # resume through the writer: it checks the settings and repairs corrupted shards
            if overwrite:
                delete_layer_files(store.layer_dir(model_name, name))
            if (model_name, name) in store:
                writers[name] = _layer_writer(store, model_name, name, None, None, shard_rows, layer_settings, locks)
    except BaseException:
        for w in writers.values():
            w.abort()
        for lock in locks.values():
            lock.release()
        raise
    resume_rows = min((writers[name].n_committed if name in writers else 0) for name in names)

    def skip(start: int, stop: int) -> bool:
        return stop <= resume_rows

    n_total = 0
    shapes_checked: set[str] = set()
    gen = iter_activations(model, data, names, skip_rows=skip, **kwargs)
    try:
        for batch in gen:
            n_total = batch.start + len(batch.ids)
            if not batch.arrays:  # resumed: already on disk for every layer; the writers check the ids only
                for name in names:
                    writers[name].write(batch.start, None, batch.ids)
                continue
            for name, arr in batch.arrays.items():
                if name not in writers:
                    writers[name] = _layer_writer(
                        store, model_name, name, arr.shape[1:], arr.dtype, shard_rows, layer_settings, locks
                    )
                elif name not in shapes_checked:
                    where = store.label(model_name, name)
                    check_compatible(writers[name].manifest, where, sample_shape=arr.shape[1:], dtype=arr.dtype)
                shapes_checked.add(name)
                writers[name].write(batch.start, arr, batch.ids)
        if n_total == 0:
            raise ValueError("data yielded no samples")
        for name in names:
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


def _describe(value: Any) -> Any:
    """A run-independent description of a setting (a callable by its qualified name, not its address)."""
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items()}
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__name__)}"
    return value


def _layer_writer(
    store: ActivationStore,
    model_name: str,
    name: str,
    sample_shape: Sequence[int] | None,
    dtype: Any,
    shard_rows: int | None,
    layer_settings: dict[str, dict[str, Any]],
    locks: dict[str, WriterLock],
) -> ShardWriter:
    return store.writer(
        model_name,
        name,
        sample_shape=sample_shape,
        dtype=dtype,
        shard_rows=shard_rows,
        settings=layer_settings[name],
        lock=locks[name],
    )
