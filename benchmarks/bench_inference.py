"""Benchmark: bootstrap of SVCCA from block statistics against its lower bound and against a naive bootstrap.

    python -m benchmarks.bench_inference          # n = 50,000, p = q = 512 float32, 1,000 replicates
    python -m benchmarks.bench_inference --quick  # small sizes, seconds

Measured in the same run:

* ``pass``: one pass of the statistics over the data (``SufficientStats.from_arrays(X, Y)``);
* ``solve``: one SVCCA solve from given statistics (``svcca(stats=...)``), the mean of ``--solves`` solves;
* ``bootstrap``: ``bootstrap(X, Y, "svcca", n_resamples=R)`` end to end (block statistics, R weighted merges and
  R solves), with its parts timed separately (``block_pass``: the block statistics; ``merges``: the R merges
  without solving);
* ``naive``: the peer baseline, resample rows and recompute everything (``svcca(X[idx], Y[idx])``), the mean of
  ``--naive`` replicates, extrapolated to R.

Target (issue #15): ``bootstrap <= 1.2 x (pass + R x solve)``: replicates cost merges and small eigenproblems,
never another pass over the data. Results are printed and written to ``benchmarks/results/inference.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from ccalens.core import SufficientStats
from ccalens.core.measures import svcca
from ccalens.core.threads import blas_threads
from ccalens.core.uncertainty.blocks import _blocks_from_arrays, _partition
from ccalens.core.uncertainty.bootstrap import bootstrap
from ccalens.core.uncertainty.replicates import draw_weights as _draw_weights
from ccalens.core.uncertainty.replicates import run_weighted as _run_weighted
from ccalens.io import write_json

#: Pause before each timed phase, so that BLAS threads still spinning after the previous one do not share the cores.
PAUSE_SECONDS = 0.25
TARGET = 1.2


def correlated_pair(n: int, p: int, q: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 feature sets sharing a 64-d latent signal plus noise."""
    latent = rng.standard_normal((n, 64), dtype=np.float32)
    X = latent @ rng.standard_normal((64, p), dtype=np.float32) + rng.standard_normal((n, p), dtype=np.float32)
    Y = latent @ rng.standard_normal((64, q), dtype=np.float32) + rng.standard_normal((n, q), dtype=np.float32)
    return X, Y


def timed(fn, *args, **kwargs) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    time.sleep(PAUSE_SECONDS)
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def run(n: int, p: int, q: int, replicates: int, solves: int, naive: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    X, Y = correlated_pair(n, p, q, rng)

    t_pass, stats = timed(SufficientStats.from_arrays, X, Y)
    assert isinstance(stats, SufficientStats)
    svcca(stats=stats)  # warm-up
    t_solves, _ = timed(lambda: [svcca(stats=stats) for _ in range(solves)])
    t_solve = t_solves / solves
    lower_bound = t_pass + replicates * t_solve

    t_boot, result = timed(bootstrap, X, Y, "svcca", n_resamples=replicates, seed=seed)

    # the parts of the bootstrap, on the same blocks and weights
    part_rng = np.random.default_rng(seed)
    order, bounds = _partition(n, None, "random", part_rng, p + q)
    t_blocks, blocks = timed(_blocks_from_arrays, [X, Y], order, bounds, packed=True)
    weights = _draw_weights(part_rng, blocks.n_blocks, replicates)
    t_merges, _ = timed(_run_weighted, blocks, weights, lambda s: 0.0)
    del blocks

    def naive_replicate() -> float:
        idx = rng.integers(0, n, size=n)
        return svcca(X[idx], Y[idx]).score

    t_naive_part, _ = timed(lambda: [naive_replicate() for _ in range(naive)])
    t_naive = t_naive_part / naive * replicates

    return {
        "n": n,
        "p": p,
        "q": q,
        "dtype": "float32",
        "replicates": replicates,
        "n_blocks": result.n_blocks,  # type: ignore[attr-defined]
        "block_size": result.block_size,  # type: ignore[attr-defined]
        "path": result.path,  # type: ignore[attr-defined]
        "estimate": result.estimate,  # type: ignore[attr-defined]
        "confidence_interval": list(result.confidence_interval),  # type: ignore[attr-defined]
        "seconds": {
            "pass": t_pass,
            "solve": t_solve,
            "solves_timed": solves,
            "lower_bound_pass_plus_solves": lower_bound,
            "bootstrap": t_boot,
            "bootstrap_block_pass": t_blocks,
            "bootstrap_merges": t_merges,
            "naive_bootstrap_extrapolated": t_naive,
            "naive_replicates_timed": naive,
        },
        "ratio_to_lower_bound": t_boot / lower_bound,
        "target": TARGET,
        "meets_target": t_boot <= TARGET * lower_bound,
        "speedup_over_naive": t_naive / t_boot,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run, seconds)")
    parser.add_argument("--out", default="benchmarks/results/inference.json")
    parser.add_argument("--solves", type=int, default=None, help="SVCCA solves timed for the lower bound")
    parser.add_argument("--naive", type=int, default=None, help="naive replicates timed (then extrapolated)")
    args = parser.parse_args(argv)
    if args.quick:
        size, replicates, solves, naive = (4000, 64, 64), 200, 50, 20
    else:
        size, replicates, solves, naive = (50_000, 512, 512), 1000, 100, 10
    case = run(*size, replicates=replicates, solves=args.solves or solves, naive=args.naive or naive)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "blas_threads": blas_threads(),
            "platform": platform.platform(),
            "numpy": np.__version__,
        },
        "bootstrap_svcca": case,
    }
    s = case["seconds"]
    print(
        f"bootstrap of SVCCA, n={case['n']} p={case['p']} q={case['q']} float32, {case['replicates']} replicates, "
        f"{case['n_blocks']} blocks ({case['path']})"
    )
    print(f"  one pass of the statistics       {s['pass']:9.3f} s")
    print(f"  one SVCCA solve from statistics  {s['solve']:9.4f} s  (mean of {s['solves_timed']})")
    print(f"  lower bound: pass + R x solve    {s['lower_bound_pass_plus_solves']:9.2f} s")
    print(
        f"  bootstrap (block statistics)     {s['bootstrap']:9.2f} s  = {case['ratio_to_lower_bound']:.2f}x the bound "
        f"(target <= {TARGET}: {'met' if case['meets_target'] else 'NOT met'})"
    )
    print(f"    of which block pass            {s['bootstrap_block_pass']:9.3f} s")
    print(f"    of which R weighted merges     {s['bootstrap_merges']:9.3f} s")
    print(
        f"  naive bootstrap (extrapolated)   {s['naive_bootstrap_extrapolated']:9.2f} s  "
        f"({case['speedup_over_naive']:.1f}x slower than block statistics; mean of {s['naive_replicates_timed']})"
    )
    write_json(args.out, report)
    return report


if __name__ == "__main__":
    main()
