"""Security of the activation store and extraction (issue #10, items 3-6).

Planted manifests (absolute, ``../`` and symlink paths; malformed fields; pickled shards), the overwrite race
between two processes, a corrupted shard on re-run, and a Dask cluster whose workers are gone.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from ccalens.extract import (
    ActivationStore,
    CorruptShardError,
    LayerLockedError,
    stats_from_store,
)


@pytest.fixture
def store(tmp_path) -> ActivationStore:
    return ActivationStore(tmp_path / "acts")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plant(store: ActivationStore, edit) -> Path:
    """A stored layer m/l (2 shards of 4 x 3 float64) whose manifest is then changed by ``edit(manifest)``."""
    store.write_array("m", "l", np.arange(24, dtype=np.float64).reshape(8, 3), shard_rows=4)
    path = store.root / "m" / "l" / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    return path


def _outside_npy(tmp_path: Path, arr: np.ndarray) -> tuple[Path, dict]:
    """A valid .npy outside the store, with the size and sha256 a planted manifest entry would need."""
    secret = tmp_path / "outside" / "secret.npy"
    secret.parent.mkdir(exist_ok=True)
    np.save(secret, arr)
    return secret, {"bytes": secret.stat().st_size, "sha256": _sha(secret)}


def _every_read(store: ActivationStore, *, data_only: bool = False) -> list:
    """Each way of reading layer m/l; with ``data_only``, those that open its shards (not only the manifest/ids)."""
    reads = [
        lambda: store.load("m", "l"),
        lambda: list(store.iter_batches("m", "l")),
        lambda: stats_from_store(store, [("m", "l")], progress=False),
        lambda: store.verify(),
    ]
    return reads if data_only else [*reads, lambda: store.sample_ids("m", "l"), lambda: store.info("m", "l")]


# ------------------------------------------------------------------------------------------- item 3: manifests
@pytest.mark.parametrize("kind", ["absolute", "dotdot", "dotdot_ids", "subfolder"])
def test_manifest_entry_outside_the_layer_is_refused(tmp_path, store, kind):
    """A manifest entry naming a file outside the layer folder (with a matching size and checksum, so that only the
    path can refuse it) is refused on every read, naming the manifest, the entry and the path."""
    secret, meta = _outside_npy(tmp_path, np.full((4, 3), 7.0))
    rel = os.path.relpath(secret, store.root / "m" / "l")
    planted = {"absolute": str(secret), "dotdot": rel, "dotdot_ids": rel, "subfolder": "sub/shard-000000.npy"}[kind]
    if kind == "subfolder":
        (store.root / "m" / "l" / "sub").mkdir(parents=True)

    def edit(manifest: dict) -> None:
        entry = manifest["shards"][0]
        if kind == "dotdot_ids":
            entry.update(ids_file=planted, ids_bytes=meta["bytes"], ids_sha256=meta["sha256"])
        else:
            entry.update(file=planted, **meta)

    manifest_path = _plant(store, edit)
    if kind == "subfolder":
        (store.root / "m" / "l" / "sub" / "shard-000000.npy").write_bytes(secret.read_bytes())
    fresh = ActivationStore(store.root)
    for read in _every_read(fresh):
        with pytest.raises(CorruptShardError, match=r"file name inside the layer folder") as err:
            read()
        assert err.value.path == manifest_path and repr(planted) in str(err.value)


def test_symlinked_shard_escaping_the_layer_is_refused(tmp_path, store):
    """A shard replaced by a symlink to a file outside the layer (same bytes, so size and checksum match) is
    refused; a lock file planted as a symlink is not followed (the target is not truncated)."""
    store.write_array("m", "l", np.arange(24, dtype=np.float64).reshape(8, 3), shard_rows=4)
    shard = store.root / "m" / "l" / "shard-000001.npy"
    secret = tmp_path / "outside.npy"
    secret.write_bytes(shard.read_bytes())
    shard.unlink()
    shard.symlink_to(secret)
    fresh = ActivationStore(store.root)
    for read in _every_read(fresh, data_only=True):
        with pytest.raises(CorruptShardError, match=r"shard-000001\.npy.*symlink.*outside the layer folder"):
            read()

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (store.root / "m" / ".k.lock").symlink_to(victim)
    with pytest.raises(OSError, match=r"\.k\.lock"):
        store.writer("m", "k", sample_shape=(3,), dtype=np.float64)
    assert victim.read_text() == "precious"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("shards", {"file": "x"}, r"'shards' must be a list"),
        ("sample_shape", [3, -1], r"'sample_shape' must be a list of non-negative integers"),
        ("dtype", "|O", r"'dtype' must be a numeric dtype"),
        ("dtype", {"names": ["a"], "formats": ["<f8"]}, r"'dtype' must be a numeric dtype"),
        ("n_samples", 9, r"'n_samples' is 9 but the shards hold 8 rows"),
        ("complete", "yes", r"'complete' must be true or false"),
        ("version", "1", r"'version' must be an integer"),
        ("rows", "4", r"shards\[0\]\['rows'\] must be a non-negative integer"),
        ("sha256", None, r"shards\[0\]\['sha256'\] must be a sha256"),
        ("file", 3, r"shards\[0\]\['file'\] must be a file name inside the layer folder"),
    ],
)
def test_malformed_manifest_fields_are_named(store, field, value, message):
    def edit(manifest: dict) -> None:
        target = manifest["shards"][0] if field in ("rows", "sha256", "file") else manifest
        target[field] = value

    path = _plant(store, edit)
    with pytest.raises(CorruptShardError, match=message) as err:
        ActivationStore(store.root).load("m", "l")
    assert err.value.path == path


class _Touch:
    """Unpickling this object creates the file ``path`` (what a pickled shard could do)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_pickled_shard_is_never_unpickled(tmp_path, store):
    """A shard replaced by an object array (a pickle) whose manifest entry matches it is refused unread."""
    marker = tmp_path / "executed"
    payload = np.array([_Touch(marker)] * 4, dtype=object)
    evil = tmp_path / "evil.npy"
    np.save(evil, payload, allow_pickle=True)
    store.write_array("m", "l", np.zeros((4, 1)), shard_rows=4)
    folder = store.root / "m" / "l"
    (folder / "ids-000000.npy").write_bytes(evil.read_bytes())
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["shards"][0].update(ids_bytes=evil.stat().st_size, ids_sha256=_sha(evil))
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptShardError, match=r"ids-000000\.npy"):
        ActivationStore(store.root).sample_ids("m", "l")
    assert not marker.exists()


