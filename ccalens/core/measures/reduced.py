"""Representations reduced once each for a matrix of pairs (:mod:`ccalens.core.many`), and a pair of them behind
the prepared-sides protocol (:class:`.definitions.PreparedPair`): feature space, or sample space where a
representation is wider than the sample count."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import device, dual
from ..device import is_tensor
from ..linalg import principal_whitening
from ..many import ReducedPairs, Reduction, reduce_representation
from ..whitening import DEFAULT_TOL, Whitening, whiten
from .definitions import Measure
from .sides import STANDARDIZE_CCA_CUT, Rule, frobenius, nuclear

__all__ = ["ReducedPair", "reduce_all"]


def reduce_all(
    measure: Measure, arrays: Sequence[np.ndarray], names: Sequence[str], options: dict[str, Any], method: str
) -> list[Reduction]:
    """Each representation prepared once for ``measure`` (feature space, or sample space where wider than the
    sample count): whitened coordinates for the correlation measures, centred ones for the others."""
    n = arrays[0].shape[0]
    tol = options.get("tol", DEFAULT_TOL)
    rule = measure.rule(options)
    kind = "whitened" if measure.correlation_family else "centred"

    def primal(cov: np.ndarray, name: str) -> Whitening:
        if rule is not None:
            return principal_whitening(cov, tol=tol, name=name).top(rule[1], rule[0])  # type: ignore[arg-type]
        w = whiten(cov, tol=tol, name=name, method="eigh", standardize=True)
        assert isinstance(w, Whitening)
        return w

    def sample(gram: dual.Gram, name: str) -> dual.SampleBasis:  # the Gram is not used after: destroyed
        basis = dual.SampleBasis.from_gram(gram, tol=tol, name=name, overwrite=True)
        return basis if rule is None else basis.top(rule[1], rule[0])

    def reduce(index: int) -> Reduction:
        X, name = arrays[index], names[index]
        return reduce_representation(
            X, kind, name=name, dual=method == "dual" or (method == "auto" and X.shape[1] > n),
            primal_whitening=lambda cov: primal(cov, name), dual_basis=lambda g: sample(g, name),
            standardize=STANDARDIZE_CCA_CUT and measure.standardize(), loadings="loadings" in measure.needs,
        )

    return [reduce(index) for index in range(len(arrays))]


class ReducedPair:
    """Reductions i and j of a :class:`ReducedPairs` store (the sides' rule is the one they were reduced with)."""

    def __init__(self, store: ReducedPairs, arrays: Sequence[np.ndarray], i: int, j: int) -> None:
        self.store, self.arrays, self.i, self.j = store, arrays, i, j
        self.ri, self.rj = store.reductions[i], store.reductions[j]
        self.n_samples = self.ri.n_samples
        self.same = i == j

    def ranks(self, rule: Rule) -> tuple[int, int]:
        return self.ri.rank, self.rj.rank

    def explained(self, rule: tuple[str, float]) -> tuple[float, float]:
        sides = [r.whitening if r.whitening is not None else r.basis for r in (self.ri, self.rj)]
        return sides[0].explained(rule[0]), sides[1].explained(rule[0])  # type: ignore[union-attr]

    def _whitened_cross(self) -> np.ndarray:
        return self.store.product(self.i, self.j) / (self.n_samples - 1.0)

    def correlations(self, rule: Rule) -> np.ndarray:
        if self.same:  # every canonical correlation of a subspace with itself is 1, by definition
            return np.ones(self.ri.rank)
        M = self._whitened_cross()
        small = M @ M.T if M.shape[0] <= M.shape[1] else M.T @ M
        return np.sqrt(np.clip(np.linalg.eigvalsh(small)[::-1], 0.0, 1.0))

    def variates(self, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        M = self._whitened_cross()
        own, data, W = (self.ri, self.arrays[self.i], M) if side == "x" else (self.rj, self.arrays[self.j], M.T)
        vals, vecs = np.linalg.eigh(W @ W.T)
        squared = np.clip(vals[::-1], 0.0, 1.0)
        U = vecs[:, ::-1]
        if own.loadings_basis is not None:  # covariances of the neurons with the unit-variance variates
            projections = own.loadings_basis @ U
        else:
            assert own.basis is not None and own.mean is not None
            H = own.basis.left @ U
            if is_tensor(data):
                products = device.feature_products(data, own.mean, H, columns=dual.gram_block_columns(self.n_samples))
            else:
                products = dual.feature_loadings(data, own.mean, H)
            projections = products / math.sqrt(self.n_samples - 1.0)
        return np.sqrt(squared[: min(W.shape)]), squared, projections

    def self_norms(self) -> tuple[float, float]:
        return self.ri.self_norm, self.rj.self_norm

    def cross_norm(self) -> float:
        return frobenius(self.store.product(self.i, self.j))

    def traces(self) -> tuple[float, float]:
        return self.ri.trace, self.rj.trace

    def cross_nuclear(self) -> float:
        return nuclear(self.store.product(self.i, self.j))
