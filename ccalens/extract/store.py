"""On-disk activation store: shards plus a manifest, atomic writes, resumable, verified on read.

Layout, one folder per model and layer::

    root/<model>/<layer>/
        manifest.json        shapes, dtype, settings, per-shard rows / bytes / sha256, completion flag
        shard-000000.npy     (rows, *sample_shape) activations, plain .npy (np.load(mmap_mode="r") works)
        ids-000000.npy       (rows,) sample ids of the same rows (int64 or unicode)
        ...

Every file is written to a temporary name in the same folder and renamed into place (``os.replace``), and
the manifest is rewritten the same way after each shard: the manifest is the single source of truth, so a
process killed at any point leaves either the previous or the next consistent state, never a half-written
file that is believed. A shard or ids file listed in the manifest whose size or sha256 differs is reported
as :class:`CorruptShardError` naming the file. The manifest is data only: every field is checked on read, its
file entries must be plain names inside the layer folder (an absolute or ``../`` path, or a shard that is a symlink
out of the folder, is refused), and shards are loaded with ``allow_pickle=False``. A writer resuming a layer whose
committed shards are corrupted warns naming them and writes them (and the shards after them) again.

One writer per layer: a :class:`ShardWriter` holds an exclusive ``flock`` on ``root/<model>/.<layer>.lock``
until it is closed (or its process dies, which releases the lock), and a second writer of the same layer, in
this process or another, gets :class:`LayerLockedError` instead of interleaving shards. Deleting a layer
(:meth:`ActivationStore.delete`, ``overwrite=True``) takes the same lock first and deletes nothing while it is
held. Readers do not lock: they trust only what the manifest lists. On platforms without ``fcntl`` (Windows)
there is no lock.

The code lives in one module per responsibility, innermost first: :mod:`.errors`, :mod:`.files` (names, atomic
writes, checksums, the lock), :mod:`.ids` (sample ids and their one comparison), :mod:`.manifest`,
:mod:`.reader` and :mod:`.writer` (each takes a layer folder), :mod:`.catalogue` (:class:`ActivationStore`),
:mod:`.aligned` (the aligned-streaming plan shared with :mod:`.distributed`). This module gathers their public
names. None of them imports torch.
"""

from __future__ import annotations

from .aligned import STATS_CHUNK_BYTES, AlignedPlan, aligned_batches, plan_aligned, stats_chunk_rows, stats_from_store
from .catalogue import ActivationStore, Key, LayerInfo
from .errors import CorruptShardError, LayerLockedError, SampleMismatchError, StoreMismatchError
from .manifest import DEFAULT_SHARD_BYTES, FORMAT, FORMAT_VERSION, MANIFEST, check_compatible
from .reader import LayerReader, Verify, chunk_bounds
from .writer import ShardWriter

__all__ = [
    "DEFAULT_SHARD_BYTES",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "STATS_CHUNK_BYTES",
    "ActivationStore",
    "AlignedPlan",
    "CorruptShardError",
    "Key",
    "LayerInfo",
    "LayerLockedError",
    "LayerReader",
    "SampleMismatchError",
    "ShardWriter",
    "StoreMismatchError",
    "Verify",
    "aligned_batches",
    "check_compatible",
    "chunk_bounds",
    "plan_aligned",
    "stats_chunk_rows",
    "stats_from_store",
]
