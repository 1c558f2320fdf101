"""Showing a score's uncertainty: interval text (``"0.67 [0.64, 0.70]"``) for tables and JSON, and a heat map whose
cells give each score with the mean correlation that unrelated data of the same shape would reach (its null)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ccalens.report.plots import save_figure

__all__ = ["format_interval", "interval_note", "plot_scores_with_null"]

_RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "savefig.dpi": 150,
    "svg.fonttype": "none",
}


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(float(value))


def format_interval(estimate: float, low: float | None, high: float | None, digits: int = 2) -> str:
    """``"0.67 [0.64, 0.70]"`` (``digits`` decimals); the estimate alone when a bound is missing or NaN."""
    text = f"{float(estimate):.{digits}f}" if _finite(estimate) else "n/a"
    if _finite(low) and _finite(high):
        text += f" [{float(low):.{digits}f}, {float(high):.{digits}f}]"  # type: ignore[arg-type]
    return text


def interval_note(rows: Sequence[dict[str, Any]], estimate_key: str) -> str:
    """A sentence for the report when some intervals lie beside their estimate, from ``rows`` with ``estimate_key``,
    ``low``, ``high`` and ``bias`` (the estimate's bias estimated by the interval method); "" when every interval
    holds it."""
    outside = [r for r in rows if _finite(r.get("low")) and _finite(r.get("high"))
               and not r["low"] <= r[estimate_key] <= r["high"]]
    if not outside:
        return ""
    biases = [float(r["bias"]) for r in outside if _finite(r.get("bias"))]
    bias = ""
    if biases:
        low, high = f"{min(biases):+.3f}", f"{max(biases):+.3f}"
        bias = f" (by {low})" if low == high else f" (by {low} to {high})"
    return (f"In {len(outside)} of {len(rows)} rows the interval lies beside the estimate: the intervals are for the "
            f"population value, centred on the estimate minus its estimated bias{bias}; canonical correlations are "
            "raised by a finite sample (compare with the null mean), so the sample's score exceeds the population's.")


def plot_scores_with_null(
    scores: np.ndarray,
    null_mean: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    stem: str | Path,
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
    score_name: str = "SVCCA",
) -> dict[str, Path]:
    """Heat map of ``scores: (rows, cols)`` on a 0-1 scale; each cell reads ``"score (null)"``, the null being
    ``null_mean: (rows, cols)`` (the mean canonical correlation of unrelated data of the same n and kept ranks),
    and, where ``low`` / ``high`` (same shape) are finite, the interval below it. Saved as ``stem.png`` and
    ``stem.svg``; returns their paths."""
    S = np.asarray(scores, dtype=np.float64)
    N = np.asarray(null_mean, dtype=np.float64)
    shape = (len(row_labels), len(col_labels))
    for name, arr in (("scores", S), ("null_mean", N), ("low", low), ("high", high)):
        if arr is not None and np.shape(arr) != shape:
            raise ValueError(f"{name} has shape {np.shape(arr)}, the labels give {shape}")
    lo = np.full(shape, np.nan) if low is None else np.asarray(low, dtype=np.float64)
    hi = np.full(shape, np.nan) if high is None else np.asarray(high, dtype=np.float64)
    with plt.rc_context(_RC):
        w = min(max(3.6, 0.9 * len(col_labels) + 2.0), 16)
        h = min(max(2.8, 0.6 * len(row_labels) + 1.4), 13)
        fig, ax = plt.subplots(figsize=(w, h))
        im = ax.imshow(S, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(shape[1]))
        ax.set_xticklabels(col_labels, rotation=45 if max(map(len, col_labels)) > 4 else 0, ha="right")
        ax.set_yticks(range(shape[0]))
        ax.set_yticklabels(row_labels)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        shown = "score (null mean) [interval]" if np.isfinite(lo).any() else "score (null mean)"
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label(f"{score_name}; cells: {shown}")
        if S.size <= 400:
            for (i, j), v in np.ndenumerate(S):
                text = f"{v:.2f}" if np.isfinite(v) else "n/a"
                if np.isfinite(N[i, j]):
                    text += f" ({N[i, j]:.2f})"
                if np.isfinite(lo[i, j]) and np.isfinite(hi[i, j]):
                    text += f"\n[{lo[i, j]:.2f}, {hi[i, j]:.2f}]"
                ax.text(j, i, text, ha="center", va="center", fontsize=6,
                        color="white" if not np.isfinite(v) or v < 0.5 else "black")
        fig.tight_layout()
        return save_figure(fig, stem)
