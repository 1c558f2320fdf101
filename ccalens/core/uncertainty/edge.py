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

import numpy as np
import scipy.stats

from ..noise_edge import edge_corrected_score
from ..result import SimilarityResult

__all__ = ["EDGE_METHOD", "edge_bounds", "edge_note", "edge_values"]

#: ``method_used`` of an interval centred on the noise-edge corrected score.
EDGE_METHOD = "half_sampling+noise_edge"


def edge_values(result: SimilarityResult) -> tuple[float, float, float, float]:
    """``(corrected score, correlations at the noise edge, correlations, threshold)`` of a CCA-family result
    (NaN at the edge and threshold where no noise model applies)."""
    fix = edge_corrected_score(result)
    if fix.detected is None:
        return fix.score, float("nan"), float(fix.total), float("nan")
    return fix.score, float(fix.total - fix.detected), float(fix.total), fix.threshold


def edge_bounds(corrected: np.ndarray, replicates: np.ndarray, *, fraction: float, n_blocks: int,
                level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(low, high, se)`` of ``corrected +- t se``, elementwise, from the corrected half-sample
    ``replicates: (R, ...)`` (``fraction``: their ``m / (n - m)``)."""
    se = np.std(replicates, axis=0, ddof=1) * np.sqrt(fraction)
    t = float(scipy.stats.t.ppf(0.5 + level / 2.0, max(min(n_blocks, 1 << 20) - 1, 1)))
    return np.clip(corrected - t * se, 0.0, 1.0), np.clip(corrected + t * se, 0.0, 1.0), se


def edge_note(at_edge: int, total: int, threshold: float, cells: str = "") -> str:
    """The note of an interval centred on the edge-corrected score."""
    return (f"{at_edge} of {total} canonical correlations lie at the noise edge{cells} and are counted as 0 (a "
            f"population correlation below about {threshold:.3f} cannot be told from 0 at this sample size); the "
            "interval is centred on the score of the edge-corrected correlations")
