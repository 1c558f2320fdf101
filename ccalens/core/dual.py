"""Wide representations: the sample-space (dual) path (the planner that chooses it: :mod:`ccalens.core.plan`).

When a representation has more features than samples (flattened conv maps, wide layers on a small probe
set), its ``d x d`` co-moment is the wrong object: it costs ``n d^2`` to build, ``d^3`` to decompose and
``8 d^2`` bytes to hold, while the centred data ``Xc: (n, d)`` span at most ``n - 1`` dimensions. Everything a
linear measure needs is then in the centred Gram matrix ``K = Xc Xc': (n, n)`` (Kornblith et al. 2019):

* its eigendecomposition ``K = U diag(s^2) U'`` gives the left singular vectors ``U`` and the singular values
  ``s`` of ``Xc = U diag(s) V'`` (the covariance eigenvalues are ``s^2 / (n - 1)``, so the relative cut-off,
  the ranks kept and SVCCA's truncation rules are the same as on the primal path);
* CCA: the canonical correlations are the singular values of ``Ux' Uy`` (orthonormal bases of the kept
  column spaces, the dual of whitening); SVCCA keeps the top directions first;
* PWCCA: ``<h_i, x_j> = (Xc' h_i)_j`` for the canonical variates ``h_i = Ux a_i``, one product with the data;
* linear CKA: ``<Kc, Lc>_F / (||Kc||_F ||Lc||_F)``; debiased CKA: the unbiased HSIC of ``K``, ``L`` with zeroed
  diagonals; Procrustes: ``||Xc' Yc||_* = ||diag(sx) Ux' Uy diag(sy)||_*`` and ``tr(Xc' Xc) = tr K``.

The Gram matrix is accumulated over column blocks of the data: each block is centred in float64 (no
cancellation, whatever the offset), multiplied in float64 (or, for linear CKA of float32 input, in float32) and
added into a float64 ``K``; the data are never copied whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from .plan import DEFAULT_COLUMN_BLOCK, TILE_ROWS
from .validation import SvccaRule, check_features

__all__ = [
    "Gram",
    "SampleBasis",
    "centred_gram",
    "cross_product",
]


# --------------------------------------------------------------------------------- Gram matrices
@dataclass
class Gram:
    """Centred Gram matrix of one representation ``X: (n, d)``.

    Attributes:
        matrix: ``(n, n)`` float64 ``Xc Xc'`` (of the standardised features if ``standardized``); None once
            :meth:`SampleBasis.from_gram` consumed it (``overwrite=True``).
        mean: ``(d,)`` feature means.
        scale: ``(d,)`` feature standard deviations used (ones unless ``standardized``; 0 for constant features,
            which are then left out).
        n_features: d.
        standardized: whether the features were divided by their standard deviations.
    """

    matrix: np.ndarray | None
    mean: np.ndarray
    scale: np.ndarray
    n_features: int
    standardized: bool

    def _matrix(self) -> np.ndarray:
        if self.matrix is None:
            raise RuntimeError("this Gram matrix was consumed by SampleBasis.from_gram(..., overwrite=True)")
        return self.matrix

    @property
    def n_samples(self) -> int:
        return int(self._matrix().shape[0])

    @property
    def trace(self) -> float:
        """``tr(Xc' Xc) = tr(K)``: the total sum of squares."""
        return float(np.trace(self._matrix()))


def _compute_dtype(arr: np.ndarray) -> np.dtype:
    """float32 products for float32/float16 input (bfloat16 is widened upstream); else float64."""
    return np.dtype(np.float32) if arr.dtype in (np.float32, np.float16) else np.dtype(np.float64)


def centred_block(X: np.ndarray, lo: int, hi: int, mean: np.ndarray, scale: np.ndarray | None, dtype: np.dtype):
    """Columns ``lo:hi`` of X, centred (and divided by ``scale`` where positive), in ``dtype``.

    float32 blocks of float32 data are centred in float32: a value and its mean differ by an exact float32
    subtraction wherever they are close (Sterbenz), so large offsets cost nothing; otherwise in float64."""
    if dtype == np.float32 and X.dtype == np.float32 and scale is None:
        return X[:, lo:hi] - mean[lo:hi].astype(np.float32)
    block = np.array(X[:, lo:hi], dtype=np.float64)  # one copy, centred in place
    block -= mean[lo:hi]
    if scale is not None:
        s = scale[lo:hi]
        block *= np.divide(1.0, s, out=np.zeros_like(s), where=s > 0)
    return block.astype(dtype, copy=False)


def centred_rows(A: np.ndarray, mean: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``A - mean`` (a copy) computed in float64, returned in ``dtype``: no digits lost to the offsets."""
    block = np.array(A, dtype=np.float64)
    block -= mean
    return block.astype(dtype, copy=False)


#: Raw products (no centred copy, the mean removed afterwards by rank-one corrections) are used only while the
#: offsets hold less than this multiple of the variance (``tr(X X') <= OFFSET_RATIO * tr(Xc Xc')``): the corrections
#: then lose at most ~1 digit.
OFFSET_RATIO = 16.0


def small_offsets(mean: np.ndarray, centred_total: float, n: int) -> bool:
    """Whether raw products may be centred afterwards: ``tr(X'X) <= OFFSET_RATIO tr(Xc'Xc)``, i.e.
    ``n |m|^2 <= (OFFSET_RATIO - 1) tr(Xc'Xc)`` with ``centred_total = tr(Xc'Xc) > 0``."""
    return _offsets_within(n * float(mean @ mean), centred_total)


def _offsets_within(offset_total: float, centred_total: float, ratio: float = OFFSET_RATIO - 1.0) -> bool:
    """The rule of :func:`small_offsets` from its two totals: ``n |m|^2 <= ratio * tr(Xc'Xc)``, ``tr(Xc'Xc) > 0``."""
    return bool(centred_total > 0.0 and offset_total <= ratio * centred_total)


def _syrk_into(block: np.ndarray, K: np.ndarray) -> None:
    """``K += block block'`` on the lower triangle of the C-ordered float64 ``K: (n, n)``, in place (BLAS syrk: no
    ``(n, n)`` temporary)."""
    A = np.ascontiguousarray(block, dtype=np.float64)
    out = scipy.linalg.blas.dsyrk(1.0, A.T, beta=1.0, c=K.T, trans=1, lower=0, overwrite_c=1)
    if not np.shares_memory(out, K):  # pragma: no cover - SciPy copied: add the result instead
        K[...] = out.T


def _mirror_lower(K: np.ndarray, rows: int = 512) -> None:
    """Copy the lower triangle of ``K`` onto the upper one, a band of rows at a time (exactly symmetric)."""
    n = K.shape[0]
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        K[lo:hi, hi:] = K[hi:, lo:hi].T
        block = K[lo:hi, lo:hi]
        upper = np.triu_indices(hi - lo, 1)
        block[upper] = block.T[upper]


def gram_block_columns(n_samples: int, bytes_per_block: int = 8 << 20) -> int:
    """Columns centred and multiplied at a time: as wide as ``bytes_per_block`` of float64 allows (GEMM efficiency
    grows with the inner dimension, and fewer blocks mean fewer additions into K), between 256 and 4,096."""
    return int(min(4096, max(256, bytes_per_block // (8 * max(1, n_samples)))))


def centred_gram(
    X: np.ndarray,
    *,
    standardize: bool = False,
    block_columns: int | None = None,
    name: str = "X",
) -> Gram:
    """``K = Xc Xc'`` of ``X: (n, d)``, accumulated over column blocks (see the module docstring).

    Products and ``K`` are float64 (the CCA family cuts ranks at 1e-10 of the spectrum); linear CKA, an inner
    product of Grams, uses :func:`linear_cka_tiled` instead. ``block_columns``: default :func:`gram_block_columns`.
    """
    X = check_features(X, name, check_finite=False)
    n, d = X.shape
    block_columns = gram_block_columns(n) if block_columns is None else int(block_columns)
    with np.errstate(all="ignore"):
        mean = X.mean(axis=0, dtype=np.float64)
    if not np.isfinite(mean).all():  # NaN/Inf show in the means; a full scan then names the first one
        check_features(X, name)
        raise ValueError(f"{name} has values too large to average in float64")
    dtype = np.dtype(np.float64)
    scale = None
    if standardize:
        sq = np.zeros(d)
        for lo in range(0, d, block_columns):
            block = np.array(X[:, lo : lo + block_columns], dtype=np.float64)
            block -= mean[lo : lo + block_columns]
            sq[lo : lo + block_columns] = np.einsum("ij,ij->j", block, block)
        scale = np.sqrt(sq)
    K = np.zeros((n, n), dtype=dtype)
    for lo in range(0, d, block_columns):
        block = centred_block(X, lo, min(d, lo + block_columns), mean, scale, dtype)
        _syrk_into(block, K)
    _mirror_lower(K)
    if not np.isfinite(K).all():
        raise ValueError(f"{name} has values whose products overflow float64; rescale it")
    return Gram(
        matrix=K,
        mean=mean,
        scale=scale if scale is not None else np.ones(d),
        n_features=d,
        standardized=standardize,
    )


# --------------------------------------------------------------------------------- sample-space bases
#: Gram eigendecompositions use divide and conquer while its workspace (``2 n^2`` float64) stays below this.
SMALL_EIGH_BYTES = 32 << 20


@dataclass(frozen=True)
class SampleBasis:
    """The kept part of the thin SVD ``Xc = U diag(s) V'`` of one representation, from its Gram matrix.

    Attributes:
        left: ``(n, r)`` orthonormal left singular vectors, descending ``s``.
        singular_values: ``(r,)`` kept singular values of the centred data.
        all_singular_values: every singular value above the float noise floor, kept or not (truncation rules).
        n_features: d.
    """

    left: np.ndarray
    singular_values: np.ndarray
    all_singular_values: np.ndarray
    n_features: int

    @property
    def rank(self) -> int:
        return int(self.singular_values.shape[0])

    @classmethod
    def from_gram(
        cls, gram: Gram, *, tol: float, name: str = "X", overwrite: bool = False, storage: type = np.float64
    ) -> SampleBasis:
        """Eigendecomposition of ``K``; directions with ``s^2 <= tol * s_1^2`` are dropped (the primal cut), and
        always those below the float noise floor ``max(n, d) * eps * s_1^2`` (rounding noise of exact zeros).

        ``overwrite``: the Gram is consumed (LAPACK's MRRR solver works in its matrix, which is released as soon as
        the vectors exist, ``gram.matrix`` becoming None: the working memory is then one more ``(n, n)`` for the
        vectors). ``storage=np.float32`` keeps the left singular vectors in float32 (for float32 input: half the
        memory, a relative error of about 6e-8 on them).
        """
        n_samples, n_features = gram.n_samples, gram.n_features
        K = gram._matrix() if overwrite else gram._matrix().copy()
        if overwrite:
            gram.matrix = None  # the only reference left is K's: released once the solver is done with it
        # divide and conquer (the most orthogonal vectors) while its 2 n^2 workspace is small; MRRR beyond, whose
        # working memory is one (n, n) for the vectors
        small = 16 * K.shape[0] ** 2 <= SMALL_EIGH_BYTES
        # K.T: the same symmetric matrix in the Fortran order LAPACK works in (no copy)
        vals, vecs = scipy.linalg.eigh(K.T, overwrite_a=True, driver="evd" if small else "evr", check_finite=False)
        del K
        vals = vals[::-1]
        for lo in range(0, vecs.shape[0], 256):  # descending order, in place (row blocks: no second (n, n))
            vecs[lo : lo + 256] = vecs[lo : lo + 256, ::-1].copy()
        largest = float(vals[0]) if vals.size else 0.0
        if not largest > 0.0:
            raise ValueError(
                f"{name} has no variance: every feature is constant over the samples, so no correlation with "
                "it is defined"
            )
        # every singular value above the float noise floor (below it, eigenvalues are rounding noise of exact
        # zeros), kept by the cut or not: SVCCA's singular-value rule sums them all, as the primal path does
        floor = max(n_samples, n_features) * np.finfo(np.float64).eps * largest
        keep = int(np.count_nonzero(vals > max(tol * largest, floor)))
        s_all = np.sqrt(vals[vals > floor])
        return cls(
            left=vecs[:, :keep].astype(storage, copy=False),  # a view in float64: BLAS takes the row stride
            singular_values=np.sqrt(vals[:keep]),
            all_singular_values=s_all,
            n_features=n_features,
        )

    def explained(self, keep: str = "variance") -> float:
        """Fraction of the total variance (or of the sum of singular values) in the kept directions."""
        if keep == "variance":
            return float((self.singular_values**2).sum() / (self.all_singular_values**2).sum())
        return float(self.singular_values.sum() / self.all_singular_values.sum())

    def top(self, threshold: float, keep: str) -> SampleBasis:
        """SVCCA's truncation: the smallest top set whose singular values (``keep="singular_values"``, the
        SVCCA appendix) or variances (``keep="variance"``) reach ``threshold`` of the total."""
        rule = SvccaRule(keep, threshold)
        m = rule.count(rule.weights(self.singular_values), float(rule.weights(self.all_singular_values).sum()))
        return SampleBasis(self.left[:, :m], self.singular_values[:m], self.all_singular_values, self.n_features)


def feature_loadings(X: np.ndarray, mean: np.ndarray, H: np.ndarray, block_columns: int = DEFAULT_COLUMN_BLOCK):
    """``Xc' H: (d, k)`` for ``H: (n, k)`` (e.g. canonical variates), column block by column block."""
    d = X.shape[1]
    dtype = np.dtype(np.float64)
    out = np.empty((d, H.shape[1]))
    Hc = H.astype(dtype, copy=False)
    for lo in range(0, d, block_columns):
        hi = min(d, lo + block_columns)
        out[lo:hi] = centred_block(X, lo, hi, mean, None, dtype).T @ Hc
    return out


