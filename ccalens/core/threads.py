"""Run independent BLAS/LAPACK tasks side by side, one BLAS thread each.

Multithreaded BLAS splits one product across the cores, which is efficient for one large product but
loses 10-20% on the medium-sized blocks of a similarity computation (the ``(p, p)`` and ``(p, q)``
blocks of a co-moment, the two eigendecompositions of a CCA) and almost all of it in LAPACK's
memory-bound steps (the tridiagonal reduction of ``eigh``). Here the independent pieces run in a
thread pool instead, with BLAS limited to one thread while they run: every core then works on its
own product at single-thread efficiency.

Heavy work in the tasks and around them goes through NumPy (``@``, ``np.linalg``), for two measured reasons:
NumPy releases the GIL in BLAS/LAPACK calls while SciPy's ``scipy.linalg`` wrappers hold it (two SciPy
``eigh`` calls in two threads took as long as one after the other); and NumPy and SciPy load two separate
OpenBLAS libraries whose worker threads spin for about 0.1 s after a multithreaded call, so a NumPy call right
after a SciPy one shares the cores with the other library's spinning threads (a 512 x 512 ``eigh`` took 3x
longer). SciPy's LAPACK is used only where NumPy has no routine or a slow one (the Cholesky whitening's
``potrf``, ``pocon``, ``trtri``), called with the GIL released and BLAS at one thread (:mod:`ccalens.core._lapack`,
:func:`single_threaded_blas`), so its threads never spin; and SciPy's BLAS ``dgemm`` where the sample-space path
accumulates float32 bases in place (:func:`ccalens.core.dual.cross_product`), multithreaded: those products take
seconds, against which the spin after them is immaterial.

The number of workers is the BLAS thread count in force when the call starts (set by
``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS`` or ``threadpoolctl.threadpool_limits``), so a process
that restricts BLAS to one thread gets plain sequential execution. While a batch runs, the BLAS
limit is process-wide: other threads' BLAS calls in that window run single-threaded too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["MIN_PARALLEL_WIDTH", "blas_threads", "run_tasks", "single_threaded_blas"]

T = TypeVar("T")

#: Whitenings and pairs of representations narrower than this take microseconds: not worth the pool.
MIN_PARALLEL_WIDTH = 96

_lock = threading.Lock()
_state: dict[str, Any] = {}


def _controller() -> Any:
    """The threadpoolctl controller of the BLAS libraries loaded so far (None without threadpoolctl)."""
    with _lock:
        if "controller" not in _state:
            try:
                import scipy.linalg  # noqa: F401  (load SciPy's BLAS before the controller looks)
                from threadpoolctl import ThreadpoolController

                _state["controller"] = ThreadpoolController().select(user_api="blas")
            except Exception:  # pragma: no cover - threadpoolctl missing or failing: run sequentially
                _state["controller"] = None
        return _state["controller"]


def blas_threads() -> int:
    """Threads the BLAS libraries currently use (the largest over the loaded ones; 1 if unknown)."""
    controller = _controller()
    if controller is None:  # pragma: no cover
        return 1
    counts = [info.get("num_threads", 1) for info in controller.info()]
    return max([1, *counts])


def _pool(workers: int) -> ThreadPoolExecutor:
    """The process's shared pool (threads are created once: starting threads costs milliseconds).

    Re-created after a fork (the child inherits the executor but not its threads) or when more workers
    are asked for than it has.
    """
    with _lock:
        pool = _state.get("pool")
        if pool is None or _state.get("pid") != os.getpid() or _state.get("size", 0) < workers:
            if pool is not None and _state.get("pid") == os.getpid():
                pool.shutdown(wait=False)  # its idle threads exit; running tasks finish first
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ccalens", initializer=_mark_worker)
            _state.update(pool=pool, pid=os.getpid(), size=workers)
        return pool


_local = threading.local()


def _mark_worker() -> None:
    _local.is_worker = True


def run_tasks(tasks: Sequence[Callable[[], T]], *, workers: int | None = None) -> list[T]:
    """Results of ``tasks`` (zero-argument callables), in order.

    With ``workers`` > 1 (default: :func:`blas_threads`) the tasks run in a thread pool with BLAS at one
    thread each; give the most expensive tasks first, the pool then balances them greedily. With one
    worker or one task, or when called from inside a task, they run sequentially with BLAS untouched.
    Tasks must not share output buffers.
    """
    if workers is None:
        workers = blas_threads() if len(tasks) > 1 else 1
    workers = min(workers, len(tasks), os.cpu_count() or 1)
    if workers <= 1 or getattr(_local, "is_worker", False):
        return [task() for task in tasks]
    if _controller() is None:  # pragma: no cover
        return [task() for task in tasks]
    pool = _pool(workers)
    with single_threaded_blas():
        futures = [pool.submit(task) for task in tasks]
        return [f.result() for f in futures]


def _single_threaded_blas(controller: Any, *, enter: bool) -> None:
    """Reference-counted BLAS limit: the first batch in sets one thread, the last one out restores the original.

    Batches may run concurrently (several user threads, Dask's threaded scheduler); nested limit contexts
    would otherwise restore each other's values and leave BLAS stuck at one thread.
    """
    with _lock:
        users = _state.get("limit_users", 0) + (1 if enter else -1)
        _state["limit_users"] = users
        if enter and users == 1:
            _state["limiter"] = controller.limit(limits=1)
        elif not enter and users == 0:
            _state.pop("limiter").restore_original_limits()


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS limited to one thread inside the block (nothing to do inside a task of :func:`run_tasks`, which
    already is); reference-counted like the limit of :func:`run_tasks`."""
    controller = None if getattr(_local, "is_worker", False) else _controller()
    if controller is None:
        yield
        return
    _single_threaded_blas(controller, enter=True)
    try:
        yield
    finally:
        _single_threaded_blas(controller, enter=False)
