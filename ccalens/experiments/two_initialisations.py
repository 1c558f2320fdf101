"""Two initialisations (Raghu et al. 2017): layer x layer similarity between two trainings of one architecture,
by SVCCA and, beside it, PWCCA and linear CKA."""

from __future__ import annotations

from typing import Any

import numpy as np

from ccalens.core.validation import SvccaRule
from ccalens.experiments.activations import pair_score

__all__ = ["TWO_INIT_MEASURES", "convention_caption", "two_init_heatmap"]

#: Measures of the two-initialisation study: SVCCA (the paper's) and two that are fair across widths.
TWO_INIT_MEASURES = ("svcca", "pwcca", "linear_cka")


def two_init_heatmap(
    acts_a: dict[str, np.ndarray],
    acts_b: dict[str, np.ndarray],
    *,
    keep: str = "singular_values",
    threshold: float = 0.99,
) -> dict[str, Any]:
    """Layer x layer similarity between two trainings: ``similarity[i, j] = svcca(A layer i, B layer j)``, and the
    same with PWCCA and linear CKA (``measures[name]``).

    SVCCA's score is the mean of ``min(m1, m2)`` correlations: a narrow layer (few kept directions) against a wide
    one can reach 1 when its few directions all lie in the wide layer's span, above the diagonal of equal layers.
    PWCCA (weights from A's layer) and linear CKA do not reward the narrower side that way, so they are shown beside
    it. ``acts_a``, ``acts_b``: layer name -> ``(n, d)`` or conv maps ``(n, C, H, W)``. Conv maps follow one
    convention for every measure, the Fourier one (:func:`convention_caption`): DFT-CCA between two maps (see
    :func:`~ccalens.experiments.activations.pair_score`), linear CKA summed over frequency blocks
    (:func:`ccalens.conv.dft_linear_cka`). Returns ``{"layers_a", "layers_b", "similarity",
    "measures", "null_mean_rho", "ranks_a", "ranks_b", "conventions", "keep", "threshold"}``.
    """
    from ccalens.core.measures import REGISTRY, similarity_matrix

    SvccaRule(keep, threshold)  # validated once, before any checkpoint is read
    la, lb = list(acts_a), list(acts_b)
    dense = all(acts_a[a].ndim == 2 for a in la) and all(acts_b[b].ndim == 2 for b in lb)
    headline = TWO_INIT_MEASURES[0]  # the paper's measure: its nulls, kept ranks and conventions are reported
    if dense:  # every representation prepared once, the cross pairs only
        reps = [acts_a[a] for a in la] + [acts_b[b] for b in lb]
        cross = [(i, len(la) + j) for i in range(len(la)) for j in range(len(lb))]
        matrices = {measure: similarity_matrix(reps, measure, pairs=cross, **REGISTRY[measure].rule_options(
            keep, threshold)) for measure in TWO_INIT_MEASURES}
        out = {measure: m.scores[: len(la), len(la) :].copy() for measure, m in matrices.items()}
        m = matrices[headline]
        null = m.null_mean_rho[: len(la), len(la) :].copy()  # type: ignore[index]
        ranks_a, ranks_b = m.rank[: len(la)].copy(), m.rank[len(la) :].copy()  # type: ignore[index]
        conventions = {f"{a}|{b}": "dense" for a in la for b in lb}
    else:
        cells = {measure: [[pair_score(acts_a[a], acts_b[b], measure, keep, threshold) for b in lb] for a in la]
                 for measure in TWO_INIT_MEASURES}
        out = {measure: np.array([[res.score for res, _ in row] for row in grid]).reshape(len(la), len(lb))
               for measure, grid in cells.items()}
        first = cells[headline]
        null = np.array([[np.nan if res.null_mean_rho is None else res.null_mean_rho for res, _ in row]
                         for row in first]).reshape(len(la), len(lb))
        # DFT ranks depend on the partner's grid: a layer's ranks are those against the other side's last layer
        ranks_a = np.array([first[i][-1][0].rank_x or 0 for i in range(len(la))], dtype=np.int64)
        ranks_b = np.array([first[-1][j][0].rank_y or 0 for j in range(len(lb))], dtype=np.int64)
        conventions = {f"{a}|{b}": first[i][j][1] for i, a in enumerate(la) for j, b in enumerate(lb)}
    return {"layers_a": la, "layers_b": lb, "similarity": out[headline], "measures": out, "null_mean_rho": null,
            "ranks_a": ranks_a.tolist(), "ranks_b": ranks_b.tolist(), "conventions": conventions, "keep": keep,
            "threshold": threshold}


def convention_caption(conventions: dict[str, str]) -> str:
    """The sentence a figure's caption gives for the conventions of a two-initialisation study (``conventions``:
    ``"a|b"`` -> ``'dense'``, ``'dft'`` or ``'pooled'``, as :func:`two_init_heatmap` returns them)."""
    used = set(conventions.values())
    if used <= {"dense"}:
        return "All layers are vectors: every measure on the raw activations."
    text = ("Conv maps in the Fourier domain for every measure: SVCCA and PWCCA by DFT-CCA (per-frequency CCA over "
            "the common frequencies), linear CKA summed over the same frequency blocks (Parseval); both equal the "
            "measure on the flattened maps for translation-invariant data.")
    if "pooled" in used:
        text += (" A map against a vector (the logits) meets it at the map's zero frequency (its spatial mean), the "
                 "only frequency a translation-invariant vector shares; CKA's normalisation keeps all the map's "
                 "frequencies.")
    return text
