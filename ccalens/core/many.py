"""Many representations with memory linear in their number: prepare each one once, then every pair.

``similarity_matrix`` of L representations through one joint co-moment needs ``8 (sum d_l)^2`` bytes before
the first pair (48 layers of 1,024 features: 19 GB). Here each representation ``X_l: (n, d_l)`` is reduced
once to coordinates ``R_l: (n, r_l)`` such that every pair is a function of the small product ``R_i' R_j``:

* CCA, PWCCA: ``R = Xc W`` with the whitener ``W`` of the representation (``W' C W = I``), so
  ``R_i' R_j / (n - 1)`` is the whitened cross-covariance whose singular values are the canonical
  correlations; SVCCA: the same with the top principal directions only;
* linear CKA, Procrustes: ``R = Xc`` (or ``U diag(s)`` from the sample-space path when ``d > n``), so that
  ``R_i' R_j`` has the Frobenius and nuclear norms of ``Xc_i' Xc_j``.

Wide representations (``d_l`` above the sample count or over the budget) are reduced in sample space
(:mod:`ccalens.core.dual`): ``R = U`` (left singular vectors) for the CCA family. Reductions are kept in
memory while they fit ``memory_budget``; the others are recomputed when a pair needs them, so memory stays
linear in L whatever the budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import device
from .dual import Gram, SampleBasis, centred_gram, centred_rows, gram_block_columns, small_offsets
from .plan import check_memory_budget, plan_stream_groups
from .stats import SufficientStats
from .whitening import Whitening

__all__ = ["ReducedPairs", "Reduction", "reduce_representation"]

#: Rows centred and multiplied at a time when the coordinates are formed.
ROW_BLOCK = 4096


@dataclass
class Reduction:
    """One representation prepared for every pair.

    Attributes:
        name: the representation's name (errors and warnings name it).
        kind: ``"whitened"`` (CCA family: ``R' R = (n - 1) I``) or ``"centred"`` (second-moment measures).
        rank: r, the columns of ``R``.
        n_features: d.
        n_samples: n.
        path: ``"primal"`` or ``"dual"``.
        loadings_basis: ``(d, r)`` maps whitened coordinates to neuron loadings (PWCCA), primal path only.
        self_norm: ``||Xc' Xc||_F`` (linear CKA) and ``trace``: ``tr(Xc' Xc)`` (Procrustes).
        explained: fraction of the spectrum kept under the truncation rule (SVCCA), else None.
        whitening, basis, mean: the feature-space whitening's spectrum (its directions dropped) or the sample basis
            kept (CCA family), and the means.
        raw: ``R`` is the data as they are (small offsets, second-moment measures): pairs subtract the means'
            outer product from ``X_i' X_j`` instead of centring copies.
    """

    name: str
    kind: str
    rank: int
    n_features: int
    n_samples: int
    path: str
    make: Callable[[], np.ndarray]
    loadings_basis: np.ndarray | None = None
    self_norm: float = 0.0
    trace: float = 0.0
    explained: float | None = None
    whitening: Whitening | None = None
    basis: SampleBasis | None = None
    mean: np.ndarray | None = None
    raw: bool = False
    _coords: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return 0 if self._coords is None else device.nbytes(self._coords)

    def coords(self) -> np.ndarray:
        """``R: (n, r)``: kept if :meth:`keep` was called, else computed now (and not kept)."""
        return self._coords if self._coords is not None else self.make()

    def keep(self) -> None:
        if self._coords is None:
            self._coords = self.make()
            self.make = lambda: self._coords  # type: ignore[assignment,return-value]  # frees what made them

    def centred(self) -> np.ndarray:
        """The centred data ``(n, d)`` of a raw reduction, in the input's precision (a copy)."""
        X = self.make()
        assert self.mean is not None
        return centred_rows(X, self.mean, _product_dtype(X))


def _product_dtype(X: np.ndarray) -> np.dtype:
    return np.dtype(np.float32) if X.dtype in (np.float32, np.float16) else np.dtype(np.float64)


def _project_rows(X: np.ndarray, mean: np.ndarray, W: np.ndarray, *, raw: bool) -> np.ndarray:
    """``(X - mean) @ W: (n, r)`` in the input's precision, row block by row block.

    ``raw``: the offsets are small (:func:`small_offsets`), so ``X @ W - mean @ W`` (one GEMM on the data as it is,
    no centred copy); otherwise each row block is centred in float64 first.
    """
    dtype = _product_dtype(X)
    Wc = W.astype(dtype, copy=False)
    out = np.empty((X.shape[0], W.shape[1]), dtype=dtype)
    shift = (mean @ W).astype(dtype)
    for lo in range(0, X.shape[0], ROW_BLOCK):
        if raw and X.dtype == dtype:
            np.matmul(X[lo : lo + ROW_BLOCK], Wc, out=out[lo : lo + ROW_BLOCK])
            out[lo : lo + ROW_BLOCK] -= shift
        else:
            out[lo : lo + ROW_BLOCK] = centred_rows(X[lo : lo + ROW_BLOCK], mean, dtype) @ Wc
    return out


