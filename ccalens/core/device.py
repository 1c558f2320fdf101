"""Statistics of torch tensors on their own device (CPU or CUDA), duck-typed: torch is never imported here.

A batch of tensors enters :meth:`~ccalens.core.stats.SufficientStats.update` as it is. The provisional offset, the
shifted co-moment products and the column sums run on the tensors' device with the arithmetic of the NumPy path
(:mod:`ccalens.core.comoments`): the data shifted by the same offset, float64 products (or, for linear CKA's
:func:`~ccalens.core.stats.second_moment_statistics`, float32 products of float32 chunks of at most
``chunk_rows`` rows, accumulated in float64). Only the ``(d, d)`` co-moment and the ``(d,)`` sums come to the host,
where everything after them (whitening, the small eigendecompositions and SVDs) runs as for NumPy input, so a
result never holds a device tensor and statistics from several devices or processes merge as usual.

The same holds for the other paths that take the data: the sample-space Grams (:class:`~ccalens.core.measures.
sides.GramPair`; the ``(n, n)`` Gram comes to the host for its eigendecomposition), the reduced coordinates of a
matrix of pairs (:mod:`ccalens.core.many`; kept on the device, each pair one product), the block statistics and
weighted replicates of the bootstrap (:mod:`ccalens.core.uncertainty.blocks`) and the whitened data of the
permutation test (:mod:`ccalens.core.measures.permuted`).

The activations themselves are never copied to the host: NaN/Inf are found by a reduction on the device, and only
the first bad entry is read to name it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from .validation import check_sample_counts, check_shape

__all__ = [
    "block_products",
    "centred_rows",
    "check_finite_tensors",
    "check_tensors",
    "column_means",
    "column_ranges",
    "cross_product",
    "device_comoment",
    "device_gram",
    "device_gram_parts",
    "feature_products",
    "first_row",
    "from_host",
    "gram_norms",
    "is_tensor",
    "leading_moments",
    "matmul_to_host",
    "nbytes",
    "project_centred",
    "right_multiply",
    "take_rows",
    "to_host",
    "weighted_products",
]

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


def from_host(array: np.ndarray, like: Any) -> Any:
    """A small host array as a float64 tensor on ``like``'s device (a whitener, an offset)."""
    torch = _torch()
    return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float64, device=like.device)


def check_finite_tensors(blocks: Sequence[Any], names: Sequence[str]) -> None:
    """``ValueError`` naming the first tensor with a NaN/Inf value, its position and value (the check of
    :func:`~ccalens.core.validation.check_features`, reduced on the device: only the verdict and the first bad
    entry come to the host)."""
    torch = _torch()
    for b, nm in zip(blocks, names, strict=True):
        if not b.is_floating_point():
            continue
        finite = torch.isfinite(b)
        if bool(finite.all()):
            continue
        bad = torch.nonzero(~finite)
        i, j = (int(v) for v in bad[0])
        raise ValueError(
            f"{nm} contains {int(bad.shape[0])} NaN/Inf value(s); first at sample {i}, feature {j} "
            f"(value {float(b[i, j])}). Remove or impute them before measuring similarity."
        )


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


def _index(order: np.ndarray, like: Any) -> Any:
    torch = _torch()
    return torch.as_tensor(np.ascontiguousarray(order), dtype=torch.long, device=like.device)


def column_means(blocks: Sequence[Any]) -> np.ndarray:
    """The stacked column means ``(d,)`` of ``blocks``, accumulated in float64 on the device, on the host."""
    torch = _torch()
    return to_host(torch.cat([b.to(torch.float64).mean(dim=0) for b in blocks]))


def take_rows(block: Any, order: np.ndarray) -> Any:
    """``block[order]`` on its device (``order: (m,)`` host indices)."""
    return block.index_select(0, _index(order, block))


