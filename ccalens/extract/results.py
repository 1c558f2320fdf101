"""Extracted activations: in memory (:class:`Activations`) or in a store (:class:`StoredActivations`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ccalens.core.stats import SufficientStats

from .aligned import stats_from_store
from .catalogue import ActivationStore
from .ids import compare_ids

__all__ = ["Activations", "StoredActivations"]


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
        compare_ids(self.sample_ids, other.sample_ids, "between these activations and other")

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
        compare_ids(self.sample_ids, other.sample_ids, f"between {self.model_name} and other")

    def stats(
        self, layers: Sequence[str] | None = None, transform: Any = None, progress: bool = False
    ) -> SufficientStats:
        names = self.layers if layers is None else list(layers)
        return stats_from_store(
            self.store, [(self.model_name, n) for n in names], transform=transform, progress=progress
        )
