"""Scale benchmark: wide layers, flattened conv maps, many layers, tall float32 (issue "Scale in every direction").

    python -m benchmarks.bench_scale             # the issue's sizes (tens of minutes on 2 cores)
    python -m benchmarks.bench_scale --quick     # small sizes, seconds
    python -m benchmarks.bench_scale --parts wide,many

Every ratio divides a measure's time by the machine's own numpy reference on the same data, measured in the same
process and interleaved with it (reference, measure, reference, ...; best of each series):

* wide (n samples, d features per side, float32): linear CKA against the two centred Gram products ``Xc Xc'``,
  ``Yc Yc'``; CCA and SVCCA against two thin SVDs (``np.linalg.svd(full_matrices=False)``) of the centred sides;
* conv: linear CKA of two flattened 32 x 32 x 64 conv maps under the default memory budget (time and peak only);
* many (L representations): ``similarity_matrix`` against the same number of float32 cross products ``X_i' X_j``;
* tall (float32): CCA, SVCCA, linear CKA against one float32 ``Z' Z`` of the stacked data.

Peak memory is measured in a separate process per case (so that the reference's arrays do not count): the
increase of the process's peak resident set over its size with the inputs allocated, reported in bytes and as
a multiple of the inputs. Results go to ``benchmarks/results/scale.json``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.bench_core import interleaved
from ccalens.io import write_json


def _rss_peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss_now_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_representations(n: int, widths: list[int], seed: int) -> list[np.ndarray]:
    """float32 representations sharing a 64-d latent signal plus noise, built without float64 temporaries."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 64), dtype=np.float32)
    reps = []
    for d in widths:
        X = latent @ rng.standard_normal((64, d), dtype=np.float32)
        for lo in range(0, n, 1024):
            X[lo : lo + 1024] += rng.standard_normal((min(1024, n - lo), d), dtype=np.float32)
            X[lo : lo + 1024] += 0.5  # an offset, as ReLU features have
        reps.append(X)
    return reps


# --------------------------------------------------------------------------------- cases (run in children)
def _measure(name: str, reps: list[np.ndarray], budget: int | None) -> Callable[[], Any]:
    import ccalens

    if name == "matrix_svcca":
        return lambda: ccalens.similarity_matrix(reps, "svcca", memory_budget=budget)
    if name == "matrix_linear_cka":
        return lambda: ccalens.similarity_matrix(reps, "linear_cka", memory_budget=budget)
    fn = getattr(ccalens, name)
    return lambda: fn(reps[0], reps[1], memory_budget=budget)


def _reference(kind: str, reps: list[np.ndarray]) -> Callable[[], Any]:
    if kind == "grams":
        Xc, Yc = (r - r.mean(axis=0) for r in reps[:2])
        return lambda: (Xc @ Xc.T, Yc @ Yc.T)
    if kind == "svds":
        Xc, Yc = (r - r.mean(axis=0) for r in reps[:2])
        return lambda: (np.linalg.svd(Xc, full_matrices=False), np.linalg.svd(Yc, full_matrices=False))
    if kind == "gemm":
        Z = np.hstack(reps)
        return lambda: Z.T @ Z
    if kind == "cross_products":
        L = len(reps)

        def crosses() -> None:
            for i in range(L):
                for j in range(i, L):
                    reps[i].T @ reps[j]

        return crosses
    raise ValueError(kind)


def _quiet() -> None:
    """Sample-size and rank-cut warnings are expected on synthetic data; the benchmark times, it does not warn."""
    import warnings

    warnings.simplefilter("ignore")


def _time_child(args: tuple) -> dict:
    _quiet()
    n, widths, measures, reference, repeats, budget = args
    reps = make_representations(n, widths, seed=0)
    ref = _reference(reference, reps)
    out = {}
    for name in measures:
        fn = _measure(name, reps, budget)
        fn()  # warm-up
        t, t_ref = interleaved(fn, ref, repeats)
        result = fn()
        plan = getattr(result, "details", {}).get("plan") if hasattr(result, "details") else None
        out[name] = {"seconds": t, "reference_seconds": t_ref, "ratio": t / t_ref, "plan": plan}
    return out


def _memory_child(args: tuple) -> dict:
    _quiet()
    n, widths, name, budget = args
    reps = make_representations(n, widths, seed=0)
    inputs = sum(r.nbytes for r in reps)
    fn = _measure(name, reps, budget)
    before = max(_rss_now_bytes(), _rss_peak_bytes())
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    peak = _rss_peak_bytes()
    extra = max(0, peak - before)
    return {"input_bytes": inputs, "peak_extra_bytes": extra, "peak_over_inputs": (inputs + extra) / inputs,
            "seconds_single_run": seconds}


def _in_child(target: Callable[[tuple], dict], args: tuple) -> dict:
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(target, (args,))


def run_case(label: str, n: int, widths: list[int], measures: list[str], reference: str, repeats: int,
             budget: int | None = None, timing: bool = True) -> dict:
    print(f"\n{label}: n={n}, widths={widths if len(set(widths)) > 1 else f'{len(widths)} x {widths[0]}'}, float32",
          flush=True)
    case: dict[str, Any] = {"n": n, "widths": widths, "reference": reference, "measures": {}}
    timed = _in_child(_time_child, (n, widths, measures, reference, repeats, budget)) if timing else {}
    for name in measures:
        row = dict(timed.get(name, {}))
        row.update(_in_child(_memory_child, (n, widths, name, budget)))
        case["measures"][name] = row
        ratio = f"{row['ratio']:5.2f}x {reference}" if "ratio" in row else "(no reference)"
        secs = row.get("seconds", row["seconds_single_run"])
        print(f"  {name:<20s} {secs:8.2f} s  {ratio}  peak {row['peak_over_inputs']:.2f}x inputs "
              f"(+{row['peak_extra_bytes'] / 2**20:,.0f} MiB)  plan={row.get('plan')}", flush=True)
    return case


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--parts", default="wide,conv,many,tall")
    parser.add_argument("--wide-sizes", default=None, help="override the wide sizes, e.g. 2000x8192,5000x8192")
    parser.add_argument("--out", default="benchmarks/results/scale.json")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                          "numpy": np.__version__}, "cases": []}
    if args.quick:
        wide_sizes, conv, many, tall = [(300, 2048)], (500, 8192), (1000, 6, 128), (4000, 128)
    else:
        wide_sizes = [(2000, 8192), (5000, 8192), (2000, 32768), (5000, 32768)]
        conv, many, tall = (10_000, 65_536), (10_000, 24, 1024), (50_000, 1024)
    if args.wide_sizes:
        wide_sizes = [tuple(int(v) for v in size.split("x")) for size in args.wide_sizes.split(",")]
    if "wide" in parts:
        for n, d in wide_sizes:
            report["cases"].append(run_case("wide", n, [d, d], ["linear_cka"], "grams", args.repeats))
            report["cases"].append(run_case("wide", n, [d, d], ["cca", "svcca"], "svds", args.repeats))
    if "conv" in parts:
        n, d = conv
        report["cases"].append(run_case("flattened conv maps", n, [d, d], ["linear_cka"], "grams", 1,
                                        timing=args.quick))
    if "many" in parts:
        n, L, d = many
        report["cases"].append(run_case("many", n, [d] * L, ["matrix_linear_cka", "matrix_svcca"],
                                        "cross_products", args.repeats))
    if "tall" in parts:
        n, d = tall
        report["cases"].append(run_case("tall", n, [d, d], ["cca", "svcca", "linear_cka"], "gemm", args.repeats))
    write_json(args.out, report)
    return report


if __name__ == "__main__":
    main()
