"""Benchmark of ccalens.conv: DFT-CCA against CCA on flattened conv maps, and DFT-CCA streamed at scale.

Parts (all data synthetic and translation invariant in distribution: i.i.d. noise images through
circular convolutions and point-wise non-linearities, so every cyclic shift is equally likely):

1. ``agreement``: small maps where CCA on the flattened maps is well determined. (a) exactly invariant
   data (all cyclic shifts of some images): DFT-CCA must equal flattened CCA to rounding; (b) i.i.d.
   images (invariant only in distribution): the two differ by sampling error.
2. ``medium``: ``--n`` images (default 10,000) of 16 x 16 x 32 maps: DFT-CCA against the core's CCA on
   the flattened 8,192 features (``SufficientStats`` + ``cca_from_stats``), time and peak memory.
3. ``large``: ``--n-large`` images (default 50,000) of 32 x 32 x 64 maps, generated and streamed in
   batches of ``--batch``: DFT-CCA only (flattened: 65,536 features per map, a 131,072^2 co-moment).

Peak memory is the tracemalloc peak of the measured step above what was allocated before it (numpy
reports its buffers to tracemalloc); the process's maximum resident size is reported too.

Usage: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_conv.py`` (full size) or ``--n 2000 --n-large 2000``
(quick); ``--no-flat`` skips the slow flattened CCA (two 8,192^2 eigendecompositions and an SVD).
On a shared or oversubscribed machine, multi-threaded OpenBLAS can be 10x slower on DFT-CCA's many small
matrix products than a single thread; set ``OPENBLAS_NUM_THREADS`` accordingly.
Writes JSON to ``benchmarks/results/bench_conv.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ccalens.conv import DFTStats
from ccalens.core import SufficientStats, UnderdeterminedWarning, cca_from_stats
from ccalens.io import write_json


# ---------------------------------------------------------------------------- data
class LayerPair:
    """Two related, translation-equivariant 'layers' applied to i.i.d. noise images.

    A = tanh(mix_a(depthwise 3x3 circular conv(noise))), B = relu(mix_b(depthwise 3x3 circular conv(A))) + noise;
    channel mixing is a 1x1 conv. Every operation commutes with cyclic shifts.
    """

    def __init__(self, c_a: int, c_b: int, h: int, w: int, seed: int = 0, c_in: int = 8) -> None:
        rng = np.random.default_rng(seed)
        self.shape = (c_in, h, w)
        self.dw_in = rng.standard_normal((c_in, 3, 3)) / 3
        self.mix_a = rng.standard_normal((c_a, c_in)) / np.sqrt(c_in)
        self.dw_a = rng.standard_normal((c_a, 3, 3)) / 3
        self.mix_b = rng.standard_normal((c_b, c_a)) / np.sqrt(c_a)
        self.seed = seed

    @staticmethod
    def _depthwise(x: np.ndarray, k: np.ndarray) -> np.ndarray:
        out = np.zeros_like(x)
        for i in range(3):
            for j in range(3):
                out += k[None, :, i, j, None, None] * np.roll(x, (i - 1, j - 1), axis=(2, 3))
        return out

    @staticmethod
    def _mix(x: np.ndarray, m: np.ndarray) -> np.ndarray:
        n, c, h, w = x.shape
        return np.matmul(m, x.reshape(n, c, h * w)).reshape(n, m.shape[0], h, w)

    def batch(self, index: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``index`` of ``n`` image pairs, float32, NCHW (deterministic in ``(seed, index)``)."""
        rng = np.random.default_rng((self.seed, index))
        x = rng.standard_normal((n, *self.shape), dtype=np.float32)
        a = np.tanh(self._mix(self._depthwise(x, self.dw_in.astype(np.float32)), self.mix_a.astype(np.float32)))
        b = self._mix(self._depthwise(a, self.dw_a.astype(np.float32)), self.mix_b.astype(np.float32))
        b = np.maximum(b, 0) + 0.5 * rng.standard_normal(b.shape, dtype=np.float32)
        return a, b


def all_shifts(x: np.ndarray) -> np.ndarray:
    _, c, h, w = x.shape
    return np.stack([np.roll(x, (i, j), axis=(2, 3)) for i in range(h) for j in range(w)], 1).reshape(-1, c, h, w)


