"""SYNTHETIC SHL-format data: small folders in the exact SHL 2018 text format, for tests and demos.

Nothing here is real recording. Each 60 s segment (100 Hz) is simulated from simple physics of a phone carried
at the hip, for the 8 SHL classes:

- a phone orientation (random per segment) that rotates gravity (9.81 m/s^2) and the Earth's magnetic field
  (~48 uT) into the phone frame, plus leg swing (pitch) and heading changes (yaw) over time;
- Walk / Run: gait at a step frequency of 1.6-2.1 Hz / 2.4-3.0 Hz (vertical and forward acceleration at the
  step frequency and its harmonic, lateral sway and leg swing at half of it); Bike: pedalling cadence
  1.0-1.5 Hz (large leg rotation, vertical push at twice the cadence) plus road vibration;
- Car / Bus: engine and road vibration (car 15-30 Hz, diesel bus 9-13 Hz), suspension (car 1-2 Hz, bus
  0.5-1.5 Hz, larger), speed changes and turns, bus stops;
- Train / Subway: smooth ride with rail-joint knocks (~1 Hz) and lateral sway, and magnetic disturbances from
  traction currents (train ~10-25 uT, subway 30-80 uT and faster), subway stop-and-go and lower altitude.

The chronology is a sequence of bouts (1-3 consecutive segments of one class); the lines of the files are
shuffled and ``train_order.txt`` gives each line's chronological position, as in the challenge. At a change of
class the first 0-15 s of a segment carry the previous class's label, so only the middle label is the class.
``synthetic_info.json`` records, per line, the class and its characteristic frequency (gait, cadence).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from ccalens.data._shl_format import RAW_CHANNELS, SEGMENT_LENGTH, SHL_CLASSES, SHL_FS
from ccalens.io import atomic_write, atomic_write_text

__all__ = ["simulate_segment", "write_synthetic_shl"]

_G = 9.81
_EARTH_FIELD = np.array([19.0, 0.0, -44.0])  # uT, world frame (x north, z up)


def _band_noise(
    rng: np.random.Generator, n: int, f_lo: float, f_hi: float, amp: float, dims: int = 1
) -> np.ndarray:
    """``(dims, n)`` Gaussian noise band-limited to [f_lo, f_hi] Hz, standard deviation ``amp``."""
    spec = np.fft.rfft(rng.standard_normal((dims, n)), axis=1)
    f = np.fft.rfftfreq(n, 1 / SHL_FS)
    spec[:, (f < f_lo) | (f > f_hi)] = 0
    x = np.fft.irfft(spec, n=n, axis=1)
    sd = x.std(axis=1, keepdims=True)
    return amp * x / np.where(sd > 0, sd, 1.0)


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s]), np.stack([z, o, z]), np.stack([-s, z, c])])


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z]), np.stack([s, c, z]), np.stack([z, z, o])])


def _quaternion(R: np.ndarray) -> np.ndarray:
    """``(4, T)`` unit quaternions (w, x, y, z) of rotation matrices ``R: (3, 3, T)``."""
    w = 0.5 * np.sqrt(np.maximum(1.0 + R[0, 0] + R[1, 1] + R[2, 2], 1e-12))
    x = (R[2, 1] - R[1, 2]) / (4 * w)
    y = (R[0, 2] - R[2, 0]) / (4 * w)
    z = (R[1, 0] - R[0, 1]) / (4 * w)
    q = np.stack([w, x, y, z])
    return q / np.linalg.norm(q, axis=0, keepdims=True)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def simulate_segment(
    cls: int, rng: np.random.Generator, n: int = SEGMENT_LENGTH
) -> tuple[dict[str, np.ndarray], float]:
    """Simulate one segment of class ``cls`` (0..7). Returns ``({channel: (n,) float64}, characteristic_hz)``
    where characteristic_hz is the step / cadence frequency (Walk, Run, Bike) or 0."""
    if not 0 <= cls < len(SHL_CLASSES):
        raise ValueError(f"cls must lie in 0..{len(SHL_CLASSES) - 1}, got {cls}")
    t = np.arange(n) / SHL_FS
    name = SHL_CLASSES[cls]
    acc_w = np.zeros((3, n))  # linear acceleration, world frame (x forward, y left, z up)
    pitch = 0.02 * _band_noise(rng, n, 0.01, 0.3, 1.0)[0]  # leg swing / body sway, rad
    yaw = rng.uniform(0, 2 * np.pi) + np.cumsum(_band_noise(rng, n, 0.0, 0.05, 0.002)[0])
    mag_dist = np.zeros((3, n))
    altitude = rng.uniform(0, 60) + np.cumsum(_band_noise(rng, n, 0.0, 0.02, 0.001)[0])
    freq = 0.0
    if name == "Still":  # the phone lies or sits still: sensor noise and tiny tremor only
        acc_w += _band_noise(rng, n, 0.1, 40.0, 0.02, 3)
    elif name == "Walk" or name == "Run":
        freq = rng.uniform(1.6, 2.1) if name == "Walk" else rng.uniform(2.4, 3.0)
        amp = rng.uniform(1.5, 3.0) if name == "Walk" else rng.uniform(6.0, 10.0)
        drift = 1 + 0.01 * _band_noise(rng, n, 0.0, 0.05, 1.0)[0]  # cadence drifts by ~1 %
        phase = 2 * np.pi * freq * np.cumsum(drift) / SHL_FS
        acc_w[2] = amp * (np.sin(phase) + 0.35 * np.sin(2 * phase + rng.uniform(0, 2 * np.pi)))
        acc_w[0] = 0.5 * amp * np.sin(phase + rng.uniform(0, 2 * np.pi))
        acc_w[1] = 0.3 * amp * np.sin(phase / 2)
        pitch = pitch + (0.25 if name == "Walk" else 0.5) * np.sin(phase / 2)
        acc_w += _band_noise(rng, n, 5.0, 40.0, 0.1 * amp, 3)
    elif name == "Bike":
        freq = rng.uniform(1.0, 1.5)
        phase = 2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)
        pitch = pitch + 0.6 * np.sin(phase)
        acc_w[2] = 0.8 * np.sin(2 * phase)
        acc_w[0] = 0.4 * np.sin(phase) + _band_noise(rng, n, 0.02, 0.2, 0.4)[0]
        acc_w += _band_noise(rng, n, 2.0, 20.0, 0.6, 3)
    elif name in ("Car", "Bus"):
        f_lo, f_hi, amp = (15.0, 30.0, 0.3) if name == "Car" else (9.0, 13.0, 0.5)
        s_lo, s_hi, s_amp = (1.0, 2.0, 0.3) if name == "Car" else (0.5, 1.5, 0.6)
        acc_w += _band_noise(rng, n, f_lo, f_hi, amp, 3)
        acc_w[2] += _band_noise(rng, n, s_lo, s_hi, s_amp)[0]
        acc_w[1] += _band_noise(rng, n, s_lo, s_hi, 0.5 * s_amp)[0]
        acc_w[0] += _band_noise(rng, n, 0.02, 0.15, 1.2 if name == "Car" else 0.8)[0]
        yaw = yaw + np.cumsum(_band_noise(rng, n, 0.01, 0.1, 0.004)[0])  # turns
        if name == "Bus":  # a stop: the engine idles, the ride is still
            start = rng.integers(0, n // 2)
            stop = slice(start, start + rng.integers(n // 8, n // 3))
            acc_w[:, stop] *= 0.3
        mag_dist += _band_noise(rng, n, 0.05, 1.0, 1.5, 3)  # the car body's own field, moving engine parts
    elif name in ("Train", "Subway"):
        v = rng.uniform(15, 35)
        knock = v / 25.0  # rail joints every 25 m
        pulses = np.sin(np.pi * ((knock * t) % 1.0)) ** 40
        acc_w[2] = 0.4 * pulses + _band_noise(rng, n, 3.0, 30.0, 0.08)[0]
        acc_w[1] = _band_noise(rng, n, 0.5, 1.5, 0.25)[0]
        if name == "Train":
            acc_w[0] = _band_noise(rng, n, 0.005, 0.05, 0.3)[0]
            mag_dist = _band_noise(rng, n, 0.02, 0.5, rng.uniform(10, 25), 3)
        else:
            cycle = rng.uniform(0.02, 0.04)  # stop-and-go between stations
            acc_w[0] = 1.0 * np.sin(2 * np.pi * cycle * t + rng.uniform(0, 2 * np.pi))
            mag_dist = _band_noise(rng, n, 0.05, 5.0, rng.uniform(30, 80), 3)
            altitude = altitude - rng.uniform(15, 30)

    R0 = _random_rotation(rng)  # how the phone sits in the pocket
    # world -> phone rotation: R(t) = R0 Ry(pitch) Rz(-yaw); the leg swings about the lateral (y) axis
    Ry = _rot_y(pitch)
    R = np.einsum("ab,bct,cdt->adt", R0, Ry, _rot_z(-yaw))
    gra = np.einsum("abt,b->at", R, np.array([0.0, 0.0, _G]))
    lacc = np.einsum("abt,bt->at", R, acc_w)
    mag = np.einsum("abt,bt->at", R, _EARTH_FIELD[:, None] + mag_dist)
    zeros = np.zeros(n)
    d_pitch, d_yaw = np.gradient(pitch, 1 / SHL_FS), np.gradient(yaw, 1 / SHL_FS)
    omega_body = np.stack([zeros, d_pitch, zeros]) + np.einsum(
        "abt,bt->at", Ry, np.stack([zeros, zeros, -d_yaw])
    )
    omega_phone = R0 @ omega_body
    q = _quaternion(R)
    noise = rng.standard_normal
    out: dict[str, np.ndarray] = {}
    for i, a in enumerate("xyz"):
        out[f"Gra_{a}"] = gra[i]
        out[f"LAcc_{a}"] = lacc[i] + 0.01 * noise(n)
        out[f"Acc_{a}"] = gra[i] + lacc[i] + 0.03 * noise(n)
        out[f"Gyr_{a}"] = omega_phone[i] + 0.005 * noise(n)
        out[f"Mag_{a}"] = mag[i] + 0.3 * noise(n)
        out[f"Ori_{a}"] = q[i + 1]
    out["Ori_w"] = q[0]
    out["Pressure"] = 1013.25 - altitude / 8.3 + 0.005 * noise(n)
    return out, float(freq)


def _write_row(f: IO[bytes], row: np.ndarray, fmt: str) -> None:
    np.savetxt(f, row[None, :], fmt=fmt, delimiter=" ")


def _atomic_files(paths: Sequence[Path], body: Callable[[list[IO[bytes]]], None]) -> None:
    """Write several files together: ``body`` gets one open binary handle per path (in order); each file is
    written atomically (:func:`ccalens.io.atomic_write`) and none is renamed into place unless ``body`` succeeds."""
    handles: list[IO[bytes]] = []

    def nest(i: int) -> None:
        if i == len(paths):
            body(handles)
            return

        def write(f: IO[bytes]) -> None:
            handles.append(f)
            nest(i + 1)

        atomic_write(paths[i], write)

    nest(0)


def write_synthetic_shl(
    folder: str | os.PathLike,
    n_segments_per_class: int = 4,
    seed: int = 0,
    splits: tuple[str, ...] = ("train",),
) -> Path:
    """Write a SYNTHETIC SHL-format data set under ``folder/<split>/`` and return ``folder``.

    n_segments_per_class: segments of each of the 8 classes per split (each line = 60 s at 100 Hz, so every
    file has ``8 * n_segments_per_class`` lines of 6,000 values). Files are written one line at a time (memory
    stays bounded) to temporary files renamed into place when all are complete (:func:`ccalens.io.atomic_write`).
    Deterministic given ``seed``.
    """
    if int(n_segments_per_class) < 1:
        raise ValueError(f"n_segments_per_class must be >= 1, got {n_segments_per_class}")
    unknown = [s for s in splits if s not in ("train", "test")]
    if unknown or not splits:
        raise ValueError(f"splits must be a non-empty subset of ('train', 'test'), got {splits}")
    root = Path(folder)
    for k, split in enumerate(splits):
        rng = np.random.default_rng([int(seed), k])
        _write_split(root / split, split, int(n_segments_per_class), rng, int(seed))
    return root


def _write_split(out: Path, split: str, per_class: int, rng: np.random.Generator, seed: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    n_classes = len(SHL_CLASSES)
    # chronology: bouts of 1-3 segments of one class, in random order
    bouts = []
    for c in range(n_classes):
        left = per_class
        while left > 0:
            size = min(left, int(rng.integers(1, 4)))
            bouts.append((c, size))
            left -= size
    chrono = np.concatenate([np.full(size, c) for c, size in (bouts[i] for i in rng.permutation(len(bouts)))])
    n = chrono.shape[0]
    line_of_position = rng.permutation(n)  # chronological position p is written on line line_of_position[p]
    position_of_line = np.empty(n, dtype=np.int64)
    position_of_line[line_of_position] = np.arange(n)
    files = [*RAW_CHANNELS, "Label"]
    info = []

    def write_all(handles: list[IO[bytes]]) -> None:
        f = dict(zip(files, handles, strict=True))
        for line in range(n):
            p = position_of_line[line]
            cls = int(chrono[p])
            signals, freq = simulate_segment(cls, rng)
            labels = np.full(SEGMENT_LENGTH, cls + 1)
            if p > 0 and chrono[p - 1] != cls:
                labels[: int(rng.integers(0, 1500))] = int(chrono[p - 1]) + 1
            for c in RAW_CHANNELS:
                _write_row(f[c], signals[c], "%.6g")
            _write_row(f["Label"], labels, "%d")
            info.append(
                {
                    "line": line,
                    "chronological_position": int(p) + 1,
                    "class": cls,
                    "class_name": SHL_CLASSES[cls],
                    "characteristic_hz": freq,
                }
            )

    _atomic_files([out / f"{c}.txt" for c in files], write_all)
    order = io.StringIO()
    np.savetxt(order, position_of_line + 1, fmt="%d")
    atomic_write_text(out / f"{split}_order.txt", order.getvalue())
    meta = {
        "synthetic": True,
        "generator": "ccalens.data.shl_synthetic.write_synthetic_shl",
        "seed": seed,
        "split": split,
        "classes": list(SHL_CLASSES),
        "lines": info,
        "note": "SYNTHETIC signals simulated from simple physics; not SHL recordings.",
    }
    atomic_write_text(out / "synthetic_info.json", json.dumps(meta, indent=1))
