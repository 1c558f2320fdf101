"""Experiments on small synthetic features where the answer is known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ccalens.experiments.bases import (
    METHODS,
    cca_bases,
    k_grid,
    method_directions,
    project,
    project_features,
)
from ccalens.experiments.common import NetworkFeatures, RetrainConfig, pca_reduce, train_linear_layers
from ccalens.experiments.fusion import FusionConfig, fusion_study, run_fusion
from ccalens.experiments.projection import ProjectionConfig, run_projection
from ccalens.experiments.sanity import (
    abc_example,
    abc_noise_bound,
    abc_noise_sweep,
    demo_activations,
    invariance_sanity,
    svd_kept_dimensions,
)

NC = 5


def _class_data(seed: int = 0, n: int = 600, m: int = 300, p: int = 24, noise: float = 1.0):
    """Features whose class information lives in a known NC-dim subspace, for two 'networks' seeing the same
    samples: X = [class signal (NC dims), independent noise (p - NC dims)] @ random rotation."""
    rng = np.random.default_rng(seed)
    y_tr = np.arange(n) % NC
    y_va = np.arange(m) % NC
    means = 3.0 * np.linalg.qr(rng.standard_normal((NC, NC)))[0]  # well-separated classes

    def feats(y, rot, rng):
        sig = means[y] + 0.4 * rng.standard_normal((len(y), NC))
        return np.hstack([sig, noise * rng.standard_normal((len(y), p - NC))]) @ rot.T

    rot1 = np.linalg.qr(rng.standard_normal((p, p)))[0]
    rot2 = np.linalg.qr(rng.standard_normal((p, p)))[0]
    X1tr, X1va = feats(y_tr, rot1, rng), feats(y_va, rot1, rng)
    X2tr, X2va = feats(y_tr, rot2, rng), feats(y_va, rot2, rng)
    return y_tr, y_va, (X1tr, X1va, rot1), (X2tr, X2va, rot2), means


def _net(name, Xtr, Xva, y_tr, epochs=30):
    cfg = RetrainConfig(epochs=epochs, lr=1e-2, weight_decay=1e-4, init="zero")
    (W, b), = train_linear_layers([Xtr], y_tr, NC, cfg)
    return NetworkFeatures(name, Xtr, Xva, W, b)


@pytest.fixture(scope="module")
def data():
    return _class_data()


def test_k_grid():
    assert k_grid(10, 128) == [*range(1, 21), 32, 64, 128]
    assert k_grid(10, 100) == [*range(1, 21), 32, 64, 100]
    assert k_grid(8, 12) == list(range(1, 13))
    assert k_grid(3, 6) == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="n_features"):
        k_grid(3, 0)


def test_full_width_projection_reproduces_predictions(data):
    y_tr, _y_va, (X1tr, X1va, _), (X2tr, _, _), _ = data
    net = _net("x1", X1tr, X1va, y_tr)
    logits = net.logits(X1va)
    rng = np.random.default_rng(0)
    p = X1tr.shape[1]
    for method in METHODS:
        Xp = project(method, p, X1tr, X1va, X2_train=X2tr, rng=rng)
        np.testing.assert_allclose(net.logits(Xp), logits, atol=1e-8, err_msg=method)


def test_projection_keeps_the_mean_and_is_idempotent(data):
    _y_tr, _y_va, (X1tr, X1va, _), (X2tr, _, _), _ = data
    basis, _, _ = cca_bases(X1tr, X2tr)
    comps = np.arange(3)
    once = project_features(X1va, basis, comps)
    twice = project_features(once, basis, comps)
    np.testing.assert_allclose(twice, once, atol=1e-9)
    np.testing.assert_allclose(project_features(X1tr, basis, comps).mean(axis=0), X1tr.mean(axis=0), atol=1e-9)
    P = basis.projector(comps)
    np.testing.assert_allclose(P @ P, P, atol=1e-9)
    assert np.linalg.matrix_rank(P, tol=1e-8) == 3


def test_cca_highest_at_nc_recovers_accuracy_lowest_does_not(data):
    y_tr, y_va, (X1tr, X1va, _), (X2tr, _, _), _ = data
    net = _net("x1", X1tr, X1va, y_tr)
    cfg = ProjectionConfig(methods=("cca_highest", "cca_lowest", "cca_random", "random_selection"), repeats=3,
                           k_values=(1, NC, 2 * NC, 24), retrain_config=RetrainConfig(epochs=15, lr=1e-2))
    res = run_projection(net, X2tr, y_tr, y_va, cfg)
    base = res.baseline["original"]["accuracy"]
    assert base > 0.9
    # the class signal is the only thing X1 and X2 share: top canonical directions = class subspace
    assert res.canonical_correlations[: NC - 1].min() > 0.8
    assert res.canonical_correlations[NC:].max() < 0.35
    for clf in ("original", "retrained"):
        assert res.score_at("cca_highest", NC, clf) >= base - 0.03, clf
        assert res.score_at("cca_lowest", NC, clf) < 0.45, clf
        assert res.score_at("cca_highest", 24, clf) == pytest.approx(res.baseline[clf]["accuracy"], abs=0.02)
    # random methods: repeats give a mean and a std
    rows = [r for r in res.summary() if r["method"] == "cca_random" and r["k"] == NC]
    assert all(r["n_runs"] == 3 for r in rows)
    recs = [r for r in res.records if r["method"] == "random_selection" and r["k"] == NC and
            r["classifier"] == "original"]
    assert len(recs) == 3 and len({r["accuracy"] for r in recs}) > 1


def test_projection_result_is_deterministic_and_serialisable(data, tmp_path):
    y_tr, y_va, (X1tr, X1va, _), (X2tr, _, _), _ = data
    net = _net("x1", X1tr, X1va, y_tr, epochs=5)
    cfg = ProjectionConfig(methods=("cca_random", "pca"), repeats=2, k_values=(2, 5),
                           retrain_config=RetrainConfig(epochs=3))
    r1 = run_projection(net, X2tr, y_tr, y_va, cfg)
    r2 = run_projection(net, X2tr, y_tr, y_va, cfg)
    assert r1.records == r2.records
    paths = r1.save(tmp_path, "p")
    loaded = json.loads(paths["json"].read_text())
    assert loaded["k_grid"] == [2, 5]
    assert len(loaded["records"]) == (2 * 2 + 2) * 2
    assert paths["summary_csv"].read_text().splitlines()[0].startswith("method,k,k_effective,classifier")
    assert not list(tmp_path.glob(".*tmp"))


def test_method_directions_errors(data):
    _, _, (X1tr, _, _), _, _ = data
    with pytest.raises(ValueError, match="method must be one of"):
        method_directions("nope", 3, X_train=X1tr)
    with pytest.raises(ValueError, match="needs the canonical basis"):
        method_directions("cca_highest", 3, X_train=X1tr)
    with pytest.raises(ValueError, match="pass rng"):
        method_directions("random_selection", 3, X_train=X1tr)
    with pytest.raises(ValueError, match="X2_train"):
        project("cca_lowest", 3, X1tr, X1tr)
    with pytest.raises(ValueError, match="methods must be"):
        ProjectionConfig(methods=("cca",))
    # max_activation picks the neurons with the largest |activation|
    X = np.zeros((10, 4))
    X[:, 2] = np.linspace(-9, 1, 10)
    X[:, 0] = np.linspace(0, 3, 10)
    _, comps = method_directions("max_activation", 2, X_train=X)
    assert comps.tolist() == [0, 2]


def test_retraining_matches_separate_runs_and_is_deterministic(data):
    y_tr, _, (X1tr, _, _), (X2tr, _, _), _ = data
    cfg = RetrainConfig(epochs=2, group_size=2, init="zero")
    both = train_linear_layers([X1tr, X2tr], y_tr, NC, cfg)
    alone = train_linear_layers([X2tr], y_tr, NC, cfg)
    np.testing.assert_allclose(both[1][0], alone[0][0], rtol=1e-4, atol=1e-6)
    again = train_linear_layers([X1tr, X2tr], y_tr, NC, cfg)
    np.testing.assert_array_equal(both[0][0], again[0][0])
    with pytest.raises(ValueError, match="same shape"):
        train_linear_layers([X1tr, X2tr[:, :3]], y_tr, NC, cfg)


def test_pca_reduce_keeps_requested_variance():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((500, 6)) * np.array([10, 5, 1, 0.1, 0.01, 0.001])
    # variances 100, 25, 1, 0.01, ...: the top 3 hold 99.992% of the total, the top 4 99.99992%
    assert pca_reduce(X, 0.9999).rank == 3
    assert pca_reduce(X, 0.99999).rank == 4
    assert pca_reduce(X, 1.0).rank == 6
    with pytest.raises(ValueError, match="variance"):
        pca_reduce(X, 1.5)


def test_fusion_cca_sum_agrees_with_logit_average():
    """Both classifiers are linear in shared class components: CCA fusion ~ logit averaging."""
    y_tr, y_va, (X1tr, X1va, _), (X2tr, X2va, _), _ = _class_data(seed=3, noise=0.5)
    a = _net("a", X1tr, X1va, y_tr)
    b = _net("b", X2tr, X2va, y_tr)
    res = fusion_study(a, b, y_tr, y_va, FusionConfig())
    assert res.scores["logit_average"]["accuracy"] > 0.9
    assert res.agreement_with_logit_average["cca_sum_svm"] > 0.93
    assert res.agreement_with_logit_average["cca_sum_top_nc_svm"] > 0.93
    assert res.agreement_with_logit_average["logit_average"] == 1.0
    # class components (rows of W, centred) lie in the span of the top nc canonical variates
    assert max(res.principal_angles_deg["a_centred_variates"]) < 20
    assert len(res.principal_angles_deg["a_centred_variates"]) == NC - 1
    rows = res.rows()
    assert {r["method"] for r in rows} >= {"cca_sum_svm", "raw_concat_svm", "view_a"}


def test_fusion_grid_writes_files(tmp_path, data):
    y_tr, y_va, (X1tr, X1va, _), (X2tr, X2va, _), _ = data
    nets = {"a": _net("a", X1tr, X1va, y_tr, 5), "b": _net("b", X2tr, X2va, y_tr, 5)}
    out = run_fusion(nets, y_tr, y_va, out_dir=tmp_path)
    assert len(out) == 1
    assert json.loads((tmp_path / "fusion.json").read_text())["pairs"][0]["view_a"] == "a"
    assert (tmp_path / "fusion.csv").read_text().count("\n") == 1 + 8
    with pytest.raises(KeyError, match="zzz"):
        run_fusion(nets, y_tr, y_va, pairs=[("a", "zzz")])


def test_abc_example_is_the_appendix_one():
    # SVCCA appendix B.0.1: A 50-d; B = 50 directions aligned with A + 150 noise; C = the 50 aligned + 150 useful
    r = abc_example(n=2000)
    assert r["dims"] == {"A": 50, "B": 200, "C": 200}
    for pair in ("AB", "AC"):
        # A's 50 directions are in both B and C: 50 correlations of 1, whichever the aggregation
        assert len(r[pair]["cca_correlations"]) == 50 and min(r[pair]["cca_correlations"]) > 1 - 1e-9
        assert r[pair]["cca"] == pytest.approx(1.0, abs=1e-9)
        assert r[pair]["svcca"] > 0.99
    # what tells them apart: the SVD keeps ~50 directions of B and ~200 of C (appendix rule: singular values)
    assert r["kept"]["A"] == {"singular_values": 50, "variance": 50}
    assert r["kept"]["B"] == {"singular_values": 50, "variance": 50}
    assert r["kept"]["C"]["singular_values"] >= 195 and r["kept"]["C"]["variance"] >= 190
    rank_a, rank_b = r["AB"]["svcca_ranks"]
    assert rank_a == 50 and rank_b == 50 and r["AC"]["svcca_ranks"][1] >= 190


def test_abc_noise_bound_is_where_b_stops_keeping_only_its_shared_directions():
    # the appendix's rule: 50 / (50 + 150 sigma) >= 0.99  <=>  sigma <= 50 * 0.01 / (150 * 0.99)
    assert abc_noise_bound(0.99) == pytest.approx(0.5 / 148.5, rel=1e-12)
    assert abc_noise_bound(0.99, "variance") == pytest.approx(np.sqrt(0.5 / 148.5), rel=1e-12)
    with pytest.raises(ValueError, match="rule must be"):
        abc_noise_bound(0.99, "energy")
    # a finite sample follows the population bound away from it (within 20% either side)
    levels = []
    for rule in ("singular_values", "variance"):
        b = abc_noise_bound(0.99, rule)
        levels += [0.8 * b, 1.2 * b]
    sweep = abc_noise_sweep(levels, n=2000)
    assert sweep["B"]["singular_values"][:2] == [50, sweep["B"]["singular_values"][1]]
    assert sweep["B"]["singular_values"][1] > 50 and sweep["B"]["variance"][2] == 50 and sweep["B"]["variance"][3] > 50
    assert sweep["C"]["singular_values"] > 190
    # the example at the demo's noise: the appendix's rule keeps far more than B's 50 shared directions
    r = abc_example(n=2000, noise_std=0.01)
    assert r["kept"]["B"]["singular_values"] > 100 and r["kept"]["B"]["variance"] == 50


def test_sanity_conclusion_states_which_rule_tells_b_from_c():
    from ccalens.experiments.stages.sanity import sanity_conclusion

    inv = {"cca": [[1.0], [1.0]], "neuronwise": [[1.0], [0.1]], "noise_levels": [0.0],
           "transforms": ["identity", "rotation"]}
    rows = [{"pair": "A vs B", "plain CCA (mean rho)": 1.0, "SVCCA (mean rho)": 1.0},
            {"pair": "A vs C", "plain CCA (mean rho)": 1.0, "SVCCA (mean rho)": 0.99}]
    sweep = {"noise_levels": [1e-3, 0.01, 0.1], "shared": 50,
             "B": {"singular_values": [50, 143, 190], "variance": [50, 50, 136]},
             "C": {"singular_values": 198, "variance": 197}, "bound": {"singular_values": 0.0034, "variance": 0.058}}
    abc = {"noise_std": 0.01, "threshold": 0.99, "dims": {"A": 50, "B": 200, "C": 200},
           "kept": {"B": {"singular_values": 143, "variance": 50}, "C": {"singular_values": 198, "variance": 197}}}
    text = sanity_conclusion(inv, rows, abc, sweep)
    assert "keeps 143 of B's 200 directions and 198 of C's by the appendix's rule" in text
    assert "Verdict: only the variance rule tells B from C here" in text and "at 6 of its 6 points" in text
    low = {**abc, "noise_std": 1e-3, "kept": {**abc["kept"], "B": {"singular_values": 50, "variance": 50}}}
    assert "Verdict: both rules tell B from C here" in sanity_conclusion(inv, rows, low, sweep)
    wrong = {**sweep, "B": {"singular_values": [60, 143, 190], "variance": [50, 50, 136]}}
    assert "at 5 of its 6 points" in sanity_conclusion(inv, rows, abc, wrong)


def test_svd_kept_dimensions_rules():
    rng = np.random.default_rng(0)
    # singular values 10, 1, 1 (orthonormal centred columns): cumulative 10, 11, 12 of 12; variances 100, 101, 102
    Q = rng.standard_normal((500, 3))
    Q = np.linalg.qr(Q - Q.mean(axis=0))[0]
    Z = Q * np.array([10.0, 1.0, 1.0]) + 5.0  # an offset changes nothing
    assert svd_kept_dimensions(Z) == {"singular_values": 3, "variance": 2}  # 11/12 < 0.99; 101/102 >= 0.99
    assert svd_kept_dimensions(Z, threshold=0.9) == {"singular_values": 2, "variance": 1}  # 11/12; 100/102
    with pytest.raises(ValueError, match="threshold"):
        svd_kept_dimensions(Z, threshold=0.0)


def test_invariance_sanity():
    r = invariance_sanity(n=1000, d=16, noise_levels=(0.0, 0.5))
    cca, neuron = r["cca"], r["neuronwise"]
    np.testing.assert_allclose(cca, cca[[0]].repeat(4, axis=0), atol=1e-8)  # same for every transform
    assert cca[0, 0] == pytest.approx(1.0, abs=1e-9)
    perm, rot, scal = (r["transforms"].index(t) for t in ("permutation", "rotation", "scaling"))
    assert neuron[perm, 0] < 0.2 and neuron[rot, 0] < 0.5
    # a correlation IS invariant to per-neuron scaling: neuron-wise equals the identity's
    np.testing.assert_allclose(neuron[scal], neuron[0], atol=1e-12)
    # the single neuron: CCA recovers it from any mixture (1 without noise), its slot loses it
    np.testing.assert_allclose(r["neuron_cca"][:, 0], 1.0, atol=1e-9)
    np.testing.assert_allclose(r["neuron_cca"], r["neuron_cca"][[0]].repeat(4, axis=0), atol=1e-8)
    assert r["neuron_corr"][scal, 0] == pytest.approx(1.0, abs=1e-12)
    assert r["neuron_corr"][perm, 0] < 0.2 and r["neuron_corr"][rot, 0] < 0.9
    assert r["source"].startswith("synthetic") and len(r["neurons"]) == 10
    with pytest.raises(ValueError, match="top_k"):
        invariance_sanity(n=200, d=4, top_k=5)


@pytest.mark.slow  # trains a small demo network (about a second unloaded, with the torch import)
def test_invariance_sanity_on_a_neuron_of_a_demo_network():
    acts = demo_activations(view="pix", seed=0, epochs=1)
    assert acts.shape == (2000, 128) and np.isfinite(acts).all()
    r = invariance_sanity(acts, top_k=8, noise_levels=(0.0, 1.0))
    assert r["neurons"][0] == int(np.argmax(acts.std(axis=0)))  # the top neuron of the trained layer
    perm, rot, scal = (r["transforms"].index(t) for t in ("permutation", "rotation", "scaling"))
    np.testing.assert_allclose(r["neuron_cca"][:, 0], 1.0, atol=1e-8)  # recovered whatever the mixing
    assert r["neuron_corr"][scal, 0] == pytest.approx(1.0, abs=1e-12)
    assert r["neuron_corr"][perm, 0] < 0.99 and r["neuron_corr"][rot, 0] < 0.99
    recovered = np.asarray(r["trace"]["rotation"])
    np.testing.assert_allclose(recovered, r["trace"]["neuron"], atol=1e-8 * np.abs(recovered).max())
    # dead (constant) neurons cannot be chosen: top_k is bounded by the neurons that vary
    with pytest.raises(ValueError, match="top_k"):
        invariance_sanity(np.hstack([acts[:, :3], np.zeros((2000, 5))]), top_k=4)


@pytest.mark.parametrize("optimizer,class_weighted", [("adam", False), ("adam", True), ("sgd", False)])
def test_retraining_follows_torch_optimizers(optimizer, class_weighted):
    """The batched numpy trainer makes the same updates as torch.optim on one problem, same mini-batches."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    n, p, c = 90, 7, 3
    X = rng.standard_normal((n, p))
    y = rng.integers(0, c, n)
    y[:3] = [0, 1, 2]
    cfg = RetrainConfig(optimizer=optimizer, lr=0.05, weight_decay=0.01, epochs=3, batch_size=32,
                        class_weighted=class_weighted, seed=11, init="zero")
    (W, b), = train_linear_layers([X], y, c, cfg)
    # reference: torch.nn.Linear from zero, the same permutations
    lin = torch.nn.Linear(p, c)
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    opt = (torch.optim.Adam(lin.parameters(), lr=0.05, weight_decay=0.01) if optimizer == "adam"
           else torch.optim.SGD(lin.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01))
    counts = np.bincount(y, minlength=c)
    cw = torch.tensor(n / (c * counts), dtype=torch.float32) if class_weighted else None
    perm_rng = np.random.default_rng(11)
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    for _ in range(3):
        perm = perm_rng.permutation(n)
        for i in range(0, n, 32):
            idx = torch.tensor(perm[i : i + 32])
            loss = torch.nn.functional.cross_entropy(lin(Xt[idx]), yt[idx], weight=cw)
            opt.zero_grad()
            loss.backward()
            opt.step()
    np.testing.assert_allclose(W, lin.weight.detach().numpy(), atol=2e-5)
    np.testing.assert_allclose(b, lin.bias.detach().numpy(), atol=2e-5)


def test_sanity_noise_keys_are_checked_at_the_edge():
    from ccalens.errors import UserInputError
    from ccalens.experiments.config import parse_config

    assert parse_config({"sanity": {"abc_noise_std": 0.003}}).sanity.abc_noise_std == 0.003
    with pytest.raises(UserInputError, match=r"\[sanity\] abc_noise_std must be >= 0"):
        parse_config({"sanity": {"abc_noise_std": -1.0}})
    with pytest.raises(UserInputError, match=r"\[sanity\] abc_noise_levels must be positive"):
        parse_config({"sanity": {"abc_noise_levels": [0.0, 0.1]}})
