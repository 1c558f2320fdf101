"""Similarity measures, all computed from one :class:`~ccalens.core.stats.SufficientStats`.

Every measure takes ``X: (n, p)`` and ``Y: (n, q)`` (rows = the same samples) or precomputed ``stats``,
and returns a :class:`SimilarityResult`. Definitions (C = covariances, W = whiteners):

* ``cca``: canonical correlations rho_i = singular values of ``Wx' Cxy Wy``; score = mean rho.
* ``svcca``: same, after keeping on each side the top principal directions that explain ``variance``
  (default 0.99) of the variance (Raghu et al. 2017); score = mean rho.
* ``pwcca``: rho weighted by alpha_i ~ sum_j |<h_i, x_j>| (h_i: unit-norm canonical variates of X,
  x_j: centred neurons of X; Morcos et al. 2018). Not symmetric: the weights come from X.
* ``linear_cka``: ``||Cxy||_F^2 / (||Cxx||_F ||Cyy||_F)`` (Kornblith et al. 2019).
* ``debiased_linear_cka``: CKA with the unbiased HSIC estimator (Song et al. 2012); needs the data.
* ``rbf_cka``: CKA with Gaussian kernels; see :mod:`ccalens.core.kernel`.
* ``procrustes``: ``||Cxy||_* / sqrt(tr Cxx tr Cyy)``, one minus half the squared orthogonal Procrustes
  distance between the centred, Frobenius-normalised representations (Ding et al. 2021).

``similarity_matrix`` compares many representations with one joint pass over the data: each one is
whitened once, then every pair costs its cross block and one small eigenproblem.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .result import SimilarityMatrix, SimilarityResult
from .stats import SufficientStats
from .threads import MIN_PARALLEL_WIDTH, blas_threads, run_tasks
from .validation import check_paired, warn_if_underdetermined
from .whitening import DEFAULT_TOL, CholeskyWhitening, Whitening, whiten

__all__ = [
    "MEASURES",
    "SimilarityMatrix",
    "SimilarityResult",
    "cca_similarity",
    "compare",
    "debiased_linear_cka",
    "linear_cka",
    "procrustes",
    "pwcca",
    "rbf_cka",
    "similarity_matrix",
    "svcca",
]


# --------------------------------------------------------------------------------- per-representation
@dataclass
class _Prepared:
    """What one representation contributes to every pair: its whitenings, computed once.

    ``full`` is the whitening CCA and PWCCA use: the Cholesky fast path when the covariance is well
    conditioned, else (or when ``eigen`` exists anyway) the eigendecomposition. ``top`` is SVCCA's.
    """

    stats: SufficientStats
    index: int
    tol: float
    variance: float
    _full: Whitening | CholeskyWhitening | None = None
    _eigen: Whitening | None = None
    _top: Whitening | None = None

    @property
    def cov(self) -> np.ndarray:
        return self.stats.covariance(self.index)

    @property
    def name(self) -> str:
        return f"representation {self.index}"

    @property
    def eigen(self) -> Whitening:
        if self._eigen is None:
            w = whiten(self.cov, tol=self.tol, name=self.name, method="eigh")
            assert isinstance(w, Whitening)
            self._eigen = w
        return self._eigen

    @property
    def full(self) -> Whitening | CholeskyWhitening:
        if self._full is None:
            if self._eigen is not None:
                self._full = self._eigen
            else:
                self._full = whiten(self.cov, tol=self.tol, name=self.name, method="auto")
        return self._full

    @property
    def top(self) -> Whitening:
        if self._top is None:
            self._top = self.eigen.top_variance(self.variance)
        return self._top


def _whiten_all(prepared: Sequence[_Prepared], kind: str) -> None:
    """Compute the whitening ``kind`` needs for every representation, side by side (one BLAS thread each)."""
    attr = "top" if kind == "svcca" else "full"
    todo = [p for p in prepared if getattr(p, "_" + attr) is None]

    def task(p: _Prepared) -> None:
        w = getattr(p, attr)
        if isinstance(w, CholeskyWhitening):
            w.prepare()  # the triangular inverse, inside the worker

    big = any(p.stats.sizes is not None and p.stats.sizes[p.index] >= MIN_PARALLEL_WIDTH for p in todo)
    run_tasks([lambda p=p: task(p) for p in todo], workers=None if big else 1)


def _correlations_and_left_vectors(
    wx: Whitening | CholeskyWhitening, wy: Whitening | CholeskyWhitening, cross: np.ndarray, *, vectors: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Canonical correlations (descending) and, if asked, the left singular vectors of ``M = Wx' C Wy``.

    Uses the eigendecomposition of the smaller Gram matrix of M: rho^2 are its eigenvalues. This is
    about 3x faster than an SVD; rho near 0 are then accurate to ~1e-8 absolute, which is immaterial
    for the summaries (the :class:`~ccalens.core.cca.CCA` estimator uses a full SVD).
    """
    M = wy.whiten_columns(wx.whiten_rows(cross))  # Wx' C Wy
    left = M.shape[0] <= M.shape[1]
    if vectors and not left:
        # left vectors are needed but X is the wider side: take them from an SVD
        U, s, _ = np.linalg.svd(M, full_matrices=False)
        return np.clip(s, 0.0, 1.0), U
    gram = M @ M.T if left else M.T @ M  # syrk
    if vectors:
        vals, vecs = np.linalg.eigh(gram)
        U = vecs[:, ::-1]
    else:
        vals, U = np.linalg.eigvalsh(gram), None
    rho = np.sqrt(np.clip(vals[::-1], 0.0, 1.0))
    return rho, U


