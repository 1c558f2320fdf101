"""Statistics of torch tensors on their own device (CPU or CUDA), duck-typed: torch is never imported here.

A batch of tensors enters :meth:`~ccalens.core.stats.SufficientStats.update` as it is. The provisional offset, the
shifted co-moment products and the column sums run on the tensors' device with the arithmetic of the NumPy path
(:mod:`ccalens.core.comoments`): the data shifted by the same offset, float64 products (or, for linear CKA's
:func:`~ccalens.core.stats.second_moment_statistics`, float32 products of float32 chunks of at most
``chunk_rows`` rows, accumulated in float64). Only the ``(d, d)`` co-moment and the ``(d,)`` sums come to the host,
where everything after them (whitening, the small eigendecompositions and SVDs) runs as for NumPy input, so a
result never holds a device tensor and statistics from several devices or processes merge as usual.

The activations themselves are never copied to the host, except on an error path: naming the first non-finite
value (a scan of the batch on the host).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from .validation import check_sample_counts, check_shape

__all__ = ["check_tensors", "column_ranges", "device_comoment", "first_row", "is_tensor", "leading_moments", "to_host"]

#: dtypes a device batch may have (bool and integers are widened like NumPy's; complex is refused).
_REAL_PREFIXES = ("torch.float", "torch.bfloat", "torch.int", "torch.uint", "torch.bool", "torch.half", "torch.double")


def is_tensor(value: Any) -> bool:
    """Whether ``value`` is a torch tensor (without importing torch)."""
    return type(value).__module__.split(".")[0] == "torch" and hasattr(value, "device") and hasattr(value, "detach")


def _torch() -> Any:
    return sys.modules["torch"]  # loaded: the caller holds one of its tensors


def to_host(tensor: Any) -> np.ndarray:
    """A small device tensor as a float64 NumPy array."""
    return tensor.detach().to(device="cpu", dtype=_torch().float64).numpy()


def check_tensors(blocks: Sequence[Any], names: Sequence[str], *, min_samples: int = 1) -> list[Any]:
    """Validate one batch of tensors of the same samples (real, on one device; the shapes and sample counts by
    :func:`~ccalens.core.validation.check_shape` and :func:`~ccalens.core.validation.check_sample_counts`, as
    for arrays). Non-finite values are found later, from the products' diagonal."""
    devices = {str(b.device) for b in blocks}
    if len(devices) > 1:
        raise ValueError(f"the tensors of a batch must be on one device, got {sorted(devices)}")
    for b, nm in zip(blocks, names, strict=True):
        dtype = str(b.dtype)
        if dtype.startswith("torch.complex"):
            raise TypeError(f"{nm} must be real-valued, got dtype {dtype} (complex)")
        if not dtype.startswith(_REAL_PREFIXES):
            raise TypeError(f"{nm} must be a numeric tensor, got dtype {dtype}")
        check_shape(tuple(b.shape), nm, min_samples)
    check_sample_counts({nm: int(b.shape[0]) for b, nm in zip(blocks, names, strict=True)})
    return [b.detach() for b in blocks]


def first_row(blocks: Sequence[Any]) -> np.ndarray:
    """The stacked first row ``(d,)``, in float64 on the host."""
    torch = _torch()
    return to_host(torch.cat([b[0].to(torch.float64) for b in blocks]))


def leading_moments(blocks: Sequence[Any], rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Means and variances (``ddof=0``) of the first ``rows`` rows of the stacked blocks, in float64 on the
    device: the input of :func:`~ccalens.core.comoments.offset_from_moments`."""
    torch = _torch()
    lead = torch.cat([b[:rows].to(torch.float64) for b in blocks], dim=1)
    mean = lead.mean(dim=0)
    var = ((lead - mean) ** 2).mean(dim=0)
    return to_host(mean), to_host(var)


def device_comoment(
    blocks: Sequence[Any], offset: np.ndarray, *, dtype: type[np.floating], chunk_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~ccalens.core.comoments.shifted_comoment` of tensors on their device: the co-moment about the mean
    ``(Z - offset)' (Z - offset) - n d d'`` and the column sums of ``Z - offset``, chunk by chunk, as host float64
    arrays ``(d, d)`` (exactly symmetric) and ``(d,)``. ``dtype=float32``: float32 products of float32 chunks."""
    torch = _torch()
    device = blocks[0].device
    n = int(blocks[0].shape[0])
    total = int(offset.shape[0])
    work = torch.float32 if dtype == np.float32 else torch.float64
    shift = torch.as_tensor(offset, dtype=torch.float64, device=device).to(work)
    acc = torch.zeros((total, total), dtype=torch.float64, device=device)
    sums = torch.zeros(total, dtype=torch.float64, device=device)
    rows = max(1, min(n, chunk_rows))
    for start in range(0, n, rows):
        chunk = torch.cat([b[start : start + rows].to(work) for b in blocks], dim=1)
        chunk -= shift
        sums += chunk.sum(dim=0, dtype=torch.float64)
        acc += (chunk.T @ chunk).to(torch.float64)
        del chunk
    comoment, column_sums = to_host(acc), to_host(sums)
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite sums are reported by the caller, by name
        v = np.sqrt(float(n)) * (column_sums / n)
        comoment -= np.multiply.outer(v, v)
    comoment = 0.5 * (comoment + comoment.T)  # the device's products need not be exactly symmetric
    return comoment, column_sums


def column_ranges(block: Any, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Range (max - min) and largest magnitude ``(k,)`` of ``block[:, columns]``, in float64 on the host (a
    tensor's computed on its device: the underflow check's columns never leave it)."""
    if is_tensor(block):
        torch = _torch()
        index = torch.as_tensor(columns, dtype=torch.long, device=block.device)
        picked = block.index_select(1, index).to(torch.float64)
        return to_host(picked.max(dim=0).values - picked.min(dim=0).values), to_host(picked.abs().max(dim=0).values)
    picked = np.asarray(block[:, columns], dtype=np.float64)
    return np.ptp(picked, axis=0), np.abs(picked).max(axis=0)
