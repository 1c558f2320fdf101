"""The demo's findings as the README and the docs quote them: computed from a run's results.json, never typed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ccalens.report.findings import (
    BEGIN,
    BEGIN_BRIEF,
    END,
    findings_markdown,
    first_sentence,
    headline,
    read_block,
    replace_block,
    timing_sentence,
)

ROOT = Path(__file__).resolve().parents[1]

RESULTS = {
    "title": "t",
    "conclusions": {"Networks": "The 4 networks reach 0.9.", "Fusion": "CCA fusion agrees on 94.5%.", "Empty": ""},
    "timings_s": {"training": 15.2, "fusion": 4.5, "total": 19.9},
    "machine": {"cores": 2},
}


def test_findings_are_the_conclusions_then_the_timings():
    text = findings_markdown(RESULTS)
    assert text.splitlines() == [
        "- **Networks**: The 4 networks reach 0.9.",
        "- **Fusion**: CCA fusion agrees on 94.5%.",
        "",
        "The run took 20 s on 2 cores: training 15 s, fusion 4 s.",
    ]
    assert timing_sentence({"timings_s": {"total": 3.0}}) == "The run took 3 s."
    with pytest.raises(ValueError, match="conclusions"):
        findings_markdown({"conclusions": ["a"]})


def test_replace_block_fills_exactly_one_block():
    doc = f"intro\n{BEGIN}\nold 0.88 and 0.91\n{END}\noutro\n"
    new = replace_block(doc, RESULTS)
    assert read_block(new) == findings_markdown(RESULTS)
    assert new.startswith("intro\n") and new.endswith("\noutro\n") and "0.88" not in new
    for bad in ("no block", doc + doc):
        with pytest.raises(ValueError, match="exactly one block"):
            replace_block(bad, RESULTS)


def test_update_findings_check_reads_a_results_file(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps(RESULTS))
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "update_findings.py"), str(results), "--check"],
                         capture_output=True, text=True, check=True)
    assert "differ" in out.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "update_findings.py"), str(tmp_path / "none.json")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "none.json" in bad.stderr


def test_brief_block_keeps_each_conclusion_first_sentence():
    grid = "It keeps 78.5% (pix) to 102.4%; 95.6% on average. Details: 30 pairs. Verdict: supported."
    results = {"conclusions": {"Grid": grid},
               "timings_s": {"total": 9.0}}
    assert first_sentence("A 0.732 b. C d.") == "A 0.732 b."
    assert headline("A 94.5%. B 98.5%. Verdict: not supported; C. D.") == "A 94.5%. Verdict: not supported; C."
    doc = f"{BEGIN_BRIEF}\nold\n{END}\n"
    new = replace_block(doc, results)
    assert read_block(new) == findings_markdown(results, brief=True)
    assert "78.5%" in new and "Details" not in new and "Verdict: supported." in new and new.startswith(BEGIN_BRIEF)
