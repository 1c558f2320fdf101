"""One self-contained HTML page for a run: relative links to every figure (PNG shown, SVG linked), JSON and CSV,
tables of the key numbers, the config used, the version and the timings. Written atomically.

Each section opens with its conclusion (a sentence the stage computes from the run's numbers). Numbers print with
three significant digits (integers as integers); wide tables scroll inside their box on screen.

Once the page has loaded, a small script records in the ``data-image-check`` attribute of ``<body>`` whether every
image loaded (``images-loaded: N/N``) or which did not (``images-broken: ...``), and in ``data-overflow-check``
whether any element's content is wider than its box where the box does not scroll (``overflow: none`` or
``overflowing: ...``); a headless browser's ``--dump-dom`` shows both, so a broken figure link or a table running
off the page can be found without looking at it. In print, wide tables wrap their cells in a smaller font instead of
scrolling.
"""

from __future__ import annotations

import html
import math
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ccalens.io import atomic_write_text

__all__ = ["Report", "Section", "count", "format_number", "format_percent", "words"]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #bbb;margin-top:2em}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f0f0f0}
td.l,th.l{text-align:left}figure{margin:1em 0}figure img{max-width:100%;box-sizing:border-box;border:1px solid #eee}
figcaption{font-size:0.85em;color:#555}pre{background:#f7f7f7;padding:0.8em;overflow-x:auto;font-size:0.8em}
.files a{margin-right:1em}.note{color:#555;font-size:0.9em}
.table-wrap{max-width:100%;overflow-x:auto}.table-wrap table{margin:0}
p.conclusion{background:#f3f7fb;border-left:4px solid #4a7ab5;padding:0.5em 0.8em}
@media print{body{max-width:none;margin:0;padding:0;font-size:9pt}
.table-wrap{overflow:visible}table{font-size:6.5pt;width:100%;table-layout:auto;page-break-inside:auto}
th,td{padding:1px 3px;overflow-wrap:anywhere}tr,figure,img{page-break-inside:avoid}
pre{white-space:pre-wrap;overflow:visible;overflow-wrap:anywhere}figure img{max-width:100%}}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var bad = imgs.filter(function (im) { return !(im.complete && im.naturalWidth > 0); })
                .map(function (im) { return im.getAttribute('src'); });
  document.body.setAttribute('data-image-check',
    bad.length === 0 ? 'images-loaded: ' + imgs.length + '/' + imgs.length : 'images-broken: ' + bad.join(', '));
  var over = [];
  Array.prototype.forEach.call(document.body.querySelectorAll('*'), function (el) {
    var style = window.getComputedStyle(el);
    if (el.tagName === 'SCRIPT' || el.clientWidth === 0 || style.overflowX !== 'visible') { return; }
    if (el.scrollWidth > el.clientWidth + 1) {
      over.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' (' + el.scrollWidth + ' > ' +
                el.clientWidth + ' px)');
    }
  });
  document.body.setAttribute('data-overflow-check',
    over.length === 0 ? 'overflow: none' : 'overflowing: ' + over.join(', '));
});
"""


def format_number(value: Any, digits: int = 3) -> str:
    """``value`` for a reader: floats with ``digits`` significant digits (thousands and more without decimals),
    integers as integers, None as an empty string, anything else as ``str``."""
    if value is None:
        return ""
    if isinstance(value, bool) or (not isinstance(value, int | float) and not hasattr(value, "dtype")):
        return str(value)
    kind = getattr(getattr(value, "dtype", None), "kind", "f")
    if kind == "b":
        return str(bool(value))
    if isinstance(value, int) or kind in "iu":
        return str(int(value))
    x = float(value)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if abs(x) >= 10**digits:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def count(n: int, noun: str) -> str:
    """``'1 sensor'``, ``'6 sensors'``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def words(items: Sequence[str]) -> str:
    """``'a'``, ``'a and b'``, ``'a, b and c'``."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def format_percent(fraction: float, decimals: int = 1) -> str:
    """``0.9961`` as ``'99.6%'``."""
    return f"{100 * float(fraction):.{decimals}f}%"


@dataclass
class Section:
    """A titled block: the conclusion (computed from the run's numbers), paragraphs, figures ``(png, svg or None,
    caption)``, tables ``(caption, rows)`` and data files, all paths relative to the report folder."""

    title: str
    conclusion: str = ""
    paragraphs: list[str] = field(default_factory=list)
    figures: list[tuple[str, str | None, str]] = field(default_factory=list)
    tables: list[tuple[str, list[Mapping[str, Any]]]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def add_figure(self, paths: Mapping[str, Path], root: Path, caption: str) -> None:
        """Add a figure from :func:`ccalens.report.plots.save_figure`'s result."""
        png = os.path.relpath(paths["png"], root)
        svg = os.path.relpath(paths["svg"], root) if "svg" in paths else None
        self.figures.append((png, svg, caption))

    def add_files(self, paths: Sequence[Path | str], root: Path) -> None:
        self.files.extend(os.path.relpath(p, root) for p in paths)

    def render(self) -> str:
        parts = [f"<h2>{html.escape(self.title)}</h2>"]
        if self.conclusion:
            parts.append(f'<p class="conclusion">{html.escape(self.conclusion)}</p>')
        parts += [f"<p>{html.escape(p)}</p>" for p in self.paragraphs]
        for caption, rows in self.tables:
            parts.append(_table(caption, rows))
        for png, svg, caption in self.figures:
            link = f' (<a href="{html.escape(svg)}">SVG</a>)' if svg else ""
            parts.append(
                f'<figure><a href="{html.escape(png)}"><img src="{html.escape(png)}" alt="{html.escape(caption)}">'
                f"</a><figcaption>{html.escape(caption)}{link}</figcaption></figure>"
            )
        if self.files:
            links = " ".join(f'<a href="{html.escape(f)}">{html.escape(f)}</a>' for f in self.files)
            parts.append(f'<p class="files">Data: {links}</p>')
        return "\n".join(parts)


def _table(caption: str, rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return f"<p class='note'>{html.escape(caption)}: no rows</p>"
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    head = "".join(f"<th class='l'>{html.escape(c)}</th>" if i == 0 else f"<th>{html.escape(c)}</th>"
                   for i, c in enumerate(cols))
    body = []
    for r in rows:
        cells = "".join(
            f"<td class='l'>{html.escape(format_number(r.get(c)))}</td>" if i == 0 or isinstance(r.get(c), str)
            else f"<td>{html.escape(format_number(r.get(c)))}</td>"
            for i, c in enumerate(cols)
        )
        body.append(f"<tr>{cells}</tr>")
    return (f"<div class='table-wrap'><table><caption>{html.escape(caption)}</caption><tr>{head}</tr>"
            f"{''.join(body)}</table></div>")


@dataclass
class Report:
    """The page: title, intro paragraphs, sections, the config text and timings; :meth:`write` renders it."""

    title: str
    intro: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    config_text: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def section(self, title: str) -> Section:
        s = Section(title)
        self.sections.append(s)
        return s

    def render(self) -> str:
        from ccalens import __version__

        try:
            import torch

            torch_version = torch.__version__
        except ImportError:  # pragma: no cover - torch is an optional dependency
            torch_version = "not installed"
        import numpy

        meta = [
            ("ccalens", __version__),
            ("numpy", numpy.__version__),
            ("torch", torch_version),
            ("python", platform.python_version()),
            ("machine", f"{platform.machine()}, {os.cpu_count()} CPU(s)"),
            ("written", datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ]
        timing_rows = [{"stage": k, "seconds": v} for k, v in self.timings.items()]
        toc = "".join(f'<li><a href="#s{i}">{html.escape(s.title)}</a></li>' for i, s in enumerate(self.sections))
        body = [
            f"<h1>{html.escape(self.title)}</h1>",
            *[f"<p>{html.escape(p)}</p>" for p in self.intro],
            f"<ul>{toc}</ul>",
        ]
        for i, s in enumerate(self.sections):
            body.append(f'<section id="s{i}">{s.render()}</section>')
        body.append("<h2>Run</h2>")
        body.append(_table("Versions", [{"item": k, "value": v} for k, v in meta]))
        if timing_rows:
            body.append(_table("Timings", timing_rows))
        if self.config_text:
            body.append(f"<h3>Config used</h3><pre>{html.escape(self.config_text)}</pre>")
        return (
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>"
            '<body data-image-check="images-pending">\n'
            + "\n".join(body)
            + f"\n<script>{_SCRIPT}</script>\n</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Render and write atomically; figure and data paths are relative to ``path``'s folder."""
        return atomic_write_text(path, self.render())
