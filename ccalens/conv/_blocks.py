"""CCA, SVCCA and PWCCA of one pair of covariance blocks (real, or complex Hermitian per frequency), and PWCCA's
weights over many blocks (the frequencies of DFT-CCA), with the dense path's tie groups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ccalens.core.linalg import Whitening, canonical_correlations, cca_from_whitenings
from ccalens.core.measures.definitions import REGISTRY, mean_abs_coordinate, tie_bounds
from ccalens.core.validation import SvccaRule

__all__ = ["BLOCK_MEASURES", "BlockResult", "Measure", "block_measure", "check_measure", "pwcca_block_weights"]

Measure = Literal["cca", "svcca", "pwcca"]
#: The measures finished per pair of covariance blocks: the registry's means of canonical correlations.
BLOCK_MEASURES: tuple[str, ...] = tuple(name for name, m in REGISTRY.items() if m.correlation_family)


def check_measure(measure: object, threshold: float, keep: str = "singular_values") -> str:
    if not isinstance(measure, str) or measure not in BLOCK_MEASURES:
        raise ValueError(f"measure must be one of {BLOCK_MEASURES}, got {measure!r}")
    SvccaRule(keep, threshold)  # the one validation of SVCCA's rule
    return measure


@dataclass(frozen=True)
class BlockResult:
    """Canonical correlations ``(k,)`` of one block pair and, for PWCCA (else None), what its weights need: the
    squared correlations of all ``r`` kept directions of the weighting side ``(r,)``, descending, and the
    covariances of that side's neurons with its unit-variance canonical variates ``(d, r)``."""

    correlations: np.ndarray
    squared: np.ndarray | None = None
    projections: np.ndarray | None = None


def block_measure(
    wx: Whitening, wy: Whitening, cov_xx: np.ndarray, cov_xy: np.ndarray, *, n_samples: int, pwcca: bool
) -> BlockResult:
    """CCA of the kept subspaces of ``wx`` and ``wy`` given ``cov_xy: (p, q)``; for PWCCA also X's variates (every
    kept direction, from :func:`ccalens.core.linalg.canonical_correlations` as on the dense path's prepared sides)."""
    res = cca_from_whitenings(wx, wy, cov_xy, n_samples=n_samples)
    if not pwcca:
        return BlockResult(res.correlations)
    _, U, squared = canonical_correlations(wx, wy, cov_xy, vectors=True)  # the dense sides' variates
    assert U is not None
    return BlockResult(res.correlations, squared, wx.unwhiten(U))


def pwcca_block_weights(blocks: Sequence[BlockResult], multiplicity: np.ndarray) -> list[np.ndarray]:
    """PWCCA weights of every block's correlations (one ``(k_f,)`` array per block), normalised to sum to 1 with
    ``multiplicity: (F,)`` (a block counted m times).

    The neurons are the blocks' complex coordinates, block-diagonal: the dense definition
    (:func:`ccalens.core.measures.definitions.tied_weights`) on the union of the blocks' directions. Directions of
    all blocks whose squared correlations are equal within ``PWCCA_TIE`` form one group g (within a frequency or
    across frequencies); each counted correlation of g weighs ``E|u_1| sum_j ||P_g x_j||``, ``E|u_1|`` over the unit
    sphere of C^m (m: the group's size; 1 when untied, where the weight is Morcos's ``sum_j |cov(x_j, h)|``). A
    block's first ``k_f`` directions are its counted correlations; its further directions (correlation 0) join a
    group but carry no weight. A block and its mirror are the same neurons, conjugated: one block counted twice
    (``multiplicity``), not a tie.
    """
    live = [f for f, blk in enumerate(blocks) if blk.squared is not None and blk.squared.size]
    if not live:
        raise ValueError("PWCCA weights are all zero: no frequency has a canonical correlation")
    squared = np.concatenate([blocks[f].squared for f in live])  # type: ignore[misc]
    order = np.argsort(-squared, kind="stable")  # each block's directions stay in their (descending) order
    bounds = tie_bounds(squared[order])
    group_of = np.empty(squared.size, dtype=np.int64)
    group_of[order] = np.repeat(np.arange(bounds.size - 1), np.diff(bounds))
    norm_sums = np.zeros(bounds.size - 1)  # sum_j ||P_g x_j|| per group
    offset = 0
    block_groups: dict[int, np.ndarray] = {}
    for f in live:
        r = blocks[f].squared.size  # type: ignore[union-attr]
        ids = group_of[offset : offset + r]  # non-decreasing along the block's descending directions
        offset += r
        block_groups[f] = ids
        starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
        power = np.abs(blocks[f].projections) ** 2  # type: ignore[arg-type]
        np.add.at(norm_sums, ids[starts], np.sqrt(np.add.reduceat(power, starts, axis=1)).sum(axis=0))
    per_group = norm_sums * mean_abs_coordinate(np.diff(bounds), "complex")
    raw = [np.zeros(0) if f not in block_groups else per_group[block_groups[f][: blk.correlations.size]]
           for f, blk in enumerate(blocks)]
    total = float(sum(float(w.sum()) * m for w, m in zip(raw, multiplicity, strict=True)))
    if not total > 0.0:
        raise ValueError("PWCCA weights are all zero: the representation has no variance along its canonical variates")
    return [w / total for w in raw]
