"""Confidence intervals for the population value: half-sampling (the default), basic, percentile and BCa.

*Why half-sampling.* These similarities are biased upward at finite n (by O(1/n) where the score is a smooth
function of the covariances). ``"half_sampling"`` scores subsamples of half the blocks drawn *without*
replacement (0/1 weighted merges of the same block statistics, so no duplicated rows): with ``m`` of the ``n``
rows kept, the delete-half jackknife estimates the bias as ``(mean(replicates) - t) m / (n - m)`` and the
standard error as ``sd(replicates) sqrt(m / (n - m))`` (``Var(t_m - t_n) = s^2 (1/m - 1/n)``); the interval
is ``t - bias +- t_{B-1}(1 - a/2) se`` (Student's t on B - 1 degrees of freedom, so few blocks widen it).
``validation/coverage_study.py`` shows it covers the population value at its nominal rate for linear and
debiased CKA everywhere and for the CCA family and Procrustes where no population canonical correlation is
near 0. Where some are 0 the bias is of order 1/sqrt(n), which no resampling estimate captures: for the CCA
family the bootstrap then centres the interval on the noise-edge corrected score (:mod:`.edge`); Procrustes
keeps a note that its interval lies above the population value there.

*Basic.* The similarity measures are biased upward at finite n, and a replicate (rows drawn with
replacement, so duplicated) is biased upward again: the replicates sit above the estimate as the estimate sits
above the population value. The percentile interval (quantiles of the replicates) therefore lies above the
estimate and misses the population value; the basic (reverse-percentile) interval
``[2 t - q(1 - a/2), 2 t - q(a/2)]`` reflects the replicates about the estimate ``t`` and removes that
first-order bias (but not the bias of the estimate itself). ``validation/coverage_study.py`` measures the
coverage of each method.

*BCa* (Efron 1987) uses the proportion of replicates below the estimate (bias correction ``z0``) and the
jackknife acceleration. When the replicates lie wholly (or all but a few) on one side of the estimate, its
adjusted quantile levels fall beyond what the replicates resolve and the interval collapses onto an extreme
replicate: then the basic interval is used instead and the result says so.

*Few blocks.* With B resampled blocks the bootstrap variance is that of B i.i.d. values: biased low by
``(B - 1) / B`` and noisy, so intervals are too narrow (95% intervals cover about 87% with 10 blocks). Below
:data:`FEW_BLOCKS` blocks a :class:`FewBlocksWarning` is raised; the half-sampling interval already uses
Student's t on B - 1 degrees of freedom, the bootstrap methods are widened about their centre by
``sqrt(B / (B - 1)) t_{B-1}(1 - a/2) / z(1 - a/2)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import scipy.stats
from scipy.special import ndtr, ndtri

from .results import ConfidenceInterval

#: The interval methods, the default first.
METHODS = ("half_sampling", "basic", "percentile", "bca")
DEFAULT_METHOD = "half_sampling"
#: Half-sampling needs at least this many blocks (two per half).
MIN_HALF_SAMPLING_BLOCKS = 4
#: Below this many blocks, intervals are widened (Student's t on B - 1 degrees of freedom) and a warning says so.
FEW_BLOCKS = 64


class FewBlocksWarning(UserWarning):
    """A bootstrap resampled fewer than :data:`FEW_BLOCKS` blocks: its interval was widened and is approximate."""


def check_method(method: object) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    return str(method)


class IntervalEstimate(NamedTuple):
    """An interval with the bias and standard error the method estimated, the method used and notes."""

    interval: ConfidenceInterval
    bias: np.ndarray
    standard_error: np.ndarray
    method_used: str
    notes: tuple[str, ...]
    #: ``m / (n - m)`` of half-sample replicates (None for the bootstrap methods).
    fraction: float | None = None


def draw_half_weights(rng: np.random.Generator, n_blocks: int, count: int) -> np.ndarray:
    """0/1 weights ``(count, B)``: replicate r keeps ``B // 2`` blocks drawn without replacement."""
    if n_blocks < MIN_HALF_SAMPLING_BLOCKS:
        raise ValueError(f"half-sampling needs at least {MIN_HALF_SAMPLING_BLOCKS} blocks, got {n_blocks}: use more "
                         "samples or batches, or method='basic'")
    out = np.zeros((count, n_blocks), dtype=np.float64)
    for r in range(count):
        out[r, rng.permutation(n_blocks)[: n_blocks // 2]] = 1.0
    return out


def half_fraction(weights: np.ndarray, counts: np.ndarray) -> float:
    """``m / (n - m)`` for half-sample weights ``(R, B)`` over blocks of ``counts: (B,)`` rows (m: mean kept)."""
    kept = float(np.mean(weights @ counts))
    return kept / (float(np.sum(counts)) - kept)


def check_level(confidence_level: float) -> None:
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level}")


def percentile_bounds(replicates: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles ``a/2`` and ``1 - a/2`` of ``replicates: (R, ...)``."""
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(replicates, [alpha, 1.0 - alpha], axis=0)
    return low, high


def basic_bounds(replicates: np.ndarray, estimate: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Reverse percentile: ``2 t - q(1 - a/2)``, ``2 t - q(a/2)``."""
    low, high = percentile_bounds(replicates, level)
    return 2.0 * estimate - high, 2.0 * estimate - low


def bca_levels(
    replicates: np.ndarray, estimate: np.ndarray, jackknife: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BCa's adjusted quantile levels (low, high) and whether they are defined, elementwise over trailing axes.

    Undefined where the replicates lie wholly on one side of the estimate, or where a level falls outside
    ``[1/R, 1 - 1/R]`` (the interval would be an extreme replicate, not a quantile).
    """
    R = replicates.shape[0]
    below = np.mean(replicates < estimate, axis=0) + 0.5 * np.mean(replicates == estimate, axis=0)
    one_sided = (below <= 0.0) | (below >= 1.0)
    z0 = ndtri(np.clip(below, 0.5 / R, 1.0 - 0.5 / R))
    dev = jackknife.mean(axis=0) - jackknife
    num = np.sum(dev**3, axis=0)
    den = 6.0 * np.sum(dev**2, axis=0) ** 1.5
    accel = np.divide(num, den, out=np.zeros_like(np.asarray(num, dtype=np.float64)), where=den > 0)
    alpha = (1.0 - level) / 2.0
    levels = []
    for z_alpha in (ndtri(alpha), ndtri(1.0 - alpha)):
        z = z0 + z_alpha
        levels.append(ndtr(z0 + z / (1.0 - accel * z)))
    lo, hi = (np.asarray(v, dtype=np.float64) for v in levels)
    ok = ~one_sided & (lo >= 1.0 / R) & (hi <= 1.0 - 1.0 / R) & (hi > lo)
    return lo, hi, ok


def widening(n_blocks: int, level: float) -> float:
    """Factor by which a B-block interval's half-widths are widened (1 from :data:`FEW_BLOCKS` blocks on)."""
    if n_blocks >= FEW_BLOCKS:
        return 1.0
    alpha = (1.0 - level) / 2.0
    t = scipy.stats.t.ppf(1.0 - alpha, n_blocks - 1)
    return float(np.sqrt(n_blocks / (n_blocks - 1.0)) * t / ndtri(1.0 - alpha))


def compute_interval(
    replicates: np.ndarray,
    estimate: np.ndarray,
    method: str,
    level: float,
    jackknife: Callable[[], np.ndarray],
    *,
    n_blocks: int,
    bounds: tuple[float, float] | None = None,
    fraction: float | None = None,
) -> IntervalEstimate:
    """Interval of ``replicates: (R, ...)`` about ``estimate: (...)`` with its bias, standard error and notes.

    ``fraction``: ``m / (n - m)`` of half-sample replicates (required by ``"half_sampling"``). ``bounds``: the
    measure's range (the interval is clipped to it), or None.
    """
    estimate = np.asarray(estimate, dtype=np.float64)
    notes: list[str] = []
    used = method
    if method == "half_sampling":
        if fraction is None:
            raise ValueError("half_sampling needs the kept fraction of its replicates")
        bias = (replicates.mean(axis=0) - estimate) * fraction
        se = np.std(replicates, axis=0, ddof=1) * np.sqrt(fraction)
        t = float(scipy.stats.t.ppf(0.5 + level / 2.0, max(min(n_blocks, 1 << 20) - 1, 1)))
        centre = estimate - bias
        low, high = centre - t * se, centre + t * se
        return _finish(low, high, bias, se, used, notes, bounds, replicates.ndim)._replace(fraction=fraction)
    se = np.std(replicates, axis=0, ddof=1)
    bias = replicates.mean(axis=0) - estimate
    if method == "percentile":
        low, high = percentile_bounds(replicates, level)
    else:
        low, high = basic_bounds(replicates, estimate, level)
        if method == "bca":
            lo, hi, ok = bca_levels(replicates, estimate, jackknife(), level)
            flat = replicates.reshape(replicates.shape[0], -1)
            okf, lof, hif = ok.reshape(-1), lo.reshape(-1), hi.reshape(-1)
            lowf, highf = np.array(low, dtype=np.float64).reshape(-1), np.array(high, dtype=np.float64).reshape(-1)
            for c in np.flatnonzero(okf):
                lowf[c], highf[c] = np.quantile(flat[:, c], [lof[c], hif[c]])
            low, high = lowf.reshape(estimate.shape), highf.reshape(estimate.shape)
            if not okf.all():
                side = np.mean(replicates > estimate, axis=0).reshape(-1)[~okf]
                where = "above" if np.all(side >= 0.5) else "below" if np.all(side <= 0.5) else "on one side of"
                count = "" if okf.size == 1 else f" in {int((~okf).sum())} of {okf.size} cells"
                notes.append(
                    f"BCa undefined{count}: the bootstrap distribution lies (almost) wholly {where} the estimate, "
                    "so its adjusted quantiles are extreme replicates; the basic interval is used there"
                )
                used = "bca+basic" if okf.any() else "basic"
    factor = widening(n_blocks, level)
    if factor > 1.0:
        centre = 2.0 * estimate - replicates.mean(axis=0) if method != "percentile" else replicates.mean(axis=0)
        low = centre - factor * (centre - low)
        high = centre + factor * (high - centre)
        notes.append(f"only {n_blocks} blocks: interval widened by {factor:.3f} (Student t, {n_blocks - 1} df)")
    return _finish(low, high, bias, se, used, notes, bounds, replicates.ndim)


def _finish(low: np.ndarray, high: np.ndarray, bias: np.ndarray, se: np.ndarray, used: str, notes: list[str],
            bounds: tuple[float, float] | None, ndim: int) -> IntervalEstimate:
    if bounds is not None:
        low, high = np.clip(low, *bounds), np.clip(high, *bounds)
    if ndim == 1:
        ci = ConfidenceInterval(float(low), float(high))
    else:
        ci = ConfidenceInterval(np.asarray(low), np.asarray(high))
    return IntervalEstimate(ci, np.asarray(bias), np.asarray(se), used, tuple(notes))
