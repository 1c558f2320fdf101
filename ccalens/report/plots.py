"""Publication-style figures (matplotlib, Agg backend), each saved as PNG and SVG, atomically.

Every function takes the experiment's result (or plain arrays) and a path stem ``.../name`` and returns
``{"png": Path, "svg": Path}``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ccalens.io import atomic_write_bytes

__all__ = [
    "METHOD_STYLE",
    "plot_fusion",
    "plot_projection",
    "plot_sensor_grid",
    "save_figure",
    "title_overlaps",
]

#: colour, line style and legend label of each projection method. The colours are those of Moreau et al.'s released
#: plotting code (HuguesMoreau/Sensors_similariy, similarity/projection_same_sensors.py: RGB CCA_highest (1, 0, 0),
#: CCA_lowest (0.9, 0.9, 0), CCA_random (1, 0.5, 0), PCA (0.05, 0.9, 0.05), max_activation (0.8, 0.2, 1),
#: random_keep (0.2, 0.8, 1), random_proj (0.2, 0.23, 1)); the line styles are ours, so the curves stay apart in
#: grey print.
METHOD_STYLE: dict[str, tuple[str, str, str]] = {
    "cca_highest": ("#ff0000", "-", "CCA highest"),
    "cca_lowest": ("#e6e600", "-", "CCA lowest"),
    "cca_random": ("#ff8000", "--", "CCA random"),
    "max_activation": ("#cc33ff", "-.", "max activation"),
    "random_selection": ("#33ccff", ":", "random neurons"),
    "random_projection": ("#333bff", "--", "random projection"),
    "pca": ("#0de60d", "-", "PCA"),
    "svcca": ("#1f77b4", "-", "SVCCA directions"),
}

_RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 150,
    "svg.fonttype": "none",
}

_METRIC_LABEL = {"accuracy": "accuracy", "macro_f1": "macro F1"}


def _axes_tops(fig: Any, renderer: Any) -> list[tuple[str, float]]:
    """``(label, top in display units)`` of every axes with its title, tick labels and labels."""
    return [(ax.get_title() or ax.get_label() or f"axes {i}", float(ax.get_tightbbox(renderer).y1))
            for i, ax in enumerate(fig.axes) if ax.get_visible()]


def title_overlaps(fig: Any) -> list[str]:
    """The axes (by title) whose box, title included, reaches into the figure title's box; empty when none does or
    there is no figure title."""
    sup = getattr(fig, "_suptitle", None)
    if sup is None or not sup.get_text():
        return []
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    bottom = float(sup.get_window_extent(renderer).y0)
    return [label for label, top in _axes_tops(fig, renderer) if top > bottom]


def _lift_suptitle(fig: Any, pad_points: float = 4.0) -> None:
    """Move the figure title just above the highest axes box when a layout left it on a panel's title (the saved
    image grows to fit: ``bbox_inches='tight'``)."""
    if not title_overlaps(fig):
        return
    sup = fig._suptitle
    renderer = fig.canvas.get_renderer()
    top = max(t for _, t in _axes_tops(fig, renderer)) + pad_points * fig.dpi / 72
    sup.set_verticalalignment("bottom")
    sup.set_y(top / fig.bbox.height)


def save_figure(fig: Any, stem: str | Path) -> dict[str, Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.svg`` (atomic writes) and close it; a figure title that overlaps a
    panel is first lifted above the panels."""
    stem = Path(stem)
    out = {}
    try:
        _lift_suptitle(fig)
        for fmt in ("png", "svg"):
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
            out[fmt] = atomic_write_bytes(stem.with_name(stem.name + f".{fmt}"), buf.getvalue())
    finally:
        plt.close(fig)
    return out