def _centred_self_product(X: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, bool]:
    """``Xc' Xc: (d, d)`` float64 from one syrk of the data in its own precision, and whether the offsets were small
    enough for that (:func:`small_offsets`; else from a centred float64 copy, and False)."""
    n = X.shape[0]
    dtype = _product_dtype(X)
    A = X if X.dtype == dtype else X.astype(dtype)
    with np.errstate(all="ignore"):  # NaN/Inf are reported from the diagonal, by the caller
        P = (A.T @ A).astype(np.float64)  # syrk
        P -= n * np.multiply.outer(mean, mean)
    if small_offsets(mean, float(np.trace(P)), n) or not np.isfinite(np.trace(P)):
        return P, True
    Xc = centred_rows(X, mean, dtype)
    return (Xc.T @ Xc).astype(np.float64), False


def reduce_representation(
    X: np.ndarray,
    kind: str,
    *,
    name: str,
    dual: bool,
    primal_whitening: Callable[[np.ndarray], Whitening] | None = None,
    dual_basis: Callable[[Gram], SampleBasis] | None = None,
    standardize: bool = False,
    loadings: bool = True,
) -> Reduction:
    """Prepare ``X: (n, d)`` once for every pair.

    ``kind="whitened"`` (CCA family): ``primal_whitening(covariance)`` gives the whitening on the feature-space
    path (``dual=False``), ``dual_basis(gram)`` the kept sample basis on the sample-space path (``standardize``:
    the Gram of the standardised features; ``loadings``: keep the neuron-loading basis, which only PWCCA needs).
    ``kind="centred"`` (linear CKA, Procrustes): on the feature-space path
    nothing is copied when the offsets are small (each pair is then ``X_i' X_j - n m_i m_j'``, one GEMM on the data
    as they are), else the centred data; on the sample-space path ``U diag(s)`` from the Gram.
    """
    if device.is_tensor(X):
        return _reduce_tensor(X, kind, name=name, dual=dual, primal_whitening=primal_whitening,
                              dual_basis=dual_basis, standardize=standardize, loadings=loadings)
    n, d = X.shape
    if dual:
        gram = centred_gram(X, name=name, standardize=standardize and kind == "whitened")
        if kind == "whitened":
            assert dual_basis is not None
            basis = dual_basis(gram)
            left = basis.left * np.sqrt(n - 1.0)
            return Reduction(name, kind, basis.rank, d, n, "dual", make=lambda: left, basis=basis, mean=gram.mean)
        self_norm, trace = float(np.linalg.norm(gram.matrix)), gram.trace
        plain = SampleBasis.from_gram(gram, tol=0.0, name=name, overwrite=True)
        coords = plain.left * plain.singular_values
        return Reduction(name, kind, plain.rank, d, n, "dual", make=lambda: coords, self_norm=self_norm, trace=trace)
    if kind == "whitened":
        assert primal_whitening is not None
        stats = SufficientStats.from_arrays(X, names=(name,))
        mean = stats.means(0).copy()
        w = primal_whitening(stats.covariance(0))
        W = np.ascontiguousarray(w.whitener)
        raw = small_offsets(mean, float(np.trace(stats.block(0, 0))), n)
        # the whitening is kept for its spectrum only (SVCCA's explained fractions), without its (d, r) directions
        spectrum = replace(w, eigenvectors=np.zeros((0, w.rank)))
        return Reduction(name, kind, w.rank, d, n, "primal", make=lambda: _project_rows(X, mean, W, raw=raw),
                         loadings_basis=np.ascontiguousarray(w.dewhitener) if loadings else None, whitening=spectrum,
                         mean=mean)
    with np.errstate(all="ignore"):
        mean = X.mean(axis=0, dtype=np.float64)
    co, raw = _centred_self_product(X, mean)
    if raw:  # pairs from the data as they are (see ReducedPairs.product): nothing to keep
        return Reduction(name, kind, d, d, n, "primal", make=lambda: X, self_norm=float(np.linalg.norm(co)),
                         trace=float(np.trace(co)), mean=mean, raw=True)
    dtype = _product_dtype(X)
    return Reduction(name, kind, d, d, n, "primal",
                     make=lambda: centred_rows(X, mean, dtype),
                     self_norm=float(np.linalg.norm(co)), trace=float(np.trace(co)))


