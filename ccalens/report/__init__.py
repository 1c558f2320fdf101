"""Figures (:mod:`ccalens.report.plots`, matplotlib Agg, PNG + SVG), the HTML page (:mod:`ccalens.report.html`)
and atomic JSON/CSV writers (:mod:`ccalens.io`)."""

from ccalens.io import atomic_write_bytes, atomic_write_text, to_jsonable, write_csv, write_json

__all__ = ["atomic_write_bytes", "atomic_write_text", "to_jsonable", "write_csv", "write_json"]
