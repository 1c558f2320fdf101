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
