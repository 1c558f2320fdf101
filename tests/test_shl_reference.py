"""The SHL spectrogram against the output of Moreau et al.'s own preprocessing code (issue #14, item 4).

``tests/data/shl_reference``: 16 signals (8 synthetic SHL-like segments, 8 test signals) and the spectrograms their
``SpectrogramTransform`` produced (SciPy 1.13, the last one with ``interp2d``); see the README there.
"""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
from scipy.interpolate import RegularGridInterpolator

from ccalens.data import shl
from ccalens.data.shl import SHLDataset
from ccalens.data.spectrogram import spectrogram, spectrogram_axes

REFERENCE = Path(__file__).parent / "data" / "shl_reference"
SIGNALS = ("Gyr_y", "Acc_norm", "Mag_norm")


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE / "signals.npz") as s, np.load(REFERENCE / "moreau_spectrograms.npz") as r:
        return {k: s[k] for k in s.files}, {k: r[k] for k in r.files}


def _paper_signal(raw: dict[str, np.ndarray], name: str) -> np.ndarray:
    """The paper's TemporalTransform: a raw channel, or sqrt(x**2 + y**2 + z**2) computed in float32."""
    if not name.endswith("_norm"):
        return raw[name]
    sensor = name[: -len("_norm")]
    return np.sqrt(raw[f"{sensor}_x"] ** 2 + raw[f"{sensor}_y"] ** 2 + raw[f"{sensor}_z"] ** 2)


@pytest.mark.parametrize("name", SIGNALS)
def test_spectrogram_matches_the_papers_code(reference, name):
    raw, ref = reference
    x = _paper_signal(raw, name)
    assert x.dtype == np.float32 and x.shape == (16, 6000)
    S = spectrogram(x)
    assert S.shape == (16, 48, 48) and S.dtype == np.float32
    np.testing.assert_allclose(S, ref[name], rtol=0, atol=1e-4)
    # float64 input is cast to float32 first, as the paper's data are
    np.testing.assert_allclose(spectrogram(x.astype(np.float64)), ref[name], rtol=0, atol=1e-4)
    f, t = spectrogram_axes()
    np.testing.assert_allclose(f, ref[f"{name}_f"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(t, ref[f"{name}_t"], rtol=0, atol=1e-9)


def test_log_band_variant_is_kept_and_is_not_the_papers(reference):
    raw, ref = reference
    S = spectrogram(raw["Gyr_y"], method="log_bands")
    assert S.shape == (16, 48, 48)
    assert np.abs(S - ref["Gyr_y"]).max() > 1.0  # a different preprocessing, kept as a named option
    f, t = spectrogram_axes(method="log_bands")
    assert f[0] == pytest.approx(np.sqrt(0.2 * 0.2 * (50 / 0.2) ** (1 / 48))) and f[-1] < 50
    assert 2.5 < t[0] < t[-1] < 57.5
    with pytest.raises(ValueError, match="method must be one of"):
        spectrogram(raw["Gyr_y"], method="interp2d")


def test_bilinear_interpolation_equals_a_regular_grid_interpolator():
    # an independent implementation of the same definition, at another output size
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3000)).astype(np.float32).cumsum(axis=1)
    f, t, P = scipy.signal.spectrogram(x, fs=100.0, nperseg=500, noverlap=490)
    log_f = np.log(f + f[1])
    rf = 20 * (log_f - log_f[0]) / (log_f[-1] - log_f[0])
    rt = 10 * (t - t[0]) / (t[-1] - t[0])
    grid = np.stack(np.meshgrid(np.arange(20.0), np.arange(10.0), indexing="ij"), axis=-1)
    expected = np.stack(
        [RegularGridInterpolator((rf, rt), P[i].astype(np.float64), method="linear")(grid) for i in range(2)]
    )
    S = spectrogram(x, n_freq=20, n_time=10)
    assert S.shape == (2, 20, 10)
    np.testing.assert_allclose(S, np.log(expected.astype(np.float32) + np.float32(1e-10)), rtol=0, atol=1e-5)
    np.testing.assert_allclose(spectrogram(x[1], n_freq=20, n_time=10), S[1], rtol=0, atol=0)


