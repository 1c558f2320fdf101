"""The SVCCA studies as joint computations: the same numbers as pair-by-pair calls; conv layers by DFT-CCA."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import ccalens
from ccalens.conv import dft_linear_cka
from ccalens.experiments.activations import layer_activations
from ccalens.experiments.two_initialisations import two_init_heatmap

torch = pytest.importorskip("torch")


def _acts(seed: int, conv: str) -> dict[str, np.ndarray]:
    from ccalens.models.nets import PixCNN

    torch.manual_seed(seed)
    model = PixCNN(width=4)
    X = np.random.default_rng(0).uniform(0, 6, size=(120, 240)).astype(np.float32)
    return layer_activations(model, X, ["relu1", "relu2", "relu3", "logits"], conv=conv)


def test_two_init_heatmap_dense_equals_pairwise_calls() -> None:
    a, b = _acts(0, "pooled"), _acts(1, "pooled")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = two_init_heatmap(a, b)
        for measure, grid in out["measures"].items():
            fn = getattr(ccalens, measure)
            expected = np.array([[fn(a[i], b[j]).score for j in b] for i in a])
            np.testing.assert_allclose(grid, expected, atol=1e-6, err_msg=measure)
    assert out["keep"] == "singular_values" and set(out["conventions"].values()) == {"dense"}
    assert np.isfinite(out["null_mean_rho"]).all()


def test_conv_layers_go_through_dft_cca() -> None:
    a, b = _acts(0, "maps"), _acts(1, "maps")
    assert a["relu1"].ndim == 4 and a["relu3"].ndim == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = two_init_heatmap(a, b)
        direct = ccalens.conv_similarity(a["relu1"], b["relu2"], convention="dft", measure="svcca")
    assert out["conventions"]["relu1|relu2"] == "dft"
    assert out["conventions"]["relu1|relu3"] == "pooled"  # a map against a vector: its zero frequency
    assert out["conventions"]["relu3|logits"] == "dense"
    i, j = out["layers_a"].index("relu1"), out["layers_b"].index("relu2")
    assert out["similarity"][i, j] == pytest.approx(direct.score, abs=1e-12)


def test_conv_linear_cka_cells_are_the_fourier_form() -> None:
    """Linear CKA of a map against a map or a vector is the Parseval form (dft_linear_cka); vectors against vectors
    stay dense. The cells equal direct calls, so asking the registry (not the measure's name) changed no number."""
    a, b = _acts(0, "maps"), _acts(1, "maps")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = two_init_heatmap(a, b)
        grid = out["measures"]["linear_cka"]
        for i, x in enumerate(out["layers_a"]):
            for j, y in enumerate(out["layers_b"]):
                if a[x].ndim == 4 or b[y].ndim == 4:
                    expected = dft_linear_cka(a[x], b[y]).score
                else:
                    expected = ccalens.linear_cka(a[x], b[y]).score
                assert grid[i, j] == pytest.approx(expected, rel=1e-10, abs=1e-12), (x, y)
