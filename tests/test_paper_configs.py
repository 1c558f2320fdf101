"""The paper configs (SHL 2018, CIFAR-10 ResNet) run end to end on files of the real formats.

The real data sets cannot be downloaded here, so these smoke runs use the clearly synthetic SHL folder writer and
fake CIFAR-10 pickles, with tiny training, to check that the configs and the code paths behind them work.
"""

from __future__ import annotations

import json
import warnings

import pytest

pytest.importorskip("torch")

from ccalens.core import UnderdeterminedWarning
from ccalens.data import write_synthetic_shl
from ccalens.data.cifar import write_fake_cifar
from ccalens.experiments.runner import run_config


def _run(name, out, overrides):
    with warnings.catch_warnings():
        # tiny smoke data: fewer samples than dimensions is expected here, and the engine says so
        warnings.simplefilter("ignore", UnderdeterminedWarning)
        return run_config(name, out, progress=False, overrides=overrides)


def test_shl2018_config_runs_on_synthetic_shl(tmp_path):
    root = write_synthetic_shl(tmp_path / "shl", n_segments_per_class=12, seed=0)
    res = _run("shl2018", tmp_path / "out", {
        "data": {"root": str(root), "n_val": 0.25},
        "training": {"epochs": 2, "seeds": [0, 1]},
        "projection": {"repeats": 1, "retrain": False, "pairs": 1},
        "cross_sensor": {"repeats": 1, "retrain": False, "pairs": 1},
        "learning_dynamics": {"checkpoint_every": 4, "probe_samples": 40},
        "two_initialisations": {"probe_samples": 40},
        "compression": {"probe_samples": 40},
    })
    assert res["metric"] == "macro_f1"
    assert {n["sensor"] for n in res["networks"]} == {"gyrometer", "accelerometer", "magnetometer"}
    assert (tmp_path / "out" / "report.html").is_file()
    json.loads((tmp_path / "out" / "results.json").read_text())


def test_cifar10_config_runs_on_fake_cifar(tmp_path):
    root = write_fake_cifar(tmp_path / "cifar", n_per_batch=40, seed=0)
    res = _run("cifar10_resnet", tmp_path / "out", {
        "data": {"root": str(root)},
        "model": {"depth": 8},
        "training": {"epochs": 1, "max_steps": 8, "batch_size": 32, "lr_milestones": [], "seeds": [0, 1]},
        "projection": {"repeats": 1, "retrain": False, "pairs": 1},
        "learning_dynamics": {"checkpoint_every": 4, "probe_samples": 40},
        "two_initialisations": {"probe_samples": 40},
        "compression": {"probe_samples": 40},
    })
    assert res["metric"] == "accuracy"
    assert (tmp_path / "out" / "report.html").is_file()
    # conv layers are compared by DFT-CCA (SVCCA appendix C), never through global average pooling
    ti = json.loads((tmp_path / "out" / "svcca" / "two_initialisations.json").read_text())
    assert "dft" in set(ti["conventions"].values())
    ld = json.loads((tmp_path / "out" / "svcca" / "learning_dynamics.json").read_text())
    assert "dft" in set(ld["conventions"].values())


def test_cifar10_moreau_config_is_their_network_and_schedule(tmp_path):
    from ccalens.experiments.runner import load_config
    from ccalens.experiments.sources import Source
    from ccalens.recipes import scheduled_lr

    cfg, _ = load_config("cifar10_moreau")
    assert cfg.model.to_kwargs() == {"depth": 38, "shortcut": "conv3x3"}
    tc = cfg.training.train
    assert (tc.optimizer, tc.lr, tc.weight_decay, tc.batch_size, tc.epochs) == ("adam", 1e-3, 0.0, 128, 80)
    assert tc.max_steps is None and not tc.class_weighted
    # lr / 3 every 20 epochs: 1e-3 for epochs 0-19, 1e-3 / 3 for 20-39, ..., 1e-3 / 27 for 60-79
    lrs = [scheduled_lr(tc, 0, e) for e in (0, 19, 20, 39, 40, 60, 79)]
    expected = [1e-3, 1e-3, 1e-3 / 3, 1e-3 / 3, 1e-3 / 9, 1e-3 / 27, 1e-3 / 27]
    assert lrs == pytest.approx(expected, rel=1e-12)
    src = Source("cifar", ["images"], 10, {}, {}, None, None, "cifar_resnet", cfg.model.to_kwargs())
    model = src.make_model("images")
    assert model.depth == 38 and sum(p.numel() for p in model.parameters()) == 584_602
    assert cfg.data.normalization == "imagenet" and cfg.projection.pairs == 3 and len(tc.seeds if hasattr(
        tc, "seeds") else cfg.training.seeds) == 6
    retrain = cfg.projection.retrain_config  # the network's own schedule, from its own weights
    assert retrain.lr_milestones == (20, 40, 60) and retrain.init == "original" and retrain.epochs == 80


@pytest.mark.slow
def test_cifar10_moreau_config_runs_on_fake_cifar(tmp_path):
    root = write_fake_cifar(tmp_path / "cifar", n_per_batch=40, seed=0)
    res = _run("cifar10_moreau", tmp_path / "out", {
        "data": {"root": str(root)},
        "model": {"depth": 8},  # the conv3x3 shortcuts at n = 1, to keep the smoke run short
        "training": {"epochs": 1, "max_steps": 2, "batch_size": 32, "seeds": [0, 1]},
        "projection": {"repeats": 1, "retrain": False, "pairs": 1},
    })
    assert res["metric"] == "accuracy"
    saved = json.loads((tmp_path / "out" / "models" / "training.json").read_text())["config"]
    assert saved["optimizer"] == "adam" and saved["lr_milestones"] == [20, 40, 60]
    assert saved["lr_gamma"] == pytest.approx(1 / 3)
    assert (tmp_path / "out" / "report.html").is_file()


def test_cifar10_resnet_config_says_what_it_does():
    """Its description names the convention its SVCCA stages use (DFT-CCA for conv maps, not pooling), and its
    retrained last layer follows Moreau et al.'s recipe, the one cifar10_moreau.toml uses."""
    from ccalens.experiments.runner import load_config

    cfg, _ = load_config("cifar10_resnet")
    assert "averaged over positions" not in cfg.description and "DFT-CCA" in cfg.description
    theirs = load_config("cifar10_moreau")[0].projection.retrain_config
    ours = cfg.projection.retrain_config
    fields = ("optimizer", "lr", "weight_decay", "batch_size", "epochs", "lr_milestones", "lr_milestone_unit",
              "lr_gamma", "init")
    assert {f: getattr(ours, f) for f in fields} == {f: getattr(theirs, f) for f in fields}
