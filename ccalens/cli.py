"""Command line: ``ccalens compare``, ``ccalens matrix`` and the experiment commands.

A user error (a bad file, argument or config value, a missing optional dependency) ends with one line on stderr,
``ccalens COMMAND: error: <what was wrong, naming the file/key/argument>``, and exit status 2; ``--debug`` (anywhere
before ``--``, or ``CCALENS_DEBUG=1``) shows the traceback instead (that policy: :mod:`ccalens.cli_errors`).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import numpy as np

from .cli_errors import EXIT_USER_ERROR, UsageError, _one_line, _run_guarded, _split_debug
from .core.measures import MEASURES, STATS_MEASURES, compare, similarity_matrix
from .core.validation import DEFAULT_SVCCA_RULE, SVCCA_KEEP_RULES, SVCCA_THRESHOLD
from .io import INDEX_COLUMN_CHOICES, FeatureFileNotice, load_features, write_json

MATRIX_MEASURES = STATS_MEASURES

# Commands owned by other layers: ``ccalens NAME ARGS...`` calls ``module.main(ARGS)`` (imported lazily, so that
# ``ccalens compare`` never imports torch).
DELEGATED: dict[str, tuple[str, str]] = {
    "train-multiview": ("ccalens.models.train_multiview", "train one MLP per view and seed on the bundled digits"),
}


@contextmanager
def _notices() -> Iterator[None]:
    """Print the loaders' :class:`FeatureFileNotice` warnings as ``note:`` lines on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FeatureFileNotice)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, FeatureFileNotice):
                    print(f"note: {w.message}", file=sys.stderr)
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _load(path: str, key: str | None, index_column: str) -> np.ndarray:
    with _notices():
        return _as_2d(load_features(path, key, index_column=index_column), path)


def _as_2d(arr: np.ndarray, path: str) -> np.ndarray:
    if arr.ndim > 2:
        # conv maps (N, C, H, W) etc.: flatten per sample; use ccalens.conv for the other conventions
        print(f"note: {path} has shape {arr.shape}; flattened to ({arr.shape[0]}, {int(np.prod(arr.shape[1:]))})",
              file=sys.stderr)
        return arr.reshape(arr.shape[0], -1)
    return arr


def _write_output(path: str, payload: object) -> None:
    try:
        write_json(path, payload)
    except OSError as exc:
        reason = exc.strerror or _one_line(str(exc))
        raise UsageError(f"argument --output: cannot write {path}: {reason}") from exc


def _measure_options(args: argparse.Namespace) -> dict[str, object]:
    """The measures' options from the command line."""
    options: dict[str, object] = {"tol": args.tol, "keep": args.keep, "threshold": args.threshold,
                                  "method": args.method}
    if args.memory_budget is not None:
        options["memory_budget"] = args.memory_budget
    return options


