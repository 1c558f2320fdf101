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

__all__ = ["cholesky_in_place", "cholesky_rcond", "triangular_inverse_in_place"]

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


def cholesky_in_place(a: np.ndarray) -> int:
    """Overwrite ``a: (d, d)`` (Fortran order, Hermitian) with its upper Cholesky factor U (``a = U^H U``, zeros below
    the diagonal); returns LAPACK's ``info``: 0, or ``k > 0`` when the leading minor of order k is not positive
    definite (``a`` is then unusable)."""
    _check_fortran(a)
    d, info = a.shape[0], _int(0)
    _call(_prefix(a) + "potrf", _char("U"), _int(d), a, _int(max(1, d)), info)
    if info[0] == 0:  # zeros below the diagonal in one masked copy (a Python loop would hold the GIL)
        below = np.triu(np.ones((d, d), dtype=bool), 1).T  # strictly lower, in Fortran order like ``a``
        np.copyto(a, 0.0, where=below)
    return int(info[0])


def cholesky_rcond(u: np.ndarray, anorm: float) -> tuple[float, int]:
    """LAPACK's estimate of the reciprocal condition number (1-norm) of ``a = U^H U`` from its upper factor ``u``
    (Fortran order) and ``anorm``, the 1-norm of ``a``; and ``info``."""
    _check_fortran(u)
    d = u.shape[0]
    prefix = _prefix(u)
    rcond, info = np.zeros(1), _int(0)
    if prefix == "d":
        work, other = np.empty(3 * d), np.empty(d, dtype=np.intc)
    else:
        work, other = np.empty(2 * d, dtype=np.complex128), np.empty(d)
    _call(prefix + "pocon", _char("U"), _int(d), u, _int(max(1, d)), np.array([anorm]), rcond, work, other, info)
    return float(rcond[0]), int(info[0])


def triangular_inverse_in_place(u: np.ndarray) -> int:
    """Overwrite the upper-triangular ``u: (d, d)`` (Fortran order, zeros below the diagonal) with ``U^-1``, by
    LAPACK's ``trtri``; returns ``info`` (``k > 0``: diagonal entry k is exactly 0)."""
    _check_fortran(u)
    d, info = u.shape[0], _int(0)
    _call(_prefix(u) + "trtri", _char("U"), _char("N"), _int(d), u, _int(max(1, d)), info)
    return int(info[0])


def _check_fortran(a: np.ndarray) -> None:
    if a.ndim != 2 or a.shape[0] != a.shape[1] or not a.flags.f_contiguous or not a.flags.writeable:
        raise ValueError(f"expected a square, writeable, Fortran-ordered array, got shape {a.shape}")