# ------------------------------------------------------------------------------------------- item 4: overwrite
def _mlp():
    """Linear 5 -> 4 (``fc1``), Tanh, Linear 4 -> 2 (``fc2``), fixed weights (torch is imported here, so that the
    spawned child and the store tests do not need it)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch.nn.Sequential(
        OrderedDict(fc1=torch.nn.Linear(5, 4), act=torch.nn.Tanh(), fc2=torch.nn.Linear(4, 2))
    )


def _inputs(n: int):
    torch = pytest.importorskip("torch")
    return torch.randn(n, 5, generator=torch.Generator().manual_seed(0))


def _hold_layer(root: str, layer: str, ready, release) -> None:
    """Child process: write one committed shard of mlp/<layer> (4 features) and hold the writer until released."""
    store = ActivationStore(root)
    w = store.writer("mlp", layer, sample_shape=(4,), dtype=np.float32, shard_rows=3)
    w.write(0, np.ones((3, 4), np.float32), np.arange(3))
    ready.set()
    release.wait(120)
    w.close(complete=False)


def _files(folder: Path) -> dict[str, str]:
    return {p.name: _sha(p) for p in sorted(folder.iterdir())}


def test_overwrite_while_another_process_writes_deletes_nothing(tmp_path):
    """extract(overwrite=True) takes the layer locks before deleting anything: while a spawned process writes
    mlp/fc2, overwriting [fc1, fc2] raises LayerLockedError and leaves both layers exactly as they were."""
    from ccalens.extract import extract

    x = _inputs(9)
    store = ActivationStore(tmp_path)
    extract(_mlp(), x, ["fc1"], store=store, model_name="mlp", shard_rows=3, progress=False)
    before_fc1 = _files(tmp_path / "mlp" / "fc1")
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_layer, args=(str(tmp_path), "fc2", ready, release))
    proc.start()
    try:
        assert ready.wait(60), "the child process did not take the lock"
        before_fc2 = _files(tmp_path / "mlp" / "fc2")
        with pytest.raises(LayerLockedError, match=rf"mlp/fc2 .*pid {proc.pid}"):
            extract(_mlp(), x, ["fc1", "fc2"], store=store, model_name="mlp", overwrite=True, progress=False)
        with pytest.raises(LayerLockedError, match=rf"pid {proc.pid}"):
            store.delete("mlp", "fc2")
        assert _files(tmp_path / "mlp" / "fc2") == before_fc2
        assert _files(tmp_path / "mlp" / "fc1") == before_fc1
    finally:
        release.set()
        proc.join(30)
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.exitcode == 0
    assert store.info("mlp", "fc2").n_samples == 3  # the child's committed shard survived
    out = extract(_mlp(), x, ["fc1", "fc2"], store=store, model_name="mlp", overwrite=True, progress=False)
    ref = extract(_mlp(), x, ["fc1", "fc2"], progress=False)
    np.testing.assert_array_equal(out["fc2"], ref["fc2"])  # once free, the overwrite goes ahead


# ------------------------------------------------------------------------------------------- item 5: corrupt re-run
@pytest.mark.parametrize("bad_file", ["shard-000001.npy", "ids-000002.npy"])
def test_rerun_over_a_corrupted_complete_layer_repairs_it(tmp_path, bad_file):
    """Re-running extract over a complete layer with a corrupted shard (or ids file) warns naming the file and
    extracts the bad shard again: the store verifies and equals a fresh extraction."""
    from ccalens.extract import extract

    x = _inputs(12)
    store = ActivationStore(tmp_path)
    extract(_mlp(), x, ["fc1", "fc2"], store=store, model_name="mlp", shard_rows=3, progress=False)
    path = tmp_path / "mlp" / "fc1" / bad_file
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x40
    path.write_bytes(bytes(raw))
    seen = []
    hook = _mlp()
    hook.register_forward_pre_hook(lambda m, args: seen.append(int(args[0].shape[0])))
    with pytest.warns(UserWarning, match=rf"mlp/fc1: {bad_file.replace('.', '[.]')} is corrupted.*again"):
        out = extract(hook, x, ["fc1", "fc2"], batch_size=3, store=store, model_name="mlp", progress=False)
    assert sum(seen) < 12  # only the rows from the bad shard on were run again
    store.verify()
    ref = extract(_mlp(), x, ["fc1", "fc2"], progress=False)
    for layer in ["fc1", "fc2"]:
        np.testing.assert_array_equal(out[layer], ref[layer])
    np.testing.assert_array_equal(out.sample_ids, np.arange(12))


def test_writer_resume_over_a_corrupted_layer_rewrites_it(store):
    """The same repair through the store's own writer (write_array over a complete layer)."""
    X = np.arange(30, dtype=np.float64).reshape(10, 3)
    store.write_array("m", "l", X, shard_rows=4)
    path = store.root / "m" / "l" / "shard-000000.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match=r"m/l: shard-000000[.]npy is corrupted"):
        ActivationStore(store.root).write_array("m", "l", X, shard_rows=4)
    fresh = ActivationStore(store.root)
    fresh.verify()
    np.testing.assert_array_equal(fresh.load("m", "l"), X)


