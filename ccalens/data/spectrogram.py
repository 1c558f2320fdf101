"""48 x 48 log-power spectrograms of SHL 2018 segments (Moreau et al. 2021): :func:`spectrogram` with
``method='moreau'`` is exactly the preprocessing of their released code (SciPy's ``spectrogram``, log-frequency and
time axes rescaled to [0, 48], bilinear interpolation at 0..47, log power; checked against the output of their code
in ``tests/data/shl_reference``); ``method='log_bands'`` keeps the earlier band-averaged variant.
:func:`compute_spectrograms` runs it over a memory map in chunks; :class:`ccalens.data.shl.SHLDataset` caches it."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import scipy.signal
from scipy.signal import ShortTimeFFT
from scipy.signal.windows import hann

from ccalens.data._shl_format import SEGMENT_LENGTH, SHL_FS

__all__ = ["SPECTROGRAM_METHODS", "compute_spectrograms", "log_frequency_axis", "spectrogram", "spectrogram_axes"]

SPECTROGRAM_METHODS = ("moreau", "log_bands")
_MOREAU_BATCH = 32  # segments per scipy.signal.spectrogram call (each needs ~2 MB of STFT per segment)


def log_frequency_axis(n_freq: int = 48, f_min: float = 0.2, f_max: float = 50.0) -> np.ndarray:
    """``(n_freq,)`` geometric band centres from ``f_min`` to ``f_max`` (log-spaced band edges), in Hz: the
    frequency axis of the ``'log_bands'`` spectrogram."""
    edges = np.geomspace(f_min, f_max, n_freq + 1)
    return np.sqrt(edges[:-1] * edges[1:])


def _linear_interpolation_weights(axis: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(j, w)``, each ``(len(points),)``: piecewise-linear interpolation of ``v`` sampled at the increasing
    ``axis`` is ``(1 - w) * v[j] + w * v[j + 1]`` at ``points`` (which must lie in ``[axis[0], axis[-1]]``)."""
    if points.min() < axis[0] or points.max() > axis[-1]:
        raise ValueError(f"interpolation points must lie in [{axis[0]}, {axis[-1]}]")
    j = np.clip(np.searchsorted(axis, points, side="right") - 1, 0, axis.shape[0] - 2)
    return j, (points - axis[j]) / (axis[j + 1] - axis[j])


