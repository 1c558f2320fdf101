"""Dependencies point inward: every module of ccalens is parsed with ``ast`` and its ccalens imports (top-level or
inside functions, absolute or relative) are checked against the layers of DESIGN.md.

core <- conv <- extract <- models <- experiments <- cli; data beside models; report above models, below experiments;
io / errors / metrics are leaf utilities (not for core, conv or extract); cli_errors (the CLI's error policy) is
for cli only; nothing imports cli."""

from __future__ import annotations

import ast
from pathlib import Path

import ccalens

ROOT = Path(ccalens.__file__).parent
LEAVES = {"io", "errors", "metrics", "recipes"}
#: layer -> the other layers it may import (``"ccalens"``: names of the package root, e.g. ``__version__``)
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "conv": {"core"},
    "extract": {"core", "conv"},
    "io": {"core", "errors"},
    "errors": set(),
    "metrics": {"core", "errors"},
    "recipes": set(),
    "data": {"core", "conv", "ccalens"} | LEAVES,
    "models": {"core", "conv", "extract", "data", "ccalens"} | LEAVES,
    "report": {"core", "conv", "extract", "data", "models", "ccalens"} | LEAVES,
    "experiments": {"core", "conv", "extract", "data", "models", "report", "ccalens"} | LEAVES,
    "cli_errors": {"errors"},
    "cli": {"core", "conv", "extract", "data", "models", "report", "experiments", "cli_errors", "ccalens"} | LEAVES,
    "ccalens": {"core", "conv", "extract", "data", "models", "report", "experiments"} | LEAVES,
}


def _module_name(path: Path) -> tuple[str, str]:
    """``(module, package)`` dotted names of a file under ccalens."""
    parts = ["ccalens", *path.relative_to(ROOT).with_suffix("").parts]
    package = ".".join(parts[:-1])
    return (package if parts[-1] == "__init__" else ".".join(parts)), package


def _layer(module: str) -> str:
    """``ccalens.core.stats`` -> ``core``; ``ccalens.io`` -> ``io``; ``ccalens`` -> ``ccalens``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "ccalens"


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """ccalens modules imported anywhere in ``path`` (relative imports resolved), with their line numbers."""
    return imports_in_source(path.read_text(), _module_name(path)[1])


def imports_in_source(source: str, package: str) -> list[tuple[str, int]]:
    """ccalens modules imported anywhere in ``source`` of a module of ``package``, with their line numbers."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module == "ccalens":  # from ccalens import core / __version__
                found += [(f"ccalens.{a.name}" if a.name in ALLOWED else "ccalens", node.lineno) for a in node.names]
            else:
                found.append((module, node.lineno))
    return [(m, line) for m, line in found if m == "ccalens" or m.startswith("ccalens.")]


def violations() -> list[str]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        module, _ = _module_name(path)
        own = _layer(module)
        assert own in ALLOWED, f"{module}: a layer the test does not know; add it to ALLOWED"
        for target, line in imported_modules(path):
            layer = _layer(target)
            if layer != own and layer not in ALLOWED[own]:
                out.append(f"{path.relative_to(ROOT.parent)}:{line}: {own} imports {target}")
    return out


def test_every_ccalens_import_points_inward() -> None:
    assert violations() == []


def test_the_checker_sees_relative_and_function_level_imports() -> None:
    source = (
        "import numpy\n"
        "from .batching import prepare_batches\n"
        "def f():\n"
        "    from ccalens.report import plots\n"
        "    from ..experiments import runner\n"
        "    import ccalens.cli\n"
        "    from ccalens import __version__, models\n"
    )
    assert [m for m, _ in imports_in_source(source, "ccalens.extract")] == [
        "ccalens.extract.batching", "ccalens.report", "ccalens.experiments", "ccalens.cli", "ccalens",
        "ccalens.models",
    ]


def test_nothing_imports_cli_and_core_imports_only_core() -> None:
    for path in ROOT.rglob("*.py"):
        module, _ = _module_name(path)
        targets = [m for m, _ in imported_modules(path)]
        if module != "ccalens.cli":
            assert not any(_layer(m) == "cli" for m in targets), module
        if _layer(module) == "core":
            assert all(_layer(m) == "core" for m in targets), module
