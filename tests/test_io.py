"""ccalens.io: reading feature files (text tables, torch files, damaged files) and the mode of written files."""

from __future__ import annotations

import os
import stat
import warnings

import numpy as np
import pytest

from ccalens.core.measures import linear_cka
from ccalens.errors import UnknownKeyError, UserInputError
from ccalens.io import FeatureFileNotice, atomic_write, load_features, save_npz, write_csv, write_json


@pytest.fixture
def X():
    return np.random.default_rng(0).standard_normal((40, 7))


def _pandas_style_csv(path, X, first_header="", index=None):
    """What ``pd.DataFrame(X).to_csv(path)`` writes: a header ``,0,1,...`` and the index 0..n-1 in front."""
    index = range(X.shape[0]) if index is None else index
    lines = [",".join([first_header, *(str(j) for j in range(X.shape[1]))])]
    lines += [",".join([str(i), *(repr(float(v)) for v in row)]) for i, row in zip(index, X, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------------------ text tables
@pytest.mark.parametrize("n_features", [3, 20, 45])
def test_savetxt_whitespace_txt_of_any_width(tmp_path, n_features):
    X = np.random.default_rng(1).standard_normal((30, n_features))
    np.savetxt(tmp_path / "f.txt", X)  # '%.18e' separated by spaces: failed from 20 columns
    np.testing.assert_array_equal(load_features(tmp_path / "f.txt"), X)
    np.savetxt(tmp_path / "h.txt", X, header="some header")  # a '# ' comment line
    np.testing.assert_array_equal(load_features(tmp_path / "h.txt"), X)


@pytest.mark.parametrize("first_header", ["", "Unnamed: 0"])
def test_pandas_index_column_is_dropped_with_a_notice(tmp_path, X, first_header):
    path = _pandas_style_csv(tmp_path / "df.csv", X, first_header)
    with pytest.warns(FeatureFileNotice, match=r"df\.csv: dropped the first column, an index 0\.\.39"):
        loaded = load_features(path)
    np.testing.assert_array_equal(loaded, X)
    assert linear_cka(loaded, X).score == pytest.approx(1.0)  # was 0.015: the index read as a feature


def test_real_pandas_to_csv_round_trip(tmp_path, X):
    pd = pytest.importorskip("pandas")
    pd.DataFrame(X).to_csv(tmp_path / "a.csv")
    pd.DataFrame(X, columns=[f"f{j}" for j in range(7)]).to_csv(tmp_path / "b.csv", sep="\t")
    pd.DataFrame(X).to_csv(tmp_path / "c.csv", index=False)  # header "0,1,...,6" and no index
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FeatureFileNotice)
        for name in ("a.csv", "b.csv", "c.csv"):
            np.testing.assert_array_equal(load_features(tmp_path / name), X, err_msg=name)


def test_index_column_choices(tmp_path, X):
    path = _pandas_style_csv(tmp_path / "sub.csv", X, index=range(5, 45))  # an index after df.iloc[5:]
    with pytest.raises(UserInputError, match=r"sub\.csv: the first column .* not 0\.\.n-1.*--index-column drop"):
        load_features(path)
    np.testing.assert_array_equal(load_features(path, index_column="drop"), X)
    kept = load_features(path, index_column="keep")
    np.testing.assert_array_equal(kept[:, 0], np.arange(5, 45))
    np.testing.assert_array_equal(kept[:, 1:], X)
    with pytest.raises(UserInputError, match="index_column must be one of"):
        load_features(path, index_column="yes")


def test_headerless_and_other_separators(tmp_path, X):
    np.savetxt(tmp_path / "plain.csv", X, delimiter=",")
    np.savetxt(tmp_path / "semi.csv", X, delimiter=";", header="a;b;c;d;e;f;g", comments="")
    np.savetxt(tmp_path / "tab.tsv", X, delimiter="\t")
    np.savetxt(tmp_path / "one.csv", X[:, :1], delimiter=",")
    for name in ("plain.csv", "semi.csv", "tab.tsv"):
        np.testing.assert_array_equal(load_features(tmp_path / name), X, err_msg=name)
    assert load_features(tmp_path / "one.csv").shape == (40, 1)
    # a headerless first column 0..n-1 is data: only a header marks an index
    ints = np.column_stack([np.arange(40), X])
    np.savetxt(tmp_path / "ints.csv", ints, delimiter=",")
    np.testing.assert_array_equal(load_features(tmp_path / "ints.csv"), ints)


def test_text_errors_name_the_file_and_line(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(UserInputError, match=r"bad\.csv: line 3, column 2: 'oops' is not a number"):
        load_features(tmp_path / "bad.csv")
    (tmp_path / "ragged.txt").write_text("1 2 3\n4 5\n")
    with pytest.raises(UserInputError, match=r"ragged\.txt: line 2 has 2 fields, expected 3"):
        load_features(tmp_path / "ragged.txt")
    (tmp_path / "empty.csv").write_text("# nothing\n\n")
    with pytest.raises(UserInputError, match=r"empty\.csv holds no data"):
        load_features(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(UserInputError, match=r"header\.csv has a header but no data rows"):
        load_features(tmp_path / "header.csv")


# ------------------------------------------------------------------------------------------- numpy containers
def test_numpy_containers_errors(tmp_path, X):
    np.savez(tmp_path / "two.npz", a=X, b=X)
    with pytest.raises(UnknownKeyError, match=r"two\.npz has no array named 'c'") as info:
        load_features(tmp_path / "two.npz", key="c")
    assert isinstance(info.value, KeyError)  # older callers caught KeyError
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserInputError, match=r"obj\.npy is not a readable \.npy file"):
        load_features(tmp_path / "obj.npy")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserInputError, match=r"junk\.npz is not a readable \.npz file"):
        load_features(tmp_path / "junk.npz")
    (tmp_path / "x.h5").write_bytes(b"")
    with pytest.raises(UserInputError, match=r"unsupported feature file .*x\.h5"):
        load_features(tmp_path / "x.h5")
    np.save(tmp_path / "cut.npy", X)
    (tmp_path / "cut.npy").write_bytes((tmp_path / "cut.npy").read_bytes()[:200])
    with pytest.raises(UserInputError, match=r"cut\.npy is not a readable \.npy file"):
        load_features(tmp_path / "cut.npy")
    (tmp_path / "folder.npy").mkdir()
    with pytest.raises(UserInputError, match=r"folder\.npy is a folder; expected a feature file"):
        load_features(tmp_path / "folder.npy")


# ------------------------------------------------------------------------------------------------ torch files
def test_bfloat16_tensors_are_widened_to_float32(tmp_path):
    torch = pytest.importorskip("torch")
    t = torch.randn(20, 5).to(torch.bfloat16)
    torch.save(t, tmp_path / "one.pt")
    torch.save({"h": t, "g": t.to(torch.float16)}, tmp_path / "many.pt")
    loaded = load_features(tmp_path / "one.pt")
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, t.float().numpy())
    assert load_features(tmp_path / "many.pt", key="h").dtype == np.float32
    assert load_features(tmp_path / "many.pt", key="g").dtype == np.float16