def _interpolate(v: np.ndarray, j: np.ndarray, w: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``v`` along ``axis`` with the weights of :func:`_linear_interpolation_weights`,
    in float64."""
    shape = [1] * v.ndim
    shape[axis] = w.shape[0]
    w = w.reshape(shape)
    lo = np.take(v, j, axis=axis).astype(np.float64)
    hi = np.take(v, j + 1, axis=axis).astype(np.float64)
    return (1.0 - w) * lo + w * hi


@functools.cache
def _moreau_setup(
    fs: float, window_s: float, hop_s: float, n_samples: int, n_freq: int, n_time: int
) -> tuple[int, int, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
    """``(nperseg, noverlap, (jf, wf), (jt, wt), f_out (n_freq,), t_out (n_time,))`` of the ``'moreau'``
    spectrogram: the interpolation weights on the rescaled frequency and time axes, and the output axes (Hz, s)."""
    nperseg = round(window_s * fs)
    hop = round(hop_s * fs)
    if nperseg < 4 or hop < 1 or hop > nperseg:
        raise ValueError(
            f"window_s * fs must be >= 4 samples and hop_s * fs in 1..window, got {nperseg} and {hop} samples"
        )
    n_windows = (n_samples - nperseg) // hop + 1 if n_samples >= nperseg else 0
    if n_windows < 2:
        raise ValueError(
            f"the signal ({n_samples} samples) must hold at least 2 windows of {nperseg} samples, hop {hop}"
        )
    f = np.fft.rfftfreq(nperseg, 1.0 / fs)  # what scipy.signal.spectrogram returns
    t = (nperseg / 2 + hop * np.arange(n_windows)) / fs
    log_f = np.log(f + f[1])
    rescaled_f = n_freq * (log_f - log_f[0]) / (log_f[-1] - log_f[0])  # [0, n_freq]
    rescaled_t = n_time * (t - t[0]) / (t[-1] - t[0])  # [0, n_time]
    freq_weights = _linear_interpolation_weights(rescaled_f, np.arange(n_freq, dtype=np.float64))
    time_weights = _linear_interpolation_weights(rescaled_t, np.arange(n_time, dtype=np.float64))
    f_out = _interpolate(f, *freq_weights, axis=0)
    t_out = _interpolate(t, *time_weights, axis=0)
    for a in (*freq_weights, *time_weights, f_out, t_out):
        a.setflags(write=False)
    return nperseg, nperseg - hop, freq_weights, time_weights, f_out, t_out


def _moreau_spectrogram(
    x: np.ndarray, fs: float, window_s: float, hop_s: float, n_freq: int, n_time: int, eps: float
) -> np.ndarray:
    """x: ``(n_segments, n_samples)`` float32 -> ``(n_segments, n_freq, n_time)`` float32 (see :func:`spectrogram`)."""
    nperseg, noverlap, freq_weights, time_weights, _, _ = _moreau_setup(
        fs, window_s, hop_s, x.shape[1], n_freq, n_time
    )
    out = np.empty((x.shape[0], n_freq, n_time), dtype=np.float32)
    for i in range(0, x.shape[0], _MOREAU_BATCH):
        # SciPy's defaults: Tukey(0.25) window, constant detrend, one-sided density; float32 in -> float32 out
        _, _, power = scipy.signal.spectrogram(x[i : i + _MOREAU_BATCH], fs=fs, nperseg=nperseg, noverlap=noverlap)
        # bilinear interpolation = linear along frequency, then along time (float64, as interp2d's FITPACK)
        along_f = _interpolate(power, *freq_weights, axis=1)
        out[i : i + _MOREAU_BATCH] = _interpolate(along_f, *time_weights, axis=2)
    np.log(out + np.float32(eps), dtype=np.float32, out=out)
    return out


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


def _prepare_signal(signal: np.ndarray, dtype: type) -> tuple[np.ndarray, bool]:
    """``(n_segments, n_samples)`` array of ``dtype`` (and whether the input was 1-D); NaN samples are replaced by
    the mean of the segment's valid samples (0 if none), infinite ones are an error."""
    x = np.asarray(signal)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"signal must be a real numeric array, got dtype {x.dtype}")
    x = x.astype(dtype, copy=False)
    single = x.ndim == 1
    if single:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"signal must be (n_samples,) or (n_segments, n_samples), got shape {np.shape(signal)}")
    if not np.isfinite(x).all():
        if np.isinf(x).any():
            raise ValueError("signal contains infinite values")
        x = x.copy()
        bad = np.isnan(x)
        valid = np.where(bad, 0.0, x.astype(np.float64))
        counts = (~bad).sum(axis=1, keepdims=True)
        fill = valid.sum(axis=1, keepdims=True) / np.maximum(counts, 1)
        x[bad] = np.broadcast_to(fill, x.shape)[bad]
    return x, single


