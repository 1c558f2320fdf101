"""``extract``: a model's layers over data, into memory or into the store (resumable through the writer)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .capture import iter_activations
from .catalogue import ActivationStore
from .files import WriterLock
from .manifest import check_compatible
from .naming import model_fingerprint, require_module, resolve_layers
from .reader import delete_layer_files
from .results import Activations, StoredActivations
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
    require_module(model)
    names = [layers] if isinstance(layers, str) else list(layers)
    modules = resolve_layers(model, names)
    settings = {
        "model_class": type(model).__qualname__,
        "model_fingerprint": model_fingerprint(model),
        "flatten": bool(kwargs["flatten"]),
        "torch": torch.__version__,
    }
    layer_settings = {name: {**settings, "module": type(mod).__name__} for name, mod in modules.items()}

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
