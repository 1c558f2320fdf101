"""Fusion baselines, the random-subspace null of the principal angles, the computed verdict, and the projection
scores at k = nc with their spread."""

from __future__ import annotations

import numpy as np
import pytest

from ccalens.experiments.fusion import FusionConfig, _random_subspace_null
from ccalens.experiments.stages.fusion import AGREEMENT_COLUMNS, fusion_verdict
from ccalens.experiments.stages.projection import _display, plus_minus, spread_sentence


def test_random_subspace_null_has_its_nominal_level():
    """A k-subspace drawn uniformly at random from the span falls below the null's 5th percentile ~5% of the
    time (binomial: 300 trials, 5% -> 15 expected, 99.9% band about 4 to 30)."""
    rng = np.random.default_rng(0)
    m, r, c, k = 40, 12, 4, 4
    span = rng.standard_normal((m, r))
    target = rng.standard_normal((m, c))
    hits = 0
    for t in range(300):
        null = _random_subspace_null(target, span, k, 100, np.random.default_rng(t))
        drawn = span @ rng.standard_normal((r, k))
        qt, qd = np.linalg.qr(target)[0], np.linalg.qr(drawn)[0]
        observed = np.median(np.degrees(np.arccos(np.clip(np.linalg.svd(qt.T @ qd, compute_uv=False), 0, 1))))
        hits += observed < null["p05_deg"]
    assert 4 <= hits <= 30, hits


def test_random_subspace_null_sees_a_subspace_that_holds_the_target():
    rng = np.random.default_rng(1)
    span = rng.standard_normal((60, 15))
    target = span[:, :3] @ rng.standard_normal((3, 3))
    null = _random_subspace_null(target, span, 3, 200, rng)
    assert null["draws"] == 200 and 0 < null["p05_deg"] < null["mean_deg"] < 90
    # the target's own span has angle 0, far below the null
    assert null["p05_deg"] > 20


def test_null_subspaces_is_validated():
    with pytest.raises(ValueError, match="null_subspaces"):
        FusionConfig(null_subspaces=5)


def _row(cca_sum: float, top_nc: float, a: float, b: float, concat: float, angle: float, p05: float):
    agree = dict.fromkeys(AGREEMENT_COLUMNS, 0.9)
    agree.update({"CCA-sum SVM": cca_sum, "CCA-sum top nc SVM": top_nc, "network a alone": a,
                  "network b alone": b, "penultimate concat + linear SVM": concat})
    return {"pair": "x + y", **{f"agree {k}": v for k, v in agree.items()},
            "median angle a centred variates (deg)": angle, "random subspaces: mean (deg)": 70.0,
            "random subspaces: 5th percentile (deg)": p05, "random subspaces drawn": 200}


def test_fusion_verdict_follows_the_numbers():
    # the demo: CCA-sum 94.5% but network a alone 94.9% and the concatenation 98.5%; top-nc 90.4%
    text = fusion_verdict([_row(0.945, 0.904, 0.949, 0.93, 0.985, 20.0, 60.0)] * 3)
    assert "is not supported" in text and "in only 0 of 3 pairs" in text
    assert "top nc canonical directions alone agree less often (90.4%) than all of them (94.5%)" in text
    assert "closer to the class components than chance" in text and "below the 5th percentile in 3 of 3" in text
    assert "CCA-sum SVM 94.5%" in text and "network a alone 94.9% (CCA-sum higher in 0 of 3)" in text
    text = fusion_verdict([_row(0.99, 0.99, 0.9, 0.9, 0.95, 20.0, 60.0)] * 2)
    assert "Verdict: supported" in text
    text = fusion_verdict([_row(0.99, 0.99, 0.9, 0.9, 0.95, 65.0, 60.0)] * 2)
    assert "below the random-subspace 5th percentile in only 0 of 2 pairs" in text
    assert fusion_verdict([]) == ""


def test_projection_scores_at_nc_show_their_spread():
    rows = [{"network": "fou", "directions from": "2 references", "baseline (original)": 0.841,
             "cca_highest @nc (original)": 0.8273, "cca_highest @nc (original) std": 0.0091}]
    assert plus_minus(0.8273, 0.0091) == "0.827 ± 0.009"
    assert _display(rows) == [{"network": "fou", "directions from": "2 references", "baseline (original)": 0.841,
                               "cca_highest @nc (original)": "0.827 ± 0.009"}]
    assert "fou 0.827 ± 0.009 of 0.841" in spread_sentence(rows)
    assert spread_sentence([{"network": "x", "cca_highest @nc (original)": 0.5}]) == ""
