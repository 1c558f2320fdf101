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
once, atomically, and then opened as a read-only memory map. Derived channels ``{Acc,Gra,LAcc,Gyr,Mag}_norm``
(the Euclidean norm of x, y, z) are computed chunk by chunk and cached the same way.

The synthetic generator for tests and demos lives in :mod:`ccalens.data.shl_synthetic`
(:func:`write_synthetic_shl`, re-exported here).
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import ShortTimeFFT
from scipy.signal.windows import hann

from ccalens.data._shl_format import N_VAL_PAPER, RAW_CHANNELS, SEGMENT_LENGTH, SHL_CLASSES, SHL_FS
from ccalens.data.shl_synthetic import write_synthetic_shl

__all__ = [
    "RAW_CHANNELS",
    "SEGMENT_LENGTH",
    "SHL_CLASSES",
    "SHL_FS",
    "SHLDataset",
    "compute_spectrograms",
    "log_frequency_axis",
    "spectrogram",
    "write_synthetic_shl",
]

_NORM_SENSORS = ("Acc", "Gra", "LAcc", "Gyr", "Mag")
_DERIVED = re.compile(r"^(Acc|Gra|LAcc|Gyr|Mag)_norm$")
_CACHE_VERSION = "v1"


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


def _atomic_npy(path: Path, shape: tuple[int, ...], dtype: Any, fill: Any) -> None:
    """Create ``path`` (.npy) by filling a temporary memory-mapped file, then renaming it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        fill(out)
        out.flush()
        del out
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------------------------- spectrogram


def log_frequency_axis(n_freq: int = 48, f_min: float = 0.2, f_max: float = 50.0) -> np.ndarray:
    """``(n_freq,)`` geometric band centres from ``f_min`` to ``f_max`` (log-spaced band edges), in Hz."""
    edges = np.geomspace(f_min, f_max, n_freq + 1)
    return np.sqrt(edges[:-1] * edges[1:])


@functools.cache
def _stft_setup(
    fs: float, window_s: float, hop_s: float, n_samples: int, n_freq: int
) -> tuple[ShortTimeFFT, int, int, np.ndarray]:
    n_win = round(window_s * fs)
    hop = round(hop_s * fs)
    if n_win < 4 or hop < 1:
        raise ValueError(f"window_s * fs must be >= 4 samples and hop_s * fs >= 1 sample, got {n_win}, {hop}")
    if n_win > n_samples:
        raise ValueError(f"the window ({n_win} samples) is longer than the signal ({n_samples} samples)")
    sft = ShortTimeFFT(hann(n_win, sym=False), hop=hop, fs=fs, mfft=n_win, scale_to="psd")
    p0 = sft.lower_border_end[1]
    p1 = sft.upper_border_begin(n_samples)[1]
    if p1 <= p0:
        p0, p1 = 0, sft.p_max(n_samples)
    # frequency pooling matrix: mean of the linear bins inside each log band; linear interpolation at the band
    # centre where a band is narrower than the bin spacing
    f_lin = sft.f
    f_min, f_max = fs / n_win, fs / 2
    edges = np.geomspace(f_min, f_max, n_freq + 1)
    centres = np.sqrt(edges[:-1] * edges[1:])
    M = np.zeros((n_freq, f_lin.shape[0]))
    for k in range(n_freq):
        inside = (f_lin >= edges[k]) & (f_lin < edges[k + 1] if k < n_freq - 1 else f_lin <= edges[k + 1])
        if inside.any():
            M[k, inside] = 1.0 / inside.sum()
        else:
            j = int(np.clip(np.searchsorted(f_lin, centres[k]) - 1, 0, f_lin.shape[0] - 2))
            t = (centres[k] - f_lin[j]) / (f_lin[j + 1] - f_lin[j])
            M[k, j], M[k, j + 1] = 1.0 - t, t
    M.setflags(write=False)
    return sft, p0, p1, M


def spectrogram(
    signal: np.ndarray,
    fs: float = SHL_FS,
    window_s: float = 5.0,
    hop_s: float = 0.1,
    n_freq: int = 48,
    n_time: int = 48,
    eps: float = 1e-10,
) -> np.ndarray:
    """Log-power spectrogram on a log-frequency axis.

    signal: ``(n_samples,)`` or ``(n_segments, n_samples)``. STFT with ``scipy.signal.ShortTimeFFT`` (Hann
    window of ``window_s`` seconds, hop ``hop_s``, mean removed per window, only windows fully inside the
    signal); the power of the linear bins is pooled into ``n_freq`` log-spaced bands from ``1/window_s`` to
    ``fs/2`` (:func:`log_frequency_axis`) and averaged over ``n_time`` equal groups of consecutive windows;
    returns ``log(power + eps)`` as float32, ``(n_freq, n_time)`` or ``(n_segments, n_freq, n_time)``; row 0
    is the lowest frequency. NaN samples are replaced by the segment's mean of the valid samples.
    """
    x = np.asarray(signal, dtype=np.float64)
    single = x.ndim == 1
    if single:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"signal must be (n_samples,) or (n_segments, n_samples), got shape {x.shape}")
    if n_freq < 2 or n_time < 1:
        raise ValueError(f"n_freq must be >= 2 and n_time >= 1, got {n_freq}, {n_time}")
    if not np.isfinite(x).all():
        if np.isinf(x).any():
            raise ValueError("signal contains infinite values")
        x = x.copy()
        bad = np.isnan(x)
        fill = np.nanmean(np.where(bad.all(axis=1, keepdims=True), 0.0, x), axis=1, keepdims=True)
        x[bad] = np.broadcast_to(fill, x.shape)[bad]
    sft, p0, p1, M = _stft_setup(float(fs), float(window_s), float(hop_s), x.shape[1], int(n_freq))
    n_slices = p1 - p0
    if n_time > n_slices:
        raise ValueError(f"n_time={n_time} exceeds the number of STFT windows ({n_slices})")
    power = sft.spectrogram(x, detr="constant", p0=p0, p1=p1, axis=-1)  # (n, n_bins, n_slices)
    pooled = np.einsum("fk,nks->nfs", M, power, optimize=True)  # (n, n_freq, n_slices)
    groups = np.array_split(np.arange(n_slices), n_time)
    starts = np.array([g[0] for g in groups])
    summed = np.add.reduceat(pooled, starts, axis=2)
    out = np.log(summed / np.array([len(g) for g in groups]) + eps).astype(np.float32)
    return out[0] if single else out


def compute_spectrograms(
    signals: np.ndarray, chunk_size: int = 256, progress: bool = False, **kwargs: Any
) -> np.ndarray:
    """:func:`spectrogram` of ``signals: (n_segments, n_samples)`` (e.g. a memory map) in chunks of segments,
    so memory stays bounded; returns ``(n_segments, n_freq, n_time)`` float32."""
    if signals.ndim != 2:
        raise ValueError(f"signals must be (n_segments, n_samples), got shape {signals.shape}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    from tqdm.auto import tqdm

    parts = []
    for i in tqdm(
        range(0, signals.shape[0], chunk_size), disable=not progress, desc="spectrograms", leave=False
    ):
        parts.append(spectrogram(np.asarray(signals[i : i + chunk_size]), **kwargs))
    if not parts:
        raise ValueError("signals has no segments")
    return np.concatenate(parts)


# ------------------------------------------------------------------------------------------------- dataset


class SHLDataset:
    """One split (``'train'`` or ``'test'``) of an SHL 2018 folder, read lazily through a binary cache.

    root: the folder holding ``train/`` (and ``test/``); cache_dir: where the ``.npy`` caches go (default
    ``<root>/<split>/.ccalens_cache``); n_val: validation size, the first segments in chronological order, an
    int count (3,310 in the paper) or a fraction in (0, 1) for small folders.
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

    def _cache_path(self, name: str) -> Path:
        return self.cache_dir / f"{name}.{_CACHE_VERSION}.npy"

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

            def fill(out: np.ndarray) -> None:
                for i, row in enumerate(_iter_rows(src, np.float64)):
                    out[i] = int(row[SEGMENT_LENGTH // 2])

            _atomic_npy(cache, (n,), np.int64, fill)
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
            cache = self._cache_path(name)
            if not self._fresh(cache, [self._cache_path(f"{m.group(1)}_{a}") for a in "xyz"]):

                def fill(out: np.ndarray) -> None:
                    for i in range(0, self.n_segments, 512):
                        sl = slice(i, i + 512)
                        sq = sum(np.square(p[sl], dtype=np.float64) for p in parts)
                        out[sl] = np.sqrt(sq)

                _atomic_npy(cache, (self.n_segments, SEGMENT_LENGTH), np.float32, fill)
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

        def fill(out: np.ndarray) -> None:
            rows = tqdm(_iter_rows(src), total=n, disable=not self.progress, desc=src.name, leave=False)
            for i, row in enumerate(rows):
                out[i] = row

        _atomic_npy(cache, (n, SEGMENT_LENGTH), np.float32, fill)

    def spectrograms(self, name: str, chunk_size: int = 256, **kwargs: Any) -> np.ndarray:
        """``(n_segments, 48, 48)`` float32 log-power spectrograms of a channel (see :func:`spectrogram`),
        cached (default parameters only) next to the signals; a read-only memory map when cached."""
        signals = self.channel(name)
        if kwargs:
            return compute_spectrograms(signals, chunk_size=chunk_size, progress=self.progress, **kwargs)
        cache = self._cache_path(f"{name}_spectrogram48")
        if not self._fresh(cache, [self._cache_path(name)]):
            spec = compute_spectrograms(signals, chunk_size=chunk_size, progress=self.progress)

            def fill(out: np.ndarray) -> None:
                out[:] = spec

            _atomic_npy(cache, spec.shape, np.float32, fill)
        return np.load(cache, mmap_mode="r")

    def arrays(self, channels: Sequence[str], part: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """Network inputs ``X: (n_part, len(channels), 48, 48)`` float32 and labels ``y: (n_part,)`` for
        part in {'train', 'val', 'all'} (rows in chronological order for 'train' and 'val')."""
        if isinstance(channels, str):
            channels = [channels]
        idx = {"train": self.train_idx, "val": self.val_idx, "all": np.arange(self.n_segments)}.get(part)
        if idx is None:
            raise ValueError(f"part must be 'train', 'val' or 'all', got {part!r}")
        X = np.stack([np.asarray(self.spectrograms(c))[idx] for c in channels], axis=1)
        return X, self.labels[idx]
