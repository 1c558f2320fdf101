"""The command line: compare and matrix on every supported file format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ccalens.cli import main
from ccalens.core.measures import svcca


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 6))
    Y = X[:, :4] @ rng.standard_normal((4, 5)) + 0.5 * rng.standard_normal((200, 5))
    return tmp_path, X, Y


def test_compare_npy_json(pair, capsys):
    tmp, X, Y = pair
    np.save(tmp / "a.npy", X)
    np.save(tmp / "b.npy", Y.astype(np.float32))
    assert main(["compare", str(tmp / "a.npy"), str(tmp / "b.npy"), "--measure", "svcca", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"]["svcca"]["score"] == pytest.approx(svcca(X, Y.astype(np.float32)).score, abs=1e-12)
    assert out["a"]["shape"] == [200, 6]


def test_compare_table_npz_csv_pt(pair, capsys):
    tmp, X, Y = pair
    np.savez(tmp / "a.npz", feats=X)
    np.savetxt(tmp / "b.csv", Y, delimiter=",", header="f0,f1,f2,f3,f4", comments="")
    assert main(["compare", str(tmp / "a.npz"), str(tmp / "b.csv"), "-o", str(tmp / "r.json")]) == 0
    text = capsys.readouterr().out
    for measure in ("cca", "svcca", "pwcca", "linear_cka", "procrustes"):
        assert measure in text
    saved = json.loads((tmp / "r.json").read_text())
    assert saved["results"]["svcca"]["score"] == pytest.approx(svcca(X, Y).score, abs=1e-9)
    torch = pytest.importorskip("torch")
    torch.save({"h": torch.from_numpy(Y)}, tmp / "b.pt")
    assert main(["compare", str(tmp / "a.npz"), str(tmp / "b.pt"), "-m", "linear_cka", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"]["linear_cka"]["score"] > 0


def test_compare_errors_are_clear(pair, capsys):
    tmp, X, Y = pair
    np.save(tmp / "a.npy", X)
    np.save(tmp / "b.npy", Y[:150])
    assert main(["compare", str(tmp / "a.npy"), str(tmp / "b.npy")]) == 2
    assert "sample counts differ: X has 200, Y has 150" in capsys.readouterr().err
    assert main(["compare", str(tmp / "a.npy"), str(tmp / "missing.npy")]) == 2
    assert "no such feature file" in capsys.readouterr().err
    np.savez(tmp / "two.npz", a=X, b=X)
    assert main(["compare", str(tmp / "two.npz"), str(tmp / "a.npy")]) == 2
    assert "several arrays" in capsys.readouterr().err


def test_matrix_command(pair, capsys):
    tmp, X, Y = pair
    for name, arr in (("x", X), ("y", Y), ("x2", X * 3)):
        np.save(tmp / f"{name}.npy", arr)
    files = [str(tmp / f"{n}.npy") for n in ("x", "y", "x2")]
    assert main(["matrix", *files, "-m", "cca", "--json"]) == 0
    M = np.array(json.loads(capsys.readouterr().out)["scores"])
    assert M.shape == (3, 3) and M[0, 2] == pytest.approx(1.0)


def test_delegated_train_multiview(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "mv"
    assert main(["train-multiview", "--out", str(out), "--views", "mor", "--seeds", "0", "--epochs", "2",
                 "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "mor" in json.dumps(summary)


def test_run_lists_builtin_configs(capsys):
    assert main(["run", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("demo", "shl2018", "cifar10_resnet"):
        assert name in out


def test_run_unknown_config_is_a_clear_error(tmp_path, capsys):
    assert main(["run", "no_such_config", "--out", str(tmp_path)]) == 2
    assert "no built-in config" in capsys.readouterr().err
