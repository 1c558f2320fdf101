"""Tolerances for floats computed two ways, derived from the precision and the size of the computation.

Two computations of the same quantity that differ only in the order of their floating-point operations (batch
sizes, thread counts, BLAS kernels, tiles, a float32 against a float64 path, torch against NumPy) agree to within
the forward error of a sum, not bit for bit. For a sum of ``k`` terms (a dot product of length ``k``, a reduction
over ``k`` rows), each ordering's error is at most ``gamma_k * sum_i |t_i|`` with ``gamma_k = k u / (1 - k u)``
and ``u`` the unit roundoff of the dtype (Higham, *Accuracy and Stability of Numerical Algorithms*, section
3.1), so two orderings differ by at most twice that. Chained products (the layers of a network) add one such
term per layer, each scaled by the magnitude ``sum |w| |h|`` of its summands, so ``k`` is then the sum of the
fan-ins and ``scale`` the largest magnitude along the chain. We use that worst-case bound as it is: the
typical error (about ``sqrt(k) u``) is far below it, so a test that fails it has found a real difference,
and it holds on every CPU and BLAS configuration.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["assert_close_computed_two_ways", "gamma", "two_way_tolerance", "unit_roundoff"]

_UNIT_ROUNDOFF = {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": 2.0**-24, "float64": 2.0**-53}


def unit_roundoff(dtype: Any) -> float:
    """``u`` of a dtype (NumPy or torch dtype, or its name): half the distance from 1 to the next float."""
    name = str(dtype).replace("torch.", "")
    if name in _UNIT_ROUNDOFF:
        return _UNIT_ROUNDOFF[name]
    return float(np.finfo(np.dtype(dtype)).eps) / 2


def gamma(k: int, dtype: Any) -> float:
    """``gamma_k = k u / (1 - k u)``: the relative forward-error bound of a sum of ``k`` terms."""
    ku = int(k) * unit_roundoff(dtype)
    if ku >= 1:
        raise ValueError(f"k = {k} terms exceed what {dtype} can bound (k u >= 1)")
    return ku / (1 - ku)


def two_way_tolerance(dtype: Any, k: int, scale: float) -> float:
    """Largest difference between two orderings of a sum of ``k`` terms whose absolute values add up to at most
    ``scale``: ``2 gamma_k scale`` (each ordering is within ``gamma_k scale`` of the exact sum)."""
    return 2 * gamma(k, dtype) * float(scale)


def assert_close_computed_two_ways(actual: Any, desired: Any, *, dtype: Any, k: int, scale: float | None = None,
                                   err_msg: str = "") -> None:
    """``|actual - desired| <= 2 gamma_k scale`` elementwise, ``scale`` defaulting to ``max |desired|`` (right when
    the summands do not cancel; pass the magnitude of the summands when they do)."""
    desired = np.asarray(desired, dtype=np.float64)
    if scale is None:
        scale = float(np.max(np.abs(desired))) if desired.size else 0.0
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), desired, rtol=0,
                               atol=two_way_tolerance(dtype, k, scale), err_msg=err_msg)
