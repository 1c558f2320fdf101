"""Tests of ccalens.data: bundled UCI multiple features, SHL loader + synthetic generator, CIFAR pickles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ccalens.data import VIEW_NAMES, load_multiple_features
from ccalens.data.multiview import stratified_interleaved_split
from ccalens.data.shl import RAW_CHANNELS, SHLDataset, write_synthetic_shl
from ccalens.data.spectrogram import compute_spectrograms, log_frequency_axis, spectrogram, spectrogram_axes

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


# ----------------------------------------------------------------------------------------------------- SHL


@pytest.fixture(scope="module")
def shl_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("shl")
    write_synthetic_shl(root, n_segments_per_class=2, seed=1)
    return root


def _info(root: Path) -> list[dict]:
    return json.loads((root / "train" / "synthetic_info.json").read_text())["lines"]


def test_synthetic_shl_folder_has_the_official_layout(shl_root):
    folder = shl_root / "train"
    for c in [*RAW_CHANNELS, "Label"]:
        path = folder / f"{c}.txt"
        lines = path.read_text().splitlines()
        assert len(lines) == 16, c
        assert len(lines[0].split(" ")) == 6000, c
    assert (folder / "train_order.txt").is_file()
    assert not list(folder.glob(".*.tmp"))
    info = _info(shl_root)
    assert all(line["class_name"] for line in info)
    assert json.loads((folder / "synthetic_info.json").read_text())["synthetic"] is True


def test_synthetic_shl_writer_leaves_nothing_half_written(tmp_path, monkeypatch):
    from ccalens.data import shl_synthetic

    real, calls = shl_synthetic.simulate_segment, []

    def failing(cls, rng):
        calls.append(cls)
        if len(calls) == 3:
            raise RuntimeError("interrupted")
        return real(cls, rng)

    monkeypatch.setattr(shl_synthetic, "simulate_segment", failing)
    with pytest.raises(RuntimeError, match="interrupted"):
        write_synthetic_shl(tmp_path / "shl", n_segments_per_class=1)
    assert list((tmp_path / "shl" / "train").iterdir()) == []  # no channel file, no temporary file


def test_shl_labels_split_and_channels(shl_root):
    ds = SHLDataset(shl_root, n_val=0.25)
    info = _info(shl_root)
    assert len(ds) == 16
    # the middle label wins even where a segment starts with the previous class's label
    assert ds.labels.tolist() == [line["class"] for line in info]
    assert np.array_equal(np.bincount(ds.labels), np.full(8, 2))
    label_rows = np.loadtxt(shl_root / "train" / "Label.txt", dtype=np.int64)
    assert (label_rows[:, 0] != label_rows[:, 3000]).any()  # transitions exist in the fixture
    # chronological split: validation = the first 4 segments in time, both parts sorted by time
    position = np.array([line["chronological_position"] for line in info])
    assert ds.n_val == 4
    assert position[ds.val_idx].tolist() == [1, 2, 3, 4]
    assert position[ds.train_idx].tolist() == list(range(5, 17))
    assert SHLDataset(shl_root, n_val=3).n_val == 3

    gyr = ds.channel("Gyr_y")
    assert gyr.shape == (16, 6000) and gyr.dtype == np.float32
    np.testing.assert_allclose(gyr, np.loadtxt(shl_root / "train" / "Gyr_y.txt"), rtol=1e-6, atol=1e-7)
    acc = ds.channel("Acc_norm")
    xyz = np.stack([ds.channel(f"Acc_{a}") for a in "xyz"]).astype(np.float64)
    np.testing.assert_allclose(acc, np.sqrt((xyz**2).sum(0)), rtol=1e-6)
    assert "Mag_norm" in ds.available_channels() and "Pressure" in ds.available_channels()
    assert np.abs(ds.channel("Gra_norm") - 9.81).max() < 1e-3  # gravity has constant norm

    X, y = ds.arrays(["Acc_norm", "Gyr_y", "Mag_norm"], part="val")
    assert X.shape == (4, 3, 48, 48) and X.dtype == np.float32 and np.array_equal(y, ds.labels[ds.val_idx])


def test_shl_cache_is_written_once_and_reused(shl_root, tmp_path):
    cache = tmp_path / "cache"
    ds = SHLDataset(shl_root, cache_dir=cache, n_val=0.25)
    ds.channel("Mag_norm")
    files = sorted(cache.rglob("*.npy"))
    assert {f.name.split(".")[0] for f in files} >= {"Mag_x", "Mag_y", "Mag_z", "Mag_norm", "Label_middle"}
    stamps = {f: f.stat().st_mtime_ns for f in files}
    again = SHLDataset(shl_root, cache_dir=cache, n_val=0.25)
    m = again.channel("Mag_norm")
    assert isinstance(m, np.memmap) and not m.flags.writeable
    assert {f: f.stat().st_mtime_ns for f in files} == stamps
    assert not list(cache.rglob("*.tmp"))


def test_shl_bad_inputs(shl_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="train/"):
        SHLDataset(tmp_path)
    with pytest.raises(ValueError, match="n_val"):
        SHLDataset(shl_root, n_val=16)
    with pytest.raises(ValueError, match="split"):
        SHLDataset(shl_root, split="validation")
    ds = SHLDataset(shl_root, n_val=0.25)
    with pytest.raises(ValueError, match="channel name"):
        ds.channel("Acc_magnitude")
    bad = tmp_path / "bad" / "train"
    bad.mkdir(parents=True)
    (bad / "Label.txt").write_text(" ".join(["2"] * 6000) + "\n" + " ".join(["2"] * 10) + "\n")
    with pytest.raises(ValueError, match=r"Label.txt: line 2 has 10 values"):
        SHLDataset(tmp_path / "bad")
    (bad / "Label.txt").write_text(" ".join(["9"] * 6000) + "\n")
    with pytest.raises(ValueError, match=r"classes 1\.\.8"):
        SHLDataset(tmp_path / "bad", n_val=0)


def test_spectrogram_shape_and_peak_of_a_sine():
    fs, f0 = 100.0, 5.0
    t = np.arange(6000) / fs
    S = spectrogram(np.sin(2 * np.pi * f0 * t) + 9.81)
    assert S.shape == (48, 48) and S.dtype == np.float32
    f, _ = spectrogram_axes()
    assert f[0] == 0.0 and np.all(np.diff(f) > 0) and 40 < f[-1] < 50
    band = int(S.mean(axis=1).argmax())
    assert abs(f[band] - f0) / f0 < 0.12
    bands = spectrogram(np.sin(2 * np.pi * f0 * t) + 9.81, method="log_bands")
    f_bands = log_frequency_axis()
    assert f_bands[0] == pytest.approx(np.sqrt(0.2 * 0.2 * (50 / 0.2) ** (1 / 48)))
    assert abs(f_bands[int(bands.mean(axis=1).argmax())] - f0) / f0 < 0.12
    # batched = one by one; chunking does not change the result
    X = np.stack([np.sin(2 * np.pi * f * t) for f in (1.0, 3.0, 7.0)])
    batch = spectrogram(X)
    assert batch.shape == (3, 48, 48)
    np.testing.assert_allclose(batch[1], spectrogram(X[1]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(compute_spectrograms(X, chunk_size=2), batch, rtol=1e-6, atol=1e-6)
    assert spectrogram(X, n_freq=20, n_time=10).shape == (3, 20, 10)
    with pytest.raises(ValueError, match="signal must be"):
        spectrogram(np.zeros((2, 3, 6000)))


def test_synthetic_walk_peaks_at_its_gait_frequency(shl_root):
    ds = SHLDataset(shl_root, n_val=0.25)
    S = ds.spectrograms("Acc_norm")
    f, _ = spectrogram_axes()
    checked = 0
    for line in _info(shl_root):
        if line["class_name"] in ("Walk", "Run"):
            peak = f[int(S[line["line"]].mean(axis=1).argmax())]
            assert abs(peak - line["characteristic_hz"]) / line["characteristic_hz"] < 0.15, line
            checked += 1
    assert checked == 4
    # still segments carry far less acceleration power than running ones
    still, run = S[ds.labels == 0].mean(), S[ds.labels == 2].mean()
    assert run > still + 3


# --------------------------------------------------------------------------------------------------- CIFAR


def test_fake_cifar_round_trip(tmp_path):
    import pickle

    from ccalens.data.cifar import load_cifar10, write_fake_cifar

    root = write_fake_cifar(tmp_path / "cifar-10-batches-py", n_per_batch=20, seed=0)
    with open(root / "data_batch_2", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    assert raw[b"data"].shape == (20, 3072) and raw[b"data"].dtype == np.uint8
    data = load_cifar10(tmp_path)  # the parent folder works too
    assert data.x_train.shape == (100, 3, 32, 32) and data.x_test.shape == (20, 3, 32, 32)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert np.array_equal(np.bincount(data.y_train.numpy()), np.full(10, 10))
    # layout: R plane first, row-major: pixel (row 5, col 7) of the green plane is byte 1024 + 5 * 32 + 7
    raw_img = raw[b"data"][3]
    i = 20 + 3  # second batch, fourth image
    unnorm = data.x_train[i] * data.std[:, None, None] + data.mean[:, None, None]
    assert unnorm[1, 5, 7].item() * 255 == pytest.approx(raw_img[1024 + 5 * 32 + 7], abs=1e-3)
    assert data.y_train[i].item() == raw[b"labels"][3]
    # per-channel normalisation with the training statistics
    torch.testing.assert_close(data.x_train.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(data.x_train.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4, rtol=0)
    raw_data = load_cifar10(root, normalize=False)
    assert 0 <= raw_data.x_test.min() and raw_data.x_test.max() <= 1
    with pytest.raises(FileNotFoundError, match=r"data_batch_1\.\.5"):
        load_cifar10(tmp_path / "nowhere")


def test_cifar_augmentation():
    from ccalens.data.cifar import CifarAugmented, _crop_flip, random_crop_flip

    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    fill = torch.tensor([-1.0, -2.0, -3.0])
    same = _crop_flip(x, torch.tensor([4, 4]), torch.tensor([4, 4]), torch.tensor([False, True]), 4, fill)
    assert torch.equal(same[0], x[0]) and torch.equal(same[1], x[1].flip(-1))
    corner = _crop_flip(x, torch.tensor([0, 8]), torch.tensor([0, 8]), torch.tensor([False, False]), 4, fill)
    assert torch.equal(corner[0, :, :4, :], fill[:, None, None].expand(3, 4, 32))  # padding rows
    assert torch.equal(corner[0, :, 4:, 4:], x[0, :, :28, :28])
    assert torch.equal(corner[1, :, :28, :28], x[1, :, 4:, 4:])
    g = torch.Generator().manual_seed(0)
    out = random_crop_flip(x, generator=g)
    assert out.shape == x.shape
    g.manual_seed(0)
    assert torch.equal(random_crop_flip(x, generator=g), out)  # reproducible
    ds = CifarAugmented(x, torch.tensor([1, 2]), mean=torch.ones(3), std=torch.full((3,), 2.0))
    img, label = ds[1]
    assert img.shape == (3, 32, 32) and label.item() == 2
    assert torch.equal(ds.fill, torch.full((3,), -0.5))
    plain = CifarAugmented(x, torch.tensor([1, 2]), augment=False)
    assert torch.equal(plain[0][0], x[0])


def test_cifar_imagenet_normalisation(tmp_path):
    pytest.importorskip("torch")
    from ccalens.data.cifar import IMAGENET_MEAN, IMAGENET_STD, load_cifar10, write_fake_cifar

    root = write_fake_cifar(tmp_path / "c", n_per_batch=8, seed=0)
    raw = load_cifar10(root, normalize=False)
    net = load_cifar10(root, statistics="imagenet")
    expected = (raw.x_train - np.array(IMAGENET_MEAN, dtype=np.float32)[:, None, None]) / np.array(
        IMAGENET_STD, dtype=np.float32)[:, None, None]
    np.testing.assert_allclose(net.x_train.numpy(), expected.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="statistics"):
        load_cifar10(root, statistics="imnet")