#: Rows of a tile widened to float64 at a time for the inner products.
_INNER_ROWS = 512


@dataclass(frozen=True)
class _TileSide:
    """One representation prepared for centred Gram tiles: ``Kc_RS = Xc_R Xc_S'`` for row ranges R, S."""

    X: np.ndarray
    mean: np.ndarray
    dtype: np.dtype

    @classmethod
    def prepare(cls, X: np.ndarray, name: str) -> _TileSide:
        n = X.shape[0]
        sums = np.zeros(X.shape[1])
        with np.errstate(all="ignore"):  # NaN/Inf are reported below, by name
            for lo in range(0, n, TILE_ROWS):
                sums += X[lo : lo + TILE_ROWS].sum(axis=0, dtype=np.float64)
            mean = sums / n
        if not np.isfinite(mean).all():
            check_features(X, name)
            raise ValueError(f"{name} has values whose sums overflow; rescale it")
        return cls(X, mean, _compute_dtype(X))

    def centred_rows(self, rows: slice) -> np.ndarray:
        return centred_rows(self.X[rows], self.mean, self.dtype)


#: The raw-tile path of :func:`linear_cka_tiled` centres the Frobenius inner products afterwards; it is kept only
#: while ``||K||_F^2 / ||Kc||_F^2`` (the digits that centring afterwards cancels) stays below this, per compute dtype.
_RAW_CANCELLATION = {np.dtype(np.float32): 1e6, np.dtype(np.float64): 1e4}


