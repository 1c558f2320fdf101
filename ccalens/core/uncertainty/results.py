"""Result types of the uncertainty package: intervals, bootstraps, permutation tests, paired differences."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "BootstrapMatrixResult",
    "BootstrapResult",
    "ConfidenceInterval",
    "DifferenceResult",
    "PermutationTestResult",
]


class ConfidenceInterval(NamedTuple):
    """Lower and upper bound (floats, or ``(L, L)`` arrays for a matrix)."""

    low: Any
    high: Any


def _jsonable(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value



def _resampling_fields(result: Any) -> dict[str, Any]:
    """The fields every bootstrap result reports about its resampling (JSON-ready)."""
    return {
        "confidence_level": result.confidence_level,
        "method": result.method,
        "method_used": result.method_used or result.method,
        "n_resamples": int(result.bootstrap_distribution.shape[0]),
        "n_blocks": result.n_blocks,
        "block_size": result.block_size,
        "exact_iid": result.exact_iid,
        "path": result.path,
        "notes": list(result.notes),
    }

@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap of one similarity score.

    Attributes:
        measure: measure name.
        estimate: the score on all samples.
        confidence_interval: ``(low, high)``: an interval for the *population* value (``estimand``).
        bootstrap_distribution: ``(n_resamples,)`` replicate scores.
        standard_error: standard deviation of the replicates (ddof=1).
        confidence_level: as requested.
        method: the interval method requested (``"basic"``, ``"percentile"`` or ``"bca"``).
        n_blocks: number of blocks B resampled.
        block_size: rows per block (the largest block; None for given block statistics).
        exact_iid: True when every block is one sample (the classical i.i.d. bootstrap).
        path: how replicates were computed: ``"block statistics"`` (weighted merges), ``"weighted data"``
            (one weighted product over the data per replicate) or ``"resampled rows"`` (recomputed).
        estimand: what the interval is for: ``"population"`` (the similarity of the distributions the samples
            were drawn from), not the finite-sample score.
        bias: bootstrap estimate of the estimate's bias, ``mean(replicates) - estimate``.
        bias_corrected: ``estimate - bias`` (first-order bias-corrected score).
        method_used: the method that produced the interval (differs from ``method`` when BCa is undefined).
        notes: sentences about the result (fallbacks, few blocks, widening).
    """

    measure: str
    estimate: float
    confidence_interval: ConfidenceInterval
    bootstrap_distribution: np.ndarray = field(repr=False)
    standard_error: float
    confidence_level: float
    method: str
    n_blocks: int
    block_size: int | None
    exact_iid: bool
    path: str
    estimand: str = "population"
    bias: float = 0.0
    bias_corrected: float = float("nan")
    method_used: str = ""
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (without the replicates)."""
        return {
            "measure": self.measure,
            "estimate": self.estimate,
            "estimand": self.estimand,
            "bias": self.bias,
            "bias_corrected": self.bias_corrected,
            "confidence_interval": [self.confidence_interval.low, self.confidence_interval.high],
            "standard_error": self.standard_error,
            **_resampling_fields(self),
        }


@dataclass(frozen=True)
class BootstrapMatrixResult:
    """Bootstrap of a similarity matrix: one interval per cell.

    Attributes:
        measure, names: as in :class:`~ccalens.core.result.SimilarityMatrix`.
        scores: ``(L, L)`` scores on all samples.
        confidence_interval: ``(low (L, L), high (L, L))``.
        bootstrap_distribution: ``(n_resamples, L, L)`` replicate matrices.
        standard_error: ``(L, L)``.
        confidence_level, method, n_blocks, block_size, exact_iid, path, estimand, method_used, notes: as in
            :class:`BootstrapResult`; ``bias: (L, L)`` and ``bias_corrected: (L, L)`` per cell.
    """

    measure: str
    names: tuple[str, ...]
    scores: np.ndarray
    confidence_interval: ConfidenceInterval
    bootstrap_distribution: np.ndarray = field(repr=False)
    standard_error: np.ndarray
    confidence_level: float
    method: str
    n_blocks: int
    block_size: int | None
    exact_iid: bool
    path: str
    estimand: str = "population"
    bias: np.ndarray | None = None
    bias_corrected: np.ndarray | None = None
    method_used: str = ""
    notes: tuple[str, ...] = ()

    def interval(self, i: int, j: int) -> ConfidenceInterval:
        """The interval of cell ``(i, j)``."""
        return ConfidenceInterval(float(self.confidence_interval.low[i, j]), float(self.confidence_interval.high[i, j]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (without the replicates)."""
        return {
            "measure": self.measure,
            "names": list(self.names),
            "scores": self.scores.tolist(),
            "estimand": self.estimand,
            "bias": _jsonable(self.bias),
            "bias_corrected": _jsonable(self.bias_corrected),
            "low": self.confidence_interval.low.tolist(),
            "high": self.confidence_interval.high.tolist(),
            "standard_error": self.standard_error.tolist(),
            **_resampling_fields(self),
        }


