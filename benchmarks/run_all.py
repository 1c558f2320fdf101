"""Run every benchmark in turn (``make bench``); pass ``--quick`` for small sizes."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("benchmarks.bench_core", "benchmarks.bench_conv", "benchmarks.bench_store")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        print(f"\n===== {name} =====", flush=True)
        module.main(argv)


if __name__ == "__main__":
    main()