def test_spectrogram_bad_and_missing_values():
    t = np.arange(6000) / 100.0
    x = np.sin(2 * np.pi * 3.0 * t)
    holes = x.copy()
    holes[100:110] = np.nan
    S = spectrogram(holes)
    assert np.isfinite(S).all()
    assert np.isfinite(spectrogram(np.full(6000, np.nan))).all()  # all missing: a constant (zero) segment
    assert np.isfinite(spectrogram(np.full(6000, 9.81, dtype=np.float32))).all()  # constant: log(0 + eps)
    inf = x.copy()
    inf[5] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        spectrogram(inf)
    with pytest.raises(ValueError, match="at least 2 windows"):
        spectrogram(np.zeros(400))
    with pytest.raises(TypeError, match="real numeric"):
        spectrogram(np.zeros(6000, dtype=complex))
    with pytest.raises(ValueError, match="eps"):
        spectrogram(x, eps=0.0)


def _write_shl_folder(root: Path, raw: dict[str, np.ndarray], channels: tuple[str, ...]) -> None:
    folder = root / "train"
    folder.mkdir(parents=True)
    n = next(iter(raw.values())).shape[0]
    for c in channels:
        np.savetxt(folder / f"{c}.txt", raw[c], fmt="%.9g")  # %.9g round-trips float32 exactly
    np.savetxt(folder / "Label.txt", np.tile(np.arange(n)[:, None] % 8 + 1, (1, 6000)), fmt="%d")


def test_shl_dataset_spectrograms_match_the_papers_code(reference, tmp_path):
    raw, ref = reference
    channels = ("Acc_x", "Acc_y", "Acc_z", "Gyr_y")
    _write_shl_folder(tmp_path, raw, channels)
    ds = SHLDataset(tmp_path, n_val=0)
    np.testing.assert_array_equal(ds.channel("Acc_norm"), _paper_signal(raw, "Acc_norm"))  # float32, as the paper
    X, y = ds.arrays(["Gyr_y", "Acc_norm"], part="all")
    assert y.tolist() == [i % 8 for i in range(16)]
    assert X.shape == (16, 2, 48, 48)
    np.testing.assert_allclose(X[:, 0], ref["Gyr_y"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(X[:, 1], ref["Acc_norm"], rtol=0, atol=1e-4)
    cached = sorted(p.name for p in ds.cache_dir.glob("*.npy"))
    assert "Acc_norm_spectrogram_moreau.v1.npy" in cached and "Acc_norm.v2.npy" in cached
    bands = SHLDataset(tmp_path, n_val=0, spectrogram_method="log_bands").spectrograms("Gyr_y")
    np.testing.assert_allclose(bands, spectrogram(raw["Gyr_y"], method="log_bands"), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="spectrogram_method"):
        SHLDataset(tmp_path, spectrogram_method="stft")


def test_cache_write_is_atomic_and_names_cache_dir_when_read_only(tmp_path, monkeypatch):
    target = tmp_path / "cache" / "x.v1.npy"

    def blocks():
        yield np.ones((2, 3), dtype=np.float32)
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        shl._write_npy(target, (4, 3), np.float32, blocks())
    assert not target.exists() and not list(target.parent.iterdir())  # nothing half-written
    with pytest.raises(ValueError, match="2 rows were produced, expected 4"):
        shl._write_npy(target, (4, 3), np.float32, [np.ones((2, 3))])
    shl._write_npy(target, (4, 3), np.float32, [np.ones((1, 3)), np.arange(9).reshape(3, 3)])
    np.testing.assert_array_equal(np.load(target), np.vstack([np.ones((1, 3)), np.arange(9).reshape(3, 3)]))

    for err in (PermissionError(errno.EACCES, "Permission denied"), OSError(errno.EROFS, "Read-only file system")):

        def refuse(path, write, err=err):
            raise err

        monkeypatch.setattr(shl, "atomic_write", refuse)
        with pytest.raises(PermissionError, match=r"x\.v1\.npy.*cache_dir="):
            shl._write_npy(target, (1, 3), np.float32, [np.ones((1, 3))])

    def unreadable_source(path, write):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "train" / "Acc_x.txt"))

    monkeypatch.setattr(shl, "atomic_write", unreadable_source)
    with pytest.raises(PermissionError) as info:  # about the source, not the cache folder: left as it is
        shl._write_npy(target, (1, 3), np.float32, [np.ones((1, 3))])
    assert "cache_dir" not in str(info.value) and "Acc_x.txt" in str(info.value)
