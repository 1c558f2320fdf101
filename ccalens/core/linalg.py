"""Dense products and symmetric eigenproblems on SciPy's BLAS/LAPACK, without copies.

NumPy and SciPy each load their own OpenBLAS, each with its own worker threads, which spin for about 0.1 s
after a multithreaded call. When a NumPy call follows a SciPy one (or the reverse) on a small machine, the
new call's threads share the cores with the other library's spinning ones: a 512 x 512 ``eigh`` took 3x
longer that way in our measurements. The post-processing of the measures therefore runs on one library,
SciPy's (it also has the triangular and condition-number routines the whitening needs); the products of
the statistics use NumPy, single-threaded in a pool (:mod:`ccalens.core.threads`), so no spinning threads
are left over from them.

The wrappers pass C-ordered arrays to Fortran BLAS as transposed views, so nothing is copied.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.linalg import blas

__all__ = ["eigh", "gram_upper", "matmul"]


def _fortran(A: np.ndarray) -> tuple[np.ndarray, int]:
    """``(F, trans)`` with ``F`` Fortran-contiguous and ``op(F) = A`` (trans 1 = transpose)."""
    if A.flags.f_contiguous:
        return A, 0
    if A.flags.c_contiguous:
        return A.T, 1
    return np.asfortranarray(A), 0


def matmul(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A @ B`` by SciPy's ``gemm`` (real or complex); the result is Fortran-ordered."""
    gemm = blas.get_blas_funcs("gemm", (A, B))
    Fa, ta = _fortran(A)
    Fb, tb = _fortran(B)
    return gemm(1.0, Fa, Fb, trans_a=ta, trans_b=tb)


def gram_upper(M: np.ndarray) -> np.ndarray:
    """``M @ M^H: (r, r)`` for ``M: (r, m)``; only the upper triangle is set (what :func:`eigh` reads).

    Real input uses ``syrk`` (half a GEMM's work); complex input a full product.
    """
    if np.iscomplexobj(M):
        return np.asfortranarray(matmul(M, M.conj().T))
    Fm, tm = _fortran(M)
    return blas.get_blas_funcs("syrk", (M,))(1.0, Fm, trans=tm, lower=0)


def eigh(S: np.ndarray, *, values_only: bool = False, lower: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Eigenvalues (ascending) and eigenvectors of a Hermitian ``S`` by LAPACK's divide and conquer.

    Reads the lower triangle of ``S`` (the upper one with ``lower=False``).
    """
    if values_only:
        values = scipy.linalg.eigh(S, lower=lower, eigvals_only=True, driver="evd", check_finite=False)
        return values, None
    values, vectors = scipy.linalg.eigh(S, lower=lower, driver="evd", check_finite=False)
    return values, vectors