# ------------------------------------------------------------------------------------------- item 6: dead Dask
_TASK_STARTED = threading.Event()  # module level: tasks pickle the transform by reference
_WORKER_GONE = threading.Event()


def _slow_identity(a: np.ndarray) -> np.ndarray:
    """Transform of a Dask task: signals that a task runs, then waits until its worker is closed under it."""
    _TASK_STARTED.set()
    _WORKER_GONE.wait(10)
    return a


@pytest.mark.parametrize("explicit_client", [True, False])
def test_dask_cluster_without_workers_fails_quickly_naming_what_was_lost(store, explicit_client):
    """Every worker of the cluster dies during the computation: stats_with_dask raises within its timeout, naming
    the lost worker and the unfinished chunks, instead of waiting forever (also through dask's default client)."""
    distributed = pytest.importorskip("dask.distributed")
    from ccalens.extract import DaskWorkersLostError, stats_with_dask

    store.write_array("m", "l", np.random.default_rng(0).normal(size=(40, 3)), shard_rows=10)
    _TASK_STARTED.clear()
    _WORKER_GONE.clear()
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        worker = next(iter(cluster.workers.values()))
        address = worker.address

        def kill() -> None:
            if _TASK_STARTED.wait(30):
                cluster.sync(worker.close, executor_wait=False)
            _WORKER_GONE.set()

        killer = threading.Thread(target=kill, daemon=True)
        killer.start()
        outcome: list[BaseException | object] = []

        def compute() -> None:
            try:
                outcome.append(
                    stats_with_dask(
                        store,
                        [("m", "l")],
                        client=client if explicit_client else None,
                        transform=_slow_identity,
                        timeout=1.0,
                    )
                )
            except BaseException as exc:
                outcome.append(exc)

        t0 = time.monotonic()
        runner = threading.Thread(target=compute, daemon=True)  # the test itself cannot hang: joined with a limit
        runner.start()
        runner.join(60)
        elapsed = time.monotonic() - t0
        killer.join(10)
        assert not runner.is_alive(), "stats_with_dask still waits on a cluster without workers"
    assert elapsed < 20
    assert len(outcome) == 1 and isinstance(outcome[0], DaskWorkersLostError), outcome
    message = str(outcome[0])
    assert "no worker for 1 s" in message and address in message
    assert "m/l (40 rows in 4 chunk tasks)" in message


def _sleepy_identity(a: np.ndarray) -> np.ndarray:
    time.sleep(0.3)
    return a


def test_dask_timeout_does_not_limit_a_long_computation_with_live_workers(store):
    """The timeout counts only time without workers: 4 tasks of 0.3 s on one worker outlast timeout=0.5 s."""
    distributed = pytest.importorskip("dask.distributed")
    from ccalens.extract import stats_with_dask

    store.write_array("m", "l", np.random.default_rng(0).normal(size=(40, 3)), shard_rows=10)
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        t0 = time.monotonic()
        stats = stats_with_dask(store, [("m", "l")], client=client, transform=_sleepy_identity, timeout=0.5)
        assert time.monotonic() - t0 > 1.0
    ref = stats_from_store(store, [("m", "l")], progress=False)
    np.testing.assert_allclose(stats.comoment, ref.comoment, rtol=1e-10, atol=1e-12)


def test_dask_timeout_is_checked(store):
    pytest.importorskip("dask")
    from ccalens.extract import stats_with_dask

    store.write_array("m", "l", np.zeros((4, 2)))
    for bad in (0, -1.0, "5", float("nan")):
        with pytest.raises(ValueError, match="timeout must be"):
            stats_with_dask(store, [("m", "l")], timeout=bad)
