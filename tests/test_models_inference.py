"""models.inference goes through ccalens.extract (the one capture path) and keeps its results."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import ccalens.extract
from ccalens.models import ViewMLP
from ccalens.models.inference import extract_penultimate, predict_logits
from tests.numerics import assert_close_computed_two_ways


def _model() -> ViewMLP:
    torch.manual_seed(0)
    return ViewMLP(12, 4, hidden=(16, 8), dropout=0.5)


def test_inference_calls_extract_and_matches_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    model.train()
    X = np.random.default_rng(0).standard_normal((23, 12))  # float64 in, float32 model
    calls: list[object] = []
    real = ccalens.extract.extract

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(kwargs.get("forward"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ccalens.extract, "extract", spy)
    logits = predict_logits(model, X, batch_size=5)
    feats = extract_penultimate(model, torch.as_tensor(X), batch_size=7)
    assert calls == [None, "features"]
    assert model.training  # mode restored
    with torch.no_grad():
        model.eval()
        Xt = torch.as_tensor(X, dtype=torch.float32)
        want_logits, want_feats = model(Xt).numpy(), model.features(Xt).numpy()
    assert logits.dtype == np.float32 and feats.dtype == np.float32
    # batches of 5 and 7 against one of 23: the same products summed in another order (BLAS picks its kernel by
    # shape), so they agree to the forward error of the chain of layers, not bit for bit
    fan_in, magnitude = _forward_error_scale(model, Xt)
    assert_close_computed_two_ways(logits, want_logits, dtype=np.float32, k=fan_in, scale=magnitude)
    assert_close_computed_two_ways(feats, want_feats, dtype=np.float32, k=fan_in, scale=magnitude)


def _forward_error_scale(model: ViewMLP, X: torch.Tensor) -> tuple[int, float]:
    """``(sum of the fan-ins, largest |W| |h| + |b| along the chain)`` of the model's linear layers on ``X``:
    the size and magnitude that bound the float32 error of its forward pass (tests/numerics.py)."""
    with torch.no_grad():
        h = ((X - model.input_mean) / model.input_std).abs()
        fan_in, magnitude = 0, 0.0
        for layer in model.modules():
            if isinstance(layer, torch.nn.Linear):
                h = h @ layer.weight.abs().T + layer.bias.abs()
                fan_in += layer.in_features
                magnitude = max(magnitude, float(h.max()))
    return fan_in, magnitude


def test_inference_on_a_dataloader_and_bad_inputs() -> None:
    model = _model()
    X = torch.randn(10, 12)
    loader = DataLoader(TensorDataset(X, torch.zeros(10, dtype=torch.int64)), batch_size=4)
    np.testing.assert_allclose(predict_logits(model, loader), predict_logits(model, X), rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match="X must be"):
        predict_logits(model, [[0.0] * 12])
    with pytest.raises(ValueError, match="batch_size"):
        predict_logits(model, X, batch_size=0)
    with pytest.raises(ValueError, match="X is empty"):
        extract_penultimate(model, X[:0])
    with pytest.raises(TypeError, match="features"):
        extract_penultimate(torch.nn.Linear(3, 2), torch.randn(2, 3))
