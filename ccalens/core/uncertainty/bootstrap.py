"""Bootstrap confidence intervals of a similarity score or matrix, from merges of block statistics.

*When is it exact?* A block bootstrap is the i.i.d. bootstrap of the blocks. With ``block_size=1`` every
block is one sample and the result is exactly the classical i.i.d. bootstrap (Efron), the same replicates as
resampling rows and recomputing. With larger blocks it approximates it: for i.i.d. samples assigned to
blocks at random (``partition="random"``, the default), block statistics are i.i.d. and the bootstrap is
consistent; its standard error has a relative noise of about ``sqrt(2 / B)`` more than the i.i.d. one, so
the default uses ``B = min(n, 256)`` blocks (exact i.i.d. whenever n <= 256), fewer (down to 64) if the block
statistics would exceed 1 GiB. With ``partition="contiguous"`` the blocks are runs of consecutive samples:
the non-overlapping block bootstrap (Carlstein 1986), valid for dependent samples provided the blocks are
longer than the dependence. Streamed statistics (one :class:`SufficientStats` per batch) are bootstrapped with
the batches as blocks, so batches must be exchangeable (shuffled data) or long contiguous runs; below
:data:`~ccalens.core.uncertainty.intervals.FEW_BLOCKS` blocks the interval is widened and a warning says so.

The interval is for the population value (``estimand="population"``); the default method is
``"half_sampling"`` (subsamples of half the blocks without replacement, a delete-half jackknife bias correction
and Student's t; see :mod:`ccalens.core.uncertainty.intervals` and ``validation/coverage_study.py`` for why).
For the CCA family, when some sample canonical correlations lie at the edge of the noise, :func:`bootstrap`
centres it on the noise-edge corrected score instead (:mod:`ccalens.core.uncertainty.edge`,
``method_used="half_sampling+noise_edge"``), and so does :func:`bootstrap_matrix`, cell by cell.
Measures without a statistics path (``debiased_linear_cka``, ``rbf_cka``) are bootstrapped by resampling the rows
of the drawn blocks and recomputing (one pass per replicate)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..measures.definitions import REGISTRY
from ..stats import SufficientStats
from ..validation import check_paired
from .blocks import (
    Blocks,
    Partition,
    _blocks_from_arrays,
    _blocks_from_stats,
    _fits_packed,
    _partition,
    checked_arrays,
)
from .edge import edge_cells_note, edge_interval, edge_note, edge_values, uses_edge
from .intervals import (
    DEFAULT_METHOD,
    FEW_BLOCKS,
    FewBlocksWarning,
    IntervalEstimate,
    check_level,
    check_method,
    compute_interval,
    draw_half_weights,
    half_fraction,
    widening,
)
from .replicates import draw_weights, gathered_warnings, replicate_error, run_weighted
from .results import BootstrapMatrixResult, BootstrapResult

__all__ = ["bootstrap", "bootstrap_matrix"]

#: Measures whose scores can be negative (the others lie in [0, 1]).
_SIGNED = {"debiased_linear_cka"}
#: The note of a measure whose intervals the coverage study found to undercover where some population canonical
#: correlations are 0 (``Measure.biased_at_zero_correlation``; validation/coverage_study.py): there the upward bias
#: is of order sqrt(rank / n), not 1 / n, and no resampling interval here estimates it
#: (validation/results/coverage.md).
UNDERCOVER_NOTE = (
    "the interval for the population value assumes no population canonical correlation is near 0: where some "
    "are, this measure's finite-sample bias is of order sqrt(rank / n), larger than any resampling estimate of "
    "it, and the interval lies above the population value (see validation/results/coverage.md); compare the "
    "score with null_mean_rho and permutation_test"
)


def measure_function(measure: str) -> tuple[Callable[..., Any], bool]:
    """The measure's function and whether it accepts ``stats=`` (a statistics path)."""
    from ..measures import MEASURES, STATS_MEASURES

    if not isinstance(measure, str) or measure not in MEASURES:
        raise ValueError(f"measure must be one of {sorted(MEASURES)}, got {measure!r}")
    return MEASURES[measure], measure in STATS_MEASURES


def measure_bounds(measure: str) -> tuple[float, float]:
    """The range of a measure's scores."""
    return (-1.0, 1.0) if measure in _SIGNED else (0.0, 1.0)


def validate_common(n_resamples: int, confidence_level: float, method: str) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 2:
        raise ValueError(f"n_resamples must be an integer >= 2, got {n_resamples!r}")
    check_level(confidence_level)
    check_method(method)


