"""A pair under many permutations of Y's rows (the permutation null), behind the prepared-sides protocol
(:class:`.definitions.PreparedPair`): each side whitened once, a pairing one product and one small eigenproblem."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..device import cross_product, right_multiply
from ..stats import SufficientStats
from ..whitening import DEFAULT_TOL
from .definitions import Measure
from .sides import Prepared, Rule

__all__ = ["PermutedPair"]


class PermutedPair:
    """``(X, Y[perm])`` for any permutation of Y's rows: each side whitened once from the unpermuted statistics
    (whose Sxx, Syy and means a permutation does not change), so a pairing costs ``Zx' Zy[perm]`` and one small
    eigenproblem. For the measures that need only whitenings (the correlation measures); call :meth:`permute`
    before finishing. ``Xc: (n, p)``, ``Yc: (n, q)``: the centred data, float64 arrays or tensors on one device
    (the whitened data and each pairing's product then stay there)."""

    same = False

    def __init__(self, measure: Measure, stats: SufficientStats, Xc: Any, Yc: Any,
                 options: dict[str, Any]) -> None:
        if not measure.needs <= {"whitening", "principal", "loadings"}:
            raise ValueError(f"{measure.name} is not a function of the whitened data alone")
        self.n_samples = stats.n_samples
        self.rule = measure.rule(options)
        tol = options.get("tol", DEFAULT_TOL)
        self.px, self.py = Prepared(stats, 0, tol), Prepared(stats, 1, tol)
        scale = 1.0 / math.sqrt(self.n_samples - 1.0)
        self.wx, self.wy = self.px.whitening(self.rule), self.py.whitening(self.rule)
        self.Zx = right_multiply(Xc, self.wx.whitener * scale)  # on the device of torch data
        self.Zy = right_multiply(Yc, self.wy.whitener * scale)
        self._full = (self.px.full, self.py.full) if "loadings" in measure.needs else None
        self.M: np.ndarray | None = None

    def permute(self, perm: np.ndarray) -> PermutedPair:
        """This pair with Y's rows in the order ``perm``: the whitened cross-covariance ``(rank_x, rank_y)``."""
        self.M = cross_product(self.Zx, self.Zy, perm)
        return self

    def ranks(self, rule: Rule) -> tuple[int, int]:
        return self.wx.rank, self.wy.rank

    def explained(self, rule: tuple[str, float]) -> tuple[float, float]:
        return self.px.top(rule).explained(rule[0]), self.py.top(rule).explained(rule[0])  # type: ignore[arg-type]

    def correlations(self, rule: Rule) -> np.ndarray:
        assert self.M is not None
        return np.clip(np.linalg.svd(self.M, compute_uv=False), 0.0, 1.0)

    def variates(self, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self.M is not None and self._full is not None
        W, own = (self.M, self._full[0]) if side == "x" else (self.M.T, self._full[1])
        vals, vecs = np.linalg.eigh(W @ W.T)
        squared = np.clip(vals[::-1], 0.0, 1.0)
        return np.sqrt(squared[: min(W.shape)]), squared, own.unwhiten(vecs[:, ::-1])

    def self_norms(self) -> tuple[float, float]:
        raise NotImplementedError("a permuted pair holds whitened data only")

    cross_norm = traces = cross_nuclear = self_norms  # type: ignore[assignment]