# ---------------------------------------------------------------------------- measuring
def measure(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``(result, seconds, peak MiB above the memory in use before)``."""
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, seconds, (peak - base) / 2**20


def flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(x.shape[0], -1)


def flattened_cca(a: np.ndarray, b: np.ndarray, batch: int) -> np.ndarray:
    stats = SufficientStats()
    for lo in range(0, a.shape[0], batch):
        stats.update(flat(a[lo : lo + batch]), flat(b[lo : lo + batch]))
    return cca_from_stats(stats).correlations


def dft_cca(a: np.ndarray, b: np.ndarray, batch: int) -> np.ndarray:
    stats = DFTStats()
    for lo in range(0, a.shape[0], batch):
        stats.update(a[lo : lo + batch], b[lo : lo + batch])
    return stats.result().correlations


def compare(rho_dft: np.ndarray, rho_flat: np.ndarray) -> dict[str, Any]:
    k = min(rho_dft.size, rho_flat.size)
    return {
        "n_correlations_dft": int(rho_dft.size),
        "n_correlations_flat": int(rho_flat.size),
        "mean_rho_dft": float(rho_dft.mean()),
        "mean_rho_flat": float(rho_flat.mean()),
        "max_abs_diff_sorted": float(np.abs(rho_dft[:k] - rho_flat[:k]).max()),
        "flat_correlations_above_0.999": int((rho_flat > 0.999).sum()),
        "dft_correlations_above_0.999": int((rho_dft > 0.999).sum()),
    }


# ---------------------------------------------------------------------------- parts
def part_agreement(args: argparse.Namespace) -> dict[str, Any]:
    gen = LayerPair(16, 16, 8, 8, seed=1)
    a, b = gen.batch(0, 48)
    a, b = all_shifts(a.astype(np.float64)), all_shifts(b.astype(np.float64))  # 48 * 64 = 3,072 samples
    exact = compare(dft_cca(a, b, 1024), flattened_cca(a, b, 1024))
    exact.update(n_samples=int(a.shape[0]), map="8x8x16, all cyclic shifts of 48 images")
    a, b = LayerPair(4, 4, 8, 8, seed=4).batch(0, args.n_agree)  # 256 features per map, n >> 512
    approx = compare(dft_cca(a, b, 1024), flattened_cca(a, b, 1024))
    approx.update(n_samples=int(a.shape[0]), map="8x8x4, i.i.d. images")
    return {"exactly_invariant": exact, "invariant_in_distribution": approx}


def part_medium(args: argparse.Namespace) -> dict[str, Any]:
    gen = LayerPair(32, 32, 16, 16, seed=2)
    parts = [gen.batch(i, min(args.batch, args.n - lo)) for i, lo in enumerate(range(0, args.n, args.batch))]
    a = np.concatenate([p[0] for p in parts])
    b = np.concatenate([p[1] for p in parts])
    del parts
    out: dict[str, Any] = {"n_images": args.n, "map": "16x16x32", "data_mib": (a.nbytes + b.nbytes) / 2**20}
    rho_dft, t, mem = measure(lambda: dft_cca(a, b, args.batch))
    out["dft"] = {"seconds": t, "peak_mib": mem}
    print(f"  medium DFT-CCA: {t:.1f} s, {mem:.0f} MiB", flush=True)
    if args.no_flat:
        return out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnderdeterminedWarning)
        rho_flat, t, mem = measure(lambda: flattened_cca(a, b, args.batch))
    out["flat"] = {
        "seconds": t,
        "peak_mib": mem,
        "underdetermined_warning": any(issubclass(w.category, UnderdeterminedWarning) for w in caught),
    }
    print(f"  medium flattened CCA: {t:.1f} s, {mem:.0f} MiB", flush=True)
    out["agreement"] = compare(rho_dft, rho_flat)
    return out


def part_large(args: argparse.Namespace) -> dict[str, Any]:
    gen = LayerPair(64, 64, 32, 32, seed=3)
    stats = DFTStats()
    t_update = t_gen = 0.0
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    for i, lo in enumerate(range(0, args.n_large, args.batch)):
        t0 = time.perf_counter()
        a, b = gen.batch(i, min(args.batch, args.n_large - lo))
        t1 = time.perf_counter()
        stats.update(a, b)
        t_update += time.perf_counter() - t1
        t_gen += t1 - t0
    t0 = time.perf_counter()
    res = stats.result()
    t_result = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"  large DFT-CCA: update {t_update:.1f} s, result {t_result:.1f} s", flush=True)
    return {
        "n_images": args.n_large,
        "map": "32x32x64",
        "batch": args.batch,
        "n_frequencies_stored": int(res.frequencies.shape[0]),
        "seconds_statistics": t_update,
        "seconds_result": t_result,
        "seconds_data_generation": t_gen,
        "peak_mib_including_one_batch": (peak - base) / 2**20,
        "batch_mib": 2 * args.batch * 64 * 32 * 32 * 4 / 2**20,
        "mean_rho": res.mean_rho,
        "n_correlations": int(res.correlations.size),
        "flattened_comoment_would_need_gib": (2 * 64 * 32 * 32) ** 2 * 8 / 2**30,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000, help="images of 16x16x32 (medium part)")
    p.add_argument("--n-large", type=int, default=50_000, help="images of 32x32x64 (large part)")
    p.add_argument("--n-agree", type=int, default=20_000, help="i.i.d. images of 8x8x4 (agreement part)")
    p.add_argument("--batch", type=int, default=500, help="images per batch")
    p.add_argument("--no-flat", action="store_true", help="skip CCA on the flattened 16x16x32 maps")
    p.add_argument("--parts", default="agreement,medium,large", help="comma-separated parts to run")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "bench_conv.json")
    p.add_argument("--quick", action="store_true", help="smoke run: small image counts, no flattened CCA")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.n_large, args.n_agree, args.no_flat = 500, 1_000, 2_000, True
    report: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpus": os.cpu_count(),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
            "load_average_at_start": os.getloadavg(),
        },
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    t0 = time.perf_counter()
    for part in args.parts.split(","):
        print(f"{part} ...", flush=True)
        report[part] = {"agreement": part_agreement, "medium": part_medium, "large": part_large}[part](args)
    report["total_seconds"] = time.perf_counter() - t0
    report["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, report)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