def effective_blocks(n_blocks: int, block_size: int | None) -> int:
    """The block count the few-blocks correction sees: none for size-1 blocks (the i.i.d. bootstrap of rows)."""
    return 1 << 30 if block_size == 1 else n_blocks


def warn_few_blocks(n_blocks: int, confidence_level: float, method: str = DEFAULT_METHOD,
                    stacklevel: int = 3) -> None:
    """One :class:`FewBlocksWarning` when ``n_blocks`` is below the number the coverage study supports."""
    if n_blocks >= FEW_BLOCKS:
        return
    if method == "half_sampling":
        how = f"the half-sampling interval uses Student's t on {n_blocks - 1} degrees of freedom"
    else:
        how = f"this one was widened by {widening(n_blocks, confidence_level):.3f} (Student t)"
    warnings.warn(
        f"bootstrap over only {n_blocks} blocks (fewer than {FEW_BLOCKS}): intervals from few blocks are too narrow "
        f"and their width is itself uncertain; {how}. Use more batches or blocks for a calibrated interval",
        FewBlocksWarning,
        stacklevel=stacklevel,
    )


def draw_replicates(method: str, rng: np.random.Generator, n_blocks: int, count: int,
                    counts: np.ndarray) -> tuple[np.ndarray, float | None]:
    """Replicate weights ``(count, B)`` and, for half-sampling, ``m / (n - m)`` (``counts: (B,)`` rows per block)."""
    if method != "half_sampling":
        return draw_weights(rng, n_blocks, count), None
    weights = draw_half_weights(rng, n_blocks, count)
    return weights, half_fraction(weights, counts)


def bootstrap_engine(
    blocks: Blocks,
    evaluate: Callable[[SufficientStats], Any],
    *,
    n_resamples: int,
    confidence_level: float,
    method: str,
    rng: np.random.Generator,
    bounds: tuple[float, float] | None,
    what: str = "bootstrap",
    block_size: int | None = None,
    stacklevel: int = 5,
) -> tuple[np.ndarray, np.ndarray, IntervalEstimate]:
    """Estimate, replicates ``(R, ...)`` and interval of ``evaluate`` (scalar or array valued)."""
    B = blocks.n_blocks
    weights, fraction = draw_replicates(method, rng, B, n_resamples, np.asarray(blocks.counts, dtype=np.float64))
    with gathered_warnings(what, n_resamples + 1, stacklevel=stacklevel):
        estimate = np.asarray(evaluate(blocks.merge(np.ones((1, B)))(0)))
        replicates = run_weighted(blocks, weights, evaluate, what)

    def jackknife() -> np.ndarray:
        with gathered_warnings(f"{what} (jackknife)", B, stacklevel=7):
            return run_weighted(blocks, 1.0 - np.eye(B), evaluate, f"{what} jackknife")

    interval = compute_interval(replicates, estimate, method, confidence_level, jackknife,
                                n_blocks=effective_blocks(B, block_size), bounds=bounds, fraction=fraction)
    return estimate, replicates, interval


def _result(measure: str, est: Any, reps: np.ndarray, iv: IntervalEstimate, level: float, method: str,
            n_blocks: int, block_size: int | None, path: str, *, edge_checked: bool = False) -> BootstrapResult:
    """``edge_checked``: the noise edge was checked (a corrected interval where it showed, none needed elsewhere),
    so the undercoverage note does not apply."""
    bias = float(iv.bias)
    undercovers = REGISTRY[measure].biased_at_zero_correlation and not edge_checked
    notes = (*iv.notes, UNDERCOVER_NOTE) if undercovers else iv.notes
    exact = block_size == 1 and method != "half_sampling"
    return BootstrapResult(measure, float(est), iv.interval, reps, float(iv.standard_error), level, method,
                           n_blocks, block_size, exact, path, "population", bias, float(est) - bias, iv.method_used,
                           notes)


