"""Running replicates (bootstrap resamples, permutations): weights, batched merges, one warning per call.

Replicate k of a bootstrap draws ``rng.integers(0, B, size=B)`` (after the random partition's
``rng.permutation(n)`` when blocks hold more than one sample), so a seed fixes every interval. The warnings
the measure raises inside replicates are gathered and re-raised once per call and category, with counts
(:func:`gathered_warnings`); a replicate that fails raises one error naming the replicate.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..stats import SufficientStats
from ..threads import MIN_PARALLEL_WIDTH, run_tasks
from .blocks import Blocks

#: Replicates merged per batched matrix product are limited so the batch holds about this many float64.
_MERGE_BATCH_ELEMENTS = 1 << 25


def draw_weights(rng: np.random.Generator, n_blocks: int, count: int) -> np.ndarray:
    """Multiplicities ``(count, B)``: replicate r draws ``rng.integers(0, B, size=B)`` (one call per replicate)."""
    out = np.empty((count, n_blocks), dtype=np.float64)
    for r in range(count):
        out[r] = np.bincount(rng.integers(0, n_blocks, size=n_blocks), minlength=n_blocks)
    return out


@contextlib.contextmanager
def gathered_warnings(what: str, total: int, *, stacklevel: int = 4) -> Iterator[None]:
    """Collect the warnings raised inside (by ``total`` replicates of ``what``) and re-raise one per category.

    The under-determination warning is dropped (it was raised once, for the estimate). Each re-raised
    warning reads ``"<what>: <count> of <total> replicates warned: <first message>"``.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    counts: dict[type[Warning], list[Any]] = {}
    for w in caught:
        counts.setdefault(w.category, []).append(w)
    for category, items in counts.items():
        first = str(items[0].message).splitlines()[0]
        message = f"{what}: {len(items)} of {total} scores (the estimate and its replicates) warned: {first}"
        warnings.warn(message, category, stacklevel=stacklevel)


def replicate_error(what: str, k: int, exc: BaseException) -> ValueError:
    """The error of replicate k of ``what`` that failed with ``exc``."""
    return ValueError(
        f"{what} replicate {k} failed ({exc}); resampled blocks may leave a feature constant or too few distinct "
        "rows: use more samples or more blocks"
    )


def run_weighted(blocks: Blocks, weights: np.ndarray, evaluate: Callable[[SufficientStats], Any],
                 what: str = "bootstrap") -> np.ndarray:
    """``evaluate`` on every weighted merge (rows of ``weights: (r, B)``): ``(r, ...)``.

    Merges are batched (one matrix product per batch, bounded memory); within a batch the replicates run
    side by side, one BLAS thread each (:mod:`ccalens.core.threads`), when the representations are wide.
    Call inside :func:`gathered_warnings`.
    """
    T = blocks.width * (blocks.width + 1) // 2
    batch = max(1, min(weights.shape[0], _MERGE_BATCH_ELEMENTS // max(T, 1)))
    workers = None if blocks.width >= MIN_PARALLEL_WIDTH else 1
    values: list[Any] = []
    for start in range(0, weights.shape[0], batch):
        replicate = blocks.merge(weights[start : start + batch])

        def task(k: int, replicate: Callable[[int], SufficientStats] = replicate) -> Any:
            try:
                return evaluate(replicate(k))
            except (ValueError, np.linalg.LinAlgError) as exc:
                return exc

        count = min(batch, weights.shape[0] - start)
        results = run_tasks([lambda k=k: task(k) for k in range(count)], workers=workers)
        for k, res in enumerate(results):
            if isinstance(res, Exception):
                raise replicate_error(what, start + k, res) from res
            values.append(res)
    return np.asarray(values)
