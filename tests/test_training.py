"""Tests of the training loop: learning, determinism, checkpoints + resume, class weights, multi-view."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ccalens.data import load_multiple_features
from ccalens.models import ViewMLP
from ccalens.models.checkpoints import list_checkpoints, load_checkpoint
from ccalens.models.inference import extract_penultimate, predict_logits
from ccalens.models.loop import class_weights, seed_everything, train_classifier
from ccalens.models.train_config import TrainConfig


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def kar():
    ds = load_multiple_features(["kar"])
    return ds.split("kar", "train"), ds.split("kar", "val")


def _mlp(seed: int = 0, d: int = 64) -> ViewMLP:
    seed_everything(seed)
    return ViewMLP(d, 10, hidden=(64, 32), dropout=0.2)


def test_view_mlp_learns_far_above_chance(kar):
    (Xtr, ytr), (Xva, yva) = kar
    model = _mlp()
    model.set_input_normalization(Xtr.mean(0), Xtr.std(0))
    cfg = TrainConfig.multiview_default(epochs=5, progress=False)
    hist = train_classifier(model, (Xtr, ytr), (Xva, yva), cfg)
    assert len(hist.epoch) == 5 and len(hist.val_accuracy) == 5 and len(hist.val_macro_f1) == 5
    assert hist.total_steps == 5 * int(np.ceil(1500 / 64))
    assert hist.train_loss[-1] < hist.train_loss[0]
    assert hist.val_accuracy[-1] > 0.85  # chance is 0.10
    assert not model.training
    logits = predict_logits(model, Xva, batch_size=37)
    feats = extract_penultimate(model, Xva, batch_size=100)
    assert logits.shape == (500, 10) and feats.shape == (500, 32)
    np.testing.assert_allclose(
        logits,
        feats @ model.classifier.weight.detach().numpy().T + model.classifier.bias.detach().numpy(),
        rtol=1e-5,
        atol=1e-5,
    )
    assert abs(np.mean(logits.argmax(1) == yva) - hist.val_accuracy[-1]) < 1e-12


def test_training_is_deterministic_given_the_seed(kar):
    (Xtr, ytr), _ = kar
    cfg = TrainConfig.multiview_default(epochs=2, progress=False, seed=3)
    a, b = _mlp(1), _mlp(1)
    ha = train_classifier(a, (Xtr, ytr), None, cfg)
    hb = train_classifier(b, (Xtr, ytr), None, cfg)
    assert ha.train_loss == hb.train_loss
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)
    c = _mlp(1)
    train_classifier(c, (Xtr, ytr), None, TrainConfig.multiview_default(epochs=2, progress=False, seed=4))
    assert not torch.equal(a.classifier.weight, c.classifier.weight)


def test_checkpoints_and_resume_match_an_uninterrupted_run(kar, tmp_path):
    (Xtr, ytr), (Xva, yva) = kar
    Xtr, ytr = Xtr[:640], ytr[:640]  # 10 steps per epoch
    cfg = TrainConfig(
        optimizer="sgd",
        lr=0.05,
        momentum=0.9,
        epochs=3,
        batch_size=64,
        lr_milestones=(15,),
        lr_milestone_unit="step",
        checkpoint_every=7,
        seed=5,
        progress=False,
    )
    full = _mlp(0)
    h_full = train_classifier(full, (Xtr, ytr), (Xva, yva), cfg, checkpoint_dir=tmp_path / "full")
    steps = [s for s, _ in h_full.checkpoints]
    assert steps == [0, 7, 14, 21, 28, 30]
    assert [s for s, _ in list_checkpoints(tmp_path / "full")] == steps
    assert not list(tmp_path.glob("full/*.tmp"))
    first = load_checkpoint(h_full.checkpoints[0][1])
    assert first["step"] == 0 and set(first) >= {"model", "optimizer", "epoch", "rng_state", "config"}

    # interrupted mid-epoch at step 13 (checkpoint written at the stop), then resumed in a fresh model
    part = _mlp(0)
    cut = TrainConfig(**{**cfg.to_dict(), "max_steps": 13})
    h_cut = train_classifier(part, (Xtr, ytr), (Xva, yva), cut, checkpoint_dir=tmp_path / "resumed")
    assert h_cut.total_steps == 13 and h_cut.checkpoints[-1][0] == 13
    resumed = _mlp(99)  # different initial weights: everything must come from the checkpoint
    h_res = train_classifier(resumed, (Xtr, ytr), (Xva, yva), cfg, checkpoint_dir=tmp_path / "resumed")
    for (k, pa), pb in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), k
    assert h_res.total_steps == 30
    assert h_res.train_loss == pytest.approx(h_full.train_loss, rel=1e-6)
    assert h_res.val_accuracy == h_full.val_accuracy
    assert [s for s, _ in h_res.checkpoints] == [0, 7, 13, 14, 21, 28, 30]

    # resuming a finished run does nothing more
    again = _mlp(7)
    h_again = train_classifier(again, (Xtr, ytr), (Xva, yva), cfg, checkpoint_dir=tmp_path / "full")
    assert torch.equal(again.classifier.weight, full.classifier.weight)
    assert h_again.val_accuracy == h_full.val_accuracy

    # a different config in the same folder is refused
    other = TrainConfig(**{**cfg.to_dict(), "lr": 0.01})
    with pytest.raises(ValueError, match="different config"):
        train_classifier(_mlp(0), (Xtr, ytr), None, other, checkpoint_dir=tmp_path / "full")


def test_learning_rate_milestones_in_steps_and_epochs(kar):
    (Xtr, ytr), _ = kar
    Xtr, ytr = Xtr[:128], ytr[:128]  # 2 steps per epoch
    h = train_classifier(
        _mlp(),
        (Xtr, ytr),
        None,
        TrainConfig(epochs=4, batch_size=64, lr=1.0e-3, lr_milestones=(2, 3), progress=False),
    )
    assert h.lr == pytest.approx([1e-3, 1e-3, 1e-4, 1e-5])
    h = train_classifier(
        _mlp(),
        (Xtr, ytr),
        None,
        TrainConfig(
            epochs=3, batch_size=64, lr=1e-3, lr_milestones=(3,), lr_milestone_unit="step", progress=False
        ),
    )
    assert h.lr == pytest.approx([1e-3, 1e-4, 1e-4])  # lr of the last step of each epoch (steps 1, 3, 5)


def test_dataloader_input_and_class_weighted_loss(kar):
    (Xtr, ytr), (Xva, yva) = kar
    keep = np.concatenate([np.flatnonzero(ytr == c)[: 10 + 10 * c] for c in range(10)])  # imbalanced
    ds = TensorDataset(torch.from_numpy(Xtr[keep]), torch.from_numpy(ytr[keep]))
    loader = DataLoader(ds, batch_size=32, shuffle=True, generator=torch.Generator())
    val_loader = DataLoader(TensorDataset(torch.from_numpy(Xva), torch.from_numpy(yva)), batch_size=100)
    cfg = TrainConfig(epochs=4, class_weighted=True, progress=False, seed=2)
    a = _mlp()
    a.set_input_normalization(Xtr.mean(0), Xtr.std(0))
    ha = train_classifier(a, loader, val_loader, cfg)
    assert len(ha.val_macro_f1) == 4 and ha.val_macro_f1[-1] > 0.5
    b = _mlp()
    b.set_input_normalization(Xtr.mean(0), Xtr.std(0))
    hb = train_classifier(b, loader, val_loader, cfg)
    assert ha.train_loss == hb.train_loss  # the loader's generator is reseeded per epoch


def test_class_weights():
    y = np.array([0, 0, 0, 1, 2, 2])
    w = class_weights(y, 4)
    np.testing.assert_allclose(w, [6 / (4 * 3), 6 / 4, 6 / (4 * 2), 0.0])
    assert w.dtype == np.float32
    # balanced weights make every present class carry the same total weight
    counts = np.bincount(y, minlength=4)
    np.testing.assert_allclose((w * counts)[:3], np.full(3, 6 / 4))
    with pytest.raises(ValueError, match="labels must lie"):
        class_weights(np.array([0, 5]), 3)


def test_bad_inputs_raise_clear_errors(kar):
    (Xtr, ytr), _ = kar
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="checkpoint_every"):
        TrainConfig(checkpoint_every=-1)
    with pytest.raises(ValueError, match="lr_milestone_unit"):
        TrainConfig(lr_milestone_unit="minute")
    cfg = TrainConfig(epochs=1, progress=False)
    with pytest.raises(ValueError, match="samples"):
        train_classifier(_mlp(), (Xtr, ytr[:10]), None, cfg)
    with pytest.raises(ValueError, match="train labels"):
        train_classifier(_mlp(), (Xtr, ytr + 5), None, cfg)
    with pytest.raises(TypeError, match="DataLoader or a pair"):
        train_classifier(_mlp(), Xtr, None, cfg)
    with pytest.raises(TypeError, match="classifier"):
        train_classifier(torch.nn.Linear(64, 10), (Xtr, ytr), None, cfg)


def test_presets():
    shl = TrainConfig.shl_paper()
    assert (shl.optimizer, shl.lr, shl.weight_decay, shl.batch_size, shl.epochs, shl.class_weighted) == (
        "adam",
        1e-3,
        1e-3,
        64,
        50,
        True,
    )
    cif = TrainConfig.cifar_resnet_paper()
    assert (cif.optimizer, cif.lr, cif.momentum, cif.weight_decay, cif.batch_size) == (
        "sgd",
        0.1,
        0.9,
        1e-4,
        128,
    )
    assert cif.lr_milestones == (32000, 48000) and cif.lr_milestone_unit == "step" and cif.max_steps == 64000
    assert TrainConfig.multiview_default(epochs=3).epochs == 3


def test_train_multiview_command(tmp_path):
    from ccalens.models.train_multiview import load_view_model, main, train_multiview

    cfg = TrainConfig.multiview_default(epochs=3)
    summary = train_multiview(tmp_path / "mv", load_multiple_features(["mor", "kar"]), seeds=(0, 1), config=cfg,
                              progress=False)
    assert [(r["view"], r["seed"]) for r in summary["runs"]] == [
        ("kar", 0),
        ("kar", 1),
        ("mor", 0),
        ("mor", 1),
    ]
    assert json.loads((tmp_path / "mv" / "summary.json").read_text())["runs"][0]["name"] == "kar_seed0"
    arrays = np.load(tmp_path / "mv" / "kar_seed0.npz")
    assert arrays["features_train"].shape == (1500, 128) and arrays["features_val"].shape == (500, 128)
    assert arrays["logits_val"].shape == (500, 10) and arrays["classifier_weight"].shape == (10, 128)
    assert arrays["input_mean"].shape == (64,)
    ds = load_multiple_features(["kar"])
    np.testing.assert_allclose(
        arrays["input_mean"], ds.views["kar"][ds.train_idx].mean(0), rtol=1e-5, atol=1e-5
    )
    model = load_view_model(tmp_path / "mv" / "kar_seed0.pt")
    np.testing.assert_allclose(
        extract_penultimate(model, ds.views["kar"][ds.val_idx]), arrays["features_val"], rtol=1e-5, atol=1e-5
    )
    assert summary["runs"][0]["val_accuracy"] > 0.8
    assert not list((tmp_path / "mv").glob("*.tmp"))
    assert (
        main(
            [
                "--out",
                str(tmp_path / "cli"),
                "--views",
                "mor",
                "--seeds",
                "3",
                "--epochs",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (tmp_path / "cli" / "mor_seed3.npz").is_file()


def test_resnet_trains_on_fake_cifar_with_augmentation(tmp_path):
    from ccalens.data.cifar import CifarAugmented, load_cifar10, write_fake_cifar
    from ccalens.models import CifarResNet

    data = load_cifar10(write_fake_cifar(tmp_path, n_per_batch=20, seed=0))
    train = DataLoader(
        CifarAugmented(data.x_train, data.y_train, mean=data.mean, std=data.std),
        batch_size=25, shuffle=True, generator=torch.Generator(),
    )  # fmt: skip
    seed_everything(0)
    model = CifarResNet(depth=8, shortcut="B")
    cfg = TrainConfig.cifar_resnet_paper(lr=0.05, max_steps=12, checkpoint_every=4, progress=False)
    hist = train_classifier(model, train, (data.x_test, data.y_test), cfg, checkpoint_dir=tmp_path / "ckpt")
    assert hist.total_steps == 12 and [s for s, _ in hist.checkpoints] == [0, 4, 8, 12]
    assert len(hist.val_accuracy) == 3 and np.isfinite(hist.train_loss).all()
    assert hist.lr == pytest.approx([0.05] * 3)  # milestones 32k / 48k not reached
    feats = extract_penultimate(model, data.x_test)
    assert feats.shape == (20, 64)


def test_train_network_is_seeding_then_building_then_training(kar):
    from ccalens.models.loop import train_network

    (X, y), _ = kar
    cfg = TrainConfig(epochs=2, batch_size=64, progress=False, seed=123)

    def make() -> ViewMLP:
        return ViewMLP(X.shape[1], 10, hidden=(16,))

    model, history = train_network(make, (X, y), None, cfg, seed=5)
    seed_everything(5)
    ref = make()
    train_classifier(ref, (X, y), None, TrainConfig(epochs=2, batch_size=64, progress=False, seed=5))
    for a, b in zip(model.state_dict().values(), ref.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert history.total_steps == 2 * int(np.ceil(X.shape[0] / 64)) and not model.training
    assert cfg.seed == 123  # the caller's config is left as it was


def test_models_do_not_import_data_experiments_or_report():
    import ast
    from pathlib import Path

    import ccalens.models

    for path in Path(ccalens.models.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level (the train-multiview command line loads its data set in main())
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(("ccalens.data", "ccalens.experiments", "ccalens.report")), (path, name)