def linear_cka_tiled(X: np.ndarray, Y: np.ndarray, *, tile_rows: int = TILE_ROWS) -> float:
    """Linear CKA ``<Kc, Lc>_F / (||Kc||_F ||Lc||_F)`` of ``X: (n, p)``, ``Y: (n, q)`` from tiles of their centred
    Grams, never holding a whole ``(n, n)`` Gram.

    The upper triangle of ``tile_rows``-square tiles is formed side by side for both representations (one GEMM
    each, syrk on the diagonal; off-diagonal tiles count twice), so the work is that of the two Gram products and
    the memory a few tiles. When the offsets are small (``tr(X X') <= OFFSET_RATIO tr(Xc Xc')``, judged from the
    tiles themselves) the tiles are the raw products and the inner products are centred afterwards from the Grams'
    row sums (:func:`_raw_tile_products`: no pass over the data besides the products); otherwise rows are centred
    per tile. float32 input is multiplied in float32; the inner products are summed in float64. Scale-free.
    """
    kk, ll, kl = linear_cka_tiled_parts(X, Y, tile_rows=tile_rows)
    return float(kl / np.sqrt(kk) / np.sqrt(ll))


def linear_cka_tiled_parts(X: np.ndarray, Y: np.ndarray, *, tile_rows: int = TILE_ROWS) -> tuple[float, float, float]:
    """``(||Kc||_F^2, ||Lc||_F^2, <Kc, Lc>_F)`` from tiles of the centred Grams (see :func:`linear_cka_tiled`);
    clear errors when they overflow or a representation has no variance."""
    raw = _raw_tile_products(X, Y, tile_rows)
    kk, ll, kl = raw if raw is not None else _centred_tile_products(X, Y, tile_rows)
    if not (np.isfinite(kk) and np.isfinite(ll) and np.isfinite(kl)):
        raise ValueError("linear CKA overflowed: the products of the features exceed float range; rescale them")
    if not (kk > 0 and ll > 0):
        raise ValueError("linear CKA is undefined: a representation has no variance")
    return float(kk), float(ll), float(kl)


