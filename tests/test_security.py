"""Security (issue #10, items 1-3): no code runs from a file ccalens reads, nothing is written or read outside --out.

* checkpoints load with ``torch.load(weights_only=True)`` only: a planted pickle is refused and never runs;
* names from a config that become file names are checked, and the runner's paths must resolve inside ``--out``;
* CIFAR-10 batches are read with a restricted unpickler (dicts, lists, ints, bytes, plain numeric arrays only).

Every planted pickle would create a marker file when unpickled: each test asserts the load is refused AND the
marker never appears.
"""

from __future__ import annotations

import pickle
import struct
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from ccalens.data.cifar import _read_batch, load_cifar10, write_fake_cifar
from ccalens.experiments.paths import check_inside, check_name, out_path
from ccalens.experiments.runner import run_config
from ccalens.experiments.sources import load_source
from ccalens.models import ViewMLP
from ccalens.models.checkpoints import list_checkpoints, load_checkpoint
from ccalens.models.loop import train_classifier
from ccalens.models.train_config import TrainConfig


class _Planted:
    """Unpickling this runs ``exec`` and creates ``marker``: what an attacker's pickle would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _tiny_run(tmp_path: Path, ckpt_dir: Path, epochs: int = 1) -> tuple[ViewMLP, object]:
    torch.manual_seed(0)
    model = ViewMLP(6, 3, hidden=(5,))
    X = np.random.default_rng(0).normal(size=(30, 6)).astype(np.float32)
    y = np.arange(30) % 3
    cfg = TrainConfig(epochs=epochs, batch_size=8, checkpoint_every=2, progress=False)
    return model, train_classifier(model, (X, y), (X, y), cfg, checkpoint_dir=ckpt_dir)


def _planted_checkpoint(path: Path, marker: Path, *, torch_format: bool = True) -> None:
    blob = {"model": {}, "step": 99, "payload": _Planted(marker)}
    path.parent.mkdir(parents=True, exist_ok=True)
    if torch_format:
        torch.save(blob, path)
    else:
        path.write_bytes(pickle.dumps(blob, protocol=2))


# ------------------------------------------------------------------------------------------- 1. checkpoints
def test_planted_pickle_sanity_check_it_does_run_with_a_plain_unpickler(tmp_path):
    # guards the other tests: the planted object really would create the marker if unpickled unsafely
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(_Planted(marker)))
    assert marker.exists()


@pytest.mark.parametrize("torch_format", [True, False], ids=["torch-zip", "raw-pickle"])
def test_load_checkpoint_refuses_a_planted_pickle(tmp_path, torch_format):
    marker = tmp_path / "marker"
    path = tmp_path / "ckpt" / "step_00000099.pt"
    _planted_checkpoint(path, marker, torch_format=torch_format)
    with pytest.raises(ValueError, match=r"step_00000099\.pt.*delete the checkpoint folder") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_training_resume_refuses_a_planted_checkpoint(tmp_path):
    marker = tmp_path / "marker"
    ckpt_dir = tmp_path / "ckpt"
    _planted_checkpoint(ckpt_dir / "step_00000099.pt", marker)
    with pytest.raises(ValueError, match="refused"):
        _tiny_run(tmp_path, ckpt_dir)
    assert not marker.exists()


def test_checkpoints_hold_only_tensors_and_plain_data(tmp_path):
    _, history = _tiny_run(tmp_path, tmp_path / "ckpt", epochs=2)
    found = list_checkpoints(tmp_path / "ckpt")
    assert len(found) >= 3
    for _, path in found:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)  # raises if anything else is in there
        assert ckpt["step"] == int(path.stem[5:])
        assert isinstance(ckpt["rng_state"], torch.Tensor)
    # resuming from them works (load_checkpoint is the weights_only path)
    _, resumed = _tiny_run(tmp_path, tmp_path / "ckpt", epochs=2)
    assert resumed.total_steps == history.total_steps


def test_an_older_full_pickle_checkpoint_gets_a_clear_error(tmp_path):
    # a checkpoint pickled with arbitrary objects (as weights_only=False allowed) is refused, not loaded unsafely
    path = tmp_path / "ckpt" / "step_00000004.pt"
    path.parent.mkdir()
    torch.save({"model": {}, "history": TrainConfig()}, path)
    with pytest.raises(ValueError, match=r"step_00000004\.pt was refused.*delete the checkpoint folder .*ckpt"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content",
    [b"not a checkpoint at all", b""],
    ids=["garbage", "empty"],
)
def test_unreadable_checkpoint_names_the_file(tmp_path, content):
    path = tmp_path / "step_00000001.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"step_00000001\.pt.*delete the checkpoint folder"):
        load_checkpoint(path)


def test_checkpoint_missing_fields_or_wrong_model_is_a_clear_error(tmp_path):
    path = tmp_path / "step_00000001.pt"
    torch.save({"model": {"w": torch.zeros(2)}}, path)
    with pytest.raises(ValueError, match=r"step_00000001\.pt has no 'optimizer' field"):
        load_checkpoint(path)
    _tiny_run(tmp_path, tmp_path / "ckpt")
    last = list_checkpoints(tmp_path / "ckpt")[-1][1]
    with pytest.raises(ValueError, match="does not fit the model"):
        load_checkpoint(last, ViewMLP(7, 3, hidden=(5,)))


# ------------------------------------------------------------------------------ 2. names that become paths
BAD_NAMES = ["/etc/passwd", "../../evil", "..", ".", ".hidden", "a/b", "a\\b", "", "x" * 101, "a\0b", "é", "a b",
             "~root"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_check_name_refuses_traversal_and_odd_names(name):
    with pytest.raises(ValueError, match="sensor name"):
        check_name(name, "sensor name")


@pytest.mark.parametrize("name", [3, None, ["a"]])
def test_check_name_refuses_non_strings(name):
    with pytest.raises(ValueError, match="must be a string"):
        check_name(name, "sensor name")


@pytest.mark.parametrize("name", ["acc", "Gyr_y", "a.b-c_1", "9", "x" * 100])
def test_check_name_accepts_plain_names(name):
    assert check_name(name, "sensor name") == name


def test_out_path_and_check_inside(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert out_path(out, "models", "a_seed0.npz") == out / "models" / "a_seed0.npz"
    with pytest.raises(ValueError, match="file name"):
        out_path(out, "models", "../../x")
    with pytest.raises(ValueError, match="outside the output folder"):
        check_inside(out, out / ".." / "x")
    with pytest.raises(ValueError, match="outside the output folder"):
        check_inside(out, "/etc/passwd")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "models").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ValueError, match="outside the output folder"):
        out_path(out, "models", "a.npz")


@pytest.mark.parametrize("sensor", ["../../evil", "/tmp/evil", ".hidden", "a/b", ""])
def test_shl_sensor_names_are_checked_before_anything_is_read(tmp_path, sensor):
    data = {"dataset": "shl2018", "root": str(tmp_path / "no-such-folder"), "sensors": {sensor: "Acc_norm"}}
    with pytest.raises(ValueError, match=r"\[data.sensors\] key"):
        load_source(data)


@pytest.mark.parametrize("channel", ["../../evil", "/tmp/Acc_norm", ".x"])
def test_shl_channel_names_are_checked(tmp_path, channel):
    data = {"dataset": "shl2018", "root": str(tmp_path), "sensors": {"acc": channel}}
    with pytest.raises(ValueError, match=r"\[data.sensors\] acc \(SHL channel name\)"):
        load_source(data)


@pytest.mark.parametrize("bad", [{"root": 3}, {"root": ""}, {"root": "a\0b"}, {"root": "x", "cache_dir": ["y"]}])
def test_data_folders_must_be_path_strings(bad):
    with pytest.raises(ValueError, match=r"\[data\] (root|cache_dir) must be a non-empty folder path"):
        load_source({"dataset": "shl2018", "sensors": {"acc": "Acc_norm"}, **bad})


def test_shl_sensors_table_must_be_a_table():
    with pytest.raises(ValueError, match=r"\[data.sensors\] must be a non-empty table"):
        load_source({"dataset": "shl2018", "root": "x", "sensors": ["../x"]})


_TINY = """
title = "tiny"
[data]
dataset = "multiple_features"
views = ["kar"]
[model]
hidden = [8]
[training]
seeds = [0]
epochs = 1
{extra}
"""


def _write_config(tmp_path: Path, extra: str = "[two_initialisations]") -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(textwrap.dedent(_TINY.format(extra=extra)))
    return path


def _files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


def test_runner_refuses_a_planted_checkpoint_under_out(tmp_path):
    marker = tmp_path / "marker"
    out = tmp_path / "out"
    _planted_checkpoint(out / "models" / "checkpoints" / "kar_seed0" / "step_00000099.pt", marker)
    with pytest.raises(ValueError, match=r"step_00000099\.pt was refused"):
        run_config(_write_config(tmp_path), out, progress=False)
    assert not marker.exists()


@pytest.mark.parametrize("command", ["run", "demo"])
def test_cli_run_and_demo_refuse_a_planted_checkpoint_with_one_line(tmp_path, capsys, command):
    from ccalens.cli import main

    marker = tmp_path / "marker"
    out = tmp_path / "out"
    sensor = "kar"  # the first view of the config and of the quick demo, seed 0
    _planted_checkpoint(out / "models" / "checkpoints" / f"{sensor}_seed0" / "step_00000099.pt", marker)
    args = ["run", str(_write_config(tmp_path))] if command == "run" else ["demo", "--quick"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "step_00000099.pt was refused" in err and "delete the checkpoint folder" in err
    assert not marker.exists()


def test_runner_refuses_a_checkpoint_linked_from_elsewhere(tmp_path):
    marker = tmp_path / "marker"
    elsewhere = tmp_path / "elsewhere"
    _planted_checkpoint(elsewhere / "evil.pt", marker)
    folder = tmp_path / "out" / "models" / "checkpoints" / "kar_seed0"
    folder.mkdir(parents=True)
    (folder / "step_00000099.pt").symlink_to(elsewhere / "evil.pt")
    with pytest.raises(ValueError, match=r"checkpoint .*step_00000099\.pt resolves to .*outside the output folder"):
        run_config(_write_config(tmp_path), tmp_path / "out", progress=False)
    assert not marker.exists()


def test_runner_refuses_an_output_subfolder_linked_elsewhere(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "models").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ValueError, match="outside the output folder"):
        run_config(_write_config(tmp_path), out, progress=False)
    assert _files_under(elsewhere) == set()


def test_runner_refuses_traversal_sensor_names_from_the_config(tmp_path):
    config = tmp_path / "shl.toml"
    config.write_text(textwrap.dedent(f"""
        [data]
        dataset = "shl2018"
        root = "{tmp_path / 'shl'}"
        [data.sensors]
        "../../escaped" = "Acc_norm"
        [training]
        seeds = [0, 1]
        [projection]
        """))
    out = tmp_path / "deep" / "er" / "out"
    with pytest.raises(ValueError, match=r"\[data.sensors\] key \(sensor name\) '../../escaped'"):
        run_config(config, out, progress=False)
    assert not list(tmp_path.rglob("*escaped*"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[learning_dynamics]\nsensor = "../../x"', r"\[learning_dynamics\] sensor must be one of"),
        ('[compression]\nsensor = "/etc"', r"\[compression\] sensor must be one of"),
        ('[two_initialisations]\nsensor = ".x"', r"\[two_initialisations\] sensor must be one of"),
    ],
)
def test_runner_checks_stage_sensor_names_before_training(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        run_config(_write_config(tmp_path, extra), tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "models").exists()  # refused before any training


@pytest.mark.parametrize("preset", ["to_dict", "__init__", "__class__", "nope"])
def test_runner_training_preset_must_be_a_known_preset(tmp_path, preset):
    cfg = _write_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("seeds = [0]", f'seeds = [0]\npreset = "{preset}"'))
    with pytest.raises(ValueError, match=r"\[training\] preset must be one of"):
        run_config(cfg, tmp_path / "out", progress=False)


@pytest.mark.parametrize("seeds", ['["0/../x"]', "[true]", "[1.5]", '"01"'])
def test_runner_seeds_must_be_integers(tmp_path, seeds):
    cfg = _write_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("seeds = [0]", f"seeds = {seeds}"))
    with pytest.raises(ValueError, match=r"\[training\] seeds must be a list of integers"):
        run_config(cfg, tmp_path / "out", progress=False)


def test_runner_fusion_pairs_must_name_sensors(tmp_path):
    cfg = _write_config(tmp_path, '[fusion]\npairs = [["kar", "../x"]]')
    cfg.write_text(cfg.read_text().replace('views = ["kar"]', 'views = ["kar", "fou"]'))
    with pytest.raises(ValueError, match=r"\[fusion\] pairs must list pairs of the data's sensors"):
        run_config(cfg, tmp_path / "out", progress=False)


# ------------------------------------------------------------------------------------- 3. CIFAR-10 batches
def _py2_str(b: bytes) -> bytes:
    """A Python 2 ``str`` in a protocol-2 pickle (BINSTRING): what the real CIFAR-10 files hold."""
    return b"T" + struct.pack("<I", len(b)) + b


def _py2_int(v: int) -> bytes:
    return b"J" + struct.pack("<i", v)


def _py2_cifar_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """The bytes of a batch written the way the real files were (Python 2 cPickle, protocol 2, numpy 1.x):
    str keys, ``numpy.core.multiarray._reconstruct`` + ``numpy.dtype('u1', 0, 1)`` for the uint8 array."""
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + _py2_int(0) + b"\x85" + _py2_str(b"b")
        + b"\x87R"  # _reconstruct(ndarray, (0,), 'b')
        + b"(" + _py2_int(1) + _py2_int(data.shape[0]) + _py2_int(data.shape[1]) + b"\x86"
        + b"cnumpy\ndtype\n" + _py2_str(b"u1") + _py2_int(0) + _py2_int(1) + b"\x87R"
        + b"(" + _py2_int(3) + _py2_str(b"|") + b"NNN" + _py2_int(-1) + _py2_int(-1) + _py2_int(0) + b"tb"
        + b"\x89" + _py2_str(data.tobytes()) + b"tb"  # BUILD (1, shape, dtype, False, raw)
    )
    label_list = b"](" + b"".join(_py2_int(v) for v in labels) + b"e"
    names = b"](" + b"".join(_py2_str(f"img_{i}.png".encode()) for i in range(len(labels))) + b"e"
    return (
        b"\x80\x02}(" + _py2_str(b"batch_label") + _py2_str(b"training batch 1 of 5")
        + _py2_str(b"data") + array + _py2_str(b"labels") + label_list + _py2_str(b"filenames") + names
        + b"u."
    )


def test_cifar_batch_in_the_real_python2_format_loads(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(7, 3072), dtype=np.uint8)
    labels = [3, 0, 9, 1, 1, 5, 2]
    path = tmp_path / "data_batch_1"
    path.write_bytes(_py2_cifar_batch(data, labels))
    # the reference: what an unrestricted unpickler (as everybody loads CIFAR) returns
    ref = pickle.loads(path.read_bytes(), encoding="bytes")
    np.testing.assert_array_equal(ref[b"data"], data)
    images, y = _read_batch(path)
    np.testing.assert_array_equal(images, data.reshape(7, 3, 32, 32))
    np.testing.assert_array_equal(y, labels)


def test_cifar_fake_files_and_a_protocol5_resave_load(tmp_path):
    root = write_fake_cifar(tmp_path / "c", n_per_batch=10, seed=1)
    cd = load_cifar10(root, normalize=False)
    assert cd.x_train.shape == (50, 3, 32, 32) and cd.y_test.shape == (10,)
    raw = pickle.loads((root / "test_batch").read_bytes(), encoding="bytes")
    resaved = tmp_path / "resaved"
    resaved.write_bytes(pickle.dumps({k.decode(): v for k, v in raw.items()}, protocol=5))
    images, y = _read_batch(resaved)
    np.testing.assert_array_equal(images.reshape(10, 3072), raw[b"data"])
    np.testing.assert_array_equal(y, raw[b"labels"])


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_cifar_planted_batch_is_refused_and_never_runs(tmp_path, protocol):
    marker = tmp_path / "marker"
    root = write_fake_cifar(tmp_path / "c", n_per_batch=10)
    blob = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"batch_label": _Planted(marker)}
    (root / "data_batch_1").write_bytes(pickle.dumps(blob, protocol=protocol))
    refused = r"data_batch_1: not a CIFAR-10 python batch.*refused global (builtins|__builtin__)\.exec"
    with pytest.raises(ValueError, match=refused):
        load_cifar10(root)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        np.array([1, "a"], dtype=object),  # object arrays could hide arbitrary objects
        np.zeros(3, dtype=[("a", "u1"), ("b", "f4")]),  # structured dtype
        np.float64(3.0),  # numpy scalars: not in the format
        {1, 2},  # sets: not in the format
    ],
    ids=["object-array", "structured", "numpy-scalar", "set"],
)
def test_cifar_batch_refuses_anything_beyond_the_format(tmp_path, payload):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"data": payload, b"labels": [0]}, protocol=2))
    with pytest.raises(ValueError, match=r"test_batch: not a CIFAR-10 python batch"):
        _read_batch(path)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        ({b"data": np.zeros((1, 3072), np.float32), b"labels": [0]}, "must be a uint8 numpy array"),
        ({b"data": [[0] * 3072], b"labels": [0]}, "must be a uint8 numpy array"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [b"0"]}, "must be a list of ints"),
        ({b"labels": [0]}, "expected a pickled dict"),
        ([1, 2], "expected a pickled dict"),
    ],
)
def test_cifar_batch_contents_are_checked(tmp_path, blob, message):
    path = tmp_path / "data_batch_2"
    path.write_bytes(pickle.dumps(blob, protocol=2))
    with pytest.raises(ValueError, match=message):
        _read_batch(path)


def test_cifar_truncated_batch_names_the_file(tmp_path):
    root = write_fake_cifar(tmp_path / "c", n_per_batch=10)
    full = (root / "data_batch_3").read_bytes()
    (root / "data_batch_3").write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match=r"data_batch_3: not a"):
        load_cifar10(root)


@pytest.mark.parametrize(
    "stream",
    [
        b"\x80\x02cnumpy\nndarray\nJ\x00\xe1\xf5\x05\x85R.",  # numpy.ndarray((100_000_000,)) called directly
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\xe1\xf5\x05\x85U\x01b\x87R.",  # huge
        b"\x80\x02c__builtin__\nbytes\nJ\x00\xe1\xf5\x05\x85R.",  # bytes(100_000_000)
        b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00zlib\x86R.",  # another codec
        b"\x80\x02cnumpy\ndtype\nX\x01\x00\x00\x00O\x85R.",  # object dtype
        b"\x80\x02cnumpy\nload\nX\x01\x00\x00\x00x\x85R.",  # any other numpy function
        b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R.",
    ],
    ids=["ndarray-ctor", "reconstruct-shape", "bytes-int", "codecs-zlib", "object-dtype", "numpy-load", "os-system"],
)
def test_cifar_unpickler_allows_each_global_only_as_the_format_uses_it(tmp_path, stream):
    path = tmp_path / "data_batch_4"
    path.write_bytes(stream)
    with pytest.raises(ValueError, match=r"data_batch_4: not a CIFAR-10 python batch, refused to unpickle it"):
        _read_batch(path)
