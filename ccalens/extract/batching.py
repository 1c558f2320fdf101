"""Batches for extraction: every accepted form of ``data`` as ``(inputs, ids or None)``, and inputs on a device.

Inputs are a tensor or ndarray (the model is called as ``model(inputs)``) or, HuggingFace style, a mapping of
keyword inputs such as ``{"input_ids": ..., "attention_mask": ...}`` (called as ``model(**inputs)``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .ids import normalise_ids

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["Batches", "batch_len", "input_dtype", "model_devices", "prepare_batches", "to_device"]


@dataclass
class Batches:
    batches: Iterator[tuple[Any, np.ndarray | None]]
    n_batches: int | None
    n_samples: int | None


def _is_array(x: Any) -> bool:
    import torch

    return isinstance(x, (torch.Tensor, np.ndarray))


def _array_batches(inputs: Any, ids: np.ndarray | None, batch_size: int | None) -> Batches:
    n = batch_len(inputs, 0)
    step = n if batch_size is None else batch_size
    starts = range(0, n, max(1, step))

    def rows(s: int) -> Any:
        if isinstance(inputs, Mapping):
            return {key: value[s : s + step] if _is_array(value) else value for key, value in inputs.items()}
        return inputs[s : s + step]

    def gen() -> Iterator[tuple[Any, np.ndarray | None]]:
        for s in starts:
            yield rows(s), None if ids is None else ids[s : s + step]

    return Batches(gen(), len(starts), n)


def prepare_batches(data: Any, batch_size: int | None, ids_position: int | str | None) -> Batches:
    """Normalise ``data`` into batches of ``(inputs, ids or None)``.

    ``ids_position``: where each batch carries its sample ids: an index into a tuple batch, or a key of a
    mapping batch (that key is then not passed to the model).
    """
    import torch
    from torch.utils.data import DataLoader, Dataset, RandomSampler

    if batch_size is not None and (
        not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(data, Mapping):  # keyword inputs of every sample, e.g. a tokenizer's output
        if not any(_is_array(v) for v in data.values()):
            raise TypeError("data as a mapping must hold the model's keyword inputs as tensors or arrays")
        inputs = dict(data)
        ids = None
        if isinstance(ids_position, str):
            ids = inputs.pop(ids_position, None)
            if ids is None:
                raise KeyError(f"ids_position={ids_position!r} is not a key of data ({', '.join(map(str, data))})")
        elif ids_position is not None:
            raise TypeError(f"data is a mapping: ids_position must be one of its keys, got {ids_position!r}")
        n = batch_len(inputs, 0)
        return _array_batches(inputs, None if ids is None else normalise_ids(ids, n, "sample ids"), batch_size)

    if isinstance(data, tuple) and len(data) == 2 and _is_array(data[0]) and not _is_array(data[1]):
        inputs, ids = data
        return _array_batches(
            inputs, normalise_ids(ids, int(inputs.shape[0]), "data[1] (sample ids)"), batch_size
        )
    if isinstance(data, tuple) and len(data) == 2 and _is_array(data[0]) and _is_array(data[1]):
        inputs, ids = data
        if np.ndim(ids) == 1 and int(ids.shape[0]) == int(inputs.shape[0]) and len(inputs.shape) > 1:
            return _array_batches(
                inputs, normalise_ids(ids, int(inputs.shape[0]), "data[1] (sample ids)"), batch_size
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
        return Batches(_split_batches(data, ids_position), n_batches, n_samples)
    if isinstance(data, Dataset) and hasattr(data, "__len__"):
        loader = DataLoader(data, batch_size=batch_size or len(data), shuffle=False)  # type: ignore[arg-type]
        return Batches(_split_batches(loader, ids_position), len(loader), len(data))  # type: ignore[arg-type]
    if hasattr(data, "__iter__") and not isinstance(data, (str, bytes)):
        try:
            n_batches = len(data)
        except TypeError:
            n_batches = None
        return Batches(_split_batches(data, ids_position), n_batches, None)
    raise TypeError(
        "data must be a torch DataLoader or Dataset, a tensor or ndarray of inputs, a pair "
        f"(inputs, sample_ids), or an iterable of batches; got {type(data).__name__}"
    )


def _split_batches(batches: Any, ids_position: int | str | None) -> Iterator[tuple[Any, np.ndarray | None]]:
    for k, batch in enumerate(batches):
        if isinstance(batch, (tuple, list)):
            if not batch:
                raise ValueError(f"batch {k} is empty")
            inputs = batch[0]
            ids = None
            if ids_position is not None:
                if not isinstance(ids_position, int) or not -len(batch) <= ids_position < len(batch):
                    raise IndexError(f"ids_position={ids_position!r} but batch {k} has {len(batch)} elements")
                ids = batch[ids_position]
        elif isinstance(batch, Mapping):  # keyword inputs (HuggingFace style)
            inputs = dict(batch)
            ids = None
            if ids_position is not None:
                if not isinstance(ids_position, str) or ids_position not in inputs:
                    raise KeyError(f"ids_position={ids_position!r} is not a key of batch {k} ({', '.join(inputs)})")
                ids = inputs.pop(ids_position)
        else:
            if ids_position is not None:
                raise ValueError(f"ids_position={ids_position} but batch {k} is not a tuple or list")
            inputs, ids = batch, None
        n = batch_len(inputs, k)
        yield inputs, None if ids is None else normalise_ids(ids, n, f"sample ids of batch {k}")


def batch_len(inputs: Any, k: int) -> int:
    """Samples in a batch of inputs (a mapping: the first axis of its first tensor or array)."""
    if isinstance(inputs, Mapping):
        arrays = [v for v in inputs.values() if hasattr(v, "shape") and len(v.shape) > 0]
        if not arrays:
            raise TypeError(f"inputs of batch {k} (a mapping) hold no tensor or array with a batch axis")
        return int(arrays[0].shape[0])
    shape = getattr(inputs, "shape", None)
    if shape is None or len(shape) == 0:
        raise TypeError(
            f"inputs of batch {k} must be a tensor or array with a batch axis, got {type(inputs).__name__}"
        )
    return int(shape[0])


def model_devices(model: torch.nn.Module) -> set[Any]:
    return {t.device for t in list(model.parameters()) + list(model.buffers())}


def input_dtype(model: torch.nn.Module) -> Any:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def to_device(inputs: Any, device: Any, dtype: Any) -> Any:
    """Inputs as tensors on ``device``; floating ones in the model's ``dtype`` (a mapping: every value)."""
    import torch

    if isinstance(inputs, Mapping):
        return {
            key: to_device(value, device, dtype) if isinstance(value, (np.ndarray, torch.Tensor)) else value
            for key, value in inputs.items()
        }
    if isinstance(inputs, np.ndarray):
        inputs = torch.from_numpy(np.ascontiguousarray(inputs))
    if isinstance(inputs, torch.Tensor):
        if dtype is not None and inputs.is_floating_point() and inputs.dtype != dtype:
            inputs = inputs.to(dtype)
        return inputs.to(device)
    raise TypeError(f"model inputs must be a tensor or ndarray, got {type(inputs).__name__}")
