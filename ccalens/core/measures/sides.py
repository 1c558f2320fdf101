"""Ways of preparing the two sides of a pair, behind one protocol (:class:`.definitions.PreparedPair`).

* :class:`StatisticsPair`: feature space, from one :class:`SufficientStats` (co-moments; each representation's
  whitenings computed once, :class:`Prepared`, and shared by every pair and measure that uses it);
* :class:`GramPair`: sample space, from the centred Gram matrices of the data (:mod:`ccalens.core.dual`), for
  representations wider than the sample count or whose co-moments do not fit the memory budget;
* in their own modules: :class:`~.reduced.ReducedPair`, representations reduced once each for a matrix of pairs
  (:mod:`ccalens.core.many`), and :class:`~.permuted.PermutedPair`, one pair under many permutations of Y's rows.

None of them names a measure: each builds what the measure ``needs`` and answers the protocol's questions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import device, dual, gram_tiles
from ..device import check_tensors, is_tensor
from ..linalg import canonical_correlations, principal_whitening
from ..stats import SufficientStats, second_moment_statistics
from ..threads import MIN_PARALLEL_WIDTH, run_tasks
from ..validation import check_paired, default_names
from ..whitening import DEFAULT_TOL, CholeskyWhitening, Whitening, whiten
from .definitions import Measure

#: Arrays whose largest magnitude is outside [2^-SCALE_EXPONENT, 2^SCALE_EXPONENT] are rescaled by a power of 2.
SCALE_EXPONENT = 32
#: Co-moment diagonals (sums of squares) must lie within [2^-COMOMENT_EXPONENT, 2^COMOMENT_EXPONENT].
COMOMENT_EXPONENT = 900
#: CCA and PWCCA cut on the correlation matrix (scale-invariant), on every path; SVCCA on the covariance.
STANDARDIZE_CCA_CUT = True

Rule = tuple[str, float] | None


# --------------------------------------------------------------------------------- scale
def unit_scale(A: Any) -> Any:
    """``A`` itself, or ``A * 2^-e`` (float64, exact) when its largest magnitude is outside ``2^±SCALE_EXPONENT``
    (a torch tensor is scaled on its device)."""
    if is_tensor(A):
        if not A.is_floating_point() or A.numel() == 0:
            return A
        peak = float(A.abs().max())
    else:
        if A.dtype.kind != "f" or A.size == 0:
            return A
        peak = float(max(A.max(), -A.min()))
    if peak == 0.0 or not math.isfinite(peak) or 2.0**-SCALE_EXPONENT <= peak <= 2.0**SCALE_EXPONENT:
        return A
    exponent = -math.frexp(peak)[1]
    if is_tensor(A):
        return A.double() * 2.0**exponent  # a power of two in float64's normal range: exact, like ldexp
    return np.ldexp(A.astype(np.float64), exponent)


def checked_data(arrays: Sequence[Any]) -> list[Any]:
    """The data of a statistics measure, validated: torch tensors stay on their device (their co-moments are
    multiplied there, :mod:`ccalens.core.device`; NaN/Inf are found from the products), anything else becomes
    NumPy arrays (:func:`~ccalens.core.validation.check_paired`)."""
    if all(is_tensor(a) for a in arrays):  # tensors mixed with arrays all go to the host
        return check_tensors(arrays, default_names(len(arrays)), min_samples=2)
    return check_paired(*arrays, check_finite=False)


def _varies(A: Any) -> bool:
    """Whether ``A`` holds two different values (an array's or a tensor's)."""
    size = A.numel() if is_tensor(A) else A.size
    return bool(size) and bool(A.max() != A.min())


def _in_range(value: float) -> bool:
    return bool(np.isfinite(value)) and (value == 0.0 or 2.0**-COMOMENT_EXPONENT <= value <= 2.0**COMOMENT_EXPONENT)


def statistics(
    arrays: Sequence[np.ndarray], *, second_moments_only: bool = False
) -> tuple[SufficientStats, list[np.ndarray]]:
    """Statistics of ``arrays`` and the arrays they came from. The raw arrays are used unless their co-moments fall
    outside float64's accurate range (or their sums overflow): then the offending arrays are rescaled by a power
    of two (exact, :func:`unit_scale`) and the statistics recomputed, so no extra pass over the data is made in
    the common case. ``second_moments_only`` (linear CKA): float32 input multiplied in float32
    (:func:`~ccalens.core.stats.second_moment_statistics`)."""
    arrays = list(arrays)
    make = second_moment_statistics if second_moments_only else SufficientStats.from_arrays
    try:
        stats = make(*arrays)
        largest = [float(np.max(np.diagonal(stats.block(k, k)))) for k in range(len(arrays))]
        # out of range, or zero although the values differ (squares that underflowed): rescale those
        bad = [k for k, v in enumerate(largest)
               if not _in_range(v) or (v == 0.0 and _varies(arrays[k]))]
    except ValueError:  # sums that overflow float64, or NaN/Inf (the retry names them)
        bad = list(range(len(arrays)))
    if not bad:
        return stats, arrays
    arrays = [unit_scale(a) if k in bad else a for k, a in enumerate(arrays)]
    return make(*arrays), arrays


def check_comoment(stats: SufficientStats, index: int) -> None:
    """Clear errors for co-moments with no variance, or too close to float64's limits to be accurate."""
    diagonal = np.diagonal(stats.block(index, index))
    largest = float(diagonal.max()) if diagonal.size else 0.0
    if not np.isfinite(largest) or not np.isfinite(stats.block(index, index)).all():
        raise ValueError(
            f"the statistics of representation {index} are not finite (NaN or Inf in its co-moment: its features' "
            "squares overflowed float64); rescale its features (e.g. by a power of 2) before accumulating"
        )
    if not largest > 0.0:
        raise ValueError(
            f"representation {index} has no variance: every feature is constant over the samples, so no "
            "similarity with it is defined"
        )
    if not 2.0**-COMOMENT_EXPONENT <= largest <= 2.0**COMOMENT_EXPONENT:
        raise ValueError(
            f"the co-moment of representation {index} is {largest:.3g}, too close to float64's range limits to be "
            "accurate: rescale its features (e.g. by a power of 2) before accumulating the statistics"
        )


