"""The README as a landing page and the docs site's structure (`make docs` builds the site itself, in CI)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def _nav_files() -> list[str]:
    """The pages named in mkdocs.yml's nav (``- Title: page.md`` lines of the ``nav:`` block)."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    block = re.search(r"^nav:\n((?:[ \t]+.*\n|\n)+)", text, re.MULTILINE)
    assert block, "mkdocs.yml has no nav block"
    return re.findall(r"^\s*- [^:\n]+:\s*(\S+\.md)\s*$", block.group(1), re.MULTILINE)


def _readme_python() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 1, f"the README should hold one Python example, found {len(blocks)}"
    return blocks[0]


def test_readme_is_a_landing_page_under_8_kb():
    text = README.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) < 8192
    for needed in ("make demo", "make test", "make docs", "site/index.html", "CHANGELOG.md", "mkdocstrings",
                   "Sphinx"):
        assert needed in text, needed


def test_every_nav_entry_is_a_page_and_every_page_is_in_the_nav():
    nav = _nav_files()
    assert len(nav) == len(set(nav)), "a page appears twice in the nav"
    missing = [page for page in nav if not (DOCS / page).is_file()]
    assert not missing, f"nav entries without a file: {missing}"
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "_ext" not in p.parts}
    assert pages - set(nav) == set(), f"pages missing from the nav: {sorted(pages - set(nav))}"


def test_readme_example_runs(tmp_path):
    script = tmp_path / "example.py"
    script.write_text(_readme_python(), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-W", "error", str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "SVCCA" in out.stdout and "p-value" in out.stdout
    assert list(tmp_path.iterdir()) == [script], "the example should write no files"


def test_readme_internal_links_resolve():
    links = re.findall(r"\]\(([^)\s]+)\)", README.read_text(encoding="utf-8"))
    internal = [link.split("#", 1)[0] for link in links if not re.match(r"[a-z]+:", link)]
    assert internal, "the README should link to the docs"
    broken = [link for link in internal if not (ROOT / link).exists()]
    assert not broken, f"README links to missing files: {broken}"


def test_make_docs_is_installed_by_all_and_run_by_ci():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert "docs" in extras["all"][0].split("[", 1)[1]
    assert {re.split(r"[=<>\[]", r)[0] for r in extras["docs"]} >= {"mkdocs", "mkdocs-material", "mkdocstrings",
                                                                     "markdown-exec"}
    assert re.search(r"^make docs$", (ROOT / ".ci" / "run").read_text(encoding="utf-8"), re.MULTILINE)


def test_api_reference_sees_the_lazy_exports():
    """The griffe extension of the API reference resolves the names ``__getattr__`` offers (without importing)."""
    griffe = pytest.importorskip("griffe")
    extensions = griffe.load_extensions(f"{DOCS / '_ext' / 'griffe_ccalens.py'}:CcalensAPI")
    pkg = griffe.load("ccalens", search_paths=[str(ROOT)], extensions=extensions)
    assert pkg["cca"].target_path == "ccalens.core.measures.cca"
    assert pkg["extract.compare_models"].target.is_function
    assert pkg["extract.stats_with_dask"].target_path == "ccalens.extract.distributed.stats_with_dask"
    assert pkg["extract"].is_module  # the subpackage, not the function ccalens.extract.extract
    assert "compare_models" in pkg["extract"].exports and "conv_similarity" in pkg.exports


def test_the_readme_holds_the_one_generated_findings_block_and_the_docs_none():
    """Demo numbers reach the README only through `make findings`'s block; the docs pages quote none."""
    from ccalens.report.findings import BEGIN, BEGIN_BRIEF, read_block, replace_block

    text = README.read_text(encoding="utf-8")
    assert text.count(BEGIN_BRIEF) == 1 and BEGIN not in text and read_block(text) is not None
    filled = replace_block(text, {"conclusions": {"Fusion": "A sentence. Another one."}, "timings_s": {"total": 1.0}})
    assert "- **Fusion**: A sentence.\n" in filled and "Another" not in filled
    snapshot = ROOT / "docs" / "demo-findings.json"
    if snapshot.is_file():  # the README's block is the committed run's (make findings writes both)
        assert replace_block(text, json.loads(snapshot.read_text(encoding="utf-8"))) == text
    with_block = [p.name for p in DOCS.rglob("*.md")
                  if any(m in p.read_text(encoding="utf-8") for m in (BEGIN, BEGIN_BRIEF))]
    assert not with_block, f"docs pages with a findings block: {with_block}"


def test_readme_interval_table_is_the_committed_coverage_study() -> None:
    """Every coverage the README quotes is the committed study's (validation/results/coverage.csv), to 2 decimals."""
    import csv

    rows = list(csv.DictReader((ROOT / "validation" / "results" / "coverage.csv").open()))
    cover = {(r["n"], r["kind"], r["measure"], r["method"]): float(r["coverage"]) for r in rows}
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| measure | population |"):].split("\n\n")[0].splitlines()[2:]
    assert len(table) == 8
    for line in table:
        measure, kind, at200, at1000, percentile = (c.strip() for c in line.strip("|").split("|"))
        assert float(at200) == round(cover[("200", kind, measure, "half_sampling")], 2)
        assert float(at1000) == round(cover[("1000", kind, measure, "half_sampling")], 2)
        assert float(percentile) == round(cover[("1000", kind, measure, "percentile")], 2)
