"""Figures (:mod:`ccalens.report.plots`, matplotlib Agg, PNG + SVG) and the HTML page (:mod:`ccalens.report.html`).
The JSON/CSV writers are :mod:`ccalens.io`'s."""
