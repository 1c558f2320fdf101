"""Heat maps: a labelled matrix (:func:`plot_heatmap`), several measures side by side on one scale
(:func:`plot_measure_heatmaps`) and a model-against-model similarity matrix (:func:`plot_similarity_matrix`); each
saved as PNG and SVG by :func:`ccalens.report.plots.save_figure` and returning ``{"png": Path, "svg": Path}``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from ccalens.report.plots import _RC, save_figure

__all__ = ["plot_heatmap", "plot_measure_heatmaps", "plot_similarity_matrix"]


def plot_heatmap(
    matrix: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    stem: str | Path,
    *,
    title: str = "",
    colorbar_label: str = "",
    xlabel: str = "",
    ylabel: str = "",
    vmin: float | None = 0.0,
    vmax: float | None = 1.0,
    annotate: bool = True,
    fmt: str = "{:.2f}",
    cmap: str = "viridis",
) -> dict[str, Path]:
    """Heat map with a colour bar, labelled axes and (optionally) the value in each cell."""
    M = np.asarray(matrix, dtype=np.float64)
    if M.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"matrix has shape {M.shape}, labels give ({len(row_labels)}, {len(col_labels)})")
    with plt.rc_context(_RC):
        w = min(max(3.2, 0.55 * len(col_labels) + 1.8), 14)
        h = min(max(2.6, 0.4 * len(row_labels) + 1.2), 12)
        fig, ax = plt.subplots(figsize=(w, h))
        im = ax.imshow(M, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(col_labels)))
        ax.set_xticklabels(col_labels, rotation=45 if max(map(len, col_labels)) > 4 else 0, ha="right")
        ax.set_yticks(range(len(row_labels)))
        ax.set_yticklabels(row_labels)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        for side in ("top", "right"):
            ax.spines[side].set_visible(True)
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cb.set_label(colorbar_label)
        if annotate and M.size <= 400:
            lo, hi = np.nanmin(M), np.nanmax(M)
            mid = (lo + hi) / 2
            for (i, j), v in np.ndenumerate(M):
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=6.5,
                        color="white" if v < mid else "black")
        fig.tight_layout()
        return save_figure(fig, stem)


def plot_measure_heatmaps(
    measures: Mapping[str, np.ndarray],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    stem: str | Path,
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
) -> dict[str, Path]:
    """One annotated heat map per measure (``measures[name]: (rows, cols)``), side by side on a shared 0-1 scale."""
    names = list(measures)
    with plt.rc_context(_RC):
        w = min(max(3.0, 0.5 * len(col_labels) + 1.6), 7) * len(names)
        h = min(max(2.6, 0.4 * len(row_labels) + 1.4), 10)
        fig, axes = plt.subplots(1, len(names), figsize=(w, h), squeeze=False)
        im = None
        for ax, name in zip(axes[0], names, strict=True):
            M = np.asarray(measures[name], dtype=np.float64)
            im = ax.imshow(M, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
            ax.set_xticks(range(len(col_labels)))
            ax.set_xticklabels(col_labels, rotation=45 if max(map(len, col_labels)) > 4 else 0, ha="right")
            ax.set_yticks(range(len(row_labels)))
            ax.set_yticklabels(row_labels if ax is axes[0, 0] else [""] * len(row_labels))
            ax.set_xlabel(xlabel)
            if ax is axes[0, 0]:
                ax.set_ylabel(ylabel)
            ax.set_title(name)
            if M.size <= 400:
                for (i, j), v in np.ndenumerate(M):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6.5,
                            color="white" if v < 0.5 else "black")
        assert im is not None
        fig.colorbar(im, ax=list(axes[0]), fraction=0.025, pad=0.02).set_label("similarity")
        fig.suptitle(title, fontsize=10)
        return save_figure(fig, stem)


def plot_similarity_matrix(
    matrix_or_scores: Any,
    stem: str | Path,
    *,
    row_names: Sequence[str] | None = None,
    col_names: Sequence[str] | None = None,
    title: str | None = None,
    annotate: bool = True,
    row_label: str | None = None,
    col_label: str | None = None,
) -> dict[str, Path]:
    """Annotated heat map of a similarity matrix ``(L_a, L_b)``, saved as ``stem.png`` and ``stem.svg``.

    ``matrix_or_scores``: an array of scores, or an object with ``.scores`` (a ``SimilarityMatrix``, whose
    ``.names`` label both axes, or a ``CrossSimilarity``, whose ``.row_names`` / ``.col_names`` do); explicit
    ``row_names`` / ``col_names`` win. An object with ``models`` (two names, e.g. a ``CrossSimilarity``) labels
    the axes with them and titles the figure ``measure (conv): A vs B`` unless ``row_label`` / ``col_label`` /
    ``title`` are given. Scores are drawn on a fixed 0..1 scale; NaN cells are grey with a dash. Cell
    size and fonts shrink with the matrix so that 50 x 50 stays readable; values are written up to 60 x 60.
    """
    scores = np.asarray(getattr(matrix_or_scores, "scores", matrix_or_scores), dtype=np.float64)
    if scores.ndim != 2 or 0 in scores.shape:
        raise ValueError(f"matrix_or_scores must be a non-empty 2-D matrix of scores, got shape {scores.shape}")
    names = getattr(matrix_or_scores, "names", None)
    if row_names is None:
        row_names = getattr(matrix_or_scores, "row_names", None) or names
    if col_names is None:
        col_names = getattr(matrix_or_scores, "col_names", None) or names
    if row_names is None or col_names is None:
        raise ValueError("row_names and col_names are required with a plain array of scores")
    rows, cols = [str(n) for n in row_names], [str(n) for n in col_names]
    if scores.shape != (len(rows), len(cols)):
        raise ValueError(f"scores have shape {scores.shape} but row_names/col_names give ({len(rows)}, {len(cols)})")
    models = getattr(matrix_or_scores, "models", None)
    measure = str(getattr(matrix_or_scores, "measure", ""))
    if title is None:
        conv = getattr(matrix_or_scores, "conv", None)
        title = measure if models is None else f"{measure}{f' ({conv})' if conv else ''}: {models[0]} vs {models[1]}"
    if row_label is None:
        row_label = str(models[0]) if models is not None else ""
    if col_label is None:
        col_label = str(models[1]) if models is not None else ""
    n = max(scores.shape)
    cell = 0.55 if n <= 10 else 0.4 if n <= 25 else 0.3
    value_size = 8.0 if n <= 10 else 6.0 if n <= 25 else 4.0
    tick_size = 8.0 if n <= 25 else 5.5
    longest = max(len(s) for s in rows + cols)
    margin = min(0.07 * longest * tick_size / 8.0, 3.0)
    width = cell * scores.shape[1] + margin + 1.6
    height = cell * scores.shape[0] + margin + 1.0
    cmap = plt.get_cmap("viridis").with_extremes(bad="#d0d0d0")
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(width, height))
        im = ax.imshow(np.ma.masked_invalid(scores), cmap=cmap, vmin=0.0, vmax=1.0, aspect="equal")
        ax.set_xticks(range(len(cols)))
        ax.set_xticklabels(cols, rotation=90 if len(cols) > 10 or longest > 6 else 0, fontsize=tick_size)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(rows, fontsize=tick_size)
        ax.set_xlabel(col_label)
        ax.set_ylabel(row_label)
        ax.set_title(title)
        for side in ("top", "right"):
            ax.spines[side].set_visible(True)
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cb.set_label("similarity")
        if annotate and n <= 60:
            for (i, j), v in np.ndenumerate(scores):
                if np.isfinite(v):
                    r, g, b, _ = cmap(float(np.clip(v, 0.0, 1.0)))
                    colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=value_size, color=colour)
                else:
                    ax.text(j, i, "-", ha="center", va="center", fontsize=value_size, color="black")
        fig.tight_layout()
        return save_figure(fig, stem)