def bootstrap(
    X: Any = None,
    Y: Any = None,
    measure: str = "svcca",
    *,
    n_resamples: int = 1000,
    confidence_level: float = 0.95,
    method: str = DEFAULT_METHOD,
    block_size: int | None = None,
    partition: Partition = "random",
    seed: int | np.random.Generator | None = None,
    blocks: Sequence[SufficientStats] | None = None,
    i: int = 0,
    j: int = 1,
    **measure_options: Any,
) -> BootstrapResult:
    """Bootstrap confidence interval of the population value of ``measure(X, Y)``.

    ``X: (n, p)``, ``Y: (n, q)``, the same samples; or ``blocks``: one :class:`SufficientStats` per batch of
    a stream (the batches are the blocks; ``i``, ``j`` pick the two representations). ``method``:
    ``"half_sampling"`` (default, validated by the coverage study: subsamples of half the blocks without
    replacement, bias-corrected), ``"basic"`` (reverse percentile), ``"percentile"`` or ``"bca"``
    (with-replacement replicates). ``block_size``: rows per block
    (None: ``min(n, 256)`` blocks; 1: the exact i.i.d. bootstrap). ``partition``: blocks of rows drawn at
    random (i.i.d. samples) or ``"contiguous"`` runs (dependent samples). ``seed``: same seed, same intervals.
    Other keywords go to the measure (e.g. ``threshold`` for SVCCA). See the module docstring.
    """
    validate_common(n_resamples, confidence_level, method)
    fn, has_stats = measure_function(measure)
    rng = np.random.default_rng(seed)
    options = dict(measure_options)
    bounds = measure_bounds(measure)

    edge = uses_edge(REGISTRY[measure].correlation_family, method)

    def evaluate(stats: SufficientStats) -> Any:
        res = fn(stats=stats, **options)
        return np.array([res.score, *edge_values(res)]) if edge else res.score

    def from_blocks(blk: Blocks, block_size_used: int | None, path: str) -> BootstrapResult:
        used_blocks = effective_blocks(blk.n_blocks, block_size_used)
        warn_few_blocks(used_blocks, confidence_level, method, stacklevel=4)
        est, reps, iv = bootstrap_engine(
            blk, evaluate, n_resamples=n_resamples, confidence_level=confidence_level, method=method, rng=rng,
            bounds=bounds, block_size=block_size_used, stacklevel=6,
        )
        checked = False
        if edge:  # rows: score, corrected score, correlations at the edge, correlations, threshold
            note = lambda cells, e=est: edge_note(int(e[2]), int(e[3]), float(e[4]))  # noqa: E731
            est, reps, iv, checked = edge_interval(est, reps, iv, n_blocks=used_blocks, level=confidence_level,
                                                   note=note)
        return _result(measure, est, reps, iv, confidence_level, method, blk.n_blocks, block_size_used, path,
                       edge_checked=checked)

    if blocks is not None:
        if X is not None or Y is not None:
            raise ValueError("give either X and Y, or blocks, not both")
        if block_size is not None:
            raise ValueError("block_size applies to X and Y; with blocks, the given batches are the blocks")
        if not has_stats:
            raise ValueError(f"measure {measure!r} needs the data: it cannot be bootstrapped from blocks")
        return from_blocks(_blocks_from_stats(blocks, [i, j]), None, "block statistics")
    if X is None or Y is None:
        raise ValueError("X and Y are required when blocks is not given")
    # measures without a statistics path recompute from the rows, on the host; the others keep tensors on their device
    X, Y = checked_arrays([X, Y]) if has_stats else check_paired(X, Y)
    n = X.shape[0]
    order, bnds = _partition(n, block_size, partition, rng, X.shape[1] + Y.shape[1])
    largest = int(np.diff(bnds).max())
    if not has_stats:
        warn_few_blocks(effective_blocks(bnds.shape[0] - 1, largest), confidence_level, method)
        return _bootstrap_rows(X, Y, fn, measure, options, order, bnds, n_resamples, confidence_level, method, rng)
    packed = _fits_packed(bnds.shape[0] - 1, X.shape[1] + Y.shape[1])
    blk = _blocks_from_arrays([X, Y], order, bnds, packed=packed)
    return from_blocks(blk, largest, "block statistics" if packed else "weighted data")


