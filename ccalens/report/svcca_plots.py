"""Figures of the SVCCA paper's studies (Raghu et al. 2017): learning dynamics (Fig. 4), compression (Fig. 5),
the invariance figure with App. 1's recovered signal, and the appendix's A/B/C example; each saved as PNG and SVG
by :func:`ccalens.report.plots.save_figure` and returning ``{"png": Path, "svg": Path}``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from ccalens.report.plots import _METRIC_LABEL, _RC, METHOD_STYLE, _k_axis, save_figure

__all__ = ["plot_abc", "plot_compression", "plot_invariance", "plot_learning_dynamics"]


def plot_learning_dynamics(ld: Mapping[str, Any], stem: str | Path, *, title: str = "") -> dict[str, Path]:
    """Left: heat map (layer x checkpoint) of SVCCA similarity to the final representation; right: one curve
    per layer against the training step."""
    sim = np.asarray(ld["similarity"])
    steps = list(ld["steps"])
    layers = list(ld["layers"])
    with plt.rc_context(_RC):
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 0.45 * len(layers) + 2.4))
        im = ax.imshow(sim, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_yticks(range(len(layers)))
        ax.set_yticklabels(layers)
        idx = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 8)).astype(int))
        ax.set_xticks(idx)
        ax.set_xticklabels([str(steps[i]) for i in idx], rotation=45)
        ax.set_xlabel("training step (checkpoint)")
        ax.set_ylabel("layer (input to output)")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label("SVCCA similarity to final")
        cmap = plt.get_cmap("plasma")
        for li, name in enumerate(layers):
            ax2.plot(steps, sim[li], color=cmap(li / max(1, len(layers) - 1) * 0.85), label=name, linewidth=1.4)
        null = np.asarray(ld.get("null_mean_rho", np.full_like(sim, np.nan)), dtype=np.float64)
        if np.isfinite(null).any():  # what unrelated data of the same n and ranks would give
            ax2.plot(steps, np.nanmax(null, axis=0), color="0.4", linestyle=":", linewidth=1.0,
                     label="null mean rho (largest over layers)")
        ax2.set_xlabel("training step")
        ax2.set_ylabel("SVCCA similarity to final")
        ax2.set_ylim(0, 1.02)
        ax2.grid(alpha=0.25)
        ax2.legend(frameon=False, loc="lower right")
        fig.suptitle(title or "Learning dynamics: SVCCA(layer at step t, layer at the end)", fontsize=10)
        fig.tight_layout()
        return save_figure(fig, stem)


def plot_compression(comps: Sequence[Mapping[str, Any]], stem: str | Path, *, metric: str = "accuracy") -> dict[
    str, Path
]:
    """One panel per compressed layer: validation score against k for SVCCA, PCA and random directions (std bands), and
    the training score (dotted) where the results have it."""
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(1, len(comps), figsize=(3.6 * len(comps), 3.0), squeeze=False, sharey=True)
        for ax, comp in zip(axes[0], comps, strict=True):
            ks = np.asarray(comp["k"])
            for name, cols in comp["methods"].items():
                colour, style, label = METHOD_STYLE.get(name, (None, "-", name))
                mean, std = np.asarray(cols[f"{metric}_mean"]), np.asarray(cols[f"{metric}_std"])
                ax.plot(ks, mean, style, color=colour, label=f"{label} (validation)", marker="o", markersize=2.2,
                        linewidth=1.4)
                if np.any(std > 0):
                    ax.fill_between(ks, mean - std, mean + std, color=colour, alpha=0.18, linewidth=0)
                if f"train_{metric}_mean" in cols:  # the SVCCA paper's Fig. 5 draws training and test lines
                    ax.plot(ks, np.asarray(cols[f"train_{metric}_mean"]), ":", color=colour, linewidth=1.2,
                            label=f"{label} (training)")
            ax.axhline(comp["baseline"][metric], color="k", linestyle="--", linewidth=0.8, alpha=0.6,
                       label="uncompressed (validation)")
            _k_axis(ax, list(ks), int(comp.get("n_classes", 10)))
            ax.set_title(f"{comp['layer']} (width {comp['width']}), ref: {comp.get('reference', '')}", fontsize=8)
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.25)
        axes[0, 0].set_ylabel(f"validation {_METRIC_LABEL.get(metric, metric)}")
        axes[0, -1].legend(frameon=False, loc="lower right", fontsize=6)
        fig.suptitle("Compression: layer replaced by its projection on k directions", fontsize=10)
        fig.tight_layout()
        return save_figure(fig, stem)


def plot_invariance(inv: Mapping[str, Any], stem: str | Path) -> dict[str, Path]:
    """Mean canonical correlation vs neuron-wise correlation against noise, for each transform; below, the SVCCA
    appendix's recovered signal: the neuron and its CCA reconstruction from ``T(X)`` over the first 60 sample ids, one
    panel per transform (where ``inv`` has its ``trace``)."""
    sig = np.asarray(inv["noise_levels"])
    names = list(inv["transforms"])
    trace = inv.get("trace")
    with plt.rc_context(_RC):
        if trace:
            fig = plt.figure(figsize=(7.4, 5.6))
            grid = fig.add_gridspec(2, len(names), height_ratios=(1.25, 1.0))
            half = len(names) // 2
            top = [fig.add_subplot(grid[0, :half]), fig.add_subplot(grid[0, half:])]
            top[1].sharey(top[0])
        else:
            fig, top = plt.subplots(1, 2, figsize=(7.4, 3.0), sharey=True)
        styles = ("-", "--", "-.", ":")
        for ti, name in enumerate(names):
            top[0].plot(sig, np.asarray(inv["cca"])[ti], styles[ti % 4], marker="o", markersize=3, label=name)
            top[1].plot(sig, np.asarray(inv["neuronwise"])[ti], styles[ti % 4], marker="o", markersize=3, label=name)
        top[0].set_title("CCA (mean canonical correlation)")
        top[1].set_title("neuron-by-neuron |correlation|")
        for ax in top:
            ax.set_xlabel("noise std")
            ax.grid(alpha=0.25)
            ax.set_ylim(0, 1.02)
        top[0].set_ylabel("similarity of X and T(X + noise)")
        top[1].legend(frameon=False)
        if trace:
            shown = min(60, len(trace["neuron"]))  # a few dozen samples: the two curves stay readable
            neuron = np.asarray(trace["neuron"])[:shown]
            ids = np.arange(shown)
            for ti, name in enumerate(names):
                ax = fig.add_subplot(grid[1, ti], sharey=None if ti == 0 else fig.axes[2])
                ax.plot(ids, neuron, color="k", linewidth=1.6, label="neuron")
                ax.plot(ids, np.asarray(trace[name])[:shown], color="C1", linewidth=0.9, linestyle="--",
                        label="CCA direction")
                ax.set_title(f"recovered from {name}", fontsize=8)
                ax.set_xlabel("sample id", fontsize=7)
                ax.tick_params(labelsize=6)
                if ti == 0:
                    ax.set_ylabel("activation", fontsize=7)
                    ax.legend(frameon=False, fontsize=6, loc="upper right")
        fig.tight_layout()
        return save_figure(fig, stem)


def plot_abc(abc: Mapping[str, Any], stem: str | Path, sweep: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """The SVCCA appendix's A/B/C example as data: top, the sorted canonical correlations of (A, B) and (A, C)
    under plain CCA and SVCCA (their means in the legends); bottom left, the directions the SVD keeps of A, B and C
    under each rule at the example's noise; bottom right (with ``sweep``, :func:`~ccalens.experiments.sanity.
    abc_noise_sweep`), B's kept directions against its noise std, C's as dashed lines and each rule's bound."""
    rules = (("singular_values", "sum of singular values (appendix)", "#1f77b4"),
             ("variance", "variance", "#ff7f0e"))
    threshold = float(abc.get("threshold", 0.99))
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(2, 2, figsize=(9.0, 6.4))
        for ax, kind, title in ((axes[0, 0], "cca", "plain CCA"),
                                (axes[0, 1], "svcca", f"SVCCA ({threshold:.0%} of the sum of singular values)")):
            for pair, colour, style in (("AB", "#1f77b4", "-"), ("AC", "#d62728", "--")):  # dashed: they overlap
                rho = np.asarray(abc[pair][f"{kind}_correlations"])
                ax.plot(np.arange(1, rho.size + 1), rho, color=colour, linewidth=1.5, linestyle=style,
                        label=f"{pair[0]} vs {pair[1]}: mean {abc[pair][kind]:.3f}")
            ax.set_title(title)
            ax.set_xlabel("canonical direction")
            ax.set_ylabel("canonical correlation")
            ax.set_ylim(0, 1.05)
            ax.grid(alpha=0.25)
            ax.legend(frameon=False, loc="lower left")
        ax = axes[1, 0]
        names = ["A", "B", "C"]
        x = np.arange(len(names))
        for k, (rule, label, colour) in enumerate(rules):
            kept = [abc["kept"][nm][rule] for nm in names]
            bars = ax.bar(x + (k - 0.5) * 0.38, kept, width=0.38, color=colour, label=f"{threshold:.0%} of {label}")
            ax.bar_label(bars, fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{nm} ({abc['dims'][nm]} dims)" for nm in names])
        ax.set_ylim(0, max(abc["dims"].values()) * 1.15)
        ax.set_ylabel("directions the SVD keeps")
        ax.set_title(f"kept directions, B's noise std {abc['noise_std']:g}")
        ax.legend(frameon=False, loc="upper left")
        ax = axes[1, 1]
        if sweep is not None:
            levels = np.asarray(sweep["noise_levels"], dtype=float)
            shown = levels > 0
            for rule, label, colour in rules:
                ax.plot(levels[shown], np.asarray(sweep["B"][rule])[shown], marker="o", markersize=3, color=colour,
                        label=f"B, {label}")
                ax.axhline(sweep["C"][rule], color=colour, linestyle="--", linewidth=0.9)
                ax.axvline(sweep["bound"][rule], color=colour, linestyle=":", linewidth=0.9)
            ax.axhline(sweep["shared"], color="0.3", linewidth=0.8)
            ax.axvline(abc["noise_std"], color="0.3", linestyle="-.", linewidth=0.8, label="the example's noise")
            ax.set_xscale("log")
            ax.set_ylim(0, max(abc["dims"].values()) * 1.1)
            ax.set_xlabel("B's noise std (150 directions)")
            ax.set_ylabel("directions the SVD keeps of B")
            ax.set_title("dashed: C; dotted: each rule's bound")
            ax.grid(alpha=0.25)
            ax.legend(frameon=False, loc="center left", fontsize=7)
        else:
            ax.axis("off")
        fig.suptitle("A: 50 dims; B: the 50 dims aligned with A + 150 noise dims; C: the 50 aligned + 150 useful dims",
                     fontsize=9)
        fig.tight_layout()
        return save_figure(fig, stem)
