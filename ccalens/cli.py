"""Command line: ``ccalens compare``, ``ccalens matrix`` and the experiment commands."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .core.measures import MEASURES, compare, similarity_matrix
from .core.validation import UnderdeterminedWarning
from .io import load_features, write_json

MATRIX_MEASURES = ("cca", "svcca", "pwcca", "linear_cka", "procrustes")

# Commands owned by other layers: ``ccalens NAME ARGS...`` calls ``module.main(ARGS)`` (imported lazily, so that
# ``ccalens compare`` never imports torch).
DELEGATED: dict[str, tuple[str, str]] = {
    "train-multiview": ("ccalens.models.train_multiview", "train one MLP per view and seed on the bundled digits"),
}


def _as_2d(arr: np.ndarray, path: str) -> np.ndarray:
    if arr.ndim > 2:
        # conv maps (N, C, H, W) etc.: flatten per sample; use ccalens.conv for the other conventions
        print(f"note: {path} has shape {arr.shape}; flattened to ({arr.shape[0]}, {int(np.prod(arr.shape[1:]))})",
              file=sys.stderr)
        return arr.reshape(arr.shape[0], -1)
    return arr


def _cmd_compare(args: argparse.Namespace) -> int:
    measures = args.measure or ["cca", "svcca", "pwcca", "linear_cka", "procrustes"]
    X = _as_2d(load_features(args.a, args.key), args.a)
    Y = _as_2d(load_features(args.b, args.key_b or args.key), args.b)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnderdeterminedWarning)
        results = compare(X, Y, measures, tol=args.tol, variance=args.variance)
    notes = sorted({str(w.message) for w in caught})
    payload = {
        "a": {"path": args.a, "shape": list(X.shape)},
        "b": {"path": args.b, "shape": list(Y.shape)},
        "results": {m: r.to_dict() for m, r in results.items()},
        "warnings": notes,
    }
    if not args.correlations:
        for r in payload["results"].values():
            r.pop("correlations", None)
            r["details"].pop("weights", None)
    if args.output:
        write_json(args.output, payload)
    if args.json:
        print(json.dumps(payload, indent=2))
        return 0
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    print(f"A: {args.a} {tuple(X.shape)}   B: {args.b} {tuple(Y.shape)}")
    print(f"{'measure':<22}{'score':>10}{'mean rho':>12}{'mean rho^2':>12}")
    for m, r in results.items():
        rho = "" if r.mean_rho is None else f"{r.mean_rho:.6f}"
        rho2 = "" if r.mean_rho2 is None else f"{r.mean_rho2:.6f}"
        print(f"{m:<22}{r.score:>10.6f}{rho:>12}{rho2:>12}")
    return 0


def _cmd_matrix(args: argparse.Namespace) -> int:
    reps = [_as_2d(load_features(p, args.key), p) for p in args.files]
    names = [Path(p).stem for p in args.files]
    M = similarity_matrix(reps, args.measure, names=names, tol=args.tol, variance=args.variance,
                          progress=not args.json)
    if args.output:
        write_json(args.output, M.to_dict())
    if args.json:
        print(json.dumps(M.to_dict(), indent=2))
        return 0
    width = max(8, *(len(n) for n in names))
    print(" " * width + "".join(f"{n:>{width + 2}}" for n in names))
    for name, row in zip(names, M.scores, strict=True):
        print(f"{name:<{width}}" + "".join(f"{v:>{width + 2}.4f}" for v in row))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .experiments.runner import run_demo

    run_demo(args.out, quick=args.quick, progress=not args.no_progress)
    print(f"report: {Path(args.out) / 'report.html'}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .experiments.runner import list_builtin_configs, run_config

    if args.list or args.config is None:
        print("built-in configs: " + ", ".join(list_builtin_configs()))
        return 0 if args.list else 2
    out = args.out or str(Path("results") / Path(args.config).stem)
    run_config(args.config, out, progress=not args.no_progress)
    print(f"report: {Path(out) / 'report.html'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    epilog = "more commands:\n" + "\n".join(f"  {name:<18}{doc}" for name, (_, doc) in DELEGATED.items())
    parser = argparse.ArgumentParser(
        prog="ccalens",
        description="CCA-family similarity of neural-network features.",
        epilog=epilog + "\n(run 'ccalens COMMAND --help' for their options)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--key", help="array name inside an .npz / .pt container")
        p.add_argument("--tol", type=float, default=1e-10, help="relative eigenvalue cut-off of the whitening")
        p.add_argument("--variance", type=float, default=0.99, help="SVCCA: variance fraction kept (default 0.99)")
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        p.add_argument("--output", "-o", help="also write the JSON result to this file")

    cmp_ = sub.add_parser("compare", help="compare two feature files (rows = the same samples)")
    cmp_.add_argument("a", help="features A: .npy, .npz, .pt or .csv, shape (n_samples, n_features)")
    cmp_.add_argument("b", help="features B, the same samples in the same order")
    cmp_.add_argument("--measure", "-m", action="append", choices=sorted(MEASURES),
                      help="measure to compute (repeatable; default: cca, svcca, pwcca, linear_cka, procrustes)")
    cmp_.add_argument("--key-b", help="array name inside B's container (default: --key)")
    cmp_.add_argument("--correlations", action="store_true", help="include all canonical correlations in the JSON")
    common(cmp_)
    cmp_.set_defaults(func=_cmd_compare)

    mat = sub.add_parser("matrix", help="pairwise similarity of many feature files (one joint pass)")
    mat.add_argument("files", nargs="+", help="feature files of the same samples")
    mat.add_argument("--measure", "-m", default="svcca", choices=MATRIX_MEASURES)
    common(mat)
    mat.set_defaults(func=_cmd_matrix)

    demo = sub.add_parser("demo", help="the main job on the bundled six-view digits (train, experiments, report)")
    demo.add_argument("--out", default="results/demo", help="output folder (default results/demo)")
    demo.add_argument("--quick", action="store_true", help="three views, short training (a smoke run)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(func=_cmd_demo)

    run = sub.add_parser("run", help="run an experiment config (a TOML path or a built-in name)")
    run.add_argument("config", nargs="?", help="config file, or a built-in name (see --list)")
    run.add_argument("--out", help="output folder (default results/<config name>)")
    run.add_argument("--list", action="store_true", help="list the built-in configs")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(func=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        import importlib

        module = importlib.import_module(DELEGATED[argv[0]][0])
        return int(module.main(argv[1:]) or 0)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, TypeError, KeyError, FileNotFoundError) as exc:
        print(f"ccalens {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