def _bootstrap_rows(
    X: np.ndarray, Y: np.ndarray, fn: Callable[..., Any], measure: str, options: dict[str, Any],
    order: np.ndarray, bounds: np.ndarray, n_resamples: int, confidence_level: float, method: str,
    rng: np.random.Generator,
) -> BootstrapResult:
    """Bootstrap of a measure without a statistics path: rows of the drawn blocks, recomputed."""
    B = bounds.shape[0] - 1
    position_block = np.repeat(np.arange(B), np.diff(bounds))

    def score(weights: np.ndarray, k: int, what: str) -> float:
        rows = np.repeat(order, weights[position_block].astype(np.int64))
        try:
            return float(fn(X[rows], Y[rows], **options).score)
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise replicate_error(what, k, exc) from exc

    weights, fraction = draw_replicates(method, rng, B, n_resamples, np.diff(bounds).astype(np.float64))
    with gathered_warnings("bootstrap", n_resamples + 1, stacklevel=5):
        estimate = float(fn(X, Y, **options).score)
        replicates = np.array([score(w, k, "bootstrap") for k, w in enumerate(weights)])

    def jackknife() -> np.ndarray:
        with gathered_warnings("bootstrap (jackknife)", B, stacklevel=6):
            return np.array([score(w, k, "bootstrap jackknife") for k, w in enumerate(1.0 - np.eye(B))])

    largest = int(np.diff(bounds).max())
    iv = compute_interval(replicates, np.asarray(estimate), method, confidence_level, jackknife,
                          n_blocks=effective_blocks(B, largest), bounds=measure_bounds(measure), fraction=fraction)
    return _result(measure, estimate, replicates, iv, confidence_level, method, B, largest, "resampled rows")


def bootstrap_matrix(
    representations: Sequence[Any] | None = None,
    measure: str = "svcca",
    *,
    n_resamples: int = 1000,
    confidence_level: float = 0.95,
    method: str = DEFAULT_METHOD,
    block_size: int | None = None,
    partition: Partition = "random",
    seed: int | np.random.Generator | None = None,
    blocks: Sequence[SufficientStats] | None = None,
    names: Sequence[str] | None = None,
    **measure_options: Any,
) -> BootstrapMatrixResult:
    """Bootstrap of :func:`~ccalens.core.measures.similarity_matrix`: one interval per cell.

    ``representations``: L arrays ``(n, d_l)`` of the same samples, or ``blocks``: one joint
    :class:`SufficientStats` of the L representations per batch. Each replicate is one weighted merge of the
    block statistics followed by ``similarity_matrix`` of it. Options as in :func:`bootstrap`; with the same
    seed and blocks, cell ``(i, j)`` equals ``bootstrap(R_i, R_j)``.
    """
    from ..measures import similarity_matrix

    validate_common(n_resamples, confidence_level, method)
    rng = np.random.default_rng(seed)
    if blocks is not None:
        if representations is not None:
            raise ValueError("give either representations or blocks, not both")
        if block_size is not None:
            raise ValueError("block_size applies to representations; with blocks, the given batches are the blocks")
        blk = _blocks_from_stats(blocks, None)
        block_size_out: int | None = None
    else:
        if representations is None or len(representations) < 2:
            raise ValueError("representations must hold at least 2 arrays of the same samples")
        arrays = checked_arrays(representations)
        width = sum(a.shape[1] for a in arrays)
        order, bnds = _partition(arrays[0].shape[0], block_size, partition, rng, width)
        blk = _blocks_from_arrays(arrays, order, bnds, packed=_fits_packed(bnds.shape[0] - 1, width))
        block_size_out = int(np.diff(bnds).max())
    L = len(blk.sizes)
    names = tuple(names) if names is not None else tuple(f"R{k}" for k in range(L))
    warn_few_blocks(effective_blocks(blk.n_blocks, block_size_out), confidence_level, method)

    edge = uses_edge(REGISTRY[measure].correlation_family, method)

    def evaluate(stats: SufficientStats) -> np.ndarray:
        res = similarity_matrix(stats, measure, names=names, **measure_options)
        return np.stack([res.scores, res.edge_corrected, res.at_edge]) if edge else res.scores

    est, reps, iv = bootstrap_engine(
        blk, evaluate, n_resamples=n_resamples, confidence_level=confidence_level, method=method, rng=rng,
        bounds=measure_bounds(measure), block_size=block_size_out,
    )
    path = "block statistics" if blk.packed is not None else "weighted data"
    checked = False
    if edge:  # rows: scores, corrected scores, correlations at the edge
        est, reps, iv, checked = edge_interval(est, reps, iv, n_blocks=effective_blocks(blk.n_blocks, block_size_out),
                                               level=confidence_level, note=edge_cells_note)
    undercovers = REGISTRY[measure].biased_at_zero_correlation and not checked
    notes = (*iv.notes, UNDERCOVER_NOTE) if undercovers else iv.notes
    exact = block_size_out == 1 and method != "half_sampling"
    return BootstrapMatrixResult(
        measure, names, est, iv.interval, reps, iv.standard_error, confidence_level, method, blk.n_blocks,
        block_size_out, exact, path, "population", iv.bias, est - iv.bias, iv.method_used, notes,
    )

