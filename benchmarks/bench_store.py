"""Benchmark: write n x d float32 features (two representations) into an ActivationStore, then stream
SufficientStats from it (single process, and with Dask); throughput and peak memory of each phase.

    python -m benchmarks.bench_store                     # 2,000,000 x 512, two representations (8 GB on disk)
    python -m benchmarks.bench_store --n 100000 --check  # small, and compared with in-memory statistics

Each phase runs in its own subprocess so that its peak RSS (``ru_maxrss``) is its own. Before each read
phase the shards are evicted from the page cache (``posix_fadvise(DONTNEED)``; the files were fsynced), so
reads come from the disk unless ``--warm``. The store is deleted at the end unless ``--keep``. Results go to
``benchmarks/results/bench_store.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ccalens.core.stats import SufficientStats  # noqa: E402
from ccalens.extract import ActivationStore, stats_from_store  # noqa: E402

KEYS = [("model_a", "features"), ("model_b", "features")]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def make_chunk(rng: np.random.Generator, mix: np.ndarray, rows: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """A: (rows, d) correlated Gaussian features; B = A @ mix + a shifted copy of A (derived)."""
    a = rng.standard_normal((rows, d), dtype=np.float32)
    a[:, : d // 2] += a[:, d // 2 :]  # some correlation inside A
    b = a @ mix
    b += 0.5 * np.roll(a, 1, axis=0)  # a part of B that A does not explain linearly (cheap "noise")
    return a, b


def phase_write(args: argparse.Namespace) -> dict:
    store = ActivationStore(args.root)
    rng = np.random.default_rng(0)
    mix = (rng.standard_normal((args.d, args.d)) / np.sqrt(args.d)).astype(np.float32)
    writers = [
        store.writer(
            m, layer, sample_shape=(args.d,), dtype=np.float32, shard_rows=args.shard_rows, overwrite=True
        )
        for m, layer in KEYS
    ]
    t0 = time.perf_counter()
    gen_s = 0.0
    for start in range(0, args.n, args.write_batch):
        rows = min(args.write_batch, args.n - start)
        g = time.perf_counter()
        a, b = make_chunk(rng, mix, rows, args.d)
        gen_s += time.perf_counter() - g
        ids = np.arange(start, start + rows)
        writers[0].write(start, a, ids)
        writers[1].write(start, b, ids)
    for w in writers:
        w.finish(args.n)
    total = time.perf_counter() - t0
    nbytes = 2 * args.n * args.d * 4
    write_s = total - gen_s
    return {
        "seconds_total": total,
        "seconds_generating_data": gen_s,
        "seconds_writing": write_s,
        "write_MB_per_s": nbytes / write_s / 1e6,
        "shards_per_representation": store.info(*KEYS[0]).n_shards,
        "shard_rows": writers[0].shard_rows,
        "peak_rss_MB": peak_rss_mb(),
    }


def evict(root: Path) -> None:
    for p in root.rglob("*.npy"):
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def phase_stream(args: argparse.Namespace) -> dict:
    store = ActivationStore(args.root, verify=args.verify)
    t0 = time.perf_counter()
    stats = stats_from_store(store, KEYS, batch_size=args.read_batch, progress=False)
    dt = time.perf_counter() - t0
    stats.save(Path(args.root) / "stats_stream.npz")
    return _read_result(args, stats, dt)


def phase_dask(args: argparse.Namespace) -> dict:
    import dask

    from ccalens.extract.distributed import stats_with_dask

    store = ActivationStore(args.root, verify=args.verify)
    t0 = time.perf_counter()
    if args.dask_cluster:
        from dask.distributed import Client, LocalCluster

        with (
            LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            t0 = time.perf_counter()  # cluster start-up excluded
            stats = stats_with_dask(store, KEYS, client=client, batch_size=args.read_batch)
    else:
        with dask.config.set(scheduler="threads", num_workers=args.workers):
            stats = stats_with_dask(store, KEYS, batch_size=args.read_batch)
    dt = time.perf_counter() - t0
    stats.save(Path(args.root) / "stats_dask.npz")
    out = _read_result(args, stats, dt)
    out["scheduler"] = (
        f"LocalCluster({args.workers} processes)" if args.dask_cluster else f"threads({args.workers})"
    )
    return out


def _read_result(args: argparse.Namespace, stats: SufficientStats, dt: float) -> dict:
    assert stats.n_samples == args.n
    return {
        "seconds": dt,
        "samples_per_s": args.n / dt,
        "MB_per_s": 2 * args.n * args.d * 4 / dt / 1e6,
        "peak_rss_MB": peak_rss_mb(),
    }


def run_phase(phase: str, argv: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", phase, *argv], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_small(args: argparse.Namespace) -> float:
    """Max relative difference between streamed statistics and in-memory ones (small n only)."""
    rng = np.random.default_rng(0)
    mix = (rng.standard_normal((args.d, args.d)) / np.sqrt(args.d)).astype(np.float32)
    parts = [
        make_chunk(rng, mix, min(args.write_batch, args.n - s), args.d)
        for s in range(0, args.n, args.write_batch)
    ]
    ref = SufficientStats.from_arrays(
        np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    )
    got = SufficientStats.load(Path(args.root) / "stats_stream.npz")
    return float(np.abs(got.comoment - ref.comoment).max() / np.abs(ref.comoment).max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2_000_000, help="samples (default 2,000,000)")
    p.add_argument("--d", type=int, default=512, help="features per representation (default 512)")
    p.add_argument("--shard-rows", type=int, default=None, help="rows per shard (default: ~64 MB shards)")
    p.add_argument("--write-batch", type=int, default=65536, help="rows generated and written per step")
    p.add_argument(
        "--read-batch", type=int, default=None, help="rows per chunk when reading (default: shards)"
    )
    p.add_argument("--verify", choices=["once", "always", "never"], default="once", help="checksum policy")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Dask workers / threads")
    p.add_argument("--dask-cluster", action="store_true", help="also time a LocalCluster of processes")
    p.add_argument("--no-dask", action="store_true", help="skip the Dask phase")
    p.add_argument("--warm", action="store_true", help="do not evict the shards from the page cache")
    p.add_argument("--check", action="store_true", help="compare with in-memory statistics (small --n)")
    p.add_argument("--root", type=Path, default=ROOT / "benchmarks" / "results" / "store_bench_tmp")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_store.json")
    p.add_argument("--keep", action="store_true", help="keep the store afterwards")
    p.add_argument("--phase", choices=["write", "stream", "dask"], help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="smoke run: --n 100000")
    args = p.parse_args()
    if args.quick:
        args.n = min(args.n, 100_000)
    if args.n < 2 or args.d < 1:
        p.error("--n must be >= 2 and --d >= 1")

    if args.phase:
        fn = {"write": phase_write, "stream": phase_stream, "dask": phase_dask}[args.phase]
        print(json.dumps(fn(args)))
        return

    argv = [a for a in sys.argv[1:] if a not in ("--keep", "--check")]
    if "--root" not in argv:
        argv += ["--root", str(args.root)]
    results: dict = {
        "n": args.n,
        "d": args.d,
        "representations": 2,
        "dtype": "float32",
        "bytes_per_representation": args.n * args.d * 4,
        "verify": args.verify,
        "page_cache": "warm" if args.warm else "evicted before each read phase",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__},
    }
    try:
        print(f"writing {args.n:,} x {args.d} x 2 float32 to {args.root} ...", flush=True)
        results["write"] = run_phase("write", argv)
        print(json.dumps(results["write"], indent=1), flush=True)
        if not args.warm:
            evict(args.root)
        print("streaming SufficientStats (single process) ...", flush=True)
        results["stream"] = run_phase("stream", argv)
        print(json.dumps(results["stream"], indent=1), flush=True)
        if not args.no_dask:
            if not args.warm:
                evict(args.root)
            print("streaming SufficientStats with Dask ...", flush=True)
            results["dask"] = run_phase("dask", argv)
            a = SufficientStats.load(args.root / "stats_stream.npz")
            b = SufficientStats.load(args.root / "stats_dask.npz")
            rel = float(np.abs(a.comoment - b.comoment).max() / np.abs(a.comoment).max())
            results["dask"]["max_rel_diff_vs_single_process"] = rel
            print(json.dumps(results["dask"], indent=1), flush=True)
        if args.check:
            results["max_rel_diff_vs_in_memory"] = check_small(args)
            print("max relative difference vs in-memory:", results["max_rel_diff_vs_in_memory"])
    finally:
        if not args.keep:
            shutil.rmtree(args.root, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