def _k_ticks(ks: Sequence[int], n_classes: int) -> list[int]:
    """Tick positions on the log-k axis: nc and the last k always, then 1, 2, 4, 8 and the powers of two from
    16, each only if it stands at least a factor 2^0.5 from every tick already kept (no colliding labels)."""
    wanted = [k for k in ks if k in (1, 2, 4, 8) or (k >= 16 and (k & (k - 1)) == 0)]
    kept = sorted({n_classes, ks[-1]} & set(ks)) or [ks[-1]]
    for k in wanted:
        if all(abs(np.log2(k) - np.log2(t)) >= 0.5 for t in kept):
            kept.append(k)
    return sorted(kept)


def _k_axis(ax: Any, ks: Sequence[int], n_classes: int) -> None:
    ax.set_xscale("log", base=2)
    ticks = _k_ticks(ks, n_classes)
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(k) for k in ticks])
    ax.minorticks_off()
    ax.axvline(n_classes, color="k", linestyle=":", linewidth=1.0, label=f"k = nc = {n_classes}")
    ax.set_xlabel("k (directions kept)")


def _curves(ax: Any, result: Any, methods: Sequence[str], classifier: str, metric: str, legend: bool) -> None:
    for m in methods:
        try:
            k, mean, std = result.curve(m, classifier, metric)
        except KeyError:
            continue
        colour, style, label = METHOD_STYLE.get(m, (None, "-", m))
        ax.plot(k, mean, style, color=colour, label=label, linewidth=1.4, marker="o", markersize=2.2)
        if np.any(std > 0):
            ax.fill_between(k, mean - std, mean + std, color=colour, alpha=0.18, linewidth=0)
    base = result.baseline.get(classifier, {}).get(metric)
    if base is not None:
        ax.axhline(base, color="k", linestyle="--", linewidth=0.8, alpha=0.6, label="no projection")
    if "cca_highest" in methods and result.n_classes in result.k_grid:
        # Moreau et al.'s dotted reference: CCA_highest's score at k = nc, across the whole k range
        at_nc = result.score_at("cca_highest", result.n_classes, classifier, metric)
        colour = METHOD_STYLE.get("cca_highest", (None,))[0]
        ax.axhline(at_nc, color=colour, linestyle=":", linewidth=1.0, label="CCA_highest at k = nc")
    _k_axis(ax, result.k_grid, result.n_classes)
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.25, linewidth=0.5)
    if legend:
        ax.legend(loc="lower right", frameon=False)


def plot_projection(result: Any, stem: str | Path, *, metric: str = "accuracy", title: str | None = None) -> dict[
    str, Path
]:
    """Curves of one projection experiment (mean with a std band over repeats) for the original and the
    retrained last layer, a dotted line at k = nc and a dashed line at the unprojected score."""
    classifiers = result.classifiers
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(1, len(classifiers), figsize=(3.6 * len(classifiers), 3.5), squeeze=False,
                                 sharey=True)
        for i, (ax, clf) in enumerate(zip(axes[0], classifiers, strict=True)):
            _curves(ax, result, result.methods, clf, metric, legend=False)
            ax.set_title(f"{clf} last layer")
            if i == 0:
                ax.set_ylabel(f"validation {_METRIC_LABEL.get(metric, metric)}")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=5, frameon=False, bbox_to_anchor=(0.5, -0.01))
        fig.suptitle(title or f"{result.name}: projection on k directions (CCA against {result.reference})",
                     fontsize=10)
        fig.tight_layout(rect=(0, 0.13, 1, 1))
        return save_figure(fig, stem)


