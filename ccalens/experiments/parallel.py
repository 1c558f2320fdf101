"""The run's worker processes: independent units of work (one network to train, one network pair to project, one
bootstrap interval) spread over the machine's cores.

Each unit is a module-level function of picklable arguments whose result does not depend on where it runs: it
seeds its own generators, and every worker limits the BLAS, OpenMP and torch threads to the run's ``threads``,
as the main process does, so the numbers are the same with 1 worker or many. Results come back in the order of
the inputs. ``workers=1`` (or a single unit) runs in the calling process, with no pool.

The pool starts its processes with ``forkserver`` where the platform has it (a fork of a clean server process:
no threads or locks copied from the caller), else ``spawn``; they start on first use and stop with the run.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any, TypeVar

from tqdm.auto import tqdm

__all__ = ["Workers", "available_cores", "limit_threads"]

T = TypeVar("T")

_LIMITS: list[Any] = []  # the worker's threadpoolctl limit, kept alive for the process's lifetime


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def limit_threads(threads: int) -> None:
    """Limit this process's BLAS/OpenMP pools (and torch's, once imported) to ``threads`` (0: leave them)."""
    if threads <= 0:
        return
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch's OpenMP when it is imported later
    from threadpoolctl import threadpool_limits

    _LIMITS.append(threadpool_limits(limits=threads))
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class Workers:
    """A pool of ``workers`` processes (0: one per available core), each limited to ``threads`` threads.

    Use as a context manager, or call :meth:`close`. :meth:`map` runs ``fn`` over ``items`` and returns the results
    in order, with a progress bar when ``desc`` is given and ``progress`` is on.
    """

    def __init__(self, workers: int = 0, *, threads: int = 1, progress: bool = False) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be an integer >= 0 (0: one per core), got {workers!r}")
        self.workers = workers if workers > 0 else available_cores()
        self.threads = threads
        self.progress = progress
        self._pool: Executor | None = None

    def _executor(self) -> Executor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=_context(),
                                             initializer=limit_threads, initargs=(self.threads,))
        return self._pool

    def map(self, fn: Callable[..., T], items: Iterable[Sequence[Any]], *, desc: str | None = None) -> list[T]:
        """``[fn(*args) for args in items]``, the calls spread over the workers."""
        items = list(items)
        bar = tqdm(total=len(items), desc=desc, disable=not (self.progress and desc), leave=False)
        try:
            if self.workers <= 1 or len(items) <= 1:
                out = []
                for args in items:
                    out.append(fn(*args))
                    bar.update(1)
                return out
            futures = [self._executor().submit(fn, *args) for args in items]
            results = []
            for f in futures:
                results.append(f.result())
                bar.update(1)
            return results
        finally:
            bar.close()

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Start ``fn(*args, **kwargs)`` on a worker and return its future at once (``workers=1``: run it here, now,
        and return a finished future holding its result or its exception)."""
        if self.workers > 1:
            return self._executor().submit(fn, *args, **kwargs)
        done: Future[T] = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # re-raised by done.result(), where the caller waits
            done.set_exception(exc)
        return done

    def close(self) -> None:
        """Stop the worker processes (a later :meth:`map` starts new ones)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
