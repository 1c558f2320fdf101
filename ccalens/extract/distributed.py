"""The same streaming statistics with Dask: map = statistics per chunk of rows, reduce = a tree of merges.

``stats_with_dask(store, [(model_a, layer_a), (model_b, layer_b)])`` checks that the layers are aligned
(sample ids), splits the rows at the shard boundaries, computes one :class:`SufficientStats` per chunk in
a task (each task memory-maps its shards and verifies their checksums), and merges the results with a tree
reduction (``split_every`` per node). The result equals :func:`stats_from_store` up to float rounding.

Running on a cluster: the store must be on a filesystem that every worker sees at the same path (NFS,
Lustre, a shared volume), then::

    from dask.distributed import Client
    client = Client("tcp://scheduler:8786")          # or LocalCluster(...) on one machine
    stats = stats_with_dask(ActivationStore("/shared/acts"), keys, client=client)

Without ``client`` the default Dask scheduler is used (the threaded one, or a distributed ``Client``
created earlier in this process). dask is imported inside the functions.

On a distributed cluster the computation waits while workers are alive, however long it takes; if the
cluster has no live worker (every worker died, or none joined) for ``timeout`` seconds (default
:data:`DEFAULT_TIMEOUT`, 60 s), :class:`DaskWorkersLostError` names the lost workers and what was not
computed instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ccalens.core.stats import SufficientStats

from .aligned import AlignedPlan, Key, normalise_transforms, plan_aligned
from .catalogue import ActivationStore
from .reader import Verify

__all__ = ["DEFAULT_TIMEOUT", "DaskWorkersLostError", "stats_with_dask", "store_to_dask_array"]

# seconds a distributed computation waits while the cluster has no live worker before giving up
DEFAULT_TIMEOUT = 60.0


class DaskWorkersLostError(RuntimeError):
    """The Dask cluster had no live worker for longer than the timeout, so the statistics cannot be computed."""


def _require_dask() -> Any:
    try:
        import dask
    except ImportError as exc:  # pragma: no cover - dask is an optional dependency
        raise ImportError("the Dask path needs dask: pip install 'ccalens[dask]'") from exc
    return dask


def _load_rows(store: ActivationStore, model: str, layer: str, start: int, stop: int, verify: Verify) -> np.ndarray:
    reader = store.reader(model, layer, verify=verify)
    try:
        return reader.read(start, stop)
    finally:
        reader.close()


def store_to_dask_array(
    store: ActivationStore, model: str, layer: str, *, verify: Verify | None = None
) -> Any:
    """A lazy ``dask.array`` ``(n, *sample_shape)`` over a stored layer, one chunk per shard.

    Each chunk is read (memory-mapped, checksum verified) by the task that needs it.
    """
    dask = _require_dask()
    import dask.array as da

    v = store.resolve_verify(verify)
    reader = store.reader(model, layer, verify=v)
    bounds = reader.starts
    if reader.n == 0:
        return da.zeros((0, *reader.sample_shape), dtype=reader.dtype)
    parts = [
        da.from_delayed(
            dask.delayed(_load_rows, pure=True)(store, model, layer, int(lo), int(hi), v),
            shape=(int(hi - lo), *reader.sample_shape),
            dtype=reader.dtype,
        )
        for lo, hi in itertools.pairwise(bounds)
    ]
    return da.concatenate(parts, axis=0)


def _chunk_stats(plan: AlignedPlan, start: int, stop: int, transforms: Sequence[Any]) -> SufficientStats:
    """Map step: statistics of rows ``start:stop`` of every layer of the plan (run inside a Dask task)."""
    return plan.chunk_stats(start, stop, transforms)


def _merge_all(*parts: SufficientStats) -> SufficientStats:
    """Reduce step: the Chan et al. merge of several statistics."""
    out = parts[0]
    for p in parts[1:]:
        out = out.merge(p)
    return out


def stats_with_dask(
    store: ActivationStore,
    keys: Sequence[Key],
    client: Any = None,
    *,
    batch_size: int | None = None,
    transform: Any = None,
    verify: Verify | None = None,
    split_every: int = 8,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> SufficientStats:
    """:class:`SufficientStats` of stored layers computed with Dask; equal to :func:`stats_from_store`.

    Args:
        store: the :class:`ActivationStore` (its folder must be visible to every worker at the same path).
        keys: ``[(model, layer), ...]``; representation ``i`` of the result is ``keys[i]``.
        client: a ``dask.distributed.Client`` (``Client("tcp://scheduler:8786")``, or one on a
            ``LocalCluster``); None uses Dask's default scheduler.
        batch_size: rows per task (default: shard-aligned chunks with a ~128 MB float64 buffer each).
        transform: a callable (or one per key) mapping ``(rows, *sample_shape)`` to ``(rows, features)``;
            it must be picklable for process-based workers (cloudpickle handles lambdas).
        verify: checksum policy for the shards (default: the store's).
        split_every: fan-in of the tree reduction.
        timeout: seconds to wait while a distributed cluster has no live worker (all died, or none joined)
            before raising :class:`DaskWorkersLostError` (default :data:`DEFAULT_TIMEOUT` = 60 s; None
            waits forever). A computation with live workers may take any time.

    Raises:
        DaskWorkersLostError: the cluster had no worker for ``timeout`` seconds; the message names the lost
            workers and the layers and rows whose statistics were not computed.
    """
    dask = _require_dask()
    if not isinstance(store, ActivationStore):
        raise TypeError(f"store must be an ActivationStore, got {type(store).__name__}")
    if not isinstance(split_every, int) or split_every < 2:
        raise ValueError(f"split_every must be an integer >= 2, got {split_every!r}")
    if timeout is not None and (
        not isinstance(timeout, (int, float))
        or isinstance(timeout, bool)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    plan = plan_aligned(store, keys, batch_size, verify=verify, for_stats=True)
    transforms = normalise_transforms(transform, len(plan.keys))
    keys, n = plan.keys, plan.n_samples
    if n == 0:
        raise ValueError(f"no samples stored for {keys}")
    bounds = plan.bounds

    chunk_task = dask.delayed(_chunk_stats, pure=True)
    merge_task = dask.delayed(_merge_all, pure=True)
    level = [
        chunk_task(plan, lo, hi, transforms) for lo, hi in plan.chunks
    ]
    while len(level) > 1:
        level = [merge_task(*level[i : i + split_every]) for i in range(0, len(level), split_every)]
    result = level[0]
    if client is not None and not hasattr(client, "compute"):
        raise TypeError(f"client must be a dask.distributed.Client or None, got {type(client).__name__}")
    client = client if client is not None else _default_client()
    if client is None:  # threaded (or synchronous) scheduler in this process: no worker can be lost
        return result.compute()
    what = f"the statistics of {', '.join(f'{m}/{lay}' for m, lay in keys)} ({n} rows in {len(bounds) - 1} chunk tasks)"
    return _result_while_workers_live(client, client.compute(result), timeout, what)


def _default_client() -> Any:
    """The distributed ``Client`` that dask's default scheduler goes to, or None (threads, processes, sync)."""
    import dask.base

    scheduler = dask.base.get_scheduler()
    owner = getattr(scheduler, "__self__", None)
    return owner if owner is not None and hasattr(owner, "nthreads") else None


def _live_workers(client: Any) -> set[str]:
    """Addresses of the workers the scheduler knows now (none if the scheduler cannot be reached)."""
    try:
        return set(client.nthreads(callback_timeout=10))
    except (OSError, asyncio.CancelledError):  # the scheduler is gone or unreachable: no worker can run tasks either
        return set()


def _result_while_workers_live(client: Any, future: Any, timeout: float | None, what: str) -> Any:
    """``future.result()``, polling the cluster: raises :class:`DaskWorkersLostError` once it has had no live
    worker for ``timeout`` seconds."""
    poll = 1.0 if timeout is None else min(1.0, timeout / 4)
    seen = _live_workers(client)
    without_workers_since: float | None = None
    try:
        while True:
            try:
                return future.result(timeout=poll)
            except TimeoutError:
                pass
            live = _live_workers(client)
            seen |= live
            if live or timeout is None:
                without_workers_since = None
                continue
            now = time.monotonic()
            without_workers_since = now if without_workers_since is None else without_workers_since
            if now - without_workers_since >= timeout:
                lost = ", ".join(sorted(seen)) or "none had joined"
                scheduler = getattr(getattr(client, "scheduler", None), "address", None) or repr(client)
                raise DaskWorkersLostError(
                    f"the Dask cluster at {scheduler} has had no worker for {timeout:g} s (workers lost: {lost}); "
                    f"{what} were not computed. Start workers that see the store at the same path and run "
                    "again, or pass a larger timeout="
                )
    finally:
        if not future.done():
            future.cancel()
