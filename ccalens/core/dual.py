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
* linear CKA: ``<Kc, Lc>_F / (||Kc||_F ||Lc||_F)`` (from tiles of both Grams: :mod:`ccalens.core.gram_tiles`);
  debiased CKA: the unbiased HSIC of ``K``, ``L`` with zeroed diagonals; Procrustes:
  ``||Xc' Yc||_* = ||diag(sx) Ux' Uy diag(sy)||_*`` and ``tr(Xc' Xc) = tr K``.

The Gram matrix is accumulated over column blocks of the data: each block is centred in float64 (no
cancellation, whatever the offset), multiplied in float64 (or, for linear CKA of float32 input, in float32) and
added into a float64 ``K``; the data are never copied whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from .plan import DEFAULT_COLUMN_BLOCK
from .validation import SvccaRule, check_features

__all__ = [
    "Gram",
    "SampleBasis",
    "centred_gram",
    "compute_dtype",
    "cross_product",
    "offsets_within",
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


def compute_dtype(arr: np.ndarray) -> np.dtype:
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
    return offsets_within(n * float(mean @ mean), centred_total)


def offsets_within(offset_total: float, centred_total: float, ratio: float = OFFSET_RATIO - 1.0) -> bool:
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
