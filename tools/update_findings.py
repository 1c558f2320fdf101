"""Fill the demo-findings blocks of the README and the docs from a run's ``results.json`` (maintainers' tool).

    python tools/update_findings.py results/demo/results.json           # rewrite the blocks and the snapshot
    python tools/update_findings.py results/demo/results.json --check   # say whether they match this run

The blocks are :mod:`ccalens.report.findings`'s; ``docs/demo-findings.json`` keeps the part of ``results.json``
they are made from (conclusions, timings, machine), which ``tests/test_findings.py`` renders and compares with the
blocks, so the README quotes only numbers a demo run produced.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ccalens.io import atomic_write_text, write_json  # noqa: E402
from ccalens.report.findings import findings_markdown, read_block, replace_block  # noqa: E402

SNAPSHOT = ROOT / "docs" / "demo-findings.json"
KEYS = ("title", "conclusions", "timings_s", "machine")


def documents() -> list[Path]:
    """The Markdown files that hold a findings block: README.md and the docs pages."""
    candidates = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
    return [p for p in candidates if p.is_file() and read_block(p.read_text(encoding="utf-8")) is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a run's results.json")
    parser.add_argument("--check", action="store_true", help="only say whether the blocks match this run")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"update_findings: cannot read {args.results}: {exc}", file=sys.stderr)
        return 2
    snapshot = {key: results.get(key) for key in KEYS}
    docs = documents()
    if args.check:
        stale = [p.name for p in docs if replace_block(p.read_text(encoding="utf-8"), snapshot)
                 != p.read_text(encoding="utf-8")]
        conclusions_same = SNAPSHOT.is_file() and json.loads(SNAPSHOT.read_text())["conclusions"] == \
            snapshot["conclusions"]
        if stale or not conclusions_same:
            print("The README/docs findings differ from this run's conclusions (`make findings` updates them).")
        else:
            print("The README/docs findings are this run's conclusions.")
        return 0
    write_json(SNAPSHOT, snapshot)
    for path in docs:
        atomic_write_text(path, replace_block(path.read_text(encoding="utf-8"), snapshot))
    print(f"findings of {args.results} written to {', '.join(p.name for p in docs) or 'no document'} and "
          f"{SNAPSHOT.relative_to(ROOT)}")
    print(findings_markdown(snapshot))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
