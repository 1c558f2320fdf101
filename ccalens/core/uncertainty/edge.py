"""Half-sampling intervals of the CCA family centred on the noise-edge corrected score.

Where some population canonical correlations are 0 the sample ones sit at the edge of the noise, an upward bias
of order ``sqrt(rank / n)`` that no resampling estimate captures (half-samples are biased by more, in a way the
delete-half jackknife's ``1 / n`` expansion does not describe). When the estimate's correlations show such
directions (fewer detected above the noise edge than there are correlations,
:func:`ccalens.core.noise_edge.edge_corrected_correlations`), the default interval is centred instead on the
score of the corrected correlations, with the standard error of the corrected score over the half-samples
(each corrected at its own sample size): ``t_edge +- t_{B-1}(1 - a/2) se``. Elsewhere (every correlation above
the edge) the plain half-sampling interval is kept. ``validation/coverage_study.py`` measures both.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.stats

from ..noise_edge import edge_corrected_score
from ..result import SimilarityResult
from .intervals import IntervalEstimate
from .results import ConfidenceInterval

__all__ = ["EDGE_METHOD", "edge_cells_note", "edge_interval", "edge_note", "edge_values", "uses_edge"]

#: ``method_used`` of an interval centred on the noise-edge corrected score.
EDGE_METHOD = "half_sampling+noise_edge"


def edge_values(result: SimilarityResult) -> tuple[float, float, float, float]:
    """``(corrected score, correlations at the noise edge, correlations, threshold)`` of a CCA-family result
    (NaN at the edge and threshold where no noise model applies)."""
    fix = edge_corrected_score(result)
    if fix.detected is None:
        return fix.score, float("nan"), float(fix.total), float("nan")
    return fix.score, float(fix.total - fix.detected), float(fix.total), fix.threshold


def uses_edge(correlation_family: bool, method: str) -> bool:
    """Whether a bootstrap checks the noise edge: CCA-family measures under the default ``half_sampling``."""
    return correlation_family and method == "half_sampling"


def edge_interval(
    estimate: np.ndarray, replicates: np.ndarray, iv: IntervalEstimate, *, n_blocks: int, level: float,
    note: Callable[[np.ndarray], str],
) -> tuple[np.ndarray, np.ndarray, IntervalEstimate, bool]:
    """The score, its replicates and its interval from values stacked by rows (``estimate: (K, ...)``,
    ``replicates: (R, K, ...)``, K >= 3: score, corrected score, correlations at the noise edge; ``iv`` computed
    over all of them): cells with correlations at the edge take ``corrected +- t se`` (``se`` of the corrected
    half-samples, ``fraction`` their ``m / (n - m)``), the others keep the score's interval. Also returns whether
    the edge was checked anywhere (some cell has a noise model). ``note(cells)`` words the note."""
    assert iv.fraction is not None
    low, high = (np.array(np.asarray(v)[0], dtype=np.float64) for v in (iv.interval.low, iv.interval.high))
    bias, se = np.array(np.asarray(iv.bias)[0]), np.array(np.asarray(iv.standard_error)[0])
    at_edge = estimate[2]
    cells = np.nan_to_num(at_edge, nan=0.0) > 0
    used, notes = iv.method_used, iv.notes
    if cells.any():
        corrected = estimate[1]
        e_se = np.std(replicates[:, 1], axis=0, ddof=1) * np.sqrt(iv.fraction)
        t = float(scipy.stats.t.ppf(0.5 + level / 2.0, max(min(n_blocks, 1 << 20) - 1, 1)))
        low[cells] = np.clip(corrected - t * e_se, 0.0, 1.0)[cells]
        high[cells] = np.clip(corrected + t * e_se, 0.0, 1.0)[cells]
        se[cells], bias[cells] = e_se[cells], (estimate[0] - corrected)[cells]
        used = EDGE_METHOD if cells.all() else f"{EDGE_METHOD} in {int(cells.sum())} of {cells.size} cells"
        notes = (*notes, note(cells))
    interval = ConfidenceInterval(float(low), float(high)) if low.ndim == 0 else ConfidenceInterval(low, high)
    checked = bool(np.isfinite(at_edge).any())
    return (estimate[0], replicates[:, 0],
            iv._replace(interval=interval, bias=bias, standard_error=se, method_used=used, notes=notes), checked)


def edge_note(at_edge: int, total: int, threshold: float) -> str:
    """The note of a pair's interval centred on the edge-corrected score."""
    return (f"{at_edge} of {total} canonical correlations lie at the noise edge and are counted as 0 (a "
            f"population correlation below about {threshold:.3f} cannot be told from 0 at this sample size); the "
            "interval is centred on the score of the edge-corrected correlations")


def edge_cells_note(cells: np.ndarray) -> str:
    """The note of a matrix whose ``cells`` (a mask) have correlations at the noise edge."""
    return (f"{int(cells.sum())} of {cells.size} cells have canonical correlations at the noise edge: they are "
            "counted as 0 there (a correlation below the edge cannot be told from 0 at this sample size) and those "
            "cells' intervals are centred on the score of the edge-corrected correlations")
