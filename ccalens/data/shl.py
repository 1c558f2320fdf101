"""SHL 2018 challenge data (Sussex-Huawei Locomotion): lazy loader, binary cache and 48 x 48 spectrograms.

Folder layout (the official release): ``<root>/train/`` and ``<root>/test/`` with one text file per channel,
``{Acc,Gra,LAcc,Gyr,Mag,Ori}_{x,y,z}.txt``, ``Ori_w.txt``, ``Pressure.txt``, ``Label.txt`` and
``train_order.txt``. One line = one 60 s segment = 6,000 space-separated values at 100 Hz. ``Label.txt``
holds 6,000 per-sample labels per line; a segment's label is the MIDDLE one (sample 3,000), classes 1..8
(Still, Walk, Run, Bike, Car, Bus, Train, Subway) stored here as 0..7.

Chronology: the segments are shuffled in the files; line ``i`` of ``train_order.txt`` holds the chronological
position (1-based) of line ``i``. Validation = the first ``n_val`` segments in chronological order (3,310 in
Moreau et al. 2021, leaving 13,000 for training).

Memory: the full training set is ~20 GB of text. Each channel is read line by line (one segment in memory at
a time) into a float32 ``.npy`` cache (``(n_segments, 6000)``, ~390 MB per channel for the full set) written
once, atomically (:func:`ccalens.io.atomic_write`), and then opened as a read-only memory map. Derived channels
``{Acc,Gra,LAcc,Gyr,Mag}_norm`` (``sqrt(x**2 + y**2 + z**2)`` in float32, as the paper's code computes them) are
computed chunk by chunk and cached the same way, and so are the 48 x 48 spectrograms. A folder that cannot be
written is reported with the way out: ``cache_dir=``.

Spectrograms: :mod:`ccalens.data.spectrogram` (by default exactly the preprocessing of Moreau et al.'s code).

The synthetic generator for tests and demos lives in :mod:`ccalens.data.shl_synthetic`
(:func:`write_synthetic_shl`, re-exported here).
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from ccalens.data._shl_format import N_VAL_PAPER, RAW_CHANNELS, SEGMENT_LENGTH, SHL_CLASSES, SHL_FS
from ccalens.data.shl_synthetic import write_synthetic_shl
from ccalens.data.spectrogram import SPECTROGRAM_METHODS, compute_spectrograms, spectrogram
from ccalens.io import atomic_write

__all__ = [
    "RAW_CHANNELS",
    "SEGMENT_LENGTH",
    "SHL_CLASSES",
    "SHL_FS",
    "SHLDataset",
    "write_synthetic_shl",
]

_NORM_SENSORS = ("Acc", "Gra", "LAcc", "Gyr", "Mag")
_DERIVED = re.compile(r"^(Acc|Gra|LAcc|Gyr|Mag)_norm$")
# cache versions: raw text channels (v1); float32 norms as the paper computes them (v2, v1 summed in float64);
# spectrograms carry their method in the name
_CACHE_VERSION = "v1"
_NORM_CACHE_VERSION = "v2"


# --------------------------------------------------------------------------------------------- text reading


def _count_lines(path: Path) -> int:
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (0 if last == b"\n" else 1)


def _iter_rows(path: Path, dtype: type = np.float32) -> Iterator[np.ndarray]:
    """Yield one parsed line at a time, checking that each has SEGMENT_LENGTH values."""
    with open(path, encoding="ascii") as f:
        for i, line in enumerate(f):
            row = np.fromstring(line, sep=" ", dtype=dtype)
            if row.shape[0] != SEGMENT_LENGTH:
                raise ValueError(
                    f"{path}: line {i + 1} has {row.shape[0]} values, expected {SEGMENT_LENGTH} "
                    "(one 60 s segment at 100 Hz)"
                )
            yield row


def _write_npy(path: Path, shape: tuple[int, ...], dtype: Any, chunks: Iterable[np.ndarray]) -> None:
    """Write the ``.npy`` file ``path`` of ``shape`` and ``dtype`` from consecutive row blocks ``chunks`` (one
    block in memory at a time), atomically (:func:`ccalens.io.atomic_write`): a reader sees the whole file or
    none. A folder that cannot be written is reported with the way out (``cache_dir``)."""
    dtype = np.dtype(dtype)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}

    def write(f: IO[bytes]) -> None:
        np.lib.format.write_array_header_1_0(f, header)
        rows = 0
        for block in chunks:
            block = np.ascontiguousarray(block, dtype=dtype)
            if block.shape[1:] != tuple(shape[1:]) or rows + block.shape[0] > shape[0]:
                raise ValueError(f"{path}: block of shape {block.shape} does not fit an array of shape {shape}")
            f.write(block.tobytes())
            rows += block.shape[0]
        if rows != shape[0]:
            raise ValueError(f"{path}: {rows} rows were produced, expected {shape[0]}")

    try:
        atomic_write(path, write)
    except OSError as e:
        where = Path(e.filename) if e.filename is not None else path.parent
        in_cache = where.is_relative_to(path.parent) or path.parent.is_relative_to(where)
        if not in_cache or (not isinstance(e, PermissionError) and e.errno != errno.EROFS):
            raise  # not about the cache folder (e.g. an unreadable source file)
        raise PermissionError(
            f"cannot write the SHL cache file {path} ({e.strerror}): the cache folder is not writable; pass "
            "cache_dir= (SHLDataset) or [data] cache_dir (configs) naming a writable folder"
        ) from e


# ------------------------------------------------------------------------------------------------- dataset


class SHLDataset:
    """One split (``'train'`` or ``'test'``) of an SHL 2018 folder, read lazily through a binary cache.

    root: the folder holding ``train/`` (and ``test/``); cache_dir: where the ``.npy`` caches go (default
    ``<root>/<split>/.ccalens_cache``); n_val: validation size, the first segments in chronological order, an
    int count (3,310 in the paper) or a fraction in (0, 1) for small folders; spectrogram_method: the
    :func:`spectrogram` method of :meth:`spectrograms` and :meth:`arrays` ('moreau', the paper's, by default).
    Attributes: ``labels (n_segments,)`` int64 in 0..7, ``train_idx``, ``val_idx`` (line indices, each in
    chronological order), ``chronological_order`` (line indices sorted by time).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        cache_dir: str | os.PathLike | None = None,
        n_val: int | float = N_VAL_PAPER,
        progress: bool = False,
        spectrogram_method: str = "moreau",
    ) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.root = Path(root)
        self.split = split
        self.folder = self.root / split
        if not self.folder.is_dir():
            raise FileNotFoundError(
                f"root must contain a {split}/ folder of SHL text files; not found: {self.folder}"
            )
        if not (self.folder / "Label.txt").is_file():
            raise FileNotFoundError(f"{self.folder} has no Label.txt; is it an SHL 2018 folder?")
        if spectrogram_method not in SPECTROGRAM_METHODS:
            raise ValueError(f"spectrogram_method must be one of {SPECTROGRAM_METHODS}, got {spectrogram_method!r}")
        self.spectrogram_method = spectrogram_method
        self.cache_dir = Path(cache_dir) / split if cache_dir is not None else self.folder / ".ccalens_cache"
        self.progress = progress
        self.labels = self._load_labels()
        self.n_segments = int(self.labels.shape[0])
        self.chronological_order = self._load_order()
        if isinstance(n_val, float) and not isinstance(n_val, bool):
            if not 0.0 <= n_val < 1.0:
                raise ValueError(f"n_val as a fraction must lie in [0, 1), got {n_val}")
            n_val_count = round(n_val * self.n_segments)
        else:
            n_val_count = int(n_val)
        if not 0 <= n_val_count < self.n_segments:
            raise ValueError(
                f"n_val must be a count in 0..{self.n_segments - 1} or a fraction, got {n_val} "
                f"({self.n_segments} segments in {self.folder})"
            )
        self.n_val = n_val_count
        self.val_idx = self.chronological_order[:n_val_count].copy()
        self.train_idx = self.chronological_order[n_val_count:].copy()

    def __len__(self) -> int:
        return self.n_segments

    def __repr__(self) -> str:
        return f"SHLDataset({str(self.folder)!r}, n_segments={self.n_segments}, n_val={self.n_val})"

    @property
    def class_names(self) -> tuple[str, ...]:
        return SHL_CLASSES

    def _cache_path(self, name: str, version: str = _CACHE_VERSION) -> Path:
        return self.cache_dir / f"{name}.{version}.npy"

    def _channel_cache_path(self, name: str) -> Path:
        return self._cache_path(name, _NORM_CACHE_VERSION if _DERIVED.match(name) else _CACHE_VERSION)

    def _fresh(self, cache: Path, sources: Sequence[Path]) -> bool:
        if not cache.is_file():
            return False
        mtime = cache.stat().st_mtime
        return all(s.stat().st_mtime <= mtime for s in sources)

    def _load_labels(self) -> np.ndarray:
        src = self.folder / "Label.txt"
        cache = self._cache_path("Label_middle")
        if not self._fresh(cache, [src]):
            n = _count_lines(src)
            middles = (np.array([int(row[SEGMENT_LENGTH // 2])]) for row in _iter_rows(src, np.float64))
            _write_npy(cache, (n,), np.int64, middles)
        raw = np.load(cache)
        if raw.size == 0:
            raise ValueError(f"{src} is empty")
        if raw.min() < 1 or raw.max() > len(SHL_CLASSES):
            bad = np.flatnonzero((raw < 1) | (raw > len(SHL_CLASSES)))
            raise ValueError(
                f"{src}: middle labels must be classes 1..8, got {raw[bad[0]]} on line {bad[0] + 1} "
                f"({bad.size} such segments)"
            )
        return raw - 1

    def _load_order(self) -> np.ndarray:
        path = self.folder / f"{self.split}_order.txt"
        if not path.is_file():
            return np.arange(self.n_segments, dtype=np.int64)
        position = np.loadtxt(path, dtype=np.int64, ndmin=1)
        if position.shape != (self.n_segments,):
            raise ValueError(
                f"{path} has {position.size} entries, expected one per segment ({self.n_segments})"
            )
        if not np.array_equal(np.sort(position), np.arange(1, self.n_segments + 1)):
            raise ValueError(
                f"{path} must be a permutation of 1..{self.n_segments} (chronological positions)"
            )
        return np.argsort(position, kind="stable").astype(np.int64)

    def available_channels(self) -> list[str]:
        """Raw channels present in the folder, then the derivable ``*_norm`` channels."""
        raw = [c for c in RAW_CHANNELS if (self.folder / f"{c}.txt").is_file()]
        derived = [f"{s}_norm" for s in _NORM_SENSORS if all(f"{s}_{a}" in raw for a in "xyz")]
        return raw + derived

    def channel(self, name: str) -> np.ndarray:
        """One channel, ``(n_segments, 6000)`` float32, a read-only memory map, lines in file order.

        name: a raw channel (``'Gyr_y'``, ``'Pressure'``, ...) or a derived norm (``'Acc_norm'``,
        ``'Mag_norm'``, ``'Gyr_norm'``, ``'LAcc_norm'``, ``'Gra_norm'``). The first call builds the cache.
        """
        if name in RAW_CHANNELS:
            src = self.folder / f"{name}.txt"
            if not src.is_file():
                raise FileNotFoundError(f"channel {name!r}: {src} not found")
            cache = self._cache_path(name)
            if not self._fresh(cache, [src]):
                self._build_raw(src, cache)
        elif (m := _DERIVED.match(name)) is not None:
            parts = [self.channel(f"{m.group(1)}_{a}") for a in "xyz"]
            cache = self._cache_path(name, _NORM_CACHE_VERSION)
            if not self._fresh(cache, [self._cache_path(f"{m.group(1)}_{a}") for a in "xyz"]):
                # float32 arithmetic in the paper's order, sqrt(x**2 + y**2 + z**2): a float64 norm moves the
                # log-spectrogram of a still segment by up to 0.02
                x, y, z = parts
                norms = (
                    np.sqrt(x[i : i + 512] ** 2 + y[i : i + 512] ** 2 + z[i : i + 512] ** 2)
                    for i in range(0, self.n_segments, 512)
                )
                _write_npy(cache, (self.n_segments, SEGMENT_LENGTH), np.float32, norms)
        else:
            raise ValueError(
                f"channel name must be one of {', '.join(RAW_CHANNELS)} or <sensor>_norm for sensor in "
                f"{', '.join(_NORM_SENSORS)}; got {name!r}"
            )
        arr = np.load(cache, mmap_mode="r")
        if arr.shape != (self.n_segments, SEGMENT_LENGTH):
            raise ValueError(
                f"channel {name!r} has {arr.shape[0]} segments but Label.txt has {self.n_segments}"
            )
        return arr

    def _build_raw(self, src: Path, cache: Path) -> None:
        n = _count_lines(src)
        if n != self.n_segments:
            raise ValueError(f"{src} has {n} lines but Label.txt has {self.n_segments}")
        from tqdm.auto import tqdm

        rows = tqdm(_iter_rows(src), total=n, disable=not self.progress, desc=src.name, leave=False)
        _write_npy(cache, (n, SEGMENT_LENGTH), np.float32, (row[None, :] for row in rows))

    def spectrograms(
        self, name: str, chunk_size: int = 256, method: str | None = None, **kwargs: Any
    ) -> np.ndarray:
        """``(n_segments, 48, 48)`` float32 log-power spectrograms of a channel (see :func:`spectrogram`; method
        defaults to the dataset's ``spectrogram_method``), cached next to the signals for the default
        parameters of each method (then a read-only memory map); other parameters are computed, not cached."""
        method = self.spectrogram_method if method is None else method
        if method not in SPECTROGRAM_METHODS:
            raise ValueError(f"method must be one of {SPECTROGRAM_METHODS}, got {method!r}")
        signals = self.channel(name)
        if kwargs:
            return compute_spectrograms(
                signals, chunk_size=chunk_size, progress=self.progress, method=method, **kwargs
            )
        cache = self._cache_path(f"{name}_spectrogram_{method}")
        if not self._fresh(cache, [self._channel_cache_path(name)]):
            if chunk_size < 1:
                raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
            from tqdm.auto import tqdm

            starts = tqdm(range(0, self.n_segments, chunk_size), disable=not self.progress, desc="spectrograms",
                          leave=False)
            blocks = (spectrogram(np.asarray(signals[i : i + chunk_size]), method=method) for i in starts)
            _write_npy(cache, (self.n_segments, 48, 48), np.float32, blocks)
        return np.load(cache, mmap_mode="r")

    def arrays(self, channels: Sequence[str], part: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """Network inputs ``X: (n_part, len(channels), 48, 48)`` float32 and labels ``y: (n_part,)`` for
        part in {'train', 'val', 'all'} (rows in chronological order for 'train' and 'val')."""
        if isinstance(channels, str):
            channels = [channels]
        idx = {"train": self.train_idx, "val": self.val_idx, "all": np.arange(self.n_segments)}.get(part)
        if idx is None:
            raise ValueError(f"part must be 'train', 'val' or 'all', got {part!r}")
        X = np.stack([np.asarray(self.spectrograms(c)[idx]) for c in channels], axis=1)
        return X, self.labels[idx]
