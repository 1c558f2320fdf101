"""One measure over every pair of L representations (:func:`similarity_matrix`)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import plan as planner
from ..many import ReducedPairs
from ..noise_edge import edge_corrected_score
from ..result import SimilarityMatrix, SimilarityResult
from ..stats import SufficientStats
from ..threads import MIN_PARALLEL_WIDTH, blas_threads, run_tasks
from ..whitening import DEFAULT_TOL
from .api import split_options, split_plan
from .definitions import REGISTRY, STATS_MEASURES, check_measure
from .reduced import ReducedPair, reduce_all
from .sides import (
    Prepared,
    StatisticsPair,
    check_comoment,
    checked_data,
    prepare_all,
    statistics,
    unit_scale,
)


def _one_warning_per_category(caught: Sequence[warnings.WarningMessage], pairs: int) -> None:
    """Re-emit the pairs' warnings once per category (the first message, with the count of pairs it concerns)."""
    seen: dict[type[Warning], list[warnings.WarningMessage]] = {}
    for w in caught:
        seen.setdefault(w.category, []).append(w)
    for category, items in seen.items():
        note = f" ({len(items)} of the {pairs} pairs)" if len(items) > 1 else ""
        warnings.warn(f"{items[0].message}{note}", category, stacklevel=3)


def similarity_matrix(
    representations: Sequence[Any] | SufficientStats,
    measure: str = "svcca",
    *,
    names: Sequence[str] | None = None,
    pairs: Sequence[tuple[int, int]] | None = None,
    progress: bool = False,
    **options: Any,
) -> SimilarityMatrix:
    """All pairs of L representations of the same samples (or their joint ``SufficientStats``), or only ``pairs``
    (``(i, j)`` indices; the other cells are NaN), e.g. each checkpoint against the final state.

    ``measure``: any of :data:`STATS_MEASURES`; ``options`` as for the measure, with ``method`` and
    ``memory_budget`` (bytes; default a quarter of the available memory). ``scores[i, j]`` equals
    ``measure(R_i, R_j, **options).score``; on the diagonal every measure is 1 by definition (no product, no
    eigenproblem). PWCCA is not symmetric: ``scores[i, j]`` takes its weights as ``pwcca(R_i, R_j)`` does.

    Two paths, recorded in ``details['plan']``: when the joint co-moment of all representations fits the budget
    (and none is wider than the sample count), one joint pass computes every block, each representation is
    whitened once, and each pair costs its cross block and one small eigenproblem. Otherwise (or with
    ``method="dual"``) each representation is prepared once on its own (:mod:`ccalens.core.many`: whitened or
    centred coordinates, in sample space when wider than the sample count) and each pair costs one product of two
    preparations: memory linear in L. Warnings of the pairs are given once per call.
    """
    measure = check_measure(measure, STATS_MEASURES)
    spec = REGISTRY[measure]
    finish = spec.finish
    assert finish is not None
    method, budget_option, opts = split_plan(split_options((measure,), options)[measure])
    arrays: list[np.ndarray] = []
    if isinstance(representations, SufficientStats):
        if method == "dual":
            raise ValueError("method='dual' needs the data (statistics hold the feature-space co-moments only)")
        stats: SufficientStats | None = representations
        if representations.n_representations == 0 or representations.n_samples < 2:
            raise ValueError(f"the statistics must hold at least 2 samples of data, got {representations.n_samples}")
        L = representations.n_representations
        plan = None
    else:
        if len(representations) < 1:
            raise ValueError("representations is empty")
        arrays = checked_data(representations)  # torch tensors stay on their device for the statistics path
        L, n = len(arrays), arrays[0].shape[0]
        widths = [a.shape[1] for a in arrays]
        plan = planner.plan_matrix(n, widths, n_pairs=None if pairs is None else len(pairs), method=method,
                                   memory_budget=budget_option)
        budget = plan.memory_budget
        if plan.method == "prepared":  # tensors: reduced on their device, each pair one product there
            stats = None
        else:
            stats, arrays = statistics(arrays, second_moments_only=spec.needs == {"gram"})
    if names is None:
        names = tuple(f"R{i}" for i in range(L))
    if len(names) != L:
        raise ValueError(f"names has {len(names)} entries for {L} representations")
    if stats is not None:
        for index in range(L):
            check_comoment(stats, index)
        prepared = [Prepared(stats, index, opts.get("tol", DEFAULT_TOL)) for index in range(L)]
        prepare_all(prepared, spec, opts)

        def compute(i: int, j: int) -> SimilarityResult:
            return finish(StatisticsPair(prepared[i], prepared[j]), **opts)

        widest = max(stats.sizes or (0,))
    else:
        arrays = [unit_scale(a) for a in arrays]
        store = ReducedPairs(reduce_all(spec, arrays, names, opts, method), memory_budget=budget)

        def compute(i: int, j: int) -> SimilarityResult:
            return finish(ReducedPair(store, arrays, i, j), **opts)

        widest = max(r.rank for r in store.reductions)
    correlation = spec.correlation_family
    scores = np.full((L, L), np.nan)
    mean_rho = np.full((L, L), np.nan) if correlation else None
    null = np.full((L, L), np.nan) if correlation else None
    edge = np.full((2, L, L), np.nan) if correlation else None  # corrected score, correlations at the noise edge
    ranks = np.zeros(L, dtype=np.int64) if correlation else None
    if pairs is None:
        pairs = [(i, j) for i in range(L) for j in range(L) if not spec.symmetric or j >= i]
    else:
        pairs = [(int(i), int(j)) for i, j in pairs]
        bad = [(i, j) for i, j in pairs if not (0 <= i < L and 0 <= j < L)]
        if bad:
            raise ValueError(f"pairs must index the {L} representations (0..{L - 1}), got {bad[:3]}")

    bar: Any = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pairs), desc=f"{measure} pairs", unit="pair")
    # pairs run side by side (one BLAS thread each), in about 16 batches so that the bar moves; a batch's last
    # pairs may leave a worker idle, so batches are not made smaller than 4 pairs per worker
    workers = blas_threads() if widest >= MIN_PARALLEL_WIDTH else 1
    batch = max(4 * workers, len(pairs) // 16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for start in range(0, len(pairs), batch):
            chunk = pairs[start : start + batch]
            results = run_tasks([lambda i=i, j=j: compute(i, j) for i, j in chunk], workers=workers)
            for (i, j), res in zip(chunk, results, strict=True):
                cells = [(i, j), (j, i)] if spec.symmetric else [(i, j)]
                for a, b in cells:
                    scores[a, b] = res.score
                    if mean_rho is not None and null is not None:
                        mean_rho[a, b] = res.mean_rho
                        null[a, b] = np.nan if res.null_mean_rho is None else res.null_mean_rho
                    if edge is not None:
                        fix = edge_corrected_score(res)
                        edge[:, a, b] = fix.score, np.nan if fix.detected is None else fix.total - fix.detected
                if ranks is not None:
                    assert res.rank_x is not None and res.rank_y is not None
                    ranks[i], ranks[j] = res.rank_x, res.rank_y
            if bar is not None:
                bar.update(len(chunk))
    _one_warning_per_category(caught, len(pairs))
    if bar is not None:
        bar.close()
    details = dict(opts)
    if plan is not None:
        details["plan"] = plan.to_dict()
    return SimilarityMatrix(
        measure=measure, scores=scores, names=tuple(names), mean_rho=mean_rho, rank=ranks, details=details,
        null_mean_rho=null, edge_corrected=None if edge is None else edge[0], at_edge=None if edge is None else edge[1],
    )
