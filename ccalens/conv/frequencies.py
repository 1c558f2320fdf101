"""Which 2-D DFT frequencies DFT-CCA compares, and where each lives in the ``rfft2`` output of each map.

Frequencies are signed integers ``(ku, kv)`` in cycles per image along H and W. Along one axis:

* equal sizes ``L``: all ``L`` frequencies, ``-(L // 2) .. (L - 1) // 2`` (for even ``L`` the Nyquist
  frequency is listed as ``-L/2``; it is its own mirror). The equal-size case is the full DFT-CCA.
* different sizes: the common low frequencies ``|k| <= K`` with ``K = (min(L_a, L_b) - 1) // 2``, i.e.
  the centred (fft-shifted) spectrum of the larger map cropped to the smaller grid. When the smaller
  size is even its Nyquist frequency ``±L/2`` is dropped: on the small grid it is a real (self-mirrored)
  coefficient that aliases ``+L/2`` and ``-L/2``, while on the larger grid those are two distinct complex
  coefficients, so it has no counterpart. The kept set is therefore always closed under negation.

Both maps are real, so the coefficient at ``-f`` is the complex conjugate of the one at ``f`` and carries
no new information: every statistic at ``-f`` is the conjugate of the one at ``f`` and gives the same
canonical correlations. Only one representative per mirror pair is kept (the one with a non-negative
``kv``, i.e. inside ``rfft2``'s output), with ``multiplicity`` 2, or 1 for self-mirrored frequencies
(DC and Nyquist combinations, whose coefficients are real). ``multiplicity.sum()`` equals the number of
frequencies of the kept grid, so weighted aggregates are those of the full (two-sided) spectrum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FrequencyPlan", "axis_frequencies", "frequency_plan"]


def axis_frequencies(size_a: int, size_b: int) -> tuple[list[int], int | None]:
    """Signed frequencies kept along one axis, and the Nyquist frequency if it is kept (else None)."""
    if size_a < 1 or size_b < 1:
        raise ValueError(f"spatial sizes must be positive, got {size_a} and {size_b}")
    if size_a == size_b:
        size = size_a
        nyquist = -(size // 2) if size % 2 == 0 else None
        return list(range(-(size // 2), (size - 1) // 2 + 1)), nyquist
    k = (min(size_a, size_b) - 1) // 2
    return list(range(-k, k + 1)), None


@dataclass(frozen=True)
class FrequencyPlan:
    """Kept frequencies of two maps of spatial sizes ``shape_a = (H_a, W_a)`` and ``shape_b``.

    Attributes:
        frequencies: ``(F, 2)`` signed ``(ku, kv)`` of one representative per mirror pair.
        multiplicity: ``(F,)`` 1 for a self-mirrored (real) frequency, 2 for a pair ``{f, -f}``.
        grid: ``(n_u, n_v)`` number of kept frequencies along each axis (``multiplicity.sum() = n_u * n_v``).
        index_a: ``(rows, cols)`` integer arrays ``(F,)`` locating each frequency in ``rfft2`` of map A.
        index_b: the same for map B.
    """

    shape_a: tuple[int, int]
    shape_b: tuple[int, int]
    frequencies: np.ndarray
    multiplicity: np.ndarray
    grid: tuple[int, int]
    index_a: tuple[np.ndarray, np.ndarray]
    index_b: tuple[np.ndarray, np.ndarray]

    @property
    def n_frequencies(self) -> int:
        return int(self.frequencies.shape[0])

    @property
    def is_full(self) -> bool:
        """True when both maps have the same spatial size (every frequency kept: the full DFT-CCA)."""
        return self.shape_a == self.shape_b


def frequency_plan(shape_a: tuple[int, int], shape_b: tuple[int, int]) -> FrequencyPlan:
    """Frequencies compared by DFT-CCA for maps of spatial sizes ``(H_a, W_a)`` and ``(H_b, W_b)``."""
    ks_u, nyq_u = axis_frequencies(shape_a[0], shape_b[0])
    ks_v, nyq_v = axis_frequencies(shape_a[1], shape_b[1])

    def neg(k: int, nyquist: int | None) -> int:
        return k if k == nyquist else -k

    def in_half(kv: int) -> bool:  # inside rfft2's non-negative column range for both maps
        return kv >= 0 or kv == nyq_v

    reps: dict[tuple[int, int], int] = {}
    for ku in ks_u:
        for kv in ks_v:
            p = (ku, kv)
            m = (neg(ku, nyq_u), neg(kv, nyq_v))
            rep = max(c for c in (p, m) if in_half(c[1]))  # prefer ku >= 0 on the kv = 0 column
            reps[rep] = 1 if p == m else 2
    order = sorted(reps, key=lambda f: (f[0] ** 2 + f[1] ** 2, f))
    freqs = np.array(order, dtype=np.int64).reshape(-1, 2)
    mult = np.array([reps[f] for f in order], dtype=np.int64)

    def index(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        return np.mod(freqs[:, 0], shape[0]), np.mod(freqs[:, 1], shape[1])

    plan = FrequencyPlan(
        shape_a=(int(shape_a[0]), int(shape_a[1])),
        shape_b=(int(shape_b[0]), int(shape_b[1])),
        frequencies=freqs,
        multiplicity=mult,
        grid=(len(ks_u), len(ks_v)),
        index_a=index(shape_a),
        index_b=index(shape_b),
    )
    assert int(mult.sum()) == len(ks_u) * len(ks_v)
    assert (plan.index_a[1] <= shape_a[1] // 2).all() and (plan.index_b[1] <= shape_b[1] // 2).all()
    return plan
