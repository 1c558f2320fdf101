"""No path names a measure: outside the registry (core/measures/definitions.py), no code compares a value with a
measure's name (``==``, ``!=``, ``in`` / ``not in`` a literal tuple, list or set); what a path may compute is
asked of the registry (needs, finish, correlation family). Studies may still choose measures by name (a list of
the measures they run) and results are keyed by them: those are not comparisons."""

from __future__ import annotations

import ast
from pathlib import Path

import ccalens
from ccalens.core.measures import REGISTRY

PACKAGE = Path(ccalens.__file__).parent
REGISTRY_FILE = PACKAGE / "core" / "measures" / "definitions.py"
NAMES = set(REGISTRY)


def _literal_names(node: ast.AST) -> set[str]:
    """Measure names among the string constants of a literal (a constant, or a tuple/list/set of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & NAMES
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return set().union(*(_literal_names(e) for e in node.elts)) if node.elts else set()
    return set()


def name_comparisons(source: str) -> list[tuple[int, str]]:
    """``(line, names)`` of every comparison of a value with measure names."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for op, right in zip(node.ops, node.comparators, strict=True):
                operands = (node.left, right)
                if isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn):
                    hit = set().union(*(_literal_names(o) for o in operands))
                    if hit:
                        found.append((node.lineno, ", ".join(sorted(hit))))
    return found


def test_the_detector_finds_every_form_of_comparison() -> None:
    source = (
        'if measure == "svcca":\n    pass\n'
        'ok = name != "cca"\n'
        'inside = m in ("pwcca", "other")\n'
        'out = "cca" not in {"svcca", "cca"}\n'
        'fine = measure == "svcca_ranks"\n'  # not a measure's name
        'RUN = ("cca", "svcca")\n'  # a study's choice of measures: not a comparison
    )
    assert sorted(line for line, _ in name_comparisons(source)) == [1, 3, 4, 5]


def test_no_measure_name_comparison_outside_the_registry() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == REGISTRY_FILE:
            continue
        for line, names in name_comparisons(path.read_text()):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {names}")
    assert offenders == [], "measure names compared outside the registry:\n" + "\n".join(offenders)
