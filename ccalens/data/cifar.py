"""CIFAR-10 in its python pickle format, per-channel normalisation, the standard augmentation in plain torch.

Format: a folder (``cifar-10-batches-py`` or its parent) with ``data_batch_1`` .. ``data_batch_5`` and
``test_batch``, each a pickled dict with ``b'data'``: ``(10000, 3072)`` uint8 (the R, then G, then B 32 x 32
planes, row-major) and ``b'labels'``: 10,000 ints in 0..9. Augmentation (He et al. 2016): pad 4 pixels on each
side (with black, i.e. the value of a zero pixel after normalisation), take a random 32 x 32 crop, flip
horizontally with probability 1/2.

:func:`write_fake_cifar` writes small files in exactly that format (class-dependent colour patterns plus
noise) for tests; nothing is downloaded.

Safety: the batches are pickles, and unpickling an arbitrary file can run code. They are read with a restricted
unpickler that builds only what the format holds: dicts, lists, ints, bytes and plain numeric numpy arrays. Any
other object in the file (e.g. a planted ``os.system`` call) raises a ValueError before anything runs.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ccalens.io import atomic_write

__all__ = [
    "CIFAR10_CLASSES",
    "CifarAugmented",
    "CifarData",
    "load_cifar10",
    "random_crop_flip",
    "write_fake_cifar",
]

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_FILE = "test_batch"


@dataclass(frozen=True)
class CifarData:
    """Normalised CIFAR-10 tensors. x_*: ``(n, 3, 32, 32)`` float32; y_*: ``(n,)`` int64; mean, std: ``(3,)``
    per-channel statistics of the raw training pixels scaled to [0, 1] (used for both splits)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    classes: tuple[str, ...] = CIFAR10_CLASSES


def _resolve(folder: str | os.PathLike) -> Path:
    root = Path(folder)
    for cand in (root, root / "cifar-10-batches-py"):
        if (cand / _TEST_FILE).is_file() and all((cand / f).is_file() for f in _TRAIN_FILES):
            return cand
    raise FileNotFoundError(
        f"folder must contain data_batch_1..5 and test_batch (CIFAR-10 python format), directly or in "
        f"cifar-10-batches-py/; not found under {root}"
    )


# The numpy functions that pickles of plain arrays call (their module moved from numpy.core to numpy._core in
# numpy 2; asking an array how it pickles gives the right ones for the installed numpy).
_NP_RECONSTRUCT = np.empty(0).__reduce__()[0]
_NP_FROMBUFFER = np.empty(1).__reduce_ex__(5)[0]
_NUMERIC_KINDS = "biuf"


class _NdarrayMarker:
    """Stands for ``numpy.ndarray`` in a pickle: accepted as the type argument of ``_reconstruct`` and nothing else
    (so a pickle cannot call the ndarray constructor with arguments of its choosing)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise pickle.UnpicklingError("numpy.ndarray: only rebuilt through _reconstruct, never called")


_NDARRAY = _NdarrayMarker()


def _safe_reconstruct(subtype: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct`` as ndarray pickles call it, ``(ndarray, (0,), b'b')``: an empty plain
    array, which the pickle's BUILD step then fills (``ndarray.__setstate__``)."""
    if subtype is not _NDARRAY or shape != (0,) or dtype_code not in (b"b", "b"):
        raise pickle.UnpicklingError("_reconstruct: only a plain numpy.ndarray may be rebuilt")
    return _NP_RECONSTRUCT(np.ndarray, (0,), b"b")


def _safe_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """``numpy.dtype`` for a numeric type code (``'u1'``, ``b'<i8'``, ...) only: no object or structured types."""
    if isinstance(spec, bytes):
        spec = spec.decode("ascii", errors="replace")
    if not isinstance(spec, str) or len(spec) > 8:
        raise pickle.UnpicklingError(f"dtype: only a numeric type code is allowed, got {spec!r}")
    try:
        dtype = np.dtype(spec)
    except TypeError as e:
        raise pickle.UnpicklingError(f"dtype: {spec!r} is not a numpy type code") from e
    if dtype.kind not in _NUMERIC_KINDS:
        raise pickle.UnpicklingError(f"dtype: only numeric arrays are allowed, got {dtype}")
    return np.dtype(spec, bool(align), bool(copy))


def _safe_frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """``numpy._core.numeric._frombuffer`` (pickle protocol 5) for bytes of a numeric array only."""
    if not (isinstance(buffer, bytes | bytearray) and isinstance(dtype, np.dtype) and dtype.kind in _NUMERIC_KINDS
            and isinstance(shape, tuple) and order in ("C", "F")):
        raise pickle.UnpicklingError("_frombuffer: only the bytes of a plain numeric array are allowed")
    return _NP_FROMBUFFER(buffer, dtype, shape, order)