def _memory_bytes(text: str) -> int:
    """``--memory-budget``: bytes, or a number with K, M, G or T (powers of 1024)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    value = text.strip().upper().removesuffix("B")
    factor = units.get(value[-1:], 1)
    number = value[:-1] if value[-1:] in units else value
    try:
        out = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected bytes such as 2000000000 or 4G, got {text!r}") from None
    if out <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return out


def _cmd_compare(args: argparse.Namespace) -> int:
    measures = args.measure or list(STATS_MEASURES)
    X = _load(args.a, args.key, args.index_column)
    Y = _load(args.b, args.key_b or args.key, args.index_column)
    options = _measure_options(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        results = compare(X, Y, measures, **options)
        intervals = {}
        if args.bootstrap:
            from .core.uncertainty import bootstrap

            for m in measures:
                # replicates are merges of block statistics (the feature-space path): no plan options
                own = {k: v for k, v in options.items() if k in _accepted(m) - {"method", "memory_budget"}}
                b = bootstrap(X, Y, m, n_resamples=args.bootstrap, confidence_level=args.confidence, seed=args.seed,
                              **own)
                intervals[m] = b
    notes = sorted({str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)})
    payload = {
        "a": {"path": args.a, "shape": list(X.shape)},
        "b": {"path": args.b, "shape": list(Y.shape)},
        "results": {m: r.to_dict() for m, r in results.items()},
        "warnings": notes,
    }
    for m, b in intervals.items():
        payload["results"][m]["bootstrap"] = b.to_dict()
    if not args.correlations:
        for r in payload["results"].values():
            r.pop("correlations", None)
            r.pop("weights", None)
            r.get("bootstrap", {}).pop("bootstrap_distribution", None)
    if args.output:
        _write_output(args.output, payload)
    if args.json:
        print(json.dumps(payload, indent=2))
        return 0
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    print(f"A: {args.a} {tuple(X.shape)}   B: {args.b} {tuple(Y.shape)}")
    header = f"{'measure':<22}{'score':>10}{'mean rho':>12}{'null rho':>10}"
    if intervals:
        header += f"{f'{args.confidence:.0%} interval':>22}"
    print(header)
    for m, r in results.items():
        rho = "" if r.mean_rho is None else f"{r.mean_rho:.6f}"
        null = "" if r.null_mean_rho is None else f"{r.null_mean_rho:.4f}"
        line = f"{m:<22}{r.score:>10.6f}{rho:>12}{null:>10}"
        if m in intervals:
            low, high = intervals[m].confidence_interval
            line += f"{f'[{low:.4f}, {high:.4f}]':>22}"
        print(line)
    return 0


def _accepted(measure: str) -> set[str]:
    """Option names a measure accepts (from its signature)."""
    import inspect

    return set(inspect.signature(MEASURES[measure]).parameters) - {"X", "Y", "stats", "i", "j"}


def _cmd_matrix(args: argparse.Namespace) -> int:
    reps = [_load(p, args.key, args.index_column) for p in args.files]
    names = [Path(p).stem for p in args.files]
    options = {k: v for k, v in _measure_options(args).items() if k in _accepted(args.measure)}
    M = similarity_matrix(reps, args.measure, names=names, progress=not args.json, **options)
    if args.plot:
        from .report.heatmaps import plot_heatmap

        files = plot_heatmap(M.scores, names, names, args.plot, title=f"{args.measure} similarity",
                             colorbar_label=args.measure, vmin=min(0.0, float(M.scores.min())), vmax=1.0)
        print(f"heatmap: {', '.join(str(f) for f in files.values())}", file=sys.stderr)
    if args.output:
        _write_output(args.output, M.to_dict())
    if args.json:
        print(json.dumps(M.to_dict(), indent=2))
        return 0
    width = max(8, *(len(n) for n in names))
    print(" " * width + "".join(f"{n:>{width + 2}}" for n in names))
    for name, row in zip(names, M.scores, strict=True):
        print(f"{name:<{width}}" + "".join(f"{v:>{width + 2}.4f}" for v in row))
    return 0


def _cmd_compare_models(args: argparse.Namespace) -> int:
    from .errors import require

    require("torch", "compare-models")
    from .extract.compare import compare_models
    from .models.nets import load_model, named_feature_layers

    model_a, model_b = load_model(args.model_a), load_model(args.model_b)
    data = _load(args.data, args.key, args.index_column) if Path(args.data).suffix.lower() in (
        ".csv", ".tsv", ".txt") else load_features(args.data, args.key)

    def layers(model: object, given: list[str] | None) -> list[str]:
        return given if given else [*named_feature_layers(model), "output"]  # type: ignore[arg-type]

    import torch

    options = {k: v for k, v in _measure_options(args).items() if k in ("tol", "keep", "threshold")}
    result = compare_models(
        model_a, model_b, torch.as_tensor(np.asarray(data, dtype=np.float32)),
        layers_a=layers(model_a, args.layers_a), layers_b=layers(model_b, args.layers_b), measure=args.measure,
        conv=args.conv, batch_size=args.batch_size, memory_budget=args.memory_budget,
        model_names=(Path(args.model_a).stem, Path(args.model_b).stem), progress=not args.json, **options,
    )
    if args.plot:
        from ccalens.report.heatmaps import plot_similarity_matrix

        files = plot_similarity_matrix(result, args.plot)
        print(f"heatmap: {', '.join(str(f) for f in files.values())}", file=sys.stderr)
    if args.output:
        _write_output(args.output, result.to_dict())
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    rows, cols = list(result.row_names), list(result.column_names)
    width = max(8, *(len(n) for n in rows + cols))
    print(f"{result.measure} ({result.conv}), {result.n_samples} samples; rows {result.models[0]}, "
          f"columns {result.models[1]}")
    print(" " * width + "".join(f"{n:>{width + 2}}" for n in cols))
    for name, row in zip(rows, result.scores, strict=True):
        print(f"{name:<{width}}" + "".join(f"{v:>{width + 2}.4f}" for v in row))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .experiments.runner import run_demo

    results = run_demo(args.out, quick=args.quick, progress=not args.no_progress)
    timings = results["timings_s"]
    stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items() if name != "total")
    print(f"report: {Path(args.out) / 'report.html'}")
    print(f"demo done in {timings['total']:.1f} s ({stages}; per stage in {Path(args.out) / 'timings.json'})")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .experiments.runner import list_builtin_configs, run_config

    if args.list:
        print("built-in configs: " + ", ".join(list_builtin_configs()))
        return 0
    if args.config is None:
        raise UsageError("argument config: give a TOML file or a built-in name: " + ", ".join(list_builtin_configs()))
    out = args.out or str(Path("results") / Path(args.config).stem)
    run_config(args.config, out, progress=not args.no_progress)
    print(f"report: {Path(out) / 'report.html'}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line (``ccalens compare: error: argument --tol: ...``) and
    exit status 2, like every other user error."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')", prog=self.prog)


def build_parser() -> argparse.ArgumentParser:
    epilog = "more commands:\n" + "\n".join(f"  {name:<18}{doc}" for name, (_, doc) in DELEGATED.items())
    parser = _Parser(
        prog="ccalens",
        description="CCA-family similarity of neural-network features.",
        epilog=epilog + "\n(run 'ccalens COMMAND --help' for their options)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error (also after the command, or CCALENS_DEBUG=1)")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"ccalens {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--key", help="array name inside an .npz / .pt container")
        p.add_argument("--tol", type=float, default=1e-10, help="relative eigenvalue cut-off of the whitening")
        p.add_argument("--keep", choices=SVCCA_KEEP_RULES, default=DEFAULT_SVCCA_RULE.keep,
                       help="SVCCA's truncation rule: the SVCCA appendix's sum of singular values (default) or "
                            "the variance")
        p.add_argument("--threshold", type=float, default=SVCCA_THRESHOLD,
                       help=f"SVCCA: fraction kept under --keep ({SVCCA_THRESHOLD})")
        p.add_argument("--method", choices=("auto", "primal", "dual"), default="auto",
                       help="feature-space (primal) or sample-space (dual, Gram matrices) path; auto picks by cost")
        p.add_argument("--memory-budget", type=_memory_bytes, default=None,
                       help="working memory allowed, bytes or e.g. 4G (default: a quarter of the available)")
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        p.add_argument("--output", "-o", help="also write the JSON result to this file")
        p.add_argument("--index-column", choices=INDEX_COLUMN_CHOICES, default="auto",
                       help="CSV/text files: drop the first column (drop), never (keep), or when it is a pandas "
                            "index, empty or 'Unnamed: 0' header and values 0..n-1 (auto, the default)")

    cmp_ = sub.add_parser("compare", help="compare two feature files (rows = the same samples)")
    cmp_.add_argument("a", help="features A: .npy, .npz, .pt or .csv/.tsv/.txt, shape (n_samples, n_features)")
    cmp_.add_argument("b", help="features B, the same samples in the same order")
    cmp_.add_argument("--measure", "-m", action="append", choices=sorted(MEASURES),
                      help="measure to compute (repeatable; default: cca, svcca, pwcca, linear_cka, procrustes)")
    cmp_.add_argument("--key-b", help="array name inside B's container (default: --key)")
    cmp_.add_argument("--correlations", action="store_true",
                      help="include all canonical correlations, PWCCA weights and bootstrap replicates in the JSON")
    cmp_.add_argument("--bootstrap", type=int, default=0, metavar="N",
                      help="confidence interval of every measure from N bootstrap replicates (ccalens.bootstrap)")
    cmp_.add_argument("--confidence", type=float, default=0.95, help="confidence level of --bootstrap (0.95)")
    cmp_.add_argument("--seed", type=int, default=0, help="seed of --bootstrap (0)")
    common(cmp_)
    cmp_.set_defaults(func=_cmd_compare)

    mat = sub.add_parser("matrix", help="pairwise similarity of many feature files (one joint pass)")
    mat.add_argument("files", nargs="+", help="feature files of the same samples")
    mat.add_argument("--measure", "-m", default="svcca", choices=MATRIX_MEASURES)
    mat.add_argument("--plot", metavar="STEM", help="also draw the annotated heatmap to STEM.png and STEM.svg")
    common(mat)
    mat.set_defaults(func=_cmd_matrix)

    cmpm = sub.add_parser("compare-models", help="every layer of one model against every layer of another")
    cmpm.add_argument("model_a", help="a ccalens model file (architecture, kwargs, state_dict; e.g. from "
                                      "train-multiview); read without running code")
    cmpm.add_argument("model_b", help="the second model file")
    cmpm.add_argument("--data", required=True, help="inputs (n_samples, ...): .npy, .npz, .pt or text")
    cmpm.add_argument("--layers-a", nargs="+", help="model A's layers (default: its feature layers and 'output')")
    cmpm.add_argument("--layers-b", nargs="+", help="model B's layers (default: its feature layers and 'output')")
    cmpm.add_argument("--measure", "-m", default="svcca", choices=MATRIX_MEASURES)
    cmpm.add_argument("--conv", choices=("pooled", "flatten", "dft"), default="pooled",
                      help="conv maps: averaged over positions, flattened, or DFT-CCA (cca/svcca/pwcca)")
    cmpm.add_argument("--batch-size", type=int, default=256)
    cmpm.add_argument("--plot", metavar="STEM", help="also draw the annotated heatmap to STEM.png and STEM.svg")
    common(cmpm)
    cmpm.set_defaults(func=_cmd_compare_models)

    demo = sub.add_parser("demo", help="the main job on the bundled six-view digits (train, experiments, report)")
    demo.add_argument("--out", default="results/demo", help="output folder (default results/demo)")
    demo.add_argument("--quick", action="store_true", help="three views, short training (a smoke run)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(func=_cmd_demo)

    run = sub.add_parser(
        "run", help="run an experiment config (a TOML path or a built-in name)",
        epilog="Data folders may be read-only: the SHL 2018 loader writes its spectrogram caches into "
               "ROOT/train/.ccalens_cache unless the config sets [data] cache_dir = \"a/writable/folder\".",
    )
    run.add_argument("config", nargs="?", help="config file, or a built-in name (see --list)")
    run.add_argument("--out", help="output folder (default results/<config name>); rerunning into the same "
                                   "folder resumes the training checkpoints there")
    run.add_argument("--list", action="store_true", help="list the built-in configs")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(func=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status (0, 1, 2 or 130)."""
    argv, debug = _split_debug(list(sys.argv[1:] if argv is None else argv))
    if argv and argv[0] in DELEGATED:
        import importlib

        name = argv[0]
        return _run_guarded(name, debug, lambda: importlib.import_module(DELEGATED[name][0]).main(argv[1:]))

    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"{exc.prog or 'ccalens'}: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    return _run_guarded(args.command, debug, lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
