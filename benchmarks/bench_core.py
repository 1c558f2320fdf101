"""Core benchmark: each measure's time divided by one numpy ``Z.T @ Z`` of the stacked data, in one run.

    python -m benchmarks.bench_core            # the issue's sizes (a few minutes on 2 cores)
    python -m benchmarks.bench_core --quick    # small sizes, seconds

Every timing is the best of ``--repeats`` runs and starts from the raw arrays (statistics included).
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
from ccalens.core.measures import cca_similarity, linear_cka, procrustes, pwcca, similarity_matrix, svcca
from ccalens.io import write_json


def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
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


def stacked_gemm_seconds(blocks: list[np.ndarray], repeats: int) -> float:
    """Best time of numpy's ``Z.T @ Z`` (a symmetric rank-k update) of the column-stacked blocks."""
    Z = np.hstack(blocks)
    return best_of(lambda: Z.T @ Z, repeats)


def bench_pair(n: int, p: int, q: int, repeats: int, rng: np.random.Generator) -> dict:
    X, Y = correlated_pair(n, p, q, rng)
    gemm = stacked_gemm_seconds([X, Y], repeats)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    gemm32 = stacked_gemm_seconds([X32, Y32], repeats)
    rows = {
        "statistics": best_of(lambda: SufficientStats.from_arrays(X, Y), repeats),
        "cca": best_of(lambda: cca_similarity(X, Y), repeats),
        "svcca": best_of(lambda: svcca(X, Y), repeats),
        "pwcca": best_of(lambda: pwcca(X, Y), repeats),
        "linear_cka": best_of(lambda: linear_cka(X, Y), repeats),
        "procrustes": best_of(lambda: procrustes(X, Y), repeats),
        "CCA.fit (full directions, bases)": best_of(lambda: CCA().fit(X, Y), repeats),
    }
    out = {
        "n": n, "p": p, "q": q, "gemm_seconds": gemm,
        "seconds": rows, "ratio_to_gemm": {k: v / gemm for k, v in rows.items()},
        "float32_input": {
            "gemm32_seconds": gemm32,
            "svcca_seconds": best_of(lambda: svcca(X32, Y32), repeats),
        },
    }
    out["float32_input"]["svcca_ratio_to_float32_gemm"] = out["float32_input"]["svcca_seconds"] / gemm32
    out["float32_input"]["svcca_ratio_to_float64_gemm"] = out["float32_input"]["svcca_seconds"] / gemm
    return out


def bench_matrix(n: int, n_reps: int, width: int, repeats: int, rng: np.random.Generator) -> dict:
    latent = rng.standard_normal((n, 64))
    reps = [
        np.ascontiguousarray(latent @ rng.standard_normal((64, width)) + rng.standard_normal((n, width)))
        for _ in range(n_reps)
    ]
    gemm = stacked_gemm_seconds(reps, repeats)
    rows = {m: best_of(lambda m=m: similarity_matrix(reps, m), repeats) for m in ("cca", "svcca", "linear_cka")}
    return {
        "n": n, "representations": n_reps, "width": width, "gemm_seconds": gemm,
        "seconds": rows, "ratio_to_gemm": {k: v / gemm for k, v in rows.items()},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/core.json")
    parser.add_argument("--parts", default="pairs,matrix", help="comma-separated: pairs, matrix")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    if args.quick:
        pairs, matrix = [(4000, 128, 128)], (4000, 6, 64)
    else:
        pairs, matrix = [(50_000, 1024, 1024), (20_000, 512, 512)], (20_000, 20, 512)
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "numpy": np.__version__},
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
