"""models.inference goes through ccalens.extract (the one capture path) and keeps its results."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import ccalens.extract
from ccalens.models import ViewMLP
from ccalens.models.inference import extract_penultimate, predict_logits


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
    np.testing.assert_array_equal(logits, want_logits)
    np.testing.assert_array_equal(feats, want_feats)


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
