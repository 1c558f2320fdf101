"""LAPACK routines that release the GIL, for the per-representation work that runs side by side.

SciPy's Python wrappers of LAPACK hold the GIL while they run, so two Cholesky factorisations in two threads
(:mod:`ccalens.core.threads`) take as long as one after the other; NumPy's ``cholesky`` releases it but is
2.5x slower than LAPACK's ``potrf`` at d = 512 (its own copies and triangle clean-up). These call the routines
SciPy exports for Cython (:mod:`scipy.linalg.cython_lapack`, a public, stable interface) through :mod:`ctypes`,
which releases the GIL during the call.

Every call runs with BLAS limited to one thread (:func:`ccalens.core.threads.single_threaded_blas`): SciPy's
OpenBLAS is a second library beside NumPy's, and its worker threads, once woken, spin for about 0.1 s and slow
NumPy's next products by half. Arrays are float64 or complex128, Fortran-ordered where LAPACK writes them.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
from scipy.linalg import cython_lapack

from .threads import single_threaded_blas

__all__ = ["cholesky_rcond", "cholesky_upper", "triangular_inverse"]

_PREFIX = {np.dtype(np.float64): "d", np.dtype(np.complex128): "z"}


def _capsule_pointer(capsule: Any) -> int:
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return int(get_pointer(capsule, get_name(capsule)))


@cache
def _routine(name: str, n_args: int) -> Callable[..., None]:
    """The LAPACK routine ``name`` (every argument a pointer), called with the GIL released."""
    pointer = _capsule_pointer(cython_lapack.__pyx_capi__[name])  # type: ignore[attr-defined]
    return ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * n_args))(pointer)


def _call(name: str, *args: np.ndarray) -> None:
    """Call ``name`` with pointers to ``args`` (kept alive by this frame), BLAS at one thread."""
    routine = _routine(name, len(args))
    with single_threaded_blas():
        routine(*[a.ctypes.data for a in args])


def _char(c: str) -> np.ndarray:
    return np.frombuffer(c.encode(), dtype=np.uint8).copy()


def _int(v: int) -> np.ndarray:
    return np.array([v], dtype=np.intc)


def _prefix(a: np.ndarray) -> str:
    try:
        return _PREFIX[a.dtype]
    except KeyError:
        raise TypeError(f"LAPACK routines here take float64 or complex128 arrays, got {a.dtype}") from None


def cholesky_upper(a: np.ndarray) -> tuple[np.ndarray, int]:
    """``(U, info)``: the upper Cholesky factor of ``a: (d, d)`` (``a = U^H U``, Fortran order, zeros below the
    diagonal), and LAPACK's ``info`` (0; ``k > 0`` when the leading minor of order k is not positive definite, U
    then unusable). ``a`` is not modified."""
    u = np.array(a, order="F", copy=True)
    d, info = u.shape[0], _int(0)
    _call(_prefix(u) + "potrf", _char("U"), _int(d), u, _int(max(1, d)), info)
    if info[0] == 0:
        for j in range(d - 1):  # below the diagonal, column by column (contiguous in Fortran order)
            u[j + 1 :, j] = 0.0
    return u, int(info[0])


def cholesky_rcond(u: np.ndarray, anorm: float) -> tuple[float, int]:
    """LAPACK's estimate of the reciprocal condition number (1-norm) of ``a = U^H U`` from its upper factor ``u``
    (Fortran order) and ``anorm``, the 1-norm of ``a``; and ``info``."""
    d = u.shape[0]
    prefix = _prefix(u)
    rcond, info = np.zeros(1), _int(0)
    if prefix == "d":
        work, other = np.empty(3 * d), np.empty(d, dtype=np.intc)
    else:
        work, other = np.empty(2 * d, dtype=np.complex128), np.empty(d)
    _call(prefix + "pocon", _char("U"), _int(d), u, _int(max(1, d)), np.array([anorm]), rcond, work, other, info)
    return float(rcond[0]), int(info[0])


def triangular_inverse(u: np.ndarray) -> tuple[np.ndarray, int]:
    """``(U^-1, info)`` of an upper-triangular ``u: (d, d)`` (Fortran order; zeros below the diagonal), by
    LAPACK's ``trtri``; ``info > 0`` if a diagonal entry is exactly 0. ``u`` is not modified."""
    inverse = np.array(u, order="F", copy=True)
    d, info = inverse.shape[0], _int(0)
    _call(_prefix(inverse) + "trtri", _char("U"), _char("N"), _int(d), inverse, _int(max(1, d)), info)
    return inverse, int(info[0])
