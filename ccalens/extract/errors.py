"""Errors of the activation store and of extraction (numpy only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["CorruptShardError", "LayerLockedError", "SampleMismatchError", "StoreMismatchError"]


class CorruptShardError(OSError):
    """A shard or ids file is missing, truncated, unreadable or fails its checksum. ``path`` names it."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"corrupted activation shard {self.path}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across Dask workers
        return (type(self), (self.path, self.reason))


class LayerLockedError(RuntimeError):
    """Another writer (this process or another) is writing the same layer."""


class StoreMismatchError(ValueError):
    """Resuming or appending with settings (shape, dtype, model weights...) that differ from the store's."""


class SampleMismatchError(ValueError):
    """Sample ids (or their order or count) differ between representations that must be aligned."""
