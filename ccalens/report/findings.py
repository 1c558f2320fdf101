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

__all__ = [
    "BEGIN",
    "BEGIN_BRIEF",
    "END",
    "findings_markdown",
    "first_sentence",
    "headline",
    "read_block",
    "replace_block",
    "timing_sentence",
]

BEGIN = "<!-- demo-findings:begin (generated from a run's results.json by `make findings`; do not edit) -->"
#: The marker of a brief block (the README's): each conclusion's first sentence only, then the timing.
BEGIN_BRIEF = ("<!-- demo-findings:begin brief (generated from a run's results.json by `make findings`; "
               "do not edit) -->")
END = "<!-- demo-findings:end -->"
_BLOCK = re.compile("(" + re.escape(BEGIN) + "|" + re.escape(BEGIN_BRIEF) + r")\n(.*?)" + re.escape(END), re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=\.)\s+(?=[A-Z])")


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


def first_sentence(text: str) -> str:
    """The first sentence of ``text`` (up to a full stop followed by a capital; decimals are not ends)."""
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0]


def headline(text: str) -> str:
    """A conclusion in brief: its first sentence, and its verdict (the sentence opening with ``Verdict:``) when it
    has one, so a brief block never keeps a number and drops what the section concludes from it."""
    sentences = _SENTENCE_END.split(text.strip())
    kept = [sentences[0], *(s for s in sentences[1:] if s.startswith("Verdict:"))]
    return " ".join(kept)


def findings_markdown(results: Mapping[str, Any], *, brief: bool = False) -> str:
    """The run's conclusions as Markdown bullets (``**section**: sentence``; ``brief``: each one's
    :func:`headline`), then :func:`timing_sentence`."""
    conclusions = results.get("conclusions") or {}
    if not isinstance(conclusions, Mapping):
        raise ValueError("results['conclusions'] must map section titles to sentences")
    lines = [f"- **{title}**: {headline(sentence) if brief else sentence}"
             for title, sentence in conclusions.items() if sentence]
    timing = timing_sentence(results)
    if timing:
        lines += ["", timing]
    return "\n".join(lines) + "\n"


def read_block(text: str) -> str | None:
    """The generated block's content in ``text`` (None if it has none)."""
    match = _BLOCK.search(text)
    return None if match is None else match.group(2)


def replace_block(text: str, results: Mapping[str, Any]) -> str:
    """``text`` with its generated block (exactly one; brief when it opens with :data:`BEGIN_BRIEF`) filled from
    ``results``."""
    if len(_BLOCK.findall(text)) != 1:
        raise ValueError(f"expected exactly one block between {BEGIN!r} (or the brief marker) and {END!r}")

    def fill(match: re.Match[str]) -> str:
        begin = match.group(1)
        return f"{begin}\n{findings_markdown(results, brief=begin == BEGIN_BRIEF)}{END}"

    return _BLOCK.sub(fill, text)
