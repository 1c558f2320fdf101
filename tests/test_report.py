"""Report: figures, HTML page, the runner end to end on a tiny config, and the page opened in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap

import numpy as np
import pytest

from ccalens.experiments.runner import builtin_config, list_builtin_configs, load_config, run_config
from ccalens.io import write_csv, write_json
from ccalens.report import heatmaps, plots
from ccalens.report.html import Report, count, format_number, format_percent, words

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
    from ccalens.report.findings import findings_markdown

    assert (out / "findings.md").read_text() == findings_markdown(saved)  # what the README's block is made from
    assert saved["machine"]["cores"] >= 1 and "The run took" in findings_markdown(saved)
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
    assert 'data-image-check="images-pending"' in html and "Fusion" in html and "tiny" in html
    assert not list(out.rglob(".*.tmp"))


def _conclusion(results, start):
    found = [text for title, text in results["conclusions"].items() if title.startswith(start)]
    assert len(found) == 1, (start, list(results["conclusions"]))
    return found[0]


def test_report_sections_open_with_conclusions_computed_from_the_results(tiny_run):
    out, _ = tiny_run
    results = json.loads((out / "results.json").read_text())
    html = (out / "report.html").read_text()
    for text in results["conclusions"].values():  # each one is on the page, as the opening of its section
        assert f'<p class="conclusion">{text}</p>' in html.replace("&#x27;", "'")
    # networks: lowest and highest validation accuracy
    acc = [r["val_accuracy"] for r in results["networks"]]
    text = _conclusion(results, "Networks")
    assert f"from {format_number(min(acc))}" in text and f"to {format_number(max(acc))}" in text
    # projection: CCA_highest at k = nc relative to the unprojected score, mean over the views
    rows = results["projection_same_sensor_at_nc"]
    high = np.mean([r["cca_highest @nc (original)"] / r["baseline (original)"] for r in rows])
    low = np.mean([r["cca_lowest @nc (original)"] / r["baseline (original)"] for r in rows])
    text = _conclusion(results, "Projection experiment, same sensor")
    assert f"keeps on average {format_percent(high)} with the original last layer (CCA_lowest: {format_percent(low)})" \
        in text and f"over the {len(rows)} sensors" in text
    # sensor grid: best and worst pairs of different sensors
    rel = {r["network"]: r["cca_highest @nc (original)"] / r["baseline (original)"]
           for r in results["cross_sensor_at_nc"]}
    off = {k: v for k, v in rel.items() if k.split("<-")[0] != k.split("<-")[1]}
    best, worst = max(off, key=off.get), min(off, key=off.get)
    text = _conclusion(results, "Projection experiment, grid")
    assert f"from {format_percent(off[worst])} ({worst.replace('<-', ' on directions from ')})" in text
    assert f"to {format_percent(off[best])} ({best.replace('<-', ' on directions from ')})" in text
    # fusion: agreement of CCA-sum fusion with logit averaging
    agree = np.mean([r["agree CCA-sum/logit"] for r in results["fusion"]])
    assert f"logit averaging on {format_percent(agree)} of the validation samples" in _conclusion(results, "Fusion")
    # SVCCA studies: first layer to converge; the two-initialisation diagonal
    ld = [r for r in results["learning_dynamics"] if r["first step with SVCCA >= 0.9"] is not None]
    first = min(ld, key=lambda r: r["first step with SVCCA >= 0.9"])
    text = _conclusion(results, "SVCCA")
    assert f"(step {first['first step with SVCCA >= 0.9']})" in text
    diag = np.mean(list(results["two_initialisations_diagonal"].values()))
    assert f"matching layers have mean SVCCA {format_number(diag)}" in text
    comp = json.loads((out / "svcca" / "compression.json").read_text())["results"][0]
    target = 0.95 * comp["baseline"]["accuracy"]
    k_svcca = next((k for k, v in zip(comp["k"], comp["methods"]["svcca"]["accuracy_mean"], strict=True)
                    if v >= target), None)
    assert (f"{comp['layer']} (width {comp['width']}, directions against other seed): "
            + ("no k tried" if k_svcca is None else f"k = {k_svcca}") + " with SVCCA") in text
    # sanity: the A/B/C numbers
    ab, ac = results["abc"]
    text = _conclusion(results, "Sanity")
    assert f"A vs B at {format_number(ab['plain CCA (mean rho)'])}" in text
    assert f"SVCCA at {format_number(ab['SVCCA (mean rho)'])} and {format_number(ac['SVCCA (mean rho)'])}" in text


def test_report_has_no_scaffolding_and_scrolls_wide_tables(tiny_run):
    out, _ = tiny_run
    html = (out / "report.html").read_text()
    page = html.split("<h3>Config used</h3>")[0]  # the user's own config text is quoted as is
    for word in ("issue", "DESIGN", "TODO", "test", "images-pending</p>"):
        assert word.lower() not in page.lower(), word
    assert html.count("<table>") == html.count("<div class='table-wrap'><table>")
    assert ".table-wrap{max-width:100%;overflow-x:auto}" in html
    # numbers with at most 3 significant digits (integers as they are)
    decimals = re.findall(r"<td>(-?\d+\.\d+)</td>", html)
    assert decimals and all(len(d.replace("-", "").replace(".", "").lstrip("0")) <= 3 for d in decimals), decimals


def test_conclusions_follow_the_numbers():
    from ccalens.experiments.stages.fusion import fusion_conclusion
    from ccalens.experiments.stages.projection import projection_conclusion, sensor_grid_conclusion
    from ccalens.experiments.stages.svcca import learning_dynamics_conclusion, two_initialisations_conclusion

    rows = [{"baseline (original)": 0.8, "cca_highest @nc (original)": 0.8, "cca_lowest @nc (original)": 0.2},
            {"baseline (original)": 0.5, "cca_highest @nc (original)": 0.45, "cca_lowest @nc (original)": 0.1}]
    assert projection_conclusion(rows, 10, "accuracy") == (
        "CCA_highest at k = nc = 10 keeps on average 95.0% with the original last layer (CCA_lowest: 22.5%) of the "
        "unprojected accuracy over the 2 sensors.")
    rel = np.array([[1.0, 0.5], [0.9, 0.98]])
    text = sensor_grid_conclusion(["a", "b"], rel, "macro_f1", "original")
    assert "keeps 99.0% of the unprojected macro_f1 on average" in text
    assert "from 50.0% (a on directions from b) to 90.0% (b on directions from a)" in text
    fusion_rows = [{"pair": "a + b", "agree CCA-sum/logit": 0.9, "CCA-sum SVM": 0.7, "logit avg": 0.75},
                   {"pair": "a + c", "agree CCA-sum/logit": 0.8, "CCA-sum SVM": 0.8, "logit avg": 0.85}]
    assert ("on 85.0% of the validation samples on average over the 2 sensor pairs (lowest: 80.0% for a + c); "
            "its mean accuracy is 0.75 against 0.8 for logit averaging.") in fusion_conclusion(fusion_rows, "accuracy")
    ld = [{"layer": "fc1", "first step with SVCCA >= 0.9": 40}, {"layer": "fc2", "first step with SVCCA >= 0.9": 10},
          {"layer": "logits", "first step with SVCCA >= 0.9": None}]
    text = learning_dynamics_conclusion(ld)
    assert "layer fc2 is the first" in text and "(step 10), fc1 the last (step 40)" in text
    assert "do not converge in order" in text
    assert "mean SVCCA 0.8 against 0.2" in two_initialisations_conclusion(np.array([[0.9, 0.2], [0.2, 0.7]]))


def test_numbers_print_with_three_significant_digits():
    assert [format_number(v) for v in (0.99612, 0.5, 12.345, 1234.5, 3, np.int64(7), np.float32(0.25), None, "x",
                                       0.0, float("nan"), 1.5e-5, np.bool_(True))] == \
        ["0.996", "0.5", "12.3", "1,234", "3", "7", "0.25", "", "x", "0", "nan", "1.5e-05", "True"]
    assert format_percent(0.99612) == "99.6%" and format_percent(0.9999, 2) == "99.99%"
    assert count(1, "sensor") == "1 sensor" and count(6, "sensor") == "6 sensors"
    assert words(["a"]) == "a" and words(["a", "b", "c"]) == "a, b and c"


def test_runner_rerun_resumes_training(tiny_run, tmp_path):
    out, results = tiny_run
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY.split("[projection]")[0] + "[fusion]\n")
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    again = run_config(cfg, copy, progress=False)
    # Every network resumes from its last checkpoint: nothing is trained again (not a timing, which load can invert).
    assert [r["resumed_from_step"] for r in results["networks"]] == [0] * len(results["networks"])
    assert [r["resumed_from_step"] for r in again["networks"]] == [r["steps"] for r in results["networks"]]
    assert [r["val_accuracy"] for r in again["networks"]] == [r["val_accuracy"] for r in results["networks"]]


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[projekt]\n")
    with pytest.raises(ValueError, match="unknown top-level table or key 'projekt'"):
        load_config(bad)
    bad.write_text("[sanity]\nn_sampels = 300\n")
    with pytest.raises(ValueError, match=r"bad.toml: \[sanity\] unknown key 'n_sampels'"):
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
        cfg, text = load_config(builtin_config(name))
        assert cfg.title and cfg.title in text


def test_io_writers_are_strict(tmp_path):
    p = write_json(tmp_path / "a.json", {"x": np.float32(1.5), "n": np.nan, "arr": np.arange(3)})
    assert json.loads(p.read_text()) == {"x": 1.5, "n": None, "arr": [0, 1, 2]}
    c = write_csv(tmp_path / "a.csv", [{"a": 1, "b": 0.25}, {"a": 2, "c": "z"}])
    assert c.read_text().splitlines() == ["a,b,c", "1,0.25,", "2,,z"]


def test_heatmap_and_report_without_browser(tmp_path):
    figs = heatmaps.plot_heatmap(np.eye(3), ["a", "b", "c"], ["x", "y", "z"], tmp_path / "fig" / "h", title="t")
    assert figs["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in figs["svg"].read_bytes()[:500]
    with pytest.raises(ValueError, match="labels"):
        heatmaps.plot_heatmap(np.eye(3), ["a"], ["x"], tmp_path / "bad")
    rep = Report(title="T <&>")
    sec = rep.section("S")
    sec.add_figure(figs, tmp_path, "cap")
    sec.tables.append(("tab", [{"name": "n", "value": 0.5}]))
    path = rep.write(tmp_path / "report.html")
    html = path.read_text()
    assert 'src="fig/h.png"' in html and "T &lt;&amp;&gt;" in html and "<td>0.5</td>" in html


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
    figs = heatmaps.plot_heatmap(np.eye(2), ["a", "b"], ["x", "y"], tmp_path / "ok")
    rep = Report(title="broken")
    sec = rep.section("S")
    sec.add_figure(figs, tmp_path, "fine")
    sec.figures.append(("missing.png", None, "missing"))
    path = rep.write(tmp_path / "report.html")
    dom = _dump_dom(path, tmp_path)
    assert "images-broken: missing.png" in dom


def test_report_html_does_not_import_experiments():
    import ast
    from pathlib import Path

    import ccalens.report.html as page

    imported = [n.module for n in ast.walk(ast.parse(Path(page.__file__).read_text()))
                if isinstance(n, ast.ImportFrom)]
    assert imported and not [m for m in imported if m and m.startswith("ccalens.experiments")]


def test_headline_similarities_carry_intervals_and_the_null(tiny_run):
    """results.json, the files and the page carry the 95% bootstrap intervals; the null heat map is drawn."""
    out, _ = tiny_run
    results = json.loads((out / "results.json").read_text())
    diag = results["two_initialisations_diagonal_interval"]
    assert set(diag) == set(results["two_initialisations_diagonal"])
    for layer, row in diag.items():
        assert row["svcca"] == pytest.approx(results["two_initialisations_diagonal"][layer])
        assert row["low"] <= row["high"] and row["confidence_level"] == 0.95
        assert re.fullmatch(r"\d\.\d\d \[\d\.\d\d, \d\.\d\d\]", row["interval"])
    ti = json.loads((out / "svcca" / "two_initialisations.json").read_text())
    assert len(ti["diagonal_interval"]) == len(diag)
    assert (out / "svcca" / "two_initialisations_null.png").is_file()
    same = results["projection_mean_canonical_correlation"]
    assert [r["pair"] for r in same] == ["kar: seed 0 vs seed 1", "zer: seed 0 vs seed 1"]
    grid = results["cross_sensor_mean_canonical_correlation"]
    assert len(grid) == 3  # unordered pairs of the 2 sensors, the same sensor included
    for row in same + grid:
        assert 0 < row["low"] <= row["high"] <= 1 and row["null_mean_rho"] is not None
        assert row["interval"].startswith(f"{row['mean_rho']:.2f} [")
    assert (out / "projection" / "mean_canonical_correlation.json").is_file()
    html = (out / "report.html").read_text()
    assert same[0]["interval"] in html and next(iter(diag.values()))["interval"] in html
    assert "two_initialisations_null.png" in html
    # an interval beside its estimate (the replicates' upward bias) is said in the page, from the run's numbers
    beside = any(not r["low"] <= r["svcca"] <= r["high"] for r in diag.values()) or any(
        not r["low"] <= r["mean_rho"] <= r["high"] for r in same + grid)
    assert ("the interval lies beside the estimate" in html) == beside
    assert all("bias" in r for r in [*diag.values(), *same, *grid])
    two_csv = (out / "svcca" / "two_initialisations.csv").read_text()
    assert "svcca_low" in two_csv.splitlines()[0]


def _screenshot(html_path, tmp_path, width: int) -> bytes:
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium/chrome binary on PATH (apt-get install chromium) to open the report")
    shot = tmp_path / f"page_{width}.png"
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'chrome-shot'}",
           "--hide-scrollbars", f"--window-size={width},2400", f"--screenshot={shot}", html_path.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    return shot.read_bytes()


def test_report_in_chromium_no_element_overflows_its_box_on_screen_or_in_print(tiny_run, tmp_path):
    """A screenshot is taken, and the page's own layout check (data-overflow-check) finds no content wider than its
    box; the print rules (forced on, in the headless window's 800 px, about an A4 page's width) make wide tables
    wrap instead of scrolling."""
    out, _ = tiny_run
    assert _screenshot(out / "report.html", tmp_path, 1280)[:8] == b"\x89PNG\r\n\x1a\n"
    dom = _dump_dom(out / "report.html", tmp_path)
    assert 'data-overflow-check="overflow: none"' in dom, re.findall(r'data-overflow-check="[^"]*"', dom)
    html = (out / "report.html").read_text()
    assert "@media print{" in html
    printed = out / "report_print.html"  # beside the page, so the figures' relative links still resolve
    printed.write_text(html.replace("@media print{", "@media all{"))  # headless window: 800 px, about A4's width
    try:
        dom = _dump_dom(printed, tmp_path)
    finally:
        printed.unlink()
    assert 'data-overflow-check="overflow: none"' in dom, re.findall(r'data-overflow-check="[^"]*"', dom)


def test_chromium_overflow_check_detects_a_wide_element(tmp_path):
    rep = Report(title="wide")
    rep.section("S").paragraphs.append("x" * 3000)  # one unbreakable word, wider than the page
    dom = _dump_dom(rep.write(tmp_path / "report.html"), tmp_path)
    assert 'data-overflow-check="overflowing: ' in dom


def test_figure_title_is_lifted_off_the_panel_titles():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    for ax in axes:
        ax.set_title("panel\ntitle on two lines")
    fig.suptitle("figure title", y=0.97)
    fig.subplots_adjust(top=0.9)  # panel titles now reach into the figure title
    assert plots.title_overlaps(fig)
    plots._lift_suptitle(fig)
    assert plots.title_overlaps(fig) == []
    plt.close(fig)


def test_projection_colours_are_moreaus():
    # his similarity/projection_same_sensors.py: CCA_highest (1, 0, 0), CCA_lowest (0.9, 0.9, 0), PCA (0.05, 0.9, 0.05)
    from matplotlib.colors import to_rgb

    assert to_rgb(plots.METHOD_STYLE["cca_highest"][0]) == (1.0, 0.0, 0.0)
    np.testing.assert_allclose(to_rgb(plots.METHOD_STYLE["cca_lowest"][0]), (0.9, 0.9, 0.0), atol=1 / 255)
    np.testing.assert_allclose(to_rgb(plots.METHOD_STYLE["pca"][0]), (0.05, 0.9, 0.05), atol=1 / 255)
    np.testing.assert_allclose(to_rgb(plots.METHOD_STYLE["cca_random"][0]), (1.0, 0.5, 0.0), atol=1 / 255)


def test_fusion_agreement_bars_start_at_zero(tiny_run, monkeypatch, tmp_path):
    out, _ = tiny_run
    from ccalens.experiments.fusion import FUSION_METHODS, FusionResult

    saved = json.loads((out / "fusion" / "fusion.json").read_text())["pairs"][0]
    res = FusionResult(**{k: v for k, v in saved.items() if k != "canonical_correlations"},
                       canonical_correlations=np.asarray(saved["canonical_correlations"]))
    captured = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, stem: captured.setdefault("fig", fig))
    plots.plot_fusion([res], tmp_path / "f", methods=FUSION_METHODS)
    bars = captured["fig"].axes[1]
    assert bars.get_xlim() == (0.0, 1.0)
    assert {t.get_text() for t in bars.get_legend().get_texts()} >= {"network a alone", "network b alone"}
