"""Features out of PyTorch models into an on-disk store, and statistics streamed from it (also with Dask).

- :func:`list_layers`, :func:`describe_layers`, :func:`extract`, :func:`iter_activations` (``hooks``, torch).
- :class:`ActivationStore`, :func:`aligned_batches`, :func:`stats_from_store` (``store``, numpy only).
- :func:`stats_with_dask`, :func:`store_to_dask_array` (``distributed``, dask).

torch and dask are imported lazily: ``import ccalens.extract`` works with numpy alone.
"""

from __future__ import annotations

from typing import Any

from .store import (
    ActivationStore,
    CorruptShardError,
    LayerInfo,
    LayerLockedError,
    SampleMismatchError,
    ShardWriter,
    StoreMismatchError,
    aligned_batches,
    stats_from_store,
)

__all__ = [
    "ActivationBatch",
    "ActivationStore",
    "Activations",
    "CorruptShardError",
    "LayerInfo",
    "LayerLockedError",
    "LayerNotFoundError",
    "LayerSummary",
    "SampleMismatchError",
    "ShardWriter",
    "StoreMismatchError",
    "StoredActivations",
    "aligned_batches",
    "describe_layers",
    "extract",
    "iter_activations",
    "list_layers",
    "model_fingerprint",
    "stats_from_store",
    "stats_with_dask",
    "store_to_dask_array",
]

_HOOKS = {
    "ActivationBatch",
    "Activations",
    "LayerNotFoundError",
    "LayerSummary",
    "StoredActivations",
    "describe_layers",
    "extract",
    "iter_activations",
    "list_layers",
    "model_fingerprint",
}
_DASK = {"stats_with_dask", "store_to_dask_array"}


def __getattr__(name: str) -> Any:
    if name in _HOOKS:
        from . import hooks

        return getattr(hooks, name)
    if name in _DASK:
        from . import distributed

        return getattr(distributed, name)
    raise AttributeError(f"module 'ccalens.extract' has no attribute {name!r}")
