"""Features out of PyTorch models into an on-disk store, and statistics streamed from it (also with Dask).

- :func:`list_layers`, :func:`describe_layers`, :func:`extract`, :func:`iter_activations` (``hooks``, torch).
- :class:`ActivationStore`, :func:`aligned_batches`, :func:`stats_from_store` (``store``, numpy only).
- :func:`compare_models`, :class:`CrossSimilarity` (``compare``: two models, one streamed pass, a layer matrix).
- :func:`stats_with_dask`, :func:`store_to_dask_array`, :class:`DaskWorkersLostError` (``distributed``, dask).

torch and dask are imported lazily: ``import ccalens.extract`` works with numpy alone.
"""

from __future__ import annotations

from typing import Any

from ._exports import COMPARE, DASK, HOOKS
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
    "ActivationStore",
    "CorruptShardError",
    "LayerInfo",
    "LayerLockedError",
    "SampleMismatchError",
    "ShardWriter",
    "StoreMismatchError",
    "aligned_batches",
    "stats_from_store",
]
__all__ += [*HOOKS, *COMPARE, *DASK]  # offered lazily by __getattr__: torch and dask load on first use


def __getattr__(name: str) -> Any:
    if name in HOOKS:
        from . import hooks

        return getattr(hooks, name)
    if name in COMPARE:
        from . import compare

        return getattr(compare, name)
    if name in DASK:
        from . import distributed

        return getattr(distributed, name)
    raise AttributeError(f"module 'ccalens.extract' has no attribute {name!r}")
