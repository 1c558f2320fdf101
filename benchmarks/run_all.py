"""Run every benchmark in turn, each in its own process (``make bench``); ``--quick`` for small sizes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = ("benchmarks.bench_core", "benchmarks.bench_scale", "benchmarks.bench_inference", "benchmarks.bench_conv",
              "benchmarks.bench_store")
ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    failed = []
    for name in BENCHMARKS:
        if not (ROOT / (name.replace(".", "/") + ".py")).is_file():
            continue
        print(f"\n===== {name} =====", flush=True)
        if subprocess.run([sys.executable, "-m", name, *argv], cwd=ROOT).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