class _Planted:
    """Unpickling it would create a folder: loading features must never run it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_damaged_or_foreign_torch_files_are_clear_errors(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"h": torch.ones(3, 2)}, tmp_path / "good.pt")
    blob = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "text.pt").write_text("hello")
    (tmp_path / "empty.pt").write_bytes(b"")
    marker = tmp_path / "was_run"
    torch.save({"h": _Planted(str(marker))}, tmp_path / "code.pt")
    torch.save([torch.ones(2)], tmp_path / "list.pt")
    cases = {
        "trunc.pt": "is damaged or truncated",
        "text.pt": r"is not a torch file",
        "empty.pt": "is empty",
        "code.pt": "holds objects other than tensors",
        "list.pt": "must hold a tensor .*got list",
    }
    for name, message in cases.items():
        with pytest.raises(UserInputError, match=rf"{name} {message}"):
            load_features(tmp_path / name)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------- written files
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        paths = [
            write_json(tmp_path / "r.json", {"a": 1}),
            write_csv(tmp_path / "r.csv", [{"a": 1}]),
            save_npz(tmp_path / "r.npz", x=np.zeros(2)),
            atomic_write(tmp_path / "sub" / "report.html", lambda f: f.write(b"<html></html>")),
        ]
        try:
            from ccalens.report.html import Report
        except ImportError:
            pass
        else:
            paths.append(Report(title="t").write(tmp_path / "report.html"))
    finally:
        os.umask(old)
    for path in paths:
        assert stat.S_IMODE(os.stat(path).st_mode) == mode, path


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = write_json(tmp_path / "r.json", {"a": 1})

    def boom(f):
        f.write(b"half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_r_write_csv_and_odd_text_files(tmp_path, X):
    lines = ['"","V1","V2","V3","V4","V5","V6","V7"']  # R's write.csv: quoted names, row names 1..n
    lines += [f'"{i + 1}",' + ",".join(repr(float(v)) for v in row) for i, row in enumerate(X)]
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    with pytest.warns(FeatureFileNotice, match=r"index 1\.\.40"):
        np.testing.assert_array_equal(load_features(tmp_path / "r.csv"), X)
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x01binary")
    with pytest.raises(UserInputError, match=r"bin\.csv is not a UTF-8 text table"):
        load_features(tmp_path / "bin.csv")
    (tmp_path / "ragged.csv").write_text(",a,b\n0,1,2\n1,2\n")
    with pytest.raises(UserInputError, match=r"ragged\.csv: line 3 has 2 fields, expected 3"):
        load_features(tmp_path / "ragged.csv")


def test_unwritable_folder_names_the_target_not_the_temporary(tmp_path, monkeypatch):
    import errno

    import ccalens.core._files as files

    def denied(folder, name):  # a folder without write permission (tests may run as root, so simulated)
        raise PermissionError(errno.EACCES, "Permission denied", str(folder / f".{name}.0123.tmp"))

    monkeypatch.setattr(files, "_create_temporary", denied)
    with pytest.raises(PermissionError) as info:
        write_json(tmp_path / "r.json", {})
    assert info.value.filename == str(tmp_path / "r.json")