@dataclass(frozen=True)
class DifferenceResult:
    """Paired bootstrap of ``score(first) - score(second)`` on the same samples (same resampled rows for both).

    Attributes:
        measure: measure name.
        estimates: ``(score_first, score_second)`` on all samples.
        difference: ``score_first - score_second``.
        confidence_interval: interval for the population difference.
        pvalue: two-sided bootstrap p-value of "the population difference is 0" (inverting the interval method).
        bootstrap_distribution: ``(n_resamples,)`` replicate differences.
        standard_error, bias, bias_corrected, confidence_level, method, method_used, n_blocks, path, notes:
            as in :class:`BootstrapResult`, for the difference.
    """

    measure: str
    estimates: tuple[float, float]
    difference: float
    confidence_interval: ConfidenceInterval
    pvalue: float
    bootstrap_distribution: np.ndarray = field(repr=False)
    standard_error: float
    bias: float
    bias_corrected: float
    confidence_level: float
    method: str
    method_used: str
    n_blocks: int
    path: str
    estimand: str = "population"
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (without the replicates)."""
        return {
            "measure": self.measure,
            "estimates": list(self.estimates),
            "difference": self.difference,
            "estimand": self.estimand,
            "confidence_interval": [self.confidence_interval.low, self.confidence_interval.high],
            "pvalue": self.pvalue,
            "standard_error": self.standard_error,
            "bias": self.bias,
            "bias_corrected": self.bias_corrected,
            "confidence_level": self.confidence_level,
            "method": self.method,
            "method_used": self.method_used,
            "n_resamples": int(self.bootstrap_distribution.shape[0]),
            "n_blocks": self.n_blocks,
            "path": self.path,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class PermutationTestResult:
    """Permutation test of "X and Y are unrelated" (rows of Y permuted).

    Attributes:
        measure: measure name.
        statistic: the score of the observed pairing.
        pvalue: ``(count + 1) / (n_permutations + 1)``; count = permutations at least as extreme.
        null_distribution: ``(n_permutations,)`` scores of permuted pairings.
        null_mean, null_std: mean and standard deviation (ddof=1) of the null distribution: what unrelated
            data of this shape give at this n.
        null_mean_rho: mean over permutations of the mean canonical correlation (CCA family, else None).
        reference_null_mean_rho: the cheap expectation the measure's own result carries (its ``null_mean_rho``,
            when it has one), for comparison with the permutation value; else None.
        alternative: ``"greater"``, ``"less"`` or ``"two-sided"``.
        path: ``"whitened cross products"`` (each side whitened once), ``"cross block"`` (statistics with the
            permuted cross block) or ``"resampled rows"`` (recomputed from the permuted data).
    """

    measure: str
    statistic: float
    pvalue: float
    null_distribution: np.ndarray = field(repr=False)
    null_mean: float
    null_std: float
    null_mean_rho: float | None
    alternative: str
    path: str
    reference_null_mean_rho: float | None = None

    @property
    def n_permutations(self) -> int:
        return int(self.null_distribution.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (without the null distribution)."""
        return {
            "measure": self.measure,
            "statistic": self.statistic,
            "pvalue": self.pvalue,
            "null_mean": self.null_mean,
            "null_std": self.null_std,
            "null_mean_rho": self.null_mean_rho,
            "reference_null_mean_rho": self.reference_null_mean_rho,
            "n_permutations": self.n_permutations,
            "alternative": self.alternative,
            "path": self.path,
        }

