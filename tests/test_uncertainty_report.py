"""The demo's headline similarities carry their uncertainty: bootstrap intervals of the two-initialisation diagonal and
of the projection's mean canonical correlations, the ``bootstrap`` config keys, the null-annotated heat map."""

from __future__ import annotations

import tomllib
import warnings

import numpy as np
import pytest

from ccalens.core.measures import svcca
from ccalens.core.uncertainty import bootstrap
from ccalens.errors import UserInputError
from ccalens.experiments.bases import cca_basis
from ccalens.experiments.config import parse_config
from ccalens.experiments.projection import ProjectionConfig
from ccalens.experiments.stages.projection import pair_correlation_intervals
from ccalens.experiments.stages.svcca import matching_layer_intervals
from ccalens.experiments.two_initialisations import two_init_heatmap
from ccalens.report.uncertainty_plots import format_interval, interval_note, plot_scores_with_null


def _related(n: int, widths: tuple[int, ...], seed: int) -> list[np.ndarray]:
    """ReLU views of one 6-d latent: strongly related representations with a clear interval."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 6))
    return [np.maximum(Z @ rng.normal(size=(6, w)) + 0.3 * rng.normal(size=(n, w)), 0.0) for w in widths]


def test_format_interval():
    assert format_interval(0.6712, 0.6449, 0.7004) == "0.67 [0.64, 0.70]"
    assert format_interval(0.6712, None, 0.7) == "0.67"
    assert format_interval(0.6712, float("nan"), 0.7) == "0.67"
    assert format_interval(0.5, 0.41, 0.55, digits=3) == "0.500 [0.410, 0.550]"


def test_interval_note_only_when_an_interval_lies_beside_its_estimate():
    inside = {"svcca": 0.5, "low": 0.45, "high": 0.55, "bias": 0.01}
    beside = {"svcca": 0.49, "low": 0.50, "high": 0.51, "bias": 0.015}
    assert interval_note([inside, {"svcca": 0.3, "low": None, "high": None, "bias": None}], "svcca") == ""
    note = interval_note([inside, beside], "svcca")
    assert note.startswith("In 1 of 2 rows the interval lies beside the estimate") and "(by +0.015)" in note
    two = interval_note([beside, {**beside, "bias": 0.02}], "svcca")
    assert two.startswith("In 2 of 2 rows") and "(by +0.015 to +0.020)" in two


def test_matching_layer_intervals_are_the_bootstrap_of_each_diagonal_pair():
    a1, a2, b1, b2 = _related(400, (12, 8, 10, 8), 0)
    acts_a, acts_b = {"h1": a1, "h2": a2}, {"h1": b1, "h2": b2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ti = two_init_heatmap(acts_a, acts_b, keep="singular_values", threshold=0.99)
    rows = matching_layer_intervals(acts_a, acts_b, ti, keep="singular_values", threshold=0.99, n_resamples=60)
    assert [r["layer_a"] for r in rows] == ["h1", "h2"]
    for i, (r, (x, y)) in enumerate(zip(rows, [(a1, b1), (a2, b2)], strict=True)):
        assert r["svcca"] == pytest.approx(ti["similarity"][i, i], abs=1e-12)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert r["svcca"] == pytest.approx(svcca(x, y, keep="singular_values", threshold=0.99).score, abs=1e-10)
            ref = bootstrap(x, y, "svcca", n_resamples=60, seed=0, keep="singular_values", threshold=0.99)
        assert (r["low"], r["high"]) == pytest.approx(tuple(ref.confidence_interval), abs=1e-12)
        assert r["low"] <= r["svcca"] <= r["high"] and r["high"] - r["low"] > 1e-4
        assert r["null_mean_rho"] == pytest.approx(ti["null_mean_rho"][i, i])
        assert r["interval"] == format_interval(r["svcca"], r["low"], r["high"])
        assert r["confidence_level"] == 0.95 and r["n_resamples"] == 60
        assert r["bias"] == pytest.approx(ref.bias)


def test_matching_layer_intervals_skip_conv_maps():
    rng = np.random.default_rng(1)
    maps_a, maps_b = rng.normal(size=(60, 2, 3, 3)), rng.normal(size=(60, 2, 3, 3))
    ti = {"layers_a": ["c"], "layers_b": ["c"], "similarity": np.array([[0.3]]), "null_mean_rho": np.array([[0.1]])}
    rows = matching_layer_intervals({"c": maps_a}, {"c": maps_b}, ti, keep="singular_values", threshold=0.99,
                                    n_resamples=10)
    assert rows[0]["low"] is None and rows[0]["high"] is None and rows[0]["bias"] is None
    assert rows[0]["interval"] == "0.30"


def test_pair_correlation_intervals_bootstrap_the_projection_correlations():
    x1, x2, y1 = _related(500, (20, 16, 14), 2)
    rows = pair_correlation_intervals([("p0", x1, x2), ("p1", x1, y1)], pca_variance=0.999, n_resamples=60, seed=4)
    for row, other in zip(rows, (x2, y1), strict=True):
        _, corr, ranks = cca_basis(x1, other, 0.999)
        assert row["mean_rho"] == pytest.approx(float(np.mean(corr)), abs=1e-10)  # what drives the projection
        assert row["ranks"] == list(ranks)
        assert row["low"] <= row["mean_rho"] <= row["high"] < 1.0
        assert 0.0 < row["null_mean_rho"] < row["low"]
        assert row["interval"] == format_interval(row["mean_rho"], row["low"], row["high"])
    assert [r["pair"] for r in rows] == ["p0", "p1"]
    again = pair_correlation_intervals([("p0", x1, x2)], pca_variance=0.999, n_resamples=60, seed=4)
    assert (again[0]["low"], again[0]["high"]) == (rows[0]["low"], rows[0]["high"])  # the seed fixes the interval


def test_plot_scores_with_null_writes_both_formats_and_checks_shapes(tmp_path):
    scores = np.array([[0.9, 0.2], [0.3, np.nan]])
    null = np.full((2, 2), 0.1)
    low, high = np.array([[0.85, np.nan], [np.nan, np.nan]]), np.array([[0.95, np.nan], [np.nan, np.nan]])
    files = plot_scores_with_null(scores, null, ["a", "b"], ["c", "d"], tmp_path / "fig", low=low, high=high)
    assert files["png"].stat().st_size > 0 and files["svg"].exists()
    svg = files["svg"].read_text()
    assert "0.90 (0.10)" in svg and "[0.85, 0.95]" in svg
    with pytest.raises(ValueError, match="null_mean has shape"):
        plot_scores_with_null(scores, np.zeros((3, 2)), ["a", "b"], ["c", "d"], tmp_path / "bad")


BASE = """
[data]
dataset = "multiple_features"
views = ["kar", "zer"]
[training]
preset = "multiview_default"
seeds = [0, 1]
"""


def test_bootstrap_config_keys():
    tables = "[two_initialisations]\n[projection]\npairs = 1\n[cross_sensor]\npairs = 1\n"
    cfg = parse_config(tomllib.loads(BASE + tables))
    assert cfg.two_initialisations.bootstrap == 200 and cfg.projection.bootstrap == 200
    assert cfg.cross_sensor.bootstrap == 200 and cfg.projection.to_dict()["bootstrap"] == 200
    cfg = parse_config(tomllib.loads(BASE + "[two_initialisations]\nbootstrap = 0\n[projection]\nbootstrap = 50\n"))
    assert cfg.two_initialisations.bootstrap == 0 and cfg.projection.bootstrap == 50
    for table in ("two_initialisations", "projection", "cross_sensor"):
        with pytest.raises(UserInputError, match=rf"\[{table}\] bootstrap must be"):
            parse_config(tomllib.loads(BASE + f"[{table}]\nbootstrap = 1\n"))
        with pytest.raises(UserInputError, match=rf"\[{table}\] bootstrap must be"):
            parse_config(tomllib.loads(BASE + f"[{table}]\nbootstrap = 0.5\n"))
    with pytest.raises(ValueError, match="bootstrap must be"):
        ProjectionConfig(bootstrap=-3)
