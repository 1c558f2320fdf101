"""Compression (SVCCA paper, Fig. 5 / App.5): the appendix's rule by default, train and test lines."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ccalens  # noqa: E402
from ccalens.experiments.activations import layer_activations  # noqa: E402
from ccalens.experiments.compression import compression  # noqa: E402
from ccalens.models import ViewMLP, named_feature_layers  # noqa: E402


def _setup() -> tuple:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = ViewMLP(12, 3, hidden=(16, 8)).eval()
    X = rng.standard_normal((300, 12)).astype(np.float32)
    y = rng.integers(0, 3, 300)
    layer = named_feature_layers(model)[0]
    return model, layer, X, y


@pytest.mark.parametrize("keep", ["singular_values", "variance"])
def test_compression_uses_svcccas_rule_and_draws_train_and_test(keep: str) -> None:
    model, layer, X, y = _setup()
    acts = layer_activations(model, X, [layer, "logits"])
    comp = compression(model, layer, X[:200], X[200:], y[200:], acts["logits"][:200], y_train=y[:200],
                       keep=keep, threshold=0.9, repeats=2, k_values=[1, 2, 4, 16])
    assert (comp["keep"], comp["threshold"]) == (keep, 0.9)
    # the canonical basis spans the PCA subspace SVCCA keeps under the same rule
    ref = ccalens.svcca(acts[layer][:200], acts["logits"][:200], keep=keep, threshold=0.9)  # type: ignore[arg-type]
    assert comp["svcca_rank"] == ref.rank_x
    for cols in comp["methods"].values():
        assert len(cols["train_accuracy_mean"]) == len(cols["accuracy_mean"]) == 4
    # at k = width the projection is the identity on the kept PCA subspace of PCA: exactly the uncompressed network
    assert comp["methods"]["pca"]["train_accuracy_mean"][-1] == pytest.approx(comp["baseline"]["train"]["accuracy"])
    assert comp["methods"]["pca"]["accuracy_mean"][-1] == pytest.approx(comp["baseline"]["accuracy"])


def test_rules_keep_different_ranks_and_labels_are_checked() -> None:
    model, layer, X, y = _setup()
    acts = layer_activations(model, X, [layer, "logits"])
    ranks = {keep: compression(model, layer, X[:200], X[200:], y[200:], acts["logits"][:200], keep=keep,
                               threshold=0.8, repeats=1, k_values=[2])["svcca_rank"]
             for keep in ("singular_values", "variance")}
    assert ranks["singular_values"] > ranks["variance"]  # sum |s| reaches 80% later than sum s^2
    with pytest.raises(ValueError, match="y_train has 5 labels"):
        compression(model, layer, X[:200], X[200:], y[200:], acts["logits"][:200], y_train=y[:5], k_values=[2])


def test_figures_draw_the_train_lines_and_the_recovered_signal(monkeypatch, tmp_path) -> None:
    """App.5's train and test lines and App.1's recovered signal are drawn, not only computed."""
    from ccalens.experiments.sanity import invariance_sanity
    from ccalens.report import svcca_plots

    drawn = []
    monkeypatch.setattr(svcca_plots, "save_figure", lambda fig, stem: drawn.append(fig) or {})
    model, layer, X, y = _setup()
    acts = layer_activations(model, X, [layer, "logits"])
    comp = compression(model, layer, X[:200], X[200:], y[200:], acts["logits"][:200], y_train=y[:200],
                       repeats=2, k_values=[1, 4])
    svcca_plots.plot_compression([comp], tmp_path / "c")
    labels = [line.get_label() for line in drawn[-1].axes[0].get_lines()]
    training = sum(lab.endswith("(training)") for lab in labels)
    assert training == sum(lab.endswith("(validation)") for lab in labels) - 1 == 3
    inv = invariance_sanity(n=300)
    svcca_plots.plot_invariance(inv, tmp_path / "i")
    fig = drawn[-1]
    assert len(fig.axes) == 2 + len(inv["transforms"])
    lines = fig.axes[2].get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), inv["trace"]["neuron"][:60])
    np.testing.assert_allclose(lines[1].get_ydata(), inv["trace"]["identity"][:60])