def _cca_family(px: _Prepared, py: _Prepared, kind: str) -> SimilarityResult:
    stats = px.stats
    n = stats.n_samples
    cross = stats.covariance(px.index, py.index)
    _whiten_all((px, py), kind)
    wx: Whitening | CholeskyWhitening
    wy: Whitening | CholeskyWhitening
    if kind == "svcca":
        wx, wy = px.top, py.top
    else:
        wx, wy = px.full, py.full
    warn_if_underdetermined(n, wx.rank, wy.rank, stacklevel=4)
    rho, U = _correlations_and_left_vectors(wx, wy, cross, vectors=kind == "pwcca")
    details: dict[str, Any] = {"rank_x": wx.rank, "rank_y": wy.rank}
    if kind == "svcca":
        assert isinstance(wx, Whitening) and isinstance(wy, Whitening)
        details.update(
            variance=px.variance,
            explained_x=wx.explained_variance,
            explained_y=wy.explained_variance,
        )
    score = float(rho.mean())
    if kind == "pwcca":
        assert U is not None
        # <h_i, x_j> for unit-norm variates h_i is proportional to (Cxx a_i)_j = (dewhitener @ U)_ji
        alpha = np.abs(wx.unwhiten(U[:, : rho.shape[0]])).sum(axis=0)
        alpha = alpha / alpha.sum()
        score = float(alpha @ rho)
        details["weights"] = alpha
    return SimilarityResult(
        measure=kind,
        score=score,
        mean_rho=float(rho.mean()),
        mean_rho2=float(np.mean(rho**2)),
        correlations=rho,
        n_samples=n,
        details=details,
    )


def _frobenius(stats: SufficientStats, i: int, j: int) -> float:
    return float(np.linalg.norm(stats.block(i, j)))


def _linear_cka_stats(stats: SufficientStats, i: int, j: int) -> SimilarityResult:
    nx, ny = _frobenius(stats, i, i), _frobenius(stats, j, j)
    _require_variance(nx, i)
    _require_variance(ny, j)
    cross = _frobenius(stats, i, j)
    return SimilarityResult("linear_cka", float(cross**2 / (nx * ny)), n_samples=stats.n_samples)


def _procrustes_stats(stats: SufficientStats, i: int, j: int) -> SimilarityResult:
    tx, ty = float(np.trace(stats.block(i, i))), float(np.trace(stats.block(j, j)))
    _require_variance(tx, i)
    _require_variance(ty, j)
    nuclear = float(np.linalg.svd(stats.block(i, j), compute_uv=False).sum())
    score = min(1.0, nuclear / np.sqrt(tx * ty))
    return SimilarityResult(
        "procrustes", score, n_samples=stats.n_samples, details={"distance": float(2.0 - 2.0 * score)}
    )


def _require_variance(norm: float, index: int) -> None:
    if not norm > 0.0:
        raise ValueError(f"representation {index} has no variance: every feature is constant over the samples")


# --------------------------------------------------------------------------------- public API
def _stats_of(X: Any, Y: Any, stats: SufficientStats | None) -> SufficientStats:
    if stats is not None:
        if X is not None or Y is not None:
            raise ValueError("give either X and Y, or stats, not both")
        if stats.n_representations < 2:
            raise ValueError("stats must hold at least two representations")
        return stats
    if X is None or Y is None:
        raise ValueError("X and Y are required when stats is not given")
    return SufficientStats.from_arrays(X, Y)