def centred_rows(blocks: Sequence[Any], order: np.ndarray | None, center: np.ndarray) -> Any:
    """The stacked rows ``order`` (None: all, in order) of ``blocks`` minus ``center: (d,)``, float64 ``(m, d)``
    on the device."""
    torch = _torch()
    if order is None:
        rows = torch.cat([b.to(torch.float64) for b in blocks], dim=1).clone()
    else:
        index = _index(order, blocks[0])
        rows = torch.cat([b.index_select(0, index).to(torch.float64) for b in blocks], dim=1)
    rows -= from_host(center, rows)
    return rows


def block_products(blocks: Sequence[Any], order: np.ndarray, center: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of the rows ``Z = stacked rows order - center``: their mean ``(d,)`` and ``Z' Z`` ``(d, d)`` (float64
    products on the device, exactly symmetric), on the host."""
    rows = centred_rows(blocks, order, center)
    product = to_host(rows.T @ rows)
    return to_host(rows.mean(dim=0)), 0.5 * (product + product.T)


def weighted_products(data: Any, row_weights: np.ndarray) -> np.ndarray:
    """``data' diag(w) data`` of device ``data: (n, d)`` float64 and host ``row_weights: (n,)``: ``(d, d)`` on the
    host, exactly symmetric."""
    product = to_host((data.T * from_host(row_weights, data)) @ data)
    return 0.5 * (product + product.T)


def matmul_to_host(left: Any, right: Any) -> np.ndarray:
    """``left @ right`` on the device, the (small) product on the host."""
    return to_host(left @ right)


def right_multiply(A: Any, matrix: np.ndarray) -> Any:
    """``A @ matrix`` where ``A`` lives (a tensor's on its device, in float64; an array's in NumPy)."""
    return A @ from_host(matrix, A) if is_tensor(A) else A @ matrix


def cross_product(left: Any, right: Any, order: np.ndarray) -> np.ndarray:
    """``left' right[order]`` (``left: (n, a)``, ``right: (n, b)``, arrays or tensors on one device), ``(a, b)``
    on the host."""
    if is_tensor(left):
        return matmul_to_host(left.T, take_rows(right, order))
    return left.T @ right[order]


def _centred_columns(block: Any, lo: int, hi: int, mean: Any, inverse_scale: Any | None, work: Any) -> Any:
    """Columns ``lo:hi`` of ``block`` minus their means (divided by the scales given), in ``work`` precision: centred
    in float64, or in float32 for float32 data (exact where value and mean are close, as NumPy's
    :func:`~ccalens.core.dual.centred_block`)."""
    torch = _torch()
    if work == torch.float32 and block.dtype == torch.float32 and inverse_scale is None:
        return block[:, lo:hi] - mean[lo:hi].to(torch.float32)
    part = block[:, lo:hi].to(torch.float64) - mean[lo:hi]
    if inverse_scale is not None:
        part *= inverse_scale[lo:hi]
    return part.to(work)


def _gram_on_device(block: Any, *, standardize: bool, float32: bool, columns: int) -> tuple[Any, Any, Any]:
    """``(K, mean, scale)`` on the device: ``K = Xc Xc'`` ``(n, n)`` float64 accumulated over column blocks."""
    torch = _torch()
    n, d = (int(v) for v in block.shape)
    work = torch.float32 if float32 else torch.float64
    mean = torch.zeros(d, dtype=torch.float64, device=block.device)
    for lo in range(0, d, columns):
        mean[lo : lo + columns] = block[:, lo : lo + columns].to(torch.float64).mean(dim=0)
    scale, inverse = torch.ones(d, dtype=torch.float64, device=block.device), None
    if standardize:
        for lo in range(0, d, columns):
            part = block[:, lo : lo + columns].to(torch.float64) - mean[lo : lo + columns]
            scale[lo : lo + columns] = torch.sqrt((part * part).sum(dim=0))
        inverse = torch.where(scale > 0, 1.0 / torch.where(scale > 0, scale, 1.0), 0.0)
    K = torch.zeros((n, n), dtype=torch.float64, device=block.device)
    for lo in range(0, d, columns):
        part = _centred_columns(block, lo, min(d, lo + columns), mean, inverse, work)
        K += (part @ part.T).to(torch.float64)
    K = 0.5 * (K + K.T)  # the device's products need not be exactly symmetric
    return K, mean, scale


