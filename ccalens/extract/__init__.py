"""Features out of PyTorch models into an on-disk store, and statistics streamed from it (also with Dask).

- :func:`list_layers`, :func:`describe_layers`, :func:`extract`, :func:`iter_activations` (torch:
  :mod:`.naming`, :mod:`.capture`, :mod:`.extraction`, :mod:`.results`).
- :class:`ActivationStore`, :func:`aligned_batches`, :func:`stats_from_store` (numpy only: :mod:`.catalogue`,
  :mod:`.aligned`, :mod:`.writer`, :mod:`.errors`).
- :func:`compare_models`, :class:`CrossSimilarity` (:mod:`.compare`: two models, one streamed pass, a layer matrix).
- :func:`stats_with_dask`, :func:`store_to_dask_array`, :class:`DaskWorkersLostError` (:mod:`.distributed`, dask).

torch and dask are imported lazily: ``import ccalens.extract`` works with numpy alone.
"""

from __future__ import annotations

import importlib
from typing import Any

from .aligned import aligned_batches, stats_from_store
from .catalogue import ActivationStore, LayerInfo
from .errors import CorruptShardError, LayerLockedError, SampleMismatchError, StoreMismatchError
from .writer import ShardWriter

#: Names whose modules import torch or dask, and the module of each: loaded on first use.
_LAZY = {
    "ActivationBatch": "capture",
    "LayerCapture": "capture",
    "LayerSummary": "capture",
    "describe_layers": "capture",
    "iter_activations": "capture",
    "extract": "extraction",
    "LayerNotFoundError": "naming",
    "list_layers": "naming",
    "model_fingerprint": "naming",
    "Activations": "results",
    "StoredActivations": "results",
    "CrossSimilarity": "compare",
    "compare_models": "compare",
    "DaskWorkersLostError": "distributed",
    "stats_with_dask": "distributed",
    "store_to_dask_array": "distributed",
}

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
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ccalens.extract' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
