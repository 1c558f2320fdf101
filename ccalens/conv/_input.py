"""Validation of conv feature maps: layout, dimensionality, dtype, finiteness, paired sample counts."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

__all__ = ["LAYOUTS", "Layout", "check_layout", "check_map", "check_map_pair", "to_nchw"]

Layout = Literal["NCHW", "NHWC"]
LAYOUTS: tuple[str, ...] = ("NCHW", "NHWC")


def check_layout(layout: Any) -> str:
    """Return ``layout`` if it is ``'NCHW'`` or ``'NHWC'``; raise ``ValueError`` naming the argument otherwise."""
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"layout must be 'NCHW' (PyTorch) or 'NHWC' (TensorFlow/JAX), got {layout!r}")
    return layout


def check_map(A: Any, name: str, layout: str, *, min_samples: int = 1) -> np.ndarray:
    """Validate one batch of conv feature maps: a real 4-D array in ``layout``, finite, with samples.

    Returns the array as given (no copy, no layout change). Torch tensors are converted without
    importing torch.
    """
    if hasattr(A, "detach") and hasattr(A, "cpu"):
        A = A.detach().cpu().numpy()
    arr = np.asarray(A)
    if arr.dtype.kind not in "fiub":
        kind = "real-valued" if arr.dtype.kind == "c" else "a numeric array"
        raise TypeError(f"{name} must be {kind}, got dtype {arr.dtype}")
    if arr.ndim != 4:
        raise ValueError(
            f"{name} must be 4-D conv feature maps in layout {layout} "
            f"({'(N, C, H, W)' if layout == 'NCHW' else '(N, H, W, C)'}), got shape {arr.shape}"
        )
    if 0 in arr.shape[1:]:
        raise ValueError(f"{name} has an empty channel or spatial axis: shape {arr.shape} ({layout})")
    if arr.shape[0] < min_samples:
        raise ValueError(f"{name} needs at least {min_samples} images, got {arr.shape[0]}")
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            bad = np.argwhere(~finite)
            first = tuple(int(i) for i in bad[0])
            raise ValueError(
                f"{name} contains {len(bad)} NaN/Inf value(s); first at index {first} ({layout}). "
                "Remove or impute them before measuring similarity."
            )
    return arr


def check_map_pair(A: Any, B: Any, layout: str, *, min_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Validate two batches of maps of the SAME images: both 4-D and finite, equal image counts.

    Channel counts and spatial sizes may differ.
    """
    layout = check_layout(layout)
    a = check_map(A, "A", layout, min_samples=min_samples)
    b = check_map(B, "B", layout, min_samples=min_samples)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"A and B must hold the same images in the same order, but A has {a.shape[0]} and B has {b.shape[0]}"
        )
    return a, b


def to_nchw(arr: np.ndarray, layout: str) -> np.ndarray:
    """View of a validated 4-D array as ``(N, C, H, W)`` (no copy)."""
    return arr if layout == "NCHW" else np.moveaxis(arr, 3, 1)
