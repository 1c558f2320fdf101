"""What a run found, in a few lines of Markdown computed from its ``results.json``: one bullet per report section
that has a conclusion (the sentence the report opens that section with), then the run's time per stage.

``ccalens demo`` (any config run) writes it as ``findings.md`` beside ``results.json``. The README and the docs
quote the demo's numbers only inside blocks marked ``<!-- demo-findings:begin -->`` ... ``<!-- demo-findings:end
-->``, filled by :func:`replace_block` from a run's ``results.json`` (``make findings`` after ``make demo``), so
every number they quote is one the demo produced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["BEGIN", "END", "findings_markdown", "read_block", "replace_block", "timing_sentence"]

BEGIN = "<!-- demo-findings:begin (generated from a run's results.json by `make findings`; do not edit) -->"
END = "<!-- demo-findings:end -->"
_BLOCK = re.compile(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), re.DOTALL)


def timing_sentence(results: Mapping[str, Any]) -> str:
    """``"The run took 102 s on 2 cores: training 15 s, ..."`` from ``results["timings_s"]`` (and ``machine``)."""
    timings = dict(results.get("timings_s") or {})
    total = timings.pop("total", None)
    if total is None:
        return ""
    cores = (results.get("machine") or {}).get("cores")
    where = f" on {cores} {'core' if cores == 1 else 'cores'}" if cores else ""
    stages = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items())
    return f"The run took {total:.0f} s{where}" + (f": {stages}." if stages else ".")


def findings_markdown(results: Mapping[str, Any]) -> str:
    """The run's conclusions as Markdown bullets (``**section**: sentence``), then :func:`timing_sentence`."""
    conclusions = results.get("conclusions") or {}
    if not isinstance(conclusions, Mapping):
        raise ValueError("results['conclusions'] must map section titles to sentences")
    lines = [f"- **{title}**: {sentence}" for title, sentence in conclusions.items() if sentence]
    timing = timing_sentence(results)
    if timing:
        lines += ["", timing]
    return "\n".join(lines) + "\n"


def read_block(text: str) -> str | None:
    """The generated block's content in ``text`` (None if it has none)."""
    match = _BLOCK.search(text)
    return None if match is None else match.group(1)


def replace_block(text: str, results: Mapping[str, Any]) -> str:
    """``text`` with its generated block (exactly one) filled from ``results``."""
    if len(_BLOCK.findall(text)) != 1:
        raise ValueError(f"expected exactly one block between {BEGIN!r} and {END!r}")
    body = findings_markdown(results)
    return _BLOCK.sub(lambda _: f"{BEGIN}\n{body}{END}", text)
