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


# --------------------------------------------------------------------------------- user errors: one line, exit 2
def _one_error_line(capsys, *needles):
    """stderr is exactly one line ``ccalens ...: error: ...`` containing every needle, with no traceback."""
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ccalens") and ": error: " in lines[0], err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_bad_arguments_are_one_line(pair, capsys):
    tmp, X, _ = pair
    np.save(tmp / "a.npy", X)
    assert main(["compare", str(tmp / "a.npy"), str(tmp / "a.npy"), "--tol", "abc"]) == 2
    _one_error_line(capsys, "argument --tol", "'abc'")
    assert main(["compare", str(tmp / "a.npy")]) == 2
    _one_error_line(capsys, "ccalens compare: error:", "required: b")
    assert main(["frobnicate"]) == 2
    _one_error_line(capsys, "invalid choice: 'frobnicate'")
    assert main(["run"]) == 2
    _one_error_line(capsys, "argument config", "demo")
    assert main(["compare", str(tmp / "a.npy"), str(tmp / "a.npy"), "-o", str(tmp / "a.npy" / "r.json")]) == 2
    _one_error_line(capsys, "argument --output", "r.json")
    np.savez(tmp / "c.npz", h=X)
    assert main(["compare", str(tmp / "c.npz"), str(tmp / "a.npy"), "--key", "nope"]) == 2
    _one_error_line(capsys, "c.npz has no array named 'nope'")


def test_malformed_pt_is_one_line_and_debug_gives_the_traceback(pair, capsys):
    tmp, X, _ = pair
    np.save(tmp / "a.npy", X)
    (tmp / "b.pt").write_bytes(b"\x80\x02garbage")
    args = ["compare", str(tmp / "a.npy"), str(tmp / "b.pt")]
    assert main(args) == 2
    _one_error_line(capsys, "b.pt")
    from ccalens.errors import UserInputError

    with pytest.raises(UserInputError, match=r"b\.pt"):
        main(["--debug", *args])
    with pytest.raises(UserInputError, match=r"b\.pt"):
        main([*args, "--debug"])


