"""Tests of ccalens.data: bundled UCI multiple features, SHL loader + synthetic generator, CIFAR pickles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ccalens.data import VIEW_NAMES, load_multiple_features
from ccalens.data.multiview import stratified_interleaved_split

DIMS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}


def _shared_uci() -> Path | None:
    here = Path(__file__).resolve()
    for root in (Path("/work/shared"), here.parents[1].parent / "shared", here.parents[1] / "shared"):
        folder = root / "data" / "uci-multiple-features"
        if folder.is_dir():
            return folder
    return None


# ----------------------------------------------------------------------------------------------- multiview


def test_multiple_features_shapes_labels_and_order():
    ds = load_multiple_features()
    assert ds.view_names == VIEW_NAMES == ("fou", "fac", "kar", "pix", "zer", "mor")
    assert list(ds.views) == list(VIEW_NAMES)
    for v, d in DIMS.items():
        assert ds.views[v].shape == (2000, d)
        assert ds.views[v].dtype == np.float32
        assert np.isfinite(ds.views[v]).all()
        assert ds.description[v].endswith(f"({d})")
    assert ds.description["fou"] == "Fourier coefficients of the character shapes (76)"
    assert ds.labels.dtype == np.int64 and ds.labels.shape == (2000,)
    assert np.array_equal(np.bincount(ds.labels), np.full(10, 200))
    assert ds.n_classes == 10
    # pixel view: a 15 x 16 image with integer values 0..6
    pix = ds.views["pix"]
    assert pix.min() == 0 and pix.max() == 6 and np.array_equal(pix, np.round(pix))


def test_multiple_features_split_is_fixed_stratified_and_disjoint():
    a, b = load_multiple_features(), load_multiple_features(["mor"])
    assert np.array_equal(a.train_idx, b.train_idx) and np.array_equal(a.val_idx, b.val_idx)
    assert len(a.train_idx) == 1500 and len(a.val_idx) == 500
    assert np.intersect1d(a.train_idx, a.val_idx).size == 0
    assert np.array_equal(np.sort(np.concatenate([a.train_idx, a.val_idx])), np.arange(2000))
    assert np.array_equal(np.bincount(a.labels[a.train_idx]), np.full(10, 150))
    assert np.array_equal(np.bincount(a.labels[a.val_idx]), np.full(10, 50))
    X, y = a.split("kar", "val")
    assert X.shape == (500, 64) and np.array_equal(y, a.labels[a.val_idx])


def test_stratified_split_rule():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    tr, va = stratified_interleaved_split(labels, val_every=4)
    assert va.tolist() == [3, 7, 11]
    assert tr.tolist() == [0, 1, 2, 4, 5, 6, 8, 9, 10]


def test_multiple_features_subset_copies_and_errors():
    ds = load_multiple_features(["zer", "fou"])
    assert ds.view_names == ("fou", "zer")
    ds.views["fou"][0, 0] = -1e9  # a fresh copy: must not leak into the next load
    assert load_multiple_features(["fou"]).views["fou"][0, 0] != -1e9
    with pytest.raises(ValueError, match="views"):
        load_multiple_features(["fourier"])
    with pytest.raises(TypeError, match="views"):
        load_multiple_features("fou")
    with pytest.raises(ValueError, match="duplicates"):
        load_multiple_features(["fou", "fou"])
    with pytest.raises(ValueError, match="part"):
        ds.split("fou", "test")


def test_multiple_features_equal_the_shared_csvs():
    folder = _shared_uci()
    if folder is None:
        pytest.skip("shared/data/uci-multiple-features not available")
    ds = load_multiple_features()
    for v in VIEW_NAMES:
        raw = np.loadtxt(folder / f"mfeat-{v}.csv", delimiter=",", skiprows=1)
        assert np.array_equal(ds.views[v], raw[:, :-1].astype(np.float32)), v
        assert np.array_equal(ds.labels, raw[:, -1].astype(np.int64))


def test_bundled_files_and_attribution_are_package_data():
    import tomllib

    import ccalens.data

    folder = Path(ccalens.data.__file__).parent / "bundled" / "uci_multiple_features"
    for v in VIEW_NAMES:
        assert (folder / f"mfeat-{v}.csv.gz").is_file()
    readme = (folder / "README.md").read_text()
    assert "CC BY 4.0" in readme and "Duin" in readme and "UCI Machine Learning Repository" in readme
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if pyproject.is_file():
        cfg = tomllib.loads(pyproject.read_text())
        assert "bundled/**/*" in cfg["tool"]["setuptools"]["package-data"]["ccalens.data"]
