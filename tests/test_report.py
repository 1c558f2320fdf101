"""Report: figures, HTML page, the runner end to end on a tiny config, and the page opened in Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap

import numpy as np
import pytest

from ccalens.experiments.runner import builtin_config, list_builtin_configs, load_config, run_config
from ccalens.io import write_csv, write_json
from ccalens.report import plots
from ccalens.report.html import Report

TINY = textwrap.dedent(
    """
    title = "tiny"
    [data]
    dataset = "multiple_features"
    views = ["kar", "zer"]
    [model]
    hidden = [32, 16]
    dropout = 0.0
    [training]
    preset = "multiview_default"
    seeds = [0, 1]
    epochs = 3
    lr_milestones = []
    [projection]
    pairs = 1
    methods = ["cca_highest", "cca_lowest", "random_selection", "pca"]
    repeats = 2
    k_values = [1, 10, 16]
    [projection.retrain_hparams]
    epochs = 2
    [cross_sensor]
    pairs = 1
    methods = ["cca_highest", "cca_lowest"]
    k_values = [1, 10, 16]
    retrain = false
    [fusion]
    [learning_dynamics]
    sensor = "kar"
    checkpoint_every = 30
    [two_initialisations]
    sensor = "kar"
    [compression]
    sensor = "kar"
    k_values = [2, 10]
    repeats = 2
    [sanity]
    n_samples = 300
    abc_samples = 1500
    """
)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    cfg = root / "tiny.toml"
    cfg.write_text(TINY)
    out = root / "out"
    results = run_config(cfg, out, progress=False)
    return out, results


def test_runner_end_to_end(tiny_run):
    out, results = tiny_run
    for rel in ("report.html", "results.json", "config.toml", "timings.json", "models/training.csv",
                "projection/at_nc.csv", "cross_sensor/grid.json", "fusion/fusion.csv", "svcca/learning_dynamics.csv",
                "svcca/two_initialisations.json", "svcca/compression.csv", "sanity/abc.csv"):
        assert (out / rel).is_file(), rel
    saved = json.loads((out / "results.json").read_text())
    assert saved["networks"] == json.loads(json.dumps(results["networks"]))
    assert len(saved["networks"]) == 4
    assert {r["network"] for r in saved["projection_same_sensor_at_nc"]} == {"kar", "zer"}
    assert len(saved["cross_sensor_at_nc"]) == 4
    assert len(saved["fusion"]) == 1
    ld = json.loads((out / "svcca" / "learning_dynamics.json").read_text())
    sim = np.array(ld["similarity"])
    assert sim.shape[0] == 3 and sim.shape[1] >= 3
    np.testing.assert_allclose(sim[:, -1], 1.0, atol=1e-6)  # the last checkpoint is the final representation
    for png in out.rglob("*.png"):
        assert png.stat().st_size > 1000
        assert png.with_suffix(".svg").is_file()
    html = (out / "report.html").read_text()
    assert "images-pending" in html and "Fusion" in html and "tiny" in html
    assert not list(out.rglob(".*.tmp"))


def test_runner_rerun_resumes_training(tiny_run, tmp_path):
    out, results = tiny_run
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY.split("[projection]")[0] + "[fusion]\n")
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    again = run_config(cfg, copy, progress=False)
    assert again["timings_s"]["training"] < results["timings_s"]["training"]
    assert [r["val_accuracy"] for r in again["networks"]] == [r["val_accuracy"] for r in results["networks"]]


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[projekt]\n")
    with pytest.raises(ValueError, match="unknown tables"):
        load_config(bad)
    bad.write_text("[data\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(FileNotFoundError, match="no built-in config"):
        builtin_config("nope")


def test_builtin_configs_parse():
    names = list_builtin_configs()
    assert {"demo", "shl2018", "cifar10_resnet"} <= set(names)
    for name in names:
        cfg, _ = load_config(builtin_config(name))
        assert "title" in cfg


def test_io_writers_are_strict(tmp_path):
    p = write_json(tmp_path / "a.json", {"x": np.float32(1.5), "n": np.nan, "arr": np.arange(3)})
    assert json.loads(p.read_text()) == {"x": 1.5, "n": None, "arr": [0, 1, 2]}
    c = write_csv(tmp_path / "a.csv", [{"a": 1, "b": 0.25}, {"a": 2, "c": "z"}])
    assert c.read_text().splitlines() == ["a,b,c", "1,0.25,", "2,,z"]


def test_heatmap_and_report_without_browser(tmp_path):
    figs = plots.plot_heatmap(np.eye(3), ["a", "b", "c"], ["x", "y", "z"], tmp_path / "fig" / "h", title="t")
    assert figs["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in figs["svg"].read_bytes()[:500]
    with pytest.raises(ValueError, match="labels"):
        plots.plot_heatmap(np.eye(3), ["a"], ["x"], tmp_path / "bad")
    rep = Report(title="T <&>")
    sec = rep.section("S")
    sec.add_figure(figs, tmp_path, "cap")
    sec.tables.append(("tab", [{"name": "n", "value": 0.5}]))
    path = rep.write(tmp_path / "report.html")
    html = path.read_text()
    assert 'src="fig/h.png"' in html and "T &lt;&amp;&gt;" in html and "0.5000" in html


def _dump_dom(html_path, tmp_path) -> str:
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium/chrome binary on PATH (apt-get install chromium) to open the report")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chrome-profile'}", "--virtual-time-budget=5000", "--dump-dom",
           html_path.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_report_images_load_in_chromium(tiny_run, tmp_path):
    out, _ = tiny_run
    n_images = (out / "report.html").read_text().count("<img ")
    assert n_images >= 8
    dom = _dump_dom(out / "report.html", tmp_path)
    assert f"images-loaded: {n_images}/{n_images}" in dom, dom[-1500:]


def test_chromium_check_detects_a_broken_image(tmp_path):
    figs = plots.plot_heatmap(np.eye(2), ["a", "b"], ["x", "y"], tmp_path / "ok")
    rep = Report(title="broken")
    sec = rep.section("S")
    sec.add_figure(figs, tmp_path, "fine")
    sec.figures.append(("missing.png", None, "missing"))
    path = rep.write(tmp_path / "report.html")
    dom = _dump_dom(path, tmp_path)
    assert "images-broken: missing.png" in dom