def cca_similarity(
    X: Any = None, Y: Any = None, *, stats: SufficientStats | None = None, tol: float = DEFAULT_TOL
) -> SimilarityResult:
    """Mean canonical correlation. ``X: (n, p)``, ``Y: (n, q)``; or ``stats`` of (X, Y)."""
    s = _stats_of(X, Y, stats)
    return _cca_family(_Prepared(s, 0, tol, 1.0), _Prepared(s, 1, tol, 1.0), "cca")


def svcca(
    X: Any = None,
    Y: Any = None,
    *,
    stats: SufficientStats | None = None,
    variance: float = 0.99,
    tol: float = DEFAULT_TOL,
) -> SimilarityResult:
    """SVCCA: CCA on the top principal directions explaining ``variance`` of each side's variance."""
    s = _stats_of(X, Y, stats)
    return _cca_family(_Prepared(s, 0, tol, variance), _Prepared(s, 1, tol, variance), "svcca")


def pwcca(
    X: Any = None, Y: Any = None, *, stats: SufficientStats | None = None, tol: float = DEFAULT_TOL
) -> SimilarityResult:
    """Projection-weighted CCA (weights from X)."""
    s = _stats_of(X, Y, stats)
    return _cca_family(_Prepared(s, 0, tol, 1.0), _Prepared(s, 1, tol, 1.0), "pwcca")


def linear_cka(X: Any = None, Y: Any = None, *, stats: SufficientStats | None = None) -> SimilarityResult:
    """Linear CKA ``||Cxy||_F^2 / (||Cxx||_F ||Cyy||_F)``."""
    return _linear_cka_stats(_stats_of(X, Y, stats), 0, 1)


def procrustes(X: Any = None, Y: Any = None, *, stats: SufficientStats | None = None) -> SimilarityResult:
    """Orthogonal Procrustes similarity ``||Cxy||_* / sqrt(tr Cxx tr Cyy)``; ``details['distance']``."""
    return _procrustes_stats(_stats_of(X, Y, stats), 0, 1)


def debiased_linear_cka(X: Any, Y: Any) -> SimilarityResult:
    """Linear CKA with the unbiased HSIC estimator (Song et al. 2012). Needs the data (n >= 4).

    With ``K = Xc Xc'`` and ``L = Yc Yc'`` with zeroed diagonals, HSIC_u = [tr(KL) + 1'K1 1'L1 /
    ((n-1)(n-2)) - 2/(n-2) 1'KL1] / (n(n-3)). Computed in feature space in O(n (p + q) + n p q):
    ``tr(KL) = ||Xc'Yc||_F^2 - sum_i |x_i|^2 |y_i|^2`` etc.; the n x n kernels are never formed.
    The debiased value can be slightly negative for unrelated representations.
    """
    X, Y = check_paired(X, Y, min_samples=4)
    n = X.shape[0]
    stats = SufficientStats.from_arrays(X, Y)
    Xc = np.asarray(X, dtype=np.float64) - stats.means(0)
    Yc = np.asarray(Y, dtype=np.float64) - stats.means(1)
    sq_x = np.einsum("ij,ij->i", Xc, Xc)
    sq_y = np.einsum("ij,ij->i", Yc, Yc)

    def hsic(cross_fro2: float, a: np.ndarray, b: np.ndarray, A: np.ndarray, B: np.ndarray) -> float:
        # K~ = A A' - diag(a), L~ = B B' - diag(b)
        tr_kl = cross_fro2 - float(a @ b)
        k1 = A @ A.sum(axis=0) - a  # K~ 1
        l1 = B @ B.sum(axis=0) - b  # L~ 1
        sum_k, sum_l = float(k1.sum()), float(l1.sum())
        return (tr_kl + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(k1 @ l1)) / (n * (n - 3))

    hxy = hsic(float(np.sum(stats.block(0, 1) ** 2)), sq_x, sq_y, Xc, Yc)
    hxx = hsic(float(np.sum(stats.block(0, 0) ** 2)), sq_x, sq_x, Xc, Xc)
    hyy = hsic(float(np.sum(stats.block(1, 1) ** 2)), sq_y, sq_y, Yc, Yc)
    if not (hxx > 0 and hyy > 0):
        raise ValueError("debiased CKA is undefined: a representation has no (unbiased) self-similarity")
    return SimilarityResult("debiased_linear_cka", float(hxy / np.sqrt(hxx * hyy)), n_samples=n)


def rbf_cka(X: Any, Y: Any, **kwargs: Any) -> SimilarityResult:
    """CKA with Gaussian kernels; see :func:`ccalens.core.kernel.rbf_cka` for the options."""
    from .kernel import rbf_cka as _rbf

    return _rbf(X, Y, **kwargs)