def _tile_ranges(n: int, tile_rows: int) -> list[slice]:
    return [slice(lo, min(n, lo + tile_rows)) for lo in range(0, n, tile_rows)]


def _widened_rows(K: np.ndarray, L: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(lo, K[lo:hi], L[lo:hi])`` in float64, :data:`_INNER_ROWS` rows of two tiles at a time."""
    for lo in range(0, K.shape[0], _INNER_ROWS):
        yield lo, K[lo : lo + _INNER_ROWS].astype(np.float64), L[lo : lo + _INNER_ROWS].astype(np.float64)


def _raw_tile_products(X: np.ndarray, Y: np.ndarray, tile_rows: int) -> tuple[float, float, float] | None:
    """``(||Kc||^2, ||Lc||^2, <Kc, Lc>)`` from tiles of the raw Grams ``K = X X'``, ``L = Y Y'``, or None where that
    would cost digits (offsets not small, or input that must be widened first).

    With ``H = I - 11'/n``: ``<HKH, HLH> = <K, L> - (2/n) (K1).(L1) + (1'K1)(1'L1) / n^2``, so the raw tiles'
    inner products and row sums give the centred values exactly. The offsets are judged on the first diagonal tile
    (to give up early) and then exactly, on the whole Grams: ``n |m|^2 = 1'K1 / n`` and ``tr(Kc) = tr(K) - 1'K1 / n``
    (:func:`small_offsets`); the digits centring afterwards cancels are checked too (:data:`_RAW_CANCELLATION`).
    """
    dtype = _compute_dtype(X)
    if X.dtype != dtype or Y.dtype != dtype:
        return None
    n = X.shape[0]
    ranges = _tile_ranges(n, tile_rows)
    sums = {"kk": 0.0, "ll": 0.0, "kl": 0.0, "tk": 0.0, "tl": 0.0}
    rows_k, rows_l = np.zeros(n), np.zeros(n)

    def offsets_small(trace: float, total: float, count: int, ratio: float) -> bool:
        """:func:`small_offsets` from a Gram: ``n |m|^2 = 1'K1 / n``, ``tr(Kc) = tr(K) - 1'K1 / n``."""
        finite = bool(np.isfinite(trace) and np.isfinite(total))
        return finite and _offsets_within(total / count, trace - total / count, ratio)

    with np.errstate(all="ignore"):  # NaN/Inf: the centred path names the culprit
        for a, R in enumerate(ranges):
            for S in ranges[a:]:
                A, B = X[R], Y[R]
                K = A @ A.T if S == R else A @ X[S].T  # syrk on the diagonal tiles
                L = B @ B.T if S == R else B @ Y[S].T
                weight = 1.0 if S == R else 2.0
                if S == R:
                    sums["tk"] += float(np.trace(K, dtype=np.float64))
                    sums["tl"] += float(np.trace(L, dtype=np.float64))
                for lo, k, m in _widened_rows(K, L):
                    sums["kk"] += weight * float(np.vdot(k, k))
                    sums["ll"] += weight * float(np.vdot(m, m))
                    sums["kl"] += weight * float(np.vdot(k, m))
                    rows = slice(R.start + lo, R.start + lo + k.shape[0])
                    rows_k[rows] += k.sum(axis=1)
                    rows_l[rows] += m.sum(axis=1)
                    if S != R:  # the mirrored tile's row sums
                        rows_k[S] += k.sum(axis=0)
                        rows_l[S] += m.sum(axis=0)
                if a == 0 and S == R:  # the first rows decide early (with a margin) whether raw tiles can serve
                    count = R.stop - R.start
                    half = (OFFSET_RATIO - 1.0) / 2.0
                    if not (offsets_small(sums["tk"], float(rows_k[R].sum()), count, half)
                            and offsets_small(sums["tl"], float(rows_l[R].sum()), count, half)):
                        return None
        total_k, total_l = float(rows_k.sum()), float(rows_l.sum())
        ratio = OFFSET_RATIO - 1.0
        if not (offsets_small(sums["tk"], total_k, n, ratio) and offsets_small(sums["tl"], total_l, n, ratio)):
            return None
        kk = sums["kk"] - 2.0 / n * float(rows_k @ rows_k) + (total_k / n) ** 2
        ll = sums["ll"] - 2.0 / n * float(rows_l @ rows_l) + (total_l / n) ** 2
        kl = sums["kl"] - 2.0 / n * float(rows_k @ rows_l) + (total_k / n) * (total_l / n)
    limit = _RAW_CANCELLATION[dtype]
    if not (kk > 0.0 and ll > 0.0 and sums["kk"] <= limit * kk and sums["ll"] <= limit * ll):
        return None
    return kk, ll, kl


def _centred_tile_products(X: np.ndarray, Y: np.ndarray, tile_rows: int) -> tuple[float, float, float]:
    """``(||Kc||^2, ||Lc||^2, <Kc, Lc>)`` from tiles of the centred Grams, rows centred per tile (:class:`_TileSide`;
    large offsets, float16 input, or NaN/Inf, which :meth:`_TileSide.prepare` names)."""
    n = X.shape[0]
    sx, sy = _TileSide.prepare(X, "X"), _TileSide.prepare(Y, "Y")
    ranges = _tile_ranges(n, tile_rows)
    kk = ll = kl = 0.0
    for a, R in enumerate(ranges):
        cx, cy = sx.centred_rows(R), sy.centred_rows(R)
        for S in ranges[a:]:
            if S == R:  # syrk
                K, L = cx @ cx.T, cy @ cy.T
            else:
                K, L = cx @ sx.centred_rows(S).T, cy @ sy.centred_rows(S).T
            weight = 1.0 if S == R else 2.0
            for _, k, m in _widened_rows(K, L):
                kk += weight * float(np.vdot(k, k))
                ll += weight * float(np.vdot(m, m))
                kl += weight * float(np.vdot(k, m))
    return kk, ll, kl


def unbiased_hsic(K: np.ndarray, L: np.ndarray) -> float:
    """Unbiased HSIC estimator (Song et al. 2012) of two ``(n, n)`` Gram matrices, n >= 4."""
    n = K.shape[0]
    Kt = K - np.diag(np.diag(K))
    Lt = L - np.diag(np.diag(L))
    k1, l1 = Kt.sum(axis=1), Lt.sum(axis=1)
    term = float(np.vdot(Kt, Lt)) + float(k1.sum()) * float(l1.sum()) / ((n - 1) * (n - 2))
    term -= 2.0 / (n - 2) * float(k1 @ l1)
    return term / (n * (n - 3))


def cross_product(A: np.ndarray, B: np.ndarray, rows: int = 256) -> np.ndarray:
    """``A' B`` in float64 for ``A: (n, a)``, ``B: (n, b)`` (float32 bases are widened a row block at a time)."""
    if A.dtype == np.float64 and B.dtype == np.float64:
        return A.T @ B
    out = np.zeros((A.shape[1], B.shape[1]))
    gemm = scipy.linalg.blas.dgemm
    for lo in range(0, A.shape[0], rows):
        a = np.ascontiguousarray(A[lo : lo + rows], dtype=np.float64)
        b = np.ascontiguousarray(B[lo : lo + rows], dtype=np.float64)
        # out' += b' a in place (BLAS beta = 1; every operand in the Fortran order BLAS takes: no (a, b) temporary)
        res = gemm(1.0, b.T, a.T, beta=1.0, c=out.T, trans_b=1, overwrite_c=1)
        if not np.shares_memory(res, out):  # pragma: no cover - SciPy copied: add the result instead
            out[...] = res.T
    return out


def _singular_values(M: np.ndarray) -> np.ndarray:
    """Singular values of ``M`` (destroyed: LAPACK works in it, in Fortran order: ``M.T`` of a C-ordered M is
    that without a copy, with the same singular values)."""
    return scipy.linalg.svd(M.T if M.flags.c_contiguous else M, compute_uv=False, overwrite_a=True,
                            check_finite=False)


def procrustes_nuclear(bx: SampleBasis, by: SampleBasis) -> float:
    """``||Xc' Yc||_*`` from the two sample bases: the nuclear norm of ``diag(sx) Ux' Uy diag(sy)``."""
    M = cross_product(bx.left, by.left) * bx.singular_values[:, None] * by.singular_values[None, :]
    return float(_singular_values(M).sum())


def canonical_correlations(bx: SampleBasis, by: SampleBasis, *, vectors: bool = False):
    """Canonical correlations (descending, in [0, 1]) of the kept subspaces, and if asked the variates' coordinates.

    Returns ``(rho, Hx)`` with ``Hx: (n, k)`` the unit-norm canonical variates of X (``Ux a_i``) when ``vectors``.
    """
    M = cross_product(bx.left, by.left)
    if not vectors:
        return np.clip(_singular_values(M), 0.0, 1.0), None
    A, s, _ = np.linalg.svd(M, full_matrices=False)
    return np.clip(s, 0.0, 1.0), bx.left @ A