def test_bfloat16_pt_on_the_command_line(pair, capsys):
    torch = pytest.importorskip("torch")
    tmp, X, _ = pair
    np.save(tmp / "a.npy", X)
    torch.save({"h": torch.from_numpy(X).to(torch.bfloat16)}, tmp / "b.pt")
    assert main(["compare", str(tmp / "a.npy"), str(tmp / "b.pt"), "-m", "linear_cka", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"]["linear_cka"]["score"] > 0.99


def test_pandas_csv_index_dropped_with_a_note(pair, capsys):
    tmp, X, _ = pair
    lines = ["," + ",".join(str(j) for j in range(X.shape[1]))]
    lines += [f"{i}," + ",".join(repr(float(v)) for v in row) for i, row in enumerate(X)]
    (tmp / "df.csv").write_text("\n".join(lines) + "\n")
    np.save(tmp / "a.npy", X)
    assert main(["compare", str(tmp / "a.npy"), str(tmp / "df.csv"), "-m", "linear_cka", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["results"]["linear_cka"]["score"] == pytest.approx(1.0)
    assert "note:" in captured.err and "df.csv: dropped the first column" in captured.err
    assert main(["compare", str(tmp / "a.npy"), str(tmp / "df.csv"), "--index-column", "keep", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["b"]["shape"] == [200, 7]


def _forget_modules(monkeypatch, missing, *prefixes):
    """Make ``import missing`` fail (as if not installed) and drop the cached ccalens modules that import it."""
    import sys

    monkeypatch.setitem(sys.modules, missing, None)
    for name in list(sys.modules):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            monkeypatch.delitem(sys.modules, name)


def test_missing_torch_says_which_extra(pair, capsys, monkeypatch):
    tmp, X, _ = pair
    np.save(tmp / "a.npy", X)
    (tmp / "b.pt").write_bytes(b"")
    _forget_modules(monkeypatch, "torch", "ccalens.models", "ccalens.experiments.runner")
    assert main(["compare", str(tmp / "a.npy"), str(tmp / "b.pt")]) == 2
    _one_error_line(capsys, "b.pt", "torch", 'pip install "ccalens[torch]"')
    assert main(["train-multiview", "--out", str(tmp / "mv"), "--views", "mor"]) == 2
    _one_error_line(capsys, "ccalens train-multiview: error:", 'pip install "ccalens[torch]"')
    (tmp / "t.toml").write_text('[data]\ndataset = "multiple_features"\nviews = ["mor"]\n[training]\nseeds = [0, 1]\n'
                                '[two_initialisations]\nsensor = "mor"\n')
    assert main(["run", str(tmp / "t.toml"), "--out", str(tmp / "o"), "--no-progress"]) == 2
    _one_error_line(capsys, "ccalens run: error:", 'pip install "ccalens[torch]"')


def test_missing_matplotlib_says_which_extra(tmp_path, capsys, monkeypatch):
    _forget_modules(monkeypatch, "matplotlib", "ccalens.experiments", "ccalens.report")
    assert main(["run", "sanity", "--out", str(tmp_path), "--no-progress"]) == 2
    _one_error_line(capsys, "matplotlib", 'pip install "ccalens[experiments]"')


@pytest.mark.parametrize(("text", "needles"), [
    ("sanity = 5\n", ["sanity must be a table", "c.toml"]),
    ('data = "x"\n[sanity]\nn_samples = 100\n', ["data must be a table", "c.toml"]),
    ('[sanity]\nn_samples = "many"\n', ["[sanity] n_samples must be a number", "'many'", "c.toml"]),
    ('threads = "two"\n[sanity]\nn_samples = 100\n', ["threads must be a number", "'two'"]),
    ('[data]\nviews = ["mor"]\n[training]\nepochs = "ten"\n[fusion]\n', ["[training] epochs", "'ten'"]),
    ('[data]\nviews = ["mor"]\n[model]\nhidden = ["big"]\n[fusion]\n', ["[model] hidden", "'big'"]),
    ('[data]\nviews = ["mor"]\n[training]\nseeds = 5\n[fusion]\n',
     ["[training] seeds must be a list of integers", "got the number 5"]),
    ('[data]\nviews = ["mor"]\n[training]\nseeds = [0, 1.5]\n[fusion]\n',
     ["[training] seeds must be a list of integers", "got the list [0, 1.5]"]),
    ('[data]\nviews = ["mor"]\n[training]\nmax_steps = "x"\n[fusion]\n', ["[training] max_steps must be a number"]),
    ('[data]\nviews = ["mor"]\n[training]\nlr_milestones = ["x"]\n[fusion]\n', ["[training] lr_milestones"]),
    ('[data]\nviews = ["mor"]\n[projection.retrain_hparams]\ngroup_size = "x"\n',
     ["[projection.retrain_hparams] group_size must be a number"]),
    ("[sanity\n", ["c.toml is not valid TOML"]),
])
def test_config_errors_name_the_key(tmp_path, capsys, text, needles):
    (tmp_path / "c.toml").write_text(text)
    assert main(["run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    _one_error_line(capsys, *needles)
    assert not (tmp_path / "out" / "report.html").exists()


def test_reusing_out_after_changing_the_architecture(tmp_path, capsys):
    pytest.importorskip("torch")
    config = ('[data]\ndataset = "multiple_features"\nviews = ["mor"]\n[model]\nhidden = [{width}]\n'
              "[training]\nseeds = [0]\nepochs = 1\nmax_steps = 2\n[fusion]\n")
    out = tmp_path / "out"
    (tmp_path / "c.toml").write_text(config.format(width=8))
    from ccalens.models.checkpoints import list_checkpoints

    # the quickest run that trains: it stops after training, as one view has no pair to fuse
    assert main(["run", str(tmp_path / "c.toml"), "--out", str(out), "--no-progress"]) == 2
    _one_error_line(capsys, "[fusion] needs at least two sensors")
    assert list_checkpoints(out / "models" / "checkpoints" / "mor_seed0")
    (tmp_path / "c.toml").write_text(config.format(width=6))
    assert main(["run", str(tmp_path / "c.toml"), "--out", str(out), "--no-progress"]) == 2
    _one_error_line(capsys, "checkpoint", "mor_seed0", "does not fit the model",
                    "delete the checkpoint folder")


def test_read_only_shl_folder_suggests_cache_dir(tmp_path, capsys, monkeypatch):
    import errno

    import ccalens.data.shl as shl
    from ccalens.data import write_synthetic_shl

    root = write_synthetic_shl(tmp_path / "shl", n_segments_per_class=2, seed=1)

    def read_only(path, *args, **kwargs):  # what a folder without write permission gives (tests may run as root)
        raise PermissionError(errno.EACCES, "Permission denied", str(path.parent))

    monkeypatch.setattr(shl, "atomic_write", read_only)
    (tmp_path / "c.toml").write_text(
        f'[data]\ndataset = "shl2018"\nroot = "{root}"\nn_val = 0.25\n[data.sensors]\ngyrometer = "Gyr_y"\n'
        '[training]\npreset = "shl_paper"\nseeds = [0]\nepochs = 1\n[fusion]\n')
    assert main(["run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    _one_error_line(capsys, "Permission denied", ".ccalens_cache", "cache_dir")


def test_internal_errors_are_one_line_exit_1(pair, capsys, monkeypatch):
    import ccalens.cli as cli

    tmp, X, _ = pair
    np.save(tmp / "a.npy", X)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug\nwith two lines")

    monkeypatch.setattr(cli, "compare", broken)
    assert main(["compare", str(tmp / "a.npy"), str(tmp / "a.npy")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: a bug with two lines" in err and "--debug" in err
    monkeypatch.setenv("CCALENS_DEBUG", "1")
    with pytest.raises(RuntimeError, match="a bug"):
        main(["compare", str(tmp / "a.npy"), str(tmp / "a.npy")])


@pytest.mark.slow  # two Python start-ups (torch imported): 3-8 s on a busy machine
def test_traceback_only_with_debug_in_a_real_process(pair):
    import os
    import subprocess
    import sys
    from pathlib import Path

    tmp, X, _ = pair
    np.save(tmp / "a.npy", X)
    (tmp / "b.pt").write_text("not torch")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("CCALENS_DEBUG", None)
    cmd = [sys.executable, "-m", "ccalens.cli", "compare", str(tmp / "a.npy"), str(tmp / "b.pt")]
    plain = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert plain.returncode == 2
    assert plain.stderr.count("\n") == 1 and "b.pt is not a torch file" in plain.stderr
    debug = subprocess.run([*cmd, "--debug"], capture_output=True, text=True, env=env, timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "UserInputError" in debug.stderr


def test_compare_bootstrap_keep_and_method(pair, capsys):
    tmp, X, Y = pair
    np.save(tmp / "a.npy", X)
    np.save(tmp / "b.npy", Y)
    argv = ["compare", str(tmp / "a.npy"), str(tmp / "b.npy"), "-m", "svcca", "-m", "linear_cka", "--json"]
    assert main([*argv, "--bootstrap", "200", "--seed", "3", "--keep", "variance", "--method", "dual"]) == 0
    out = json.loads(capsys.readouterr().out)
    svcca = out["results"]["svcca"]
    low, high = svcca["bootstrap"]["confidence_interval"]
    assert low <= svcca["score"] <= high and svcca["details"]["keep"] == "variance"
    assert svcca["details"]["plan"]["method"] == "dual" and svcca["null_mean_rho"] > 0
    assert "bootstrap_distribution" not in svcca["bootstrap"]
    import ccalens

    assert svcca["score"] == pytest.approx(ccalens.svcca(X, Y, keep="variance").score, rel=1e-9)
    assert main([*argv, "--memory-budget", "oops"]) == 2
    assert "--memory-budget" in capsys.readouterr().err


def test_matrix_plot_writes_png_and_svg(pair, capsys):
    pytest.importorskip("matplotlib")
    tmp, X, Y = pair
    for name, arr in (("a", X), ("b", Y), ("c", X[:, :3])):
        np.save(tmp / f"{name}.npy", arr)
    files = [str(tmp / f"{n}.npy") for n in "abc"]
    assert main(["matrix", *files, "-m", "linear_cka", "--plot", str(tmp / "heat"), "--memory-budget", "1G"]) == 0
    assert (tmp / "heat.png").stat().st_size > 0 and (tmp / "heat.svg").stat().st_size > 0


def test_compare_models_command(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    from ccalens.models.nets import PixCNN, ViewMLP

    for name, model in (("cnn", PixCNN(width=4)), ("mlp", ViewMLP(240, 10, hidden=(16, 8)))):
        kwargs = {"width": 4} if name == "cnn" else {"in_features": 240, "n_classes": 10, "hidden": [16, 8]}
        arch = type(model).__name__
        torch.save({"architecture": arch, "kwargs": kwargs, "state_dict": model.state_dict()}, tmp_path / f"{name}.pt")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(0, 6, (80, 240)).astype(np.float32))
    argv = ["compare-models", str(tmp_path / "cnn.pt"), str(tmp_path / "mlp.pt"), "--data", str(tmp_path / "x.npy"),
            "-m", "linear_cka", "--json", "--plot", str(tmp_path / "heat")]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["row_names"] == ["relu0", "relu1", "relu2", "relu3", "output"]
    assert out["col_names"] == ["body.relu0", "body.relu1", "output"]
    assert (tmp_path / "heat.png").is_file() and (tmp_path / "heat.svg").is_file()
    # a planted pickle instead of a model file: one line, exit 2, nothing run
    import pickle

    class Boom:
        def __reduce__(self):
            return (print, ("PLANTED",))

    (tmp_path / "bad.pt").write_bytes(pickle.dumps(Boom()))
    assert main([*argv[:1], str(tmp_path / "bad.pt"), *argv[2:]]) == 2
    captured = capsys.readouterr()
    assert "PLANTED" not in captured.out and "bad.pt" in captured.err


def test_the_old_variance_flag_is_an_unknown_argument(pair, capsys):
    tmp, X, Y = pair
    np.save(tmp / "a.npy", X)
    np.save(tmp / "b.npy", Y)
    assert main(["compare", str(tmp / "a.npy"), str(tmp / "b.npy"), "-m", "svcca", "--variance", "0.9"]) == 2
    assert "--variance" in capsys.readouterr().err  # now: --keep variance --threshold F
