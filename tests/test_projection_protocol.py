"""Moreau et al.'s projection protocol: several network pairs, nested random draws per view, the last layer
retrained from the original weights with the network's own schedule, population std."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from ccalens.experiments.bases import identity_basis
from ccalens.experiments.common import NetworkFeatures, RetrainConfig, train_linear_layers
from ccalens.experiments.projection import (
    ProjectionConfig,
    _nested_draws,
    run_projection,
    run_projection_pairs,
)

NC = 4


def _problem(seed: int, n: int = 240, m: int = 120, p: int = 12):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, NC, n + m)
    means = rng.standard_normal((NC, p)) * 2.5
    X = means[y] + rng.standard_normal((n + m, p))
    return X[:n], X[n:], y[:n], y[n:]


def _network(name: str, Xtr: np.ndarray, Xva: np.ndarray, y_tr: np.ndarray) -> NetworkFeatures:
    (W, b), = train_linear_layers([Xtr], y_tr, NC, RetrainConfig(epochs=20, lr=1e-2, init="zero"))
    return NetworkFeatures(name=name, train=Xtr, val=Xva, weight=W, bias=b)


def test_retraining_starts_from_the_original_layer() -> None:
    Xtr, _, y_tr, _ = _problem(0)
    rng = np.random.default_rng(1)
    W0, b0 = rng.standard_normal((NC, Xtr.shape[1])), rng.standard_normal(NC)
    cfg = RetrainConfig(epochs=1, lr=1e-9, weight_decay=0.0)
    (W, b), = train_linear_layers([Xtr], y_tr, NC, cfg, initial_layer=(W0, b0))
    np.testing.assert_allclose(W, W0, atol=1e-5)
    np.testing.assert_allclose(b, b0, atol=1e-5)
    (Wz, _), = train_linear_layers([Xtr], y_tr, NC, RetrainConfig(epochs=1, lr=1e-9, init="zero"))
    assert np.abs(Wz).max() < 1e-5
    with pytest.raises(ValueError, match="initial_layer"):
        train_linear_layers([Xtr], y_tr, NC, cfg)


def test_learning_rate_schedule_matches_torch_multistep() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    n, p, c = 96, 6, 3
    X = rng.standard_normal((n, p))
    y = rng.integers(0, c, n)
    W0, b0 = rng.standard_normal((c, p)) * 0.1, rng.standard_normal(c) * 0.1
    cfg = RetrainConfig(lr=0.05, weight_decay=0.01, epochs=4, batch_size=32, seed=3, lr_milestones=(1, 3),
                        lr_gamma=1 / 3)
    (W, b), = train_linear_layers([X], y, c, cfg, initial_layer=(W0, b0))
    lin = torch.nn.Linear(p, c)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(W0, dtype=torch.float32))
        lin.bias.copy_(torch.tensor(b0, dtype=torch.float32))
    opt = torch.optim.Adam(lin.parameters(), lr=0.05, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[1, 3], gamma=1 / 3)
    perm_rng = np.random.default_rng(3)
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    for _ in range(4):
        perm = perm_rng.permutation(n)
        for i in range(0, n, 32):
            idx = torch.tensor(perm[i : i + 32])
            loss = torch.nn.functional.cross_entropy(lin(Xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    np.testing.assert_allclose(W, lin.weight.detach().numpy(), atol=2e-5)
    np.testing.assert_allclose(b, lin.bias.detach().numpy(), atol=2e-5)
    assert cfg.lr_at(1, 0) == 0.05 and cfg.lr_at(99, 1) == pytest.approx(0.05 / 3)


def test_retrain_overrides_are_strict() -> None:
    base = {"optimizer": "adam", "lr": 1e-3, "epochs": 40, "lr_milestones": [30], "checkpoint_every": 24}
    cfg = RetrainConfig.from_training(base, {"epochs": 12})
    assert cfg.epochs == 12 and cfg.lr_milestones == (30,) and cfg.init == "original"
    with pytest.raises(ValueError, match="epoch"):
        RetrainConfig.from_training(base, {"epoch": 12})


def test_random_subsets_are_nested_across_k() -> None:
    Xtr, _, _, _ = _problem(2)
    neurons = identity_basis(Xtr)
    ks = [1, 2, 3, 5, 8, 12]
    draws = _nested_draws("random_selection", ks, np.random.default_rng(0), X_train=Xtr, cca=None, neurons=neurons)
    kept = [set(comps.tolist()) for _, _, _, comps in draws]
    assert all(a <= b for a, b in pairwise(kept))
    proj = _nested_draws("random_projection", ks, np.random.default_rng(0), X_train=Xtr, cca=None, neurons=neurons)
    bases = {id(basis) for _, _, basis, _ in proj}
    assert len(bases) == 1  # one Haar basis, its first k directions at every k


def test_pairs_pool_into_one_band_and_views_get_their_own_draws() -> None:
    pairs = []
    for seed in range(2):
        Xtr, Xva, y_tr, y_va = _problem(0)
        noise = np.random.default_rng(10 + seed)
        X1tr = Xtr + 0.3 * noise.standard_normal(Xtr.shape)
        X1va = Xva + 0.3 * noise.standard_normal(Xva.shape)
        X2tr = Xtr @ noise.standard_normal((Xtr.shape[1], Xtr.shape[1]))
        pairs.append((_network(f"v/seed{seed}", X1tr, X1va, y_tr), X2tr))
    cfg = ProjectionConfig(methods=("cca_highest", "random_selection"), repeats=3, k_values=(2, NC, 8),
                           retrain=False)
    res = run_projection_pairs(pairs, y_tr, y_va, cfg, name="acc", references=["seed2", "seed3"])
    assert res.n_pairs == 2
    rows = {(r["method"], r["k"]): r for r in res.summary() if r["classifier"] == "original"}
    assert rows[("cca_highest", NC)]["n_runs"] == 2  # a deterministic method gets a band over pairs
    assert rows[("random_selection", NC)]["n_runs"] == 6
    recs = [r["accuracy"] for r in res.records if r["method"] == "random_selection" and r["k"] == NC
            and r["classifier"] == "original"]
    assert rows[("random_selection", NC)]["accuracy_std"] == pytest.approx(float(np.std(recs)))  # ddof = 0
    other = run_projection_pairs(pairs, y_tr, y_va, cfg, name="gyr", references=["seed2", "seed3"])
    mine = [r["accuracy"] for r in res.records if r["method"] == "random_selection"]
    theirs = [r["accuracy"] for r in other.records if r["method"] == "random_selection"]
    assert mine != theirs  # another view draws other subsets
    again = run_projection_pairs(pairs, y_tr, y_va, cfg, name="acc", references=["seed2", "seed3"])
    assert again.records == res.records
    single = run_projection(pairs[0][0], pairs[0][1], y_tr, y_va, cfg)
    assert single.n_pairs == 1


def test_log_k_ticks_never_collide() -> None:
    from ccalens.report.plots import _k_ticks

    ticks = _k_ticks([*range(1, 21), 32, 64, 128], 10)
    assert 10 in ticks and 128 in ticks and 8 not in ticks  # "8" and "10" printed as "810" before
    assert all(np.log2(b) - np.log2(a) >= 0.5 for a, b in pairwise(ticks))


@pytest.mark.parametrize("c", [1, 2, 7, 8, 9, 10, 16, 17, 31])
def test_retraining_row_reductions_are_the_softmax_sums_and_maxima(c):
    """The retraining loop's strided row sum and maximum (any number of classes c) against NumPy's reductions:
    maxima exactly (a maximum does not round), sums within the bound of two orderings of c float32 terms."""
    from ccalens.experiments.common import _row_max, _row_sum
    from tests.numerics import assert_close_computed_two_ways

    rng = np.random.default_rng(c)
    P = (rng.standard_normal((5, 9, c)) * rng.uniform(0.1, 10.0, (5, 9, c))).astype(np.float32)
    out = np.empty((5, 9, 1), dtype=np.float32)
    np.testing.assert_array_equal(_row_max(P, out), P.max(axis=2, keepdims=True))
    positive = np.exp(P - P.max(axis=2, keepdims=True))
    assert_close_computed_two_ways(_row_sum(positive, out), positive.sum(axis=2, keepdims=True),
                                   dtype=np.float32, k=c)
    assert_close_computed_two_ways(_row_sum(P, out), P.sum(axis=2, keepdims=True), dtype=np.float32, k=c,
                                   scale=float(np.abs(P).sum(axis=2).max()))