def frobenius(A: np.ndarray) -> float:
    """``||A||_F`` without overflow or underflow of the squares."""
    peak = float(np.abs(A).max()) if A.size else 0.0
    return 0.0 if peak == 0.0 else peak * float(np.linalg.norm(A / peak))


def nuclear(A: np.ndarray) -> float:
    return float(np.linalg.svd(A, compute_uv=False).sum())


# --------------------------------------------------------------------------------- feature space
@dataclass
class Prepared:
    """What one representation of a :class:`SufficientStats` contributes to every pair: its whitenings, once each.

    ``full`` is the whitening CCA and PWCCA use: cut on the correlation matrix (CCA is invariant to rescaling
    single neurons, so its cut must be too), by the Cholesky fast path when well conditioned, else by the
    eigendecomposition. ``eigen`` is the covariance's own eigendecomposition (principal directions);
    ``top(rule)`` is SVCCA's truncation of it (not scale invariant, by definition).
    """

    stats: SufficientStats
    index: int
    tol: float = DEFAULT_TOL
    _full: Whitening | CholeskyWhitening | None = None
    _eigen: Whitening | None = None
    _top: dict[tuple[str, float], Whitening] = field(default_factory=dict)

    @property
    def cov(self) -> np.ndarray:
        return self.stats.covariance(self.index)

    @property
    def name(self) -> str:
        return f"representation {self.index}"

    @property
    def eigen(self) -> Whitening:
        if self._eigen is None:
            self._eigen = principal_whitening(self.cov, tol=self.tol, name=self.name)
        return self._eigen

    @property
    def full(self) -> Whitening | CholeskyWhitening:
        """CCA's and PWCCA's whitening: the cut on the correlation matrix (scale invariant, per neuron)."""
        if self._full is None:
            self._full = whiten(self.cov, tol=self.tol, name=self.name, method="auto", standardize=True)
        return self._full

    def top(self, rule: tuple[str, float]) -> Whitening:
        if rule not in self._top:
            keep, threshold = rule
            self._top[rule] = self.eigen.top(threshold, keep)  # type: ignore[arg-type]
        return self._top[rule]

    def whitening(self, rule: Rule) -> Whitening | CholeskyWhitening:
        return self.full if rule is None else self.top(rule)


def prepare_all(prepared: Sequence[Prepared], measure: Measure, options: dict[str, Any]) -> None:
    """The whitening ``measure`` needs, for every representation, side by side (one BLAS thread each)."""
    if not measure.needs & {"whitening", "principal"}:
        return
    rule = measure.rule(options)

    def run(p: Prepared) -> None:
        p.whitening(rule).prepare()  # the whitener (a triangular inverse, or scaled eigenvectors), in the worker

    unique = list({id(p): p for p in prepared}.values())
    big = any(p.stats.sizes is not None and p.stats.sizes[p.index] >= MIN_PARALLEL_WIDTH for p in unique)
    run_tasks([lambda p=p: run(p) for p in unique], workers=None if big else 1)


