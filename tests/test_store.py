"""Activation store: layout, checksums, atomic writes, resume, lockstep reading, streaming statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ccalens.core.stats import SufficientStats
from ccalens.extract import (
    ActivationStore,
    CorruptShardError,
    SampleMismatchError,
    StoreMismatchError,
    aligned_batches,
    stats_from_store,
)
from ccalens.extract import files as files_mod


def assert_stats_equal(a: SufficientStats, b: SufficientStats, rtol: float = 1e-10) -> None:
    assert a.sizes == b.sizes
    assert a.n_samples == b.n_samples
    scale = np.abs(b.comoment).max()
    np.testing.assert_allclose(a.mean, b.mean, rtol=rtol, atol=rtol * np.abs(b.mean).max())
    np.testing.assert_allclose(a.comoment, b.comoment, rtol=rtol, atol=rtol * scale)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def store(tmp_path) -> ActivationStore:
    return ActivationStore(tmp_path / "acts")


def test_layout_manifest_and_roundtrip(store, rng):
    X = rng.normal(size=(1000, 6)).astype(np.float32)
    info = store.write_array("net", "fc1", X, shard_rows=300)
    assert info.n_samples == 1000 and info.n_shards == 4 and info.complete
    folder = store.root / "net" / "fc1"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "ids-000000.npy",
        "ids-000001.npy",
        "ids-000002.npy",
        "ids-000003.npy",
        "manifest.json",
    ] + [f"shard-{i:06d}.npy" for i in range(4)]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["sample_shape"] == [6] and np.dtype(manifest["dtype"]) == np.float32
    assert [s["rows"] for s in manifest["shards"]] == [300, 300, 300, 100]
    assert all(len(s["sha256"]) == 64 for s in manifest["shards"])
    # shards are plain .npy files
    np.testing.assert_array_equal(np.load(folder / "shard-000001.npy"), X[300:600])
    np.testing.assert_array_equal(store.load("net", "fc1"), X)
    np.testing.assert_array_equal(store.sample_ids("net", "fc1"), np.arange(1000))
    assert store.keys() == [("net", "fc1")] and ("net", "fc1") in store and ("net", "x") not in store


@pytest.mark.parametrize("batch_size", [None, 1, 7, 300, 5000])
def test_iter_batches_rechunks_across_shards(store, rng, batch_size):
    X = rng.normal(size=(1000, 2, 3))
    store.write_array("m", "conv", X, sample_ids=np.arange(1000) * 10, shard_rows=128)
    got = list(store.iter_batches("m", "conv", batch_size, with_ids=True))
    if batch_size is not None:
        assert all(len(a) == batch_size for a, _ in got[:-1])
    np.testing.assert_array_equal(np.concatenate([a for a, _ in got]), X)
    np.testing.assert_array_equal(np.concatenate([i for _, i in got]), np.arange(1000) * 10)


def test_stats_from_store_equals_in_memory(store, rng):
    n = 2345
    X = rng.normal(size=(n, 5)).astype(np.float32) + 3
    Y = (X[:, :3] @ rng.normal(size=(3, 4)) + rng.normal(size=(n, 4))).astype(np.float32)
    Z = rng.normal(size=(n, 2, 2, 2))
    store.write_array("a", "x", X, shard_rows=500)
    store.write_array("b", "y", Y, shard_rows=333)  # different shard boundaries
    store.write_array("c", "z", Z, shard_rows=1000)
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731
    ref = SufficientStats.from_arrays(X, Y, Z.reshape(n, -1))
    got = stats_from_store(
        store, [("a", "x"), ("b", "y"), ("c", "z")], transform=[None, None, flat], progress=False
    )
    assert_stats_equal(got, ref)
    got_b = stats_from_store(
        store,
        [("a", "x"), ("b", "y"), ("c", "z")],
        batch_size=97,
        transform=[None, None, flat],
        progress=False,
    )
    assert_stats_equal(got_b, ref)
    with pytest.raises(ValueError, match="transform"):
        stats_from_store(store, [("a", "x"), ("c", "z")], progress=False)


def test_aligned_batches_and_misaligned_ids(store, rng):
    X, Y = rng.normal(size=(100, 3)), rng.normal(size=(100, 2))
    ids = np.array([f"img{i:03d}" for i in range(100)])
    store.write_array("a", "x", X, sample_ids=ids, shard_rows=30)
    store.write_array("b", "y", Y, sample_ids=ids, shard_rows=45)
    batches = list(aligned_batches(store, [("a", "x"), ("b", "y")], with_ids=True))
    assert [len(b[0]) for b in batches] == [30, 15, 15, 30, 10]  # union of both layers' shard boundaries
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), Y)
    np.testing.assert_array_equal(np.concatenate([b[2] for b in batches]), ids)

    swapped = ids.copy()
    swapped[[41, 42]] = swapped[[42, 41]]
    store.write_array("c", "y", Y, sample_ids=swapped)
    with pytest.raises(SampleMismatchError, match=r"row 41 \('img041' vs 'img042'\)"):
        next(aligned_batches(store, [("a", "x"), ("c", "y")]))
    store.write_array("d", "y", Y[:99], sample_ids=ids[:99])
    with pytest.raises(SampleMismatchError, match="99 samples"):
        stats_from_store(store, [("a", "x"), ("d", "y")], progress=False)
    store.write_array("e", "y", Y)  # integer ids against string ids
    with pytest.raises(SampleMismatchError, match="sample ids differ"):
        stats_from_store(store, [("a", "x"), ("e", "y")], progress=False)


def _first_shard(store, model, layer):
    return store.root / model / layer / "shard-000000.npy"


def test_flipped_byte_is_detected_and_named(store, rng):
    X = rng.normal(size=(400, 8)).astype(np.float32)
    store.write_array("m", "l", X, shard_rows=100)
    bad = store.root / "m" / "l" / "shard-000002.npy"
    raw = bytearray(bad.read_bytes())
    raw[-5] ^= 0xFF
    bad.write_bytes(bytes(raw))
    fresh = ActivationStore(store.root)  # verification cache is per object
    with pytest.raises(CorruptShardError, match=r"shard-000002\.npy") as err:
        stats_from_store(fresh, [("m", "l")], progress=False)
    assert err.value.path == bad and "sha256" in str(err.value)
    with pytest.raises(CorruptShardError, match=r"shard-000002\.npy"):
        fresh.verify()
    with pytest.raises(CorruptShardError, match=r"shard-000002\.npy"):
        list(ActivationStore(store.root, verify="always").iter_batches("m", "l"))


def test_truncated_and_missing_files_are_named(store, rng):
    store.write_array("m", "l", rng.normal(size=(300, 4)), shard_rows=100)
    shard = _first_shard(store, "m", "l")
    shard.write_bytes(shard.read_bytes()[:-16])
    never = ActivationStore(store.root, verify="never")  # sizes are checked even without checksums
    with pytest.raises(CorruptShardError, match=r"shard-000000\.npy.*truncated"):
        never.load("m", "l")
    ids = store.root / "m" / "l" / "ids-000001.npy"
    ids.unlink()
    with pytest.raises(CorruptShardError, match=r"ids-000001\.npy.*missing"):
        ActivationStore(store.root).sample_ids("m", "l")
    with pytest.raises(CorruptShardError) as err:
        ActivationStore(store.root).verify("m")
    assert "shard-000000.npy" in str(err.value) and "ids-000001.npy" in str(err.value)


def test_corrupt_manifest_is_named(store, rng):
    store.write_array("m", "l", rng.normal(size=(10, 2)))
    (store.root / "m" / "l" / "manifest.json").write_text('{"format": "ccal')
    with pytest.raises(CorruptShardError, match=r"manifest\.json"):
        store.load("m", "l")


def test_writer_interrupted_keeps_committed_shards_and_resumes(store, rng):
    X = rng.normal(size=(1000, 3))
    with (
        pytest.raises(RuntimeError, match="boom"),
        store.writer("m", "l", sample_shape=(3,), dtype=X.dtype, shard_rows=256) as w,
    ):
        w.write(0, X[:300], np.arange(300))
        w.write(300, X[300:600], np.arange(300, 600))
        raise RuntimeError("boom")
    info = store.info("m", "l")
    assert info.n_samples == 512 and not info.complete  # two full shards; 88 buffered rows dropped
    with pytest.raises(ValueError, match="incomplete"):
        store.load("m", "l")
    # a temporary file and an orphan shard left by a killed process are cleaned on resume
    folder = store.root / "m" / "l"
    (folder / ".shard-000002.npy.123.abcd.tmp").write_bytes(b"partial")
    (folder / "shard-000002.npy").write_bytes(b"not committed")
    with store.writer("m", "l", sample_shape=(3,), dtype=X.dtype) as w:
        assert w.n_committed == 512 and w.shard_rows == 256  # shard_rows adopted from the manifest
        w.write(0, X[:600], np.arange(600))  # committed rows are checked, not rewritten
        w.write(600, X[600:], np.arange(600, 1000))
    assert not (folder / ".shard-000002.npy.123.abcd.tmp").exists()
    np.testing.assert_array_equal(store.load("m", "l"), X)
    assert store.info("m", "l").complete


def test_resume_with_other_ids_or_shape_raises(store, rng):
    X = rng.normal(size=(500, 3))
    with (
        pytest.raises(KeyboardInterrupt),
        store.writer("m", "l", sample_shape=(3,), dtype=X.dtype, shard_rows=100) as w,
    ):
        w.write(0, X[:250], np.arange(250))
        raise KeyboardInterrupt
    with (
        pytest.raises(SampleMismatchError, match="row 7"),
        store.writer("m", "l", sample_shape=(3,), dtype=X.dtype) as w,
    ):
        ids = np.arange(250)
        ids[7] = 999
        w.write(0, X[:250], ids)
    with pytest.raises(StoreMismatchError, match="shape"):
        store.writer("m", "l", sample_shape=(4,), dtype=X.dtype)
    with pytest.raises(StoreMismatchError, match="dtype"):
        store.writer("m", "l", sample_shape=(3,), dtype=np.float32)
    with pytest.raises(StoreMismatchError, match="weights"):
        store.writer("m", "l", sample_shape=(3,), dtype=X.dtype, settings={"weights": "other"})
    w = store.writer("m", "l", sample_shape=(3,), dtype=X.dtype, overwrite=True)
    assert w.n_committed == 0


def test_failed_shard_write_leaves_nothing_half_written(store, rng, monkeypatch):
    X = rng.normal(size=(300, 3))
    real = files_mod.atomic_write
    calls = {"n": 0}

    def failing(path, parts, fsync):
        calls["n"] += 1
        if path.name == "shard-000001.npy":
            tmp = path.with_name(".partial.tmp")
            tmp.write_bytes(bytes(parts[0])[:10])  # what a crash mid-write would leave, under a temp name
            raise OSError("disk full")
        return real(path, parts, fsync)

    monkeypatch.setattr(files_mod, "atomic_write", failing)
    with pytest.raises(OSError, match="disk full"):
        store.write_array("m", "l", X, shard_rows=100)
    monkeypatch.setattr(files_mod, "atomic_write", real)
    folder = store.root / "m" / "l"
    assert not (folder / "shard-000001.npy").exists()
    assert store.info("m", "l").n_samples == 100  # the manifest lists only the committed shard
    store.write_array("m", "l", X, shard_rows=100)  # resumes and completes
    np.testing.assert_array_equal(store.load("m", "l"), X)
    assert not any(p.name.endswith(".tmp") for p in folder.iterdir())


def test_bad_arguments_are_named(store, rng):
    with pytest.raises(ValueError, match="model"):
        store.layer_dir("../evil", "x")
    with pytest.raises(ValueError, match="layer"):
        store.layer_dir("m", "")
    with pytest.raises(ValueError, match="verify"):
        ActivationStore("x", verify="sometimes")
    with pytest.raises(KeyError, match="holds: nothing"):
        store.manifest("m", "missing")
    store.write_array("m", "l", rng.normal(size=(10, 2)))
    with pytest.raises(TypeError, match=r"\(model, layer\)"):
        stats_from_store(store, ["m"], progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        list(store.iter_batches("m", "l", 0))
    with pytest.raises(ValueError, match="one id per sample"):
        store.write_array("m", "k", rng.normal(size=(10, 2)), sample_ids=np.arange(9))
    with pytest.raises(TypeError, match="integers or strings"):
        store.write_array("m", "k", rng.normal(size=(3, 2)), sample_ids=[0.5, 1.5, 2.5])
    with (
        pytest.raises(ValueError, match="in order"),
        store.writer("m", "w", sample_shape=(2,), dtype=float) as w,
    ):
        w.write(5, np.zeros((2, 2)), [5, 6])


def _hold_writer_until_killed(root: str, ready) -> None:
    """Child process: open a writer of m/l, commit one shard, signal, then sleep until killed."""
    import time

    store = ActivationStore(root)
    w = store.writer("m", "l", sample_shape=(2,), dtype=np.float64, shard_rows=4)
    w.write(0, np.zeros((4, 2)), np.arange(4))
    ready.set()
    time.sleep(120)
    w.close()


def test_one_writer_per_layer(store, rng):
    """A second writer of the same layer (same process or another) is refused with the holder named; the lock goes
    with close(), with an exception in the with-block, and with the death of the holding process."""
    import multiprocessing
    import os
    import signal

    from ccalens.extract import LayerLockedError

    X = rng.normal(size=(8, 2))
    w = store.writer("m", "l", sample_shape=(2,), dtype=X.dtype, shard_rows=4)
    with pytest.raises(LayerLockedError, match=rf"m/l .*pid {os.getpid()} on "):
        store.writer("m", "l", sample_shape=(2,), dtype=X.dtype)
    other = store.writer("m", "other", sample_shape=(2,), dtype=X.dtype)  # other layers are free
    other.abort()
    w.write(0, X, np.arange(8))
    w.close()
    with pytest.raises(RuntimeError, match="boom"), store.writer("m", "l", sample_shape=(2,), dtype=X.dtype):
        raise RuntimeError("boom")
    store.writer("m", "l", sample_shape=(2,), dtype=X.dtype).close()  # free again, layer already complete
    assert store.layers("m") == ["l", "other"] and store.models() == ["m"]  # lock files are not layers

    store_2 = ActivationStore(store.root)
    store_2.delete("m", "l")
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_writer_until_killed, args=(str(store.root), ready))
    proc.start()
    try:
        assert ready.wait(60)
        with pytest.raises(LayerLockedError, match=rf"pid {proc.pid}"):
            store_2.writer("m", "l", sample_shape=(2,), dtype=X.dtype)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the holder dies without closing its writer
        proc.join(30)
    with store_2.writer("m", "l", sample_shape=(2,), dtype=X.dtype) as resumed:  # the kill released the lock
        assert resumed.n_committed == 4
        resumed.write(0, np.zeros((4, 2)), np.arange(4))
        resumed.write(4, X[4:], np.arange(4, 8))
    assert store_2.info("m", "l").complete
