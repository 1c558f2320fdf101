"""The version a user sees: ``ccalens.__version__``, ``ccalens --version`` and pyproject.toml agree, and the
CHANGELOG has an entry for it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import ccalens

REPO = Path(__file__).resolve().parents[1]


def test_version_comes_from_pyproject_and_the_cli_prints_it() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert ccalens.__version__ == declared
    out = subprocess.run([sys.executable, "-m", "ccalens.cli", "--version"], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == f"ccalens {declared}"


def test_changelog_lists_the_released_versions() -> None:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in text and "## [0.1.0]" in text