MEASURES: dict[str, Callable[..., SimilarityResult]] = {
    "cca": cca_similarity,
    "svcca": svcca,
    "pwcca": pwcca,
    "linear_cka": linear_cka,
    "debiased_linear_cka": debiased_linear_cka,
    "rbf_cka": rbf_cka,
    "procrustes": procrustes,
}
_STATS_MEASURES = ("cca", "svcca", "pwcca", "linear_cka", "procrustes")


def _check_measure(measure: str, allowed: Sequence[str]) -> None:
    if measure not in allowed:
        raise ValueError(f"measure must be one of {sorted(allowed)}, got {measure!r}")


def compare(
    X: Any,
    Y: Any,
    measures: Sequence[str] = ("cca", "svcca", "pwcca", "linear_cka", "procrustes"),
    *,
    tol: float = DEFAULT_TOL,
    variance: float = 0.99,
) -> dict[str, SimilarityResult]:
    """Several measures of (X, Y) sharing one pass over the data and one whitening per side."""
    for m in measures:
        _check_measure(m, list(MEASURES))
    X, Y = check_paired(X, Y)
    stats = SufficientStats.from_arrays(X, Y)
    px, py = _Prepared(stats, 0, tol, variance), _Prepared(stats, 1, tol, variance)
    if "svcca" in measures:  # SVCCA needs the eigendecompositions; CCA and PWCCA then reuse them
        _whiten_all((px, py), "svcca")
    out: dict[str, SimilarityResult] = {}
    for m in measures:
        if m in ("cca", "svcca", "pwcca"):
            out[m] = _cca_family(px, py, m)
        elif m == "linear_cka":
            out[m] = _linear_cka_stats(stats, 0, 1)
        elif m == "procrustes":
            out[m] = _procrustes_stats(stats, 0, 1)
        else:
            out[m] = MEASURES[m](X, Y)
    return out


def similarity_matrix(
    representations: Sequence[Any] | SufficientStats,
    measure: str = "svcca",
    *,
    names: Sequence[str] | None = None,
    tol: float = DEFAULT_TOL,
    variance: float = 0.99,
    progress: bool = False,
) -> SimilarityMatrix:
    """All pairs of L representations of the same samples (or their joint ``SufficientStats``).

    One joint pass computes every block; each representation is whitened once (eigh); each pair then
    costs its cross block and one eigenproblem of the smaller width. The diagonal is computed too
    (1 up to rounding for the CCA family). PWCCA is not symmetric: ``scores[i, j]`` uses R_i's weights.
    """
    _check_measure(measure, _STATS_MEASURES)
    if isinstance(representations, SufficientStats):
        stats = representations
    else:
        if len(representations) < 1:
            raise ValueError("representations is empty")
        stats = SufficientStats.from_arrays(*representations)
    L = stats.n_representations
    if names is None:
        names = tuple(f"R{i}" for i in range(L))
    if len(names) != L:
        raise ValueError(f"names has {len(names)} entries for {L} representations")
    prepared = [_Prepared(stats, i, tol, variance) for i in range(L)]
    cca_family = measure in ("cca", "svcca", "pwcca")
    if cca_family:
        _whiten_all(prepared, measure)
    scores = np.zeros((L, L))
    mean_rho = np.zeros((L, L)) if cca_family else None
    pairs = [(i, j) for i in range(L) for j in range(L) if measure == "pwcca" or j >= i]

    def pair_result(i: int, j: int) -> SimilarityResult:
        if cca_family:
            return _cca_family(prepared[i], prepared[j], measure)
        if measure == "linear_cka":
            return _linear_cka_stats(stats, i, j)
        return _procrustes_stats(stats, i, j)

    bar: Any = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pairs), desc=f"{measure} pairs", unit="pair")
    # pairs run side by side (one BLAS thread each), a few batches per worker so the bar moves
    workers = blas_threads() if max(stats.sizes or (0,)) >= MIN_PARALLEL_WIDTH else 1
    batch = 4 * workers
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        results = run_tasks([lambda i=i, j=j: pair_result(i, j) for i, j in chunk], workers=workers)
        for (i, j), res in zip(chunk, results, strict=True):
            scores[i, j] = res.score
            if measure != "pwcca":
                scores[j, i] = res.score
            if mean_rho is not None:
                assert res.mean_rho is not None
                mean_rho[i, j] = res.mean_rho
                if measure != "pwcca":
                    mean_rho[j, i] = res.mean_rho
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return SimilarityMatrix(measure=measure, scores=scores, names=tuple(names), mean_rho=mean_rho)
