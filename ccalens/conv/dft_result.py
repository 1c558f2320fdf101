"""The result of DFT-CCA (:class:`DFTResult`): per-frequency canonical correlations and their aggregate."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["DFTResult"]


@dataclass(frozen=True)
class DFTResult:
    """DFT-CCA of two conv maps: per-frequency canonical correlations and their aggregate.

    Attributes:
        measure: ``'cca'``, ``'svcca'`` or ``'pwcca'``.
        score: aggregated similarity: the mean of ``correlations`` (CCA, SVCCA) or the PWCCA-weighted mean.
        correlations: ``(K,)`` every canonical correlation over all frequencies of the kept grid, mirrored
            frequencies counted twice, sorted descending, plus ``n_zeros`` zeros: when the total kept ranks
            of A and B differ from frequency to frequency, CCA of the flattened maps has
            ``min(sum rank_a, sum rank_b)`` correlations and the extra ones, pairing different
            frequencies, are 0. For translation-invariant data and the full grid this is exactly the
            multiset of canonical correlations of the flattened maps (CCA, and SVCCA with
            ``svcca_scope='global'``).
        per_frequency: ``F`` arrays ``(k_f,)`` of each kept frequency's correlations (descending;
            ``k_f = 0`` where a map has no variance kept at that frequency).
        per_frequency_score: ``(F,)`` mean correlation (PWCCA: weighted mean) per frequency, NaN where empty.
        frequencies: ``(F, 2)`` signed frequencies ``(ku, kv)`` in cycles per image.
        multiplicity: ``(F,)`` 2 for a mirror pair ``{f, -f}``, 1 for a real (self-mirrored) frequency.
        grid: kept frequencies per axis; ``multiplicity.sum() == grid[0] * grid[1]``.
        n_zeros: zeros appended to ``correlations`` (see above).
        n_samples: number of images.
        rank_a, rank_b: ``(F,)`` dimensions kept per frequency on each side.
        pwcca_weights: for PWCCA, ``F`` arrays ``(k_f,)`` of normalised weights (summing to 1 over all
            frequencies with multiplicity); None otherwise.
        keep, threshold: SVCCA's truncation rule (see :meth:`DFTStats.result`); recorded for every measure.
    """

    measure: str
    score: float
    correlations: np.ndarray
    per_frequency: list[np.ndarray]
    per_frequency_score: np.ndarray
    frequencies: np.ndarray
    multiplicity: np.ndarray
    grid: tuple[int, int]
    n_zeros: int
    n_samples: int
    rank_a: np.ndarray
    rank_b: np.ndarray
    pwcca_weights: list[np.ndarray] | None = field(default=None, repr=False)
    keep: str = "singular_values"
    threshold: float = 0.99

    @property
    def mean_rho(self) -> float:
        return float(np.mean(self.correlations)) if self.correlations.size else float("nan")

    @property
    def mean_rho2(self) -> float:
        return float(np.mean(self.correlations**2)) if self.correlations.size else float("nan")

    def correlation_matrix(self) -> np.ndarray:
        """Per-frequency correlations padded with NaN: ``(F, max k_f)``."""
        width = max((c.size for c in self.per_frequency), default=0)
        out = np.full((len(self.per_frequency), width), np.nan)
        for f, c in enumerate(self.per_frequency):
            out[f, : c.size] = c
        return out
