"""Linear CKA of conv maps in the Fourier domain (Parseval), from the same per-frequency statistics as DFT-CCA.

Linear CKA of two representations is ``||S_ab||_F^2 / (||S_aa||_F ||S_bb||_F)`` with ``S`` the centred
co-moments of the flattened maps (``C*H*W`` features). The 2-D DFT of each channel is ``sqrt(H*W)`` times a
unitary map, so in DFT coordinates every Frobenius norm is the flattened one times ``H_a*W_a`` (``S_aa``),
``H_b*W_b`` (``S_bb``) or ``sqrt(H_a*W_a*H_b*W_b)`` (``S_ab``), and the ratio is unchanged. For a
translation-invariant distribution the DFT co-moments are block diagonal, one block per frequency, so

    ``||S_ab||_F^2 = sum_f m_f ||S_ab(f)||_F^2`` (likewise ``S_aa``, ``S_bb``),

``m_f`` the multiplicity of frequency ``f`` (2 for a mirror pair ``{f, -f}``, whose blocks are conjugate). On data
augmented with every cyclic shift of each image this is exact; on other data it is the DFT convention (the
cross-frequency blocks, zero in expectation under translation invariance, are left out), as for DFT-CCA.

Spatial sizes may differ: the cross term runs over the common low frequencies that DFT-CCA compares
(:mod:`ccalens.conv.frequencies`), each self term over its own map's full grid. A vector ``(n, d)`` is a
``1 x 1`` map: the cross term is then the map's zero frequency (its spatial mean, the only frequency a
translation-invariant vector shares with it), the map's self term still spans all its frequencies, which again
equals flattened-map linear CKA when the map is translation invariant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from ccalens.core.measures import REGISTRY
from ccalens.core.result import SimilarityResult

from .dft import DEFAULT_CHUNK_BYTES, DFTStats

__all__ = ["PARSEVAL_MEASURES", "dft_linear_cka", "frobenius_terms"]

#: The measures finished from the Frobenius norms of the co-moments alone (the registry's ``needs == {"gram"}``):
#: by Parseval, sums over the frequency blocks of DFT-CCA's statistics.
PARSEVAL_MEASURES: tuple[str, ...] = tuple(
    name for name, m in REGISTRY.items() if m.finish is not None and m.needs == frozenset({"gram"})
)


@dataclass(frozen=True)
class _FrequencyNorms:
    """The prepared pair of a Parseval measure: the norms summed over frequency blocks (squared, as
    :func:`frobenius_terms` returns them)."""

    n_samples: int
    cross: float
    self_a: float
    self_b: float
    same: bool = False

    def self_norms(self) -> tuple[float, float]:
        return math.sqrt(self.self_a), math.sqrt(self.self_b)

    def cross_norm(self) -> float:
        return math.sqrt(self.cross)


def frobenius_terms(stats: DFTStats) -> tuple[float, float, float]:
    """``(sum_f m_f ||S_ab(f)||^2, sum_f m_f ||S_aa(f)||^2, sum_f m_f ||S_bb(f)||^2)`` over the kept frequencies of
    ``stats`` (co-moments, not covariances: CKA is a ratio, the ``n - 1`` cancels)."""
    if stats.n_samples < 2 or stats.plan is None:
        raise ValueError(f"linear CKA needs at least 2 images, the statistics have {stats.n_samples}")
    assert stats.s_ab is not None and stats.s_aa is not None and stats.s_bb is not None
    mult = stats.plan.multiplicity.astype(np.float64)

    def norm2(s: np.ndarray) -> float:  # (F, p, q) complex -> weighted sum of squared Frobenius norms
        return float(mult @ (np.abs(s) ** 2).sum(axis=(1, 2)))

    return norm2(stats.s_ab), norm2(stats.s_aa), norm2(stats.s_bb)


def _as_maps(Z: Any, layout: str) -> np.ndarray:
    """``(n, d)`` as ``d`` channels of ``1 x 1`` maps in ``layout``; 4-D arrays unchanged."""
    Z = Z if hasattr(Z, "shape") else np.asarray(Z)
    if len(Z.shape) == 2:
        Z = np.asarray(Z)
        return Z[:, :, None, None] if layout == "NCHW" else Z[:, None, None, :]
    return Z


def _batched(A: Any, B: Any, batch_size: int, layout: str, chunk_bytes: int) -> DFTStats:
    stats = DFTStats(layout=layout, chunk_bytes=chunk_bytes)
    for start in range(0, A.shape[0], batch_size):
        stats.update(A[start : start + batch_size], B[start : start + batch_size])
    return stats


def dft_linear_cka(
    A: Any,
    B: Any,
    *,
    layout: Literal["NCHW", "NHWC"] = "NCHW",
    batch_size: int = 1024,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> SimilarityResult:
    """Linear CKA of ``A: (N, C_a, H_a, W_a)`` and ``B: (N, C_b, H_b, W_b)`` (or ``(N, d)`` vectors; ``(N, H, W, C)``
    for ``layout='NHWC'``) summed over frequency blocks (see the module docstring). Returns a result with
    ``measure='linear_cka'``, ``score`` in [0, 1], ``distance = arccos(score)`` and ``details`` (``convention='dft'``,
    ``grid``: common frequencies per axis, ``n_frequencies``)."""
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    A, B = _as_maps(A, layout), _as_maps(B, layout)
    stats = _batched(A, B, batch_size, layout, chunk_bytes)
    cross, self_a, self_b = frobenius_terms(stats)
    assert stats.plan is not None
    for side, X in (("a", A), ("b", B)):
        shape = stats.plan.shape_a if side == "a" else stats.plan.shape_b
        if stats.plan.grid != shape:  # the common grid is smaller: this side's self term over its own full grid
            _, own, _ = frobenius_terms(_batched(X, X, batch_size, layout, chunk_bytes))
            self_a, self_b = (own, self_b) if side == "a" else (self_a, own)
    if not (self_a > 0 and self_b > 0):
        name = "A" if not self_a > 0 else "B"
        raise ValueError(f"{name} has no variance: every channel is constant over the images, so CKA is undefined")
    finish = REGISTRY["linear_cka"].finish  # the one definition, from the frequency blocks' norms
    assert finish is not None
    res = finish(_FrequencyNorms(stats.n_samples, cross, self_a, self_b))
    score = min(max(res.score, 0.0), 1.0)  # rounding only: Cauchy-Schwarz bounds the exact value
    return replace(res, score=score, distance=float(np.arccos(score)),
                   details={"convention": "dft", "grid": stats.plan.grid, "n_frequencies": stats.plan.n_frequencies})
