"""Core benchmark: each measure's time divided by one numpy ``Z.T @ Z`` of the stacked data, in one run.

    python -m benchmarks.bench_core            # the issue's sizes (a few minutes on 2 cores)
    python -m benchmarks.bench_core --quick    # small sizes, seconds

Every timing starts from the raw arrays (statistics included). Each measure is timed interleaved with the
reference GEMM (GEMM, measure, GEMM, measure, ...), and its ratio is the best measure time over the best GEMM
time of its own series: a noisy neighbour on a shared machine then slows both sides of the ratio alike. Each
timed call starts after a short pause (``PAUSE_SECONDS``) so that it does not share the cores with BLAS threads
still spinning after the previous call.
Results are printed as a table and written to ``benchmarks/results/core.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np

from ccalens.core import CCA, SufficientStats
from ccalens.core.measures import cca, linear_cka, procrustes, pwcca, similarity_matrix, svcca
from ccalens.core.threads import blas_threads
from ccalens.io import write_json

#: Pause before each timed call: OpenBLAS worker threads keep spinning for about 0.1 s after a multithreaded
#: call, and a run that starts inside that window shares the cores with them.
PAUSE_SECONDS = 0.25


def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        time.sleep(PAUSE_SECONDS)
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def correlated_pair(n: int, p: int, q: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two float64 feature sets sharing a 64-d latent signal plus noise (C-contiguous)."""
    latent = rng.standard_normal((n, 64))
    X = latent @ rng.standard_normal((64, p)) + rng.standard_normal((n, p))
    Y = latent @ rng.standard_normal((64, q)) + rng.standard_normal((n, q))
    return X, Y


def interleaved(fn: Callable[[], object], reference: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best times of ``fn`` and of ``reference``, run alternately ``repeats`` times each."""
    fn_times, ref_times = [], []
    for _ in range(repeats):
        for f, times in ((reference, ref_times), (fn, fn_times)):
            time.sleep(PAUSE_SECONDS)
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
    return min(fn_times), min(ref_times)


def timed_rows(rows: dict[str, Callable[[], object]], reference: Callable[[], object], repeats: int) -> dict:
    """Seconds, reference seconds and ratio of every row, each measured in its own interleaved series."""
    seconds, ref_seconds, ratio = {}, {}, {}
    for name, fn in rows.items():
        fn()  # warm-up (thread pool, first-touch of buffers)
        seconds[name], ref_seconds[name] = interleaved(fn, reference, repeats)
        ratio[name] = seconds[name] / ref_seconds[name]
    return {"seconds": seconds, "gemm_seconds_in_series": ref_seconds, "ratio_to_gemm": ratio}


def bench_pair(n: int, p: int, q: int, repeats: int, rng: np.random.Generator) -> dict:
    X, Y = correlated_pair(n, p, q, rng)
    Z = np.hstack([X, Y])
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    Z32 = np.hstack([X32, Y32])
    gemm = best_of(lambda: Z.T @ Z, repeats)
    rows = {
        "statistics": lambda: SufficientStats.from_arrays(X, Y),
        "cca": lambda: cca(X, Y),
        "svcca": lambda: svcca(X, Y),
        "pwcca": lambda: pwcca(X, Y),
        "linear_cka": lambda: linear_cka(X, Y),
        "procrustes": lambda: procrustes(X, Y),
        "CCA.fit (full directions, bases)": lambda: CCA().fit(X, Y),
    }
    out = {"n": n, "p": p, "q": q, "gemm_seconds": gemm, **timed_rows(rows, lambda: Z.T @ Z, repeats)}
    svcca32, gemm32 = interleaved(lambda: svcca(X32, Y32), lambda: Z32.T @ Z32, repeats)
    out["float32_input"] = {
        "gemm32_seconds": gemm32,
        "svcca_seconds": svcca32,
        "svcca_ratio_to_float32_gemm": svcca32 / gemm32,
        "svcca_ratio_to_float64_gemm": svcca32 / gemm,
    }
    return out


def bench_matrix(n: int, n_reps: int, width: int, repeats: int, rng: np.random.Generator) -> dict:
    latent = rng.standard_normal((n, 64))
    reps = [
        np.ascontiguousarray(latent @ rng.standard_normal((64, width)) + rng.standard_normal((n, width)))
        for _ in range(n_reps)
    ]
    Z = np.hstack(reps)
    gemm = best_of(lambda: Z.T @ Z, repeats)
    rows = {m: (lambda m=m: similarity_matrix(reps, m)) for m in ("cca", "svcca", "linear_cka")}
    return {
        "n": n, "representations": n_reps, "width": width, "gemm_seconds": gemm,
        **timed_rows(rows, lambda: Z.T @ Z, repeats),
    }


def main(argv: list[str] | None = None) -> dict:
    import warnings

    warnings.simplefilter("ignore")  # sample-size warnings are expected on the synthetic data; this run times
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/core.json")
    parser.add_argument("--parts", default="pairs,matrix", help="comma-separated: pairs, matrix")
    parser.add_argument("--pair-sizes", default=None, help="override the pair sizes, e.g. 20000x512x512,4000x64x64")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    if args.quick:
        pairs, matrix = [(4000, 128, 128)], (4000, 6, 64)
    else:
        pairs, matrix = [(50_000, 1024, 1024), (20_000, 512, 512)], (20_000, 20, 512)
    if args.pair_sizes:
        pairs = [tuple(int(v) for v in size.split("x")) for size in args.pair_sizes.split(",")]
    report = {
        "machine": {
            "cpus": os.cpu_count(), "blas_threads": blas_threads(), "platform": platform.platform(),
            "numpy": np.__version__,
        },
    }
    parts = set(args.parts.split(","))
    report["pairs"] = [bench_pair(n, p, q, args.repeats, rng) for n, p, q in pairs] if "pairs" in parts else []
    if "matrix" in parts:
        report["matrix"] = bench_matrix(*matrix, repeats=args.repeats, rng=rng)
    for case in report["pairs"]:
        print(f"\nn={case['n']} p={case['p']} q={case['q']}: Z.T @ Z = {case['gemm_seconds']:.3f} s")
        for name, ratio in case["ratio_to_gemm"].items():
            print(f"  {name:<34s} {case['seconds'][name]:8.3f} s  {ratio:5.2f}x")
        f32 = case["float32_input"]
        print(f"  svcca on float32 input: {f32['svcca_ratio_to_float32_gemm']:.2f}x the float32 GEMM, "
              f"{f32['svcca_ratio_to_float64_gemm']:.2f}x the float64 one")
    m = report.get("matrix")
    if m is None:
        write_json(args.out, report)
        return report
    print(f"\nsimilarity matrix, {m['representations']} x {m['width']} features, n={m['n']}: "
          f"joint Z.T @ Z = {m['gemm_seconds']:.2f} s")
    for name, ratio in m["ratio_to_gemm"].items():
        print(f"  {name:<34s} {m['seconds'][name]:8.2f} s  {ratio:5.2f}x")
    write_json(args.out, report)
    return report


if __name__ == "__main__":
    main()