def _reduce_tensor(
    X: Any,
    kind: str,
    *,
    name: str,
    dual: bool,
    primal_whitening: Callable[[np.ndarray], Whitening] | None,
    dual_basis: Callable[[Gram], SampleBasis] | None,
    standardize: bool,
    loadings: bool,
) -> Reduction:
    """:func:`reduce_representation` of a torch tensor: its Gram or co-moment and its coordinates are multiplied on
    its device and the coordinates stay there (each pair is then one product on the device); the small
    eigendecompositions run on the host."""
    n, d = (int(v) for v in X.shape)
    device.check_finite_tensors([X], (name,))
    if dual:
        standardized = standardize and kind == "whitened"
        K, mean, scale = device.device_gram(X, standardize=standardized, columns=gram_block_columns(n))
        if not np.isfinite(K).all():
            raise ValueError(f"{name} has values whose products overflow float64; rescale it")
        gram = Gram(matrix=K, mean=mean, scale=scale, n_features=d, standardized=standardized)
        if kind == "whitened":
            assert dual_basis is not None
            basis = dual_basis(gram)
            left = device.from_host(basis.left * np.sqrt(n - 1.0), X)
            return Reduction(name, kind, basis.rank, d, n, "dual", make=lambda: left, basis=basis, mean=mean)
        self_norm, trace = float(np.linalg.norm(K)), float(np.trace(K))
        plain = SampleBasis.from_gram(gram, tol=0.0, name=name, overwrite=True)
        coords = device.from_host(plain.left * plain.singular_values, X)
        return Reduction(name, kind, plain.rank, d, n, "dual", make=lambda: coords, self_norm=self_norm, trace=trace)
    stats = SufficientStats.from_arrays(X, names=(name,))  # the co-moment multiplied on the device
    mean = stats.means(0).copy()
    if kind == "whitened":
        assert primal_whitening is not None
        w = primal_whitening(stats.covariance(0))
        W = np.ascontiguousarray(w.whitener)
        spectrum = replace(w, eigenvectors=np.zeros((0, w.rank)))
        return Reduction(name, kind, w.rank, d, n, "primal", make=lambda: device.project_centred(X, mean, W),
                         loadings_basis=np.ascontiguousarray(w.dewhitener) if loadings else None, whitening=spectrum,
                         mean=mean)
    coords = device.project_centred(X, mean, None)
    self_norm, trace = device.gram_norms(coords)
    return Reduction(name, kind, d, d, n, "primal", make=lambda: coords, self_norm=self_norm, trace=trace)


class ReducedPairs:
    """Pairs of prepared representations: keeps reductions while they fit ``memory_budget`` bytes."""

    def __init__(self, reductions: Sequence[Reduction], *, memory_budget: int | None = None) -> None:
        self.reductions = list(reductions)
        self.memory_budget = check_memory_budget(memory_budget)
        used = 0
        for r in self.reductions:
            if r.raw:  # the data themselves: nothing to keep
                continue
            size = r.rank * r.n_samples * 8
            if used + size <= self.memory_budget:
                r.keep()
                used += r.nbytes
        self.bytes_kept = used

    def product(self, i: int, j: int) -> np.ndarray:
        """``R_i' R_j`` in float64 (for raw reductions ``X_i' X_j - n m_i m_j'``, the centred product)."""
        ri, rj = self.reductions[i], self.reductions[j]
        a = ri.coords()
        b = a if i == j else rj.coords()
        if ri.raw != rj.raw:  # one side centred: centre the other (a copy for this pair only)
            a, b = (ri.centred() if ri.raw else a), (rj.centred() if rj.raw else b)
        if device.is_tensor(a):  # coordinates on a device: the product there, (r_i, r_j) to the host
            return device.matmul_to_host(a.T, b)
        out = (a.T @ b).astype(np.float64, copy=False)
        if ri.raw and rj.raw:
            assert ri.mean is not None and rj.mean is not None
            out -= ri.n_samples * np.multiply.outer(ri.mean, rj.mean)
        return out


# --------------------------------------------------------------------------------- streams
def stream_similarities(
    make_batches: Callable[[], Any],
    widths: Sequence[int],
    pairs: Sequence[tuple[int, int]],
    measure: Callable[..., Any],
    *,
    memory_budget: int | None = None,
    progress: bool = False,
    **options: Any,
) -> dict[tuple[int, int], Any]:
    """``measure`` of every pair of streamed representations, one pass over the data per group that fits.

    ``make_batches()`` returns a fresh iterable of batches, each a sequence of L arrays ``(n_b, widths[l])``
    (the same samples in every array); it is called once per group (:func:`plan_stream_groups`). ``measure``
    takes ``stats=, i=, j=`` (every statistics-path measure of :mod:`ccalens.core.measures`). Returns
    ``{(i, j): result}``.
    """
    groups = plan_stream_groups(widths, pairs, memory_budget=memory_budget)
    results: dict[tuple[int, int], Any] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pairs), desc="pairs (streamed)", unit="pair")
    for reps, group_pairs in groups:
        position = {r: k for k, r in enumerate(reps)}
        stats = SufficientStats()
        for batch in make_batches():
            if len(batch) != len(widths):
                raise ValueError(f"each batch must hold {len(widths)} arrays, got {len(batch)}")
            stats.update(*(batch[r] for r in reps))
        if stats.n_samples == 0:
            raise ValueError("make_batches() yielded no batches")
        for i, j in group_pairs:
            results[(i, j)] = measure(stats=stats, i=position[i], j=position[j], **options)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return results