def spectrogram(
    signal: np.ndarray,
    fs: float = SHL_FS,
    window_s: float = 5.0,
    hop_s: float = 0.1,
    n_freq: int = 48,
    n_time: int = 48,
    eps: float = 1e-10,
    method: str = "moreau",
) -> np.ndarray:
    """Log-power spectrogram on a log-frequency axis, ``(n_freq, n_time)`` per segment, float32, row 0 = lowest
    frequency (:func:`spectrogram_axes` gives the frequency of each row and the time of each column).

    signal: ``(n_samples,)`` or ``(n_segments, n_samples)``; NaN samples are replaced by the segment's mean of
    the valid samples; infinite values are an error. Returns ``(n_freq, n_time)`` or
    ``(n_segments, n_freq, n_time)``.

    ``method='moreau'`` (default): exactly the preprocessing of Moreau et al. (2021)'s code. The signal is cast
    to float32; ``scipy.signal.spectrogram(x, fs, nperseg=window_s * fs, noverlap=(window_s - hop_s) * fs)``
    with SciPy's defaults (Tukey 0.25 window, constant detrend, one-sided PSD density), computed in float32;
    frequency axis ``log(f + f[1])`` and time axis (window centres) both rescaled linearly to
    ``[0, n_freq]`` / ``[0, n_time]``; bilinear interpolation at the integer points ``0 .. n_freq - 1`` and
    ``0 .. n_time - 1`` (what ``scipy.interpolate.interp2d(kind='linear')`` did on this rectilinear grid);
    ``log(P + eps)`` in float32. On SHL 2018 segments (6,000 samples) this is the 48 x 48 input of the paper's
    CNN (covering 0 to ~45 Hz and 2.5 to ~56.4 s; the top of both rescaled axes, 48, is never sampled).

    ``method='log_bands'``: the earlier ccalens variant. STFT with ``scipy.signal.ShortTimeFFT`` (Hann window of
    ``window_s`` seconds, hop ``hop_s``, mean removed per window, only windows fully inside the signal); the
    power of the linear bins is averaged into ``n_freq`` log-spaced bands from ``1/window_s`` to ``fs/2``
    (:func:`log_frequency_axis`) and over ``n_time`` equal groups of consecutive windows; ``log(power + eps)``.
    """
    if method not in SPECTROGRAM_METHODS:
        raise ValueError(f"method must be one of {SPECTROGRAM_METHODS}, got {method!r}")
    n_freq, n_time = int(n_freq), int(n_time)
    if n_freq < 2 or n_time < 1:
        raise ValueError(f"n_freq must be >= 2 and n_time >= 1, got {n_freq}, {n_time}")
    if not (eps > 0 and np.isfinite(eps)):
        raise ValueError(f"eps must be a positive number, got {eps}")
    if method == "moreau":
        x, single = _prepare_signal(signal, np.float32)
        out = _moreau_spectrogram(x, float(fs), float(window_s), float(hop_s), n_freq, n_time, float(eps))
        return out[0] if single else out
    x, single = _prepare_signal(signal, np.float64)
    sft, p0, p1, M = _stft_setup(float(fs), float(window_s), float(hop_s), x.shape[1], n_freq)
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


def spectrogram_axes(
    n_samples: int = SEGMENT_LENGTH,
    fs: float = SHL_FS,
    window_s: float = 5.0,
    hop_s: float = 0.1,
    n_freq: int = 48,
    n_time: int = 48,
    method: str = "moreau",
) -> tuple[np.ndarray, np.ndarray]:
    """``(f (n_freq,) in Hz, t (n_time,) in s)``: the frequency of each row and the time of each column of
    :func:`spectrogram` for signals of ``n_samples`` samples (same parameters).

    'moreau': the linear interpolation of the STFT's frequencies and window centres at the sampled points (as the
    paper's code reports them); 'log_bands': the geometric band centres and the mean centre of each group of
    windows."""
    if method not in SPECTROGRAM_METHODS:
        raise ValueError(f"method must be one of {SPECTROGRAM_METHODS}, got {method!r}")
    if method == "moreau":
        *_, f_out, t_out = _moreau_setup(float(fs), float(window_s), float(hop_s), int(n_samples), int(n_freq),
                                         int(n_time))
        return f_out.copy(), t_out.copy()
    sft, p0, p1, _ = _stft_setup(float(fs), float(window_s), float(hop_s), int(n_samples), int(n_freq))
    if int(n_time) > p1 - p0:
        raise ValueError(f"n_time={n_time} exceeds the number of STFT windows ({p1 - p0})")
    centres = sft.t(int(n_samples), p0, p1)
    t_out = np.array([c.mean() for c in np.array_split(centres, int(n_time))])
    return log_frequency_axis(int(n_freq), float(fs) / sft.m_num, float(fs) / 2), t_out


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