def _safe_codecs_encode(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    """``_codecs.encode`` as Python 3 protocol-2 pickles use it for bytes: ``(str, 'latin1')`` only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError("_codecs.encode: only (str, 'latin1') is allowed")
    return text.encode("latin1")


def _safe_bytes(*args: Any) -> bytes:
    """``bytes()`` (an empty bytes object in protocol-2 pickles) or a copy of bytes; never ``bytes(huge_int)``."""
    if not args:
        return b""
    if len(args) == 1 and isinstance(args[0], bytes | bytearray):
        return bytes(args[0])
    raise pickle.UnpicklingError("bytes: only bytes() or bytes(b'...') is allowed")


# (module, name) -> the callable returned for it; every other global is refused.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,  # real CIFAR files (Python 2, numpy 1)
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,  # numpy >= 2
    ("numpy.core.numeric", "_frombuffer"): _safe_frombuffer,  # pickle protocol 5
    ("numpy._core.numeric", "_frombuffer"): _safe_frombuffer,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _safe_dtype,
    ("_codecs", "encode"): _safe_codecs_encode,
    ("__builtin__", "bytes"): _safe_bytes,
    ("builtins", "bytes"): _safe_bytes,
}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that builds only dicts, lists, ints, bytes and plain numeric numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return allowed


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        try:
            d = _CifarUnpickler(f, encoding="bytes").load()
        except pickle.UnpicklingError as e:
            raise ValueError(
                f"{path}: not a CIFAR-10 python batch, refused to unpickle it ({_first_line(e)}); the format holds "
                "only a dict of numpy arrays, lists and bytes"
            ) from e
        except Exception as e:  # anything else a malformed file can raise (EOF, bad state, recursion, memory)
            reason = f"{type(e).__name__}: {_first_line(e)}"
            raise ValueError(f"{path}: not a readable CIFAR-10 python batch ({reason})") from e
    if isinstance(d, dict):  # a file re-saved from Python 3 may have str keys
        d = {k.encode("latin1") if isinstance(k, str) else k: v for k, v in d.items()}
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise ValueError(f"{path}: expected a pickled dict with b'data' and b'labels'")
    raw_data, raw_labels = d[b"data"], d[b"labels"]
    if not isinstance(raw_data, np.ndarray) or raw_data.dtype != np.uint8:
        raise ValueError(f"{path}: b'data' must be a uint8 numpy array, got {type(raw_data).__name__}")
    if not isinstance(raw_labels, list | np.ndarray) or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in raw_labels
    ):
        raise ValueError(f"{path}: b'labels' must be a list of ints")
    data = np.asarray(raw_data, dtype=np.uint8)
    labels = np.asarray(raw_labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{path}: b'data' must be (n, 3072) with one label per row, got {data.shape}, {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must lie in 0..9")
    return data.reshape(-1, 3, 32, 32), labels


#: ImageNet's per-channel mean and std (RGB), the normalisation Moreau et al.'s CIFAR code uses.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_cifar10(folder: str | os.PathLike, normalize: bool = True, statistics: str = "cifar") -> CifarData:
    """Read the six batches; returns :class:`CifarData` with ``x_train (50000, 3, 32, 32)`` (fewer for test
    files) scaled to [0, 1] and, with ``normalize``, standardised per channel by the training mean/std
    (``statistics="cifar"``) or by ImageNet's (``"imagenet"``, as Moreau et al.'s code does)."""
    if statistics not in ("cifar", "imagenet"):
        raise ValueError(f"statistics must be 'cifar' or 'imagenet', got {statistics!r}")
    root = _resolve(folder)
    parts = [_read_batch(root / f) for f in _TRAIN_FILES]
    x_tr = torch.from_numpy(np.concatenate([p[0] for p in parts])).float().div_(255.0)
    y_tr = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    xt, yt = _read_batch(root / _TEST_FILE)
    x_te = torch.from_numpy(xt).float().div_(255.0)
    y_te = torch.from_numpy(yt)
    if statistics == "imagenet":
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    else:
        mean = x_tr.mean(dim=(0, 2, 3), dtype=torch.float64).float()
        std = x_tr.double().std(dim=(0, 2, 3)).float().clamp_min(1e-6)
    if normalize:
        x_tr = (x_tr - mean[:, None, None]) / std[:, None, None]
        x_te = (x_te - mean[:, None, None]) / std[:, None, None]
    return CifarData(x_tr, y_tr, x_te, y_te, mean, std)


def _crop_flip(
    x: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, flip: torch.Tensor, pad: int, fill: torch.Tensor
) -> torch.Tensor:
    b, c, h, w = x.shape
    padded = fill.reshape(1, c, 1, 1).expand(b, c, h + 2 * pad, w + 2 * pad).clone()
    padded[:, :, pad : pad + h, pad : pad + w] = x
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    rows = oy[:, None] + ar_h[None, :]  # (b, h)
    cols = torch.where(flip[:, None], ox[:, None] + (w - 1 - ar_w)[None, :], ox[:, None] + ar_w[None, :])
    bi = torch.arange(b)[:, None, None, None]
    ci = torch.arange(c)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def random_crop_flip(
    x: torch.Tensor,
    pad: int = 4,
    fill: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Standard CIFAR augmentation of a batch ``x: (b, c, h, w)``: pad ``pad`` pixels with ``fill`` (``(c,)``,
    default 0), random ``h x w`` crop, horizontal flip with probability 1/2; returns ``(b, c, h, w)``."""
    if x.ndim != 4:
        raise ValueError(f"x must be (batch, channels, height, width), got shape {tuple(x.shape)}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    b, c = x.shape[:2]
    fill_t = torch.zeros(c, dtype=x.dtype) if fill is None else torch.as_tensor(fill, dtype=x.dtype)
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    return _crop_flip(x, oy, ox, flip, pad, fill_t)


class CifarAugmented(Dataset):
    """Torch Dataset of normalised images ``x: (n, 3, 32, 32)`` and labels ``y: (n,)``; with ``augment`` each
    item is randomly padded-cropped and flipped (global torch RNG, so seeded runs are reproducible).
    The padding value is black: ``-mean / std`` per channel (pass the normalisation statistics)."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        augment: bool = True,
        mean: torch.Tensor | None = None,
        std: torch.Tensor | None = None,
        pad: int = 4,
    ) -> None:
        if x.ndim != 4 or x.shape[0] != y.shape[0]:
            raise ValueError(f"x must be (n, c, h, w) and y (n,), got {tuple(x.shape)}, {tuple(y.shape)}")
        self.x, self.y, self.augment, self.pad = x, y.long(), augment, pad
        c = x.shape[1]
        if mean is not None and std is not None:
            self.fill = (-torch.as_tensor(mean, dtype=x.dtype) / torch.as_tensor(std, dtype=x.dtype)).reshape(
                c
            )
        else:
            self.fill = torch.zeros(c, dtype=x.dtype)
        self.targets = self.y.numpy()

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.x[i]
        if self.augment:
            img = random_crop_flip(img[None], self.pad, self.fill)[0]
        return img, self.y[i]


def write_fake_cifar(folder: str | os.PathLike, n_per_batch: int = 20, seed: int = 0) -> Path:
    """Write FAKE CIFAR-10 files (python pickle format) into ``folder``; returns ``folder``.

    Six batches of ``n_per_batch`` images (labels cycling over the 10 classes, shuffled): each class has its
    own colour and a stripe direction, plus noise, so small networks can learn them. Written atomically.
    """
    if int(n_per_batch) < 1:
        raise ValueError(f"n_per_batch must be >= 1, got {n_per_batch}")
    rng = np.random.default_rng(seed)
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    colours = rng.uniform(40, 215, size=(10, 3))
    yy, xx = np.mgrid[0:32, 0:32]
    for name in (*_TRAIN_FILES, _TEST_FILE):
        labels = rng.permutation(np.arange(n_per_batch) % 10)
        imgs = np.empty((n_per_batch, 3, 32, 32))
        for k, c in enumerate(labels):
            angle = np.pi * c / 10
            stripes = 30 * np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * 0.6)
            imgs[k] = colours[c][:, None, None] + stripes[None] + rng.normal(0, 12, (3, 32, 32))
        data = np.clip(np.round(imgs), 0, 255).astype(np.uint8).reshape(n_per_batch, 3072)
        blob = {
            b"batch_label": f"fake {name}".encode(),
            b"labels": [int(v) for v in labels],
            b"data": data,
            b"filenames": [f"fake_{name}_{k}.png".encode() for k in range(n_per_batch)],
        }
        atomic_write(root / name, lambda f, blob=blob: pickle.dump(blob, f, protocol=2))
    meta = {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_cases_per_batch": n_per_batch}
    atomic_write(root / "batches.meta", lambda f: pickle.dump(meta, f, protocol=2))
    return root