def plot_sensor_grid(
    results: Mapping[tuple[str, str], Any],
    views: Sequence[str],
    stem: str | Path,
    *,
    methods: Sequence[str] = ("cca_highest", "cca_lowest", "cca_random", "pca"),
    classifier: str = "original",
    metric: str = "accuracy",
) -> dict[str, Path]:
    """Grid of sensor pairs oriented as Moreau et al.'s Fig. 5: column = the network whose features are
    projected ("data from"), row = the network the canonical directions come from ("CCA with"); the diagonal
    pairs two initialisations on the same sensor. ``results[(projected, directions)]``."""
    V = len(views)
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(V, V, figsize=(1.9 * V + 0.8, 1.6 * V + 0.8), squeeze=False, sharex=False,
                                 sharey=True)
        for i, b in enumerate(views):  # row: where the directions come from
            for j, a in enumerate(views):  # column: the projected network
                ax = axes[i, j]
                res = results.get((a, b))
                if res is None:
                    ax.axis("off")
                    continue
                _curves(ax, res, [m for m in methods if m in res.methods], classifier, metric, legend=False)
                ax.set_xlabel("")
                ax.tick_params(labelsize=6)
                if i == 0:
                    ax.set_title(f"data from {a}", fontsize=8)
                if j == 0:
                    ax.set_ylabel(f"CCA with {b}\n{_METRIC_LABEL.get(metric, metric)}", fontsize=8)
                if i == V - 1:
                    ax.set_xlabel("k", fontsize=7)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), frameon=False,
                   bbox_to_anchor=(0.5, -0.01))
        fig.suptitle(f"Projection on k canonical directions, {classifier} last layer (column: projected network)",
                     fontsize=10)
        fig.tight_layout(rect=(0, 0.04, 1, 0.97))
        return save_figure(fig, stem)


def plot_fusion(
    results: Sequence[Any], stem: str | Path, *, methods: Sequence[str], metric: str = "accuracy"
) -> dict[str, Path]:
    """Left: score of every fusion method in ``methods`` (columns, in order) for every pair (heat map). Right:
    agreement with logit averaging per pair (bars from 0) of each CCA fusion beside the baselines without CCA (each
    network alone, the concatenated features with an SVM). ``results``: fusion results with
    ``view_a``, ``view_b``, ``scores[method][metric]`` and ``agreement_with_logit_average``."""
    methods = list(methods)
    if not methods:
        raise ValueError("methods must name at least one fusion method")
    pairs = [f"{r.view_a} + {r.view_b}" for r in results]
    M = np.array([[r.scores[m][metric] for m in methods] for r in results])
    agree_methods = ("view_a", "view_b", "raw_concat_svm", "cca_sum_svm", "cca_sum_top_nc_svm")
    with plt.rc_context(_RC):
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 0.32 * len(pairs) + 2.2),
                                      gridspec_kw={"width_ratios": [1.5, 1]})
        im = ax.imshow(M, cmap="viridis", vmin=max(0.0, float(M.min()) - 0.02), vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels([m.replace("_", " ") for m in methods], rotation=40, ha="right")
        ax.set_yticks(range(len(pairs)))
        ax.set_yticklabels(pairs)
        for (i, j), v in np.ndenumerate(M):
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=6, color="white" if v < M.mean() else "k")
        cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
        cb.set_label(f"validation {_METRIC_LABEL.get(metric, metric)}")
        ax.set_title("Fusion of two networks (view_a, view_b = each alone)")
        y = np.arange(len(pairs))
        h = 0.8 / len(agree_methods)
        colours = ("#bdbdbd", "#7f7f7f", "#2ca02c", "#1f77b4", "#ff7f0e")  # baselines grey/green, CCA blue/orange
        labels = {"view_a": "network a alone", "view_b": "network b alone", "raw_concat_svm": "features concat SVM"}
        for i, m in enumerate(agree_methods):
            vals = [r.agreement_with_logit_average[m] for r in results]
            ax2.barh(y + (i - (len(agree_methods) - 1) / 2) * h, vals, height=h, color=colours[i],
                     label=labels.get(m, m.replace("_", " ")))
        ax2.set_yticks(y)
        ax2.set_yticklabels(pairs)
        ax2.invert_yaxis()
        ax2.set_xlim(0.0, 1.0)  # bars start at 0: their lengths are the agreements
        ax2.set_xlabel("prediction agreement with logit averaging")
        ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 1.2 / (len(pairs) + 4)), ncol=2, frameon=False,
                   fontsize=7)
        ax2.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        return save_figure(fig, stem)
