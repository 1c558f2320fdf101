"""The two-initialisation note on SVCCA and widths is computed from the run's numbers."""

from __future__ import annotations

import numpy as np

from ccalens.experiments.stages.svcca import svcca_width_note


def _ti(pwcca_cross: float) -> dict:
    sim = np.array([[0.6, 0.5], [0.99, 0.98]])  # row 1 (narrow) against column 0 beats both diagonals
    pw = np.array([[0.7, 0.5], [pwcca_cross, 0.9]])
    ck = np.array([[0.8, 0.4], [0.5, 0.95]])
    return {"similarity": sim, "layers_a": ["h", "logits"], "layers_b": ["h", "logits"], "ranks_a": [200, 9],
            "ranks_b": [210, 9], "measures": {"svcca": sim, "pwcca": pw, "linear_cka": ck}}


def test_note_names_the_pair_and_says_which_measure_also_ranks_it_above() -> None:
    text = svcca_width_note(_ti(0.95))
    assert "logits of the first seed against h of the second reads 0.99 (kept 9 and 210 directions)" in text
    assert "PWCCA reads 0.95 there, above its matching-layer scores (0.9)" in text
    assert "linear CKA reads 0.5 there, not above its matching-layer scores (0.95)" in text
    assert "PWCCA reads 0.6 there, not above" in svcca_width_note(_ti(0.6))


def test_no_pair_above_the_diagonal_is_said_so() -> None:
    ti = _ti(0.5)
    ti["similarity"] = np.array([[0.9, 0.2], [0.3, 0.95]])
    assert "no pair of different layers scores above" in svcca_width_note(ti)