def device_gram(block: Any, *, standardize: bool, columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The centred Gram of a tensor ``(n, d)`` for the CCA family, as :func:`~ccalens.core.dual.centred_gram`:
    float64 products on the device over column blocks; ``(K: (n, n), mean: (d,), scale: (d,))`` on the host."""
    K, mean, scale = _gram_on_device(block, standardize=standardize, float32=False, columns=columns)
    return to_host(K), to_host(mean), to_host(scale)


def device_gram_parts(X: Any, Y: Any, *, columns: int) -> tuple[float, float, float]:
    """``(<Kc, Kc>, <Lc, Lc>, <Kc, Lc>)`` of the centred Grams of tensors ``X: (n, p)``, ``Y: (n, q)`` (linear CKA's
    sample-space form, :func:`~ccalens.core.gram_tiles.linear_cka_tiled_parts`), both Grams formed on the device
    (float32 products of float32 data, accumulated in float64) and only the three sums brought to the host."""
    torch = _torch()
    float32 = X.dtype == torch.float32 and Y.dtype == torch.float32
    K, _, _ = _gram_on_device(X, standardize=False, float32=float32, columns=columns)
    L, _, _ = _gram_on_device(Y, standardize=False, float32=float32, columns=columns)
    kk, ll, kl = (float((A * B).sum()) for A, B in ((K, K), (L, L), (K, L)))
    if not all(np.isfinite(v) for v in (kk, ll, kl)):
        raise ValueError("linear CKA overflowed: the products of the features exceed float range; rescale them")
    if kk <= 0.0 or ll <= 0.0:
        raise ValueError("linear CKA is undefined: a representation has no variance")
    return kk, ll, kl


def feature_products(block: Any, mean: np.ndarray, H: np.ndarray, *, columns: int) -> np.ndarray:
    """``Xc' H`` ``(d, k)`` of a tensor ``X: (n, d)`` and host ``H: (n, k)`` (e.g. canonical variates), column block
    by column block on the device: :func:`~ccalens.core.dual.feature_loadings`."""
    torch = _torch()
    d = int(block.shape[1])
    shift, right = from_host(mean, block), from_host(H, block)
    out = np.empty((d, H.shape[1]))
    for lo in range(0, d, columns):
        hi = min(d, lo + columns)
        out[lo:hi] = to_host(_centred_columns(block, lo, hi, shift, None, torch.float64).T @ right)
    return out


def project_centred(block: Any, mean: np.ndarray, W: np.ndarray | None) -> Any:
    """``(X - mean) @ W`` ``(n, r)`` on the device (``W`` None: ``X - mean`` itself), centred in float64 and
    multiplied in the input's precision (float32 for float32 data), as NumPy's reduced coordinates."""
    torch = _torch()
    work = torch.float32 if block.dtype in (torch.float32, torch.float16) else torch.float64
    centred = (block.to(torch.float64) - from_host(mean, block)).to(work)
    return centred if W is None else centred @ from_host(W, block).to(work)


def gram_norms(coords: Any) -> tuple[float, float]:
    """``(||C' C||_F, tr(C' C))`` of device coordinates ``C: (n, r)``, the product in their precision."""
    torch = _torch()
    product = (coords.T @ coords).to(torch.float64)
    return float(torch.linalg.matrix_norm(product)), float(torch.trace(product))


def nbytes(value: Any) -> int:
    """Bytes held by an array or a tensor."""
    return int(value.numel() * value.element_size()) if is_tensor(value) else int(value.nbytes)