class StatisticsPair:
    """Representations ``px.index`` and ``py.index`` of one :class:`SufficientStats`, prepared once each."""

    def __init__(self, px: Prepared, py: Prepared) -> None:
        self.px, self.py = px, py
        self.stats = px.stats
        self.n_samples = px.stats.n_samples
        self.same = px is py

    def _cross(self) -> tuple[np.ndarray, float]:
        """The co-moment block (a view) and ``1 / (n - 1)``, which makes it the cross-covariance."""
        self.stats._require(2, self.px.index, self.py.index)
        return self.stats.block(self.px.index, self.py.index), 1.0 / (self.n_samples - 1)

    def ranks(self, rule: Rule) -> tuple[int, int]:
        return self.px.whitening(rule).rank, self.py.whitening(rule).rank

    def explained(self, rule: tuple[str, float]) -> tuple[float, float]:
        keep = rule[0]
        return self.px.top(rule).explained(keep), self.py.top(rule).explained(keep)  # type: ignore[arg-type]

    def correlations(self, rule: Rule) -> np.ndarray:
        wx, wy = self.px.whitening(rule), self.py.whitening(rule)
        if self.same:  # every canonical correlation of a subspace with itself is 1, by definition
            return np.ones(wx.rank)
        rho, _, _ = canonical_correlations(wx, wy, *self._cross())
        return rho

    def variates(self, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cross, scale = self._cross()
        own, other, c = (self.px.full, self.py.full, cross) if side == "x" else (self.py.full, self.px.full, cross.T)
        rho, U, squared = canonical_correlations(own, other, c, scale, vectors=True)
        assert U is not None
        return rho, squared, own.unwhiten(U)

    def self_norms(self) -> tuple[float, float]:
        i, j = self.px.index, self.py.index
        return frobenius(self.stats.block(i, i)), frobenius(self.stats.block(j, j))

    def cross_norm(self) -> float:
        return frobenius(self.stats.block(self.px.index, self.py.index))

    def traces(self) -> tuple[float, float]:
        i, j = self.px.index, self.py.index
        return float(np.trace(self.stats.block(i, i))), float(np.trace(self.stats.block(j, j)))

    def cross_nuclear(self) -> float:
        return nuclear(self.stats.block(self.px.index, self.py.index))


def statistics_pairs(
    stats: SufficientStats, i: int, j: int, measures: Sequence[tuple[Measure, dict[str, Any]]]
) -> list[StatisticsPair]:
    """One :class:`StatisticsPair` per ``(measure, options)``: representations i, j checked once and prepared once
    per cut-off ``tol``, each measure's whitenings side by side."""
    for index in {i, j}:
        check_comoment(stats, index)
    prepared: dict[float, tuple[Prepared, Prepared]] = {}
    out = []
    for measure, options in measures:
        tol = options.get("tol", DEFAULT_TOL)
        if tol not in prepared:
            px = Prepared(stats, i, tol)
            prepared[tol] = (px, px if j == i else Prepared(stats, j, tol))
        pair = prepared[tol]
        prepare_all(pair, measure, options)
        out.append(StatisticsPair(*pair))
    return out


# --------------------------------------------------------------------------------- sample space
class GramPair:
    """``X: (n, p)``, ``Y: (n, q)`` from their centred Gram matrices (:mod:`ccalens.core.dual`): the same cut-offs,
    ranks and values as the feature-space path, built for what ``measure`` needs."""

    same = False

    def __init__(self, measure: Measure, X: Any, Y: Any, options: dict[str, Any]) -> None:
        """``X: (n, p)``, ``Y: (n, q)``: NumPy arrays, or torch tensors validated by :func:`checked_data`, whose
        Grams (and PWCCA's loadings) are then multiplied on their device, only ``(n, n)`` Grams and ``(d, k)``
        loadings coming to the host."""
        self.on_device = is_tensor(X)
        if self.on_device:
            device.check_finite_tensors([X, Y], ("X", "Y"))
        self.n_samples = int(X.shape[0])
        self.rule = measure.rule(options)
        self._parts: tuple[float, float, float] | None = None
        if "gram" in measure.needs:  # tiles of both Grams, never a whole one
            self._parts = self._tiled(X, Y)
            return
        self.standardize = STANDARDIZE_CCA_CUT and measure.standardize()
        # float32 input: float32 bases for the correlations (PWCCA's tie groups need float64 ones)
        loadings = "loadings" in measure.needs
        float32 = str(X.dtype) == str(Y.dtype) in ("float32", "torch.float32")
        self.storage = np.float32 if float32 and not loadings else np.float64
        cut = options.get("tol", DEFAULT_TOL) if measure.needs & {"whitening", "principal"} else 0.0
        self.bx, self.trace_x, self.mean_x, self.X = self._basis(X, "X", cut)
        self.by, self.trace_y, self.mean_y, self.Y = self._basis(Y, "Y", cut)

    def _tiled(self, X: Any, Y: Any) -> tuple[float, float, float]:
        parts = gram_tiles.linear_cka_tiled_parts
        if self.on_device:
            columns = dual.gram_block_columns(self.n_samples)
            parts = lambda X, Y: device.device_gram_parts(X, Y, columns=columns)  # noqa: E731
        try:
            return parts(X, Y)
        except ValueError as err:  # products beyond the float range: once more on power-of-two rescaled data
            if "overflow" not in str(err) and "no variance" not in str(err):
                raise
            return parts(unit_scale(X), unit_scale(Y))

    def _gram(self, A: np.ndarray, label: str) -> tuple[dual.Gram, np.ndarray]:
        """The centred Gram of ``A``; of ``A`` rescaled by a power of two when its magnitude calls for it (checked
        on the Gram's trace, so no extra pass over the data in the common case)."""
        try:
            g = self._centred_gram(A, label)
            trace = g.trace
            if _in_range(trace) and (trace > 0.0 or not _varies(A)):
                return g, A
        except ValueError:  # products that overflow float64 (or NaN/Inf: the retry names them)
            pass
        A = unit_scale(A)
        return self._centred_gram(A, label), A

    def _centred_gram(self, A: Any, label: str) -> dual.Gram:
        if not self.on_device:
            return dual.centred_gram(A, name=label, standardize=self.standardize)
        K, mean, scale = device.device_gram(A, standardize=self.standardize,
                                            columns=dual.gram_block_columns(self.n_samples))
        if not (np.isfinite(mean).all() and np.isfinite(K).all()):
            raise ValueError(f"{label} has values whose products overflow float64; rescale it")
        return dual.Gram(matrix=K, mean=mean, scale=scale, n_features=int(A.shape[1]), standardized=self.standardize)

    def _basis(self, A: np.ndarray, label: str, cut: float) -> tuple[dual.SampleBasis, float, np.ndarray, np.ndarray]:
        """One side at a time, its Gram destroyed by the eigensolver: ``(basis, trace, mean, data used)``."""
        g, A = self._gram(A, label)
        trace, mean = g.trace, g.mean
        basis = dual.SampleBasis.from_gram(g, tol=cut, name=label, overwrite=True, storage=self.storage)
        return basis, trace, mean, A

    def _bases(self, rule: Rule) -> tuple[dual.SampleBasis, dual.SampleBasis]:
        if rule is None:
            return self.bx, self.by
        keep, threshold = rule
        return self.bx.top(threshold, keep), self.by.top(threshold, keep)

    def ranks(self, rule: Rule) -> tuple[int, int]:
        bx, by = self._bases(rule)
        return bx.rank, by.rank

    def explained(self, rule: tuple[str, float]) -> tuple[float, float]:
        bx, by = self._bases(rule)
        return bx.explained(rule[0]), by.explained(rule[0])

    def correlations(self, rule: Rule) -> np.ndarray:
        rho, _ = dual.canonical_correlations(*self._bases(rule))
        return rho

    def variates(self, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        own, other, data, mean = (
            (self.bx, self.by, self.X, self.mean_x) if side == "x" else (self.by, self.bx, self.Y, self.mean_y)
        )
        M = dual.cross_product(own.left, other.left)
        vals, vecs = np.linalg.eigh(M @ M.T)
        squared = np.clip(vals[::-1], 0.0, 1.0)
        rho = np.sqrt(squared[: min(M.shape)])
        variates = own.left @ vecs[:, ::-1]  # unit-norm; unit variance after * sqrt(n - 1)
        if self.on_device:
            loadings = device.feature_products(data, mean, variates, columns=dual.gram_block_columns(self.n_samples))
        else:
            loadings = dual.feature_loadings(data, mean, variates)
        return rho, squared, loadings / math.sqrt(self.n_samples - 1.0)

    def self_norms(self) -> tuple[float, float]:
        assert self._parts is not None
        kk, ll, _ = self._parts
        return math.sqrt(kk), math.sqrt(ll)

    def cross_norm(self) -> float:
        assert self._parts is not None
        return math.sqrt(max(self._parts[2], 0.0))

    def traces(self) -> tuple[float, float]:
        return self.trace_x, self.trace_y

    def cross_nuclear(self) -> float:
        return dual.procrustes_nuclear(self.bx, self.by)
