"""Extraction from small real torch models (CPU): hooks, alignment, kill-and-resume, corruption, Dask."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from ccalens.core.stats import SufficientStats  # noqa: E402
from ccalens.extract import (  # noqa: E402
    Activations,
    ActivationStore,
    CorruptShardError,
    SampleMismatchError,
    StoreMismatchError,
    aligned_batches,
    describe_layers,
    extract,
    list_layers,
    stats_from_store,
    stats_with_dask,
    store_to_dask_array,
)

REPO = Path(__file__).resolve().parents[1]


def make_cnn(seed: int = 0) -> nn.Sequential:
    """Conv 1->4 (3x3) with an in-place ReLU, pool, conv 4->6, flatten, fc 96->10, ReLU, fc 10->3."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 10),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(10, 3),
    )


class TinyMLP(nn.Module):
    def __init__(self, seed: int = 1) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fc1 = nn.Linear(64, 12)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x.flatten(1))))


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(90, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def count_forward_rows(model: nn.Module) -> list[int]:
    seen: list[int] = []
    model.register_forward_pre_hook(lambda m, args: seen.append(int(args[0].shape[0])))
    return seen


# ------------------------------------------------------------------------------------------- hooks
def test_list_and_describe_layers(images):
    cnn = make_cnn()
    assert list_layers(cnn) == [str(i) for i in range(10)]
    assert list_layers(TinyMLP()) == ["fc1", "act", "fc2"]
    summary = {s.name: s for s in describe_layers(cnn, images[:2])}
    assert summary["0"].type == "Conv2d" and summary["0"].output_shape == (2, 4, 8, 8)
    assert summary["6"].output_shape == (2, 10) and summary["6"].n_params == 96 * 10 + 10
    assert cnn.training and not cnn[0]._forward_hooks


def test_extract_matches_manual_forward_and_keeps_conv_shape(images):
    cnn = make_cnn()
    acts = extract(cnn, images, ["0", "3", "6", "9"], batch_size=32, progress=False)
    assert isinstance(acts, Activations)
    assert (
        acts["0"].shape == (90, 4, 8, 8) and acts["3"].shape == (90, 6, 4, 4) and acts["9"].shape == (90, 3)
    )
    np.testing.assert_array_equal(acts.sample_ids, np.arange(90))
    cnn.eval()
    with torch.no_grad():
        conv = cnn[0](images)
        np.testing.assert_allclose(acts["0"], conv.numpy(), atol=1e-6)
        assert (acts["0"] < 0).any()  # captured before the in-place ReLU overwrote it
        np.testing.assert_allclose(acts["6"], cnn[:7](images).numpy(), atol=1e-5)
        np.testing.assert_allclose(acts["9"], cnn(images).numpy(), atol=1e-5)  # eval: no dropout
    flat = extract(cnn, images, "3", flatten=True, progress=False)
    assert flat["3"].shape == (90, 96)
    np.testing.assert_array_equal(flat["3"], acts["3"].reshape(90, -1))


def test_unknown_layer_lists_close_names():
    with pytest.raises(
        KeyError, match=r"no module named 'fc3' in TinyMLP; did you mean 'fc2', 'fc1'\?"
    ) as err:
        extract(TinyMLP(), torch.zeros(4, 64), ["fc3"], progress=False)
    assert "list_layers" in str(err.value)
    with pytest.raises(TypeError, match="layers"):
        extract(TinyMLP(), torch.zeros(4, 64), [], progress=False)


def test_modes_hooks_and_grad_restored_even_on_error(images):
    cnn = make_cnn()
    cnn.train()
    cnn[4].eval()  # a mixed state must survive
    before = {name: m.training for name, m in cnn.named_modules()}

    def failing():
        yield images[:10]
        assert not cnn.training and torch.is_grad_enabled() is False
        raise RuntimeError("data source died")

    with pytest.raises(RuntimeError, match="data source died"):
        extract(cnn, failing(), ["0", "6"], progress=False)
    assert {name: m.training for name, m in cnn.named_modules()} == before
    assert all(not m._forward_hooks for m in cnn.modules())
    assert torch.is_grad_enabled()
    extract(cnn, images, ["6"], progress=False)
    assert {name: m.training for name, m in cnn.named_modules()} == before
    assert all(p.grad is None for p in cnn.parameters())
    bn_stats = cnn[4].running_mean.clone()
    cnn[4].train()
    extract(cnn, images, ["6"], progress=False)  # eval mode: batch norm statistics untouched
    assert torch.equal(cnn[4].running_mean, bn_stats)


def test_data_forms_give_the_same_features(images):
    mlp = TinyMLP()
    ref = extract(mlp, images, ["fc1"], batch_size=16, progress=False)
    ids = np.arange(90) * 7
    labels = torch.zeros(90, dtype=torch.long)
    forms = {
        "ndarray": (images.numpy().astype(np.float64), {}),  # cast to the model's dtype
        "pair": ((images, ids), {}),
        "dataset": (TensorDataset(images, labels), {"sample_ids": ids}),
        "loader": (DataLoader(TensorDataset(images, labels), batch_size=13), {"sample_ids": ids}),
        "loader_ids": (
            DataLoader(TensorDataset(images, labels, torch.as_tensor(ids)), batch_size=13),
            {"ids_position": 2},
        ),
        "generator": ((images[i : i + 20] for i in range(0, 90, 20)), {"sample_ids": ids}),
    }
    for name, (data, kw) in forms.items():
        got = extract(mlp, data, ["fc1"], batch_size=16, progress=False, **kw)
        np.testing.assert_allclose(got["fc1"], ref["fc1"], atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(
            got.sample_ids, np.arange(90) if name == "ndarray" else ids, err_msg=name
        )


def test_bad_data_arguments_are_named(images):
    mlp = TinyMLP()
    shuffled = DataLoader(TensorDataset(images), batch_size=10, shuffle=True)
    with pytest.raises(ValueError, match="shuffling DataLoader"):
        extract(mlp, shuffled, ["fc1"], progress=False)
    with pytest.raises(ValueError, match="sample_ids"):
        extract(mlp, images, ["fc1"], sample_ids=np.arange(89), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        extract(mlp, images, ["fc1"], batch_size=0, progress=False)
    with pytest.raises(TypeError, match="data must be"):
        extract(mlp, 3.0, ["fc1"], progress=False)
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        extract(lambda x: x, images, ["fc1"], progress=False)
    with pytest.raises(ValueError, match="model_name"):
        extract(mlp, images, ["fc1"], store=ActivationStore("unused"), progress=False)


# ------------------------------------------------------------------------------------------- alignment
def test_two_models_aligned_and_misaligned(tmp_path, images):
    store = ActivationStore(tmp_path)
    ids = np.array([f"s{i}" for i in range(90)])
    a = extract(
        make_cnn(), (images, ids), ["6"], store=store, model_name="cnn", shard_rows=25, progress=False
    )
    b = extract(
        TinyMLP(), (images, ids), ["fc1"], store=store, model_name="mlp", shard_rows=40, progress=False
    )
    a.check_aligned(b)
    stats = stats_from_store(store, [*a.keys, *b.keys], progress=False)
    ref = SufficientStats.from_arrays(store.load("cnn", "6"), store.load("mlp", "fc1"))
    np.testing.assert_allclose(
        stats.comoment, ref.comoment, rtol=1e-10, atol=1e-10 * np.abs(ref.comoment).max()
    )

    order = np.r_[0:10, 11, 10, 12:90]  # two samples swapped
    c = extract(
        TinyMLP(), (images[order], ids[order]), ["fc1"], store=store, model_name="mlp_swapped", progress=False
    )
    with pytest.raises(SampleMismatchError, match=r"row 10 \('s10' vs 's11'\)"):
        stats_from_store(store, [("cnn", "6"), ("mlp_swapped", "fc1")], progress=False)
    with pytest.raises(SampleMismatchError, match="row 10"):
        a.check_aligned(c)
    in_memory = extract(TinyMLP(), images[:80], ["fc1"], progress=False)
    with pytest.raises(SampleMismatchError, match="80 samples"):
        in_memory.check_aligned(extract(TinyMLP(), images, ["fc1"], progress=False))


# ------------------------------------------------------------------------------------------- resume
def batches_then_die(images: torch.Tensor, size: int, die_after: int | None):
    for k, i in enumerate(range(0, len(images), size)):
        if die_after is not None and k == die_after:
            raise KeyboardInterrupt("killed")
        yield images[i : i + size]


def manifest_shards(store: ActivationStore, model: str, layer: str) -> list[tuple[int, str]]:
    return [(s["rows"], s["sha256"]) for s in store.manifest(model, layer)["shards"]]


def test_interrupted_extraction_resumes_identically(tmp_path, images):
    layers = ["0", "6", "9"]
    full = ActivationStore(tmp_path / "full")
    extract(
        make_cnn(),
        batches_then_die(images, 10, None),
        layers,
        store=full,
        model_name="cnn",
        shard_rows=16,
        progress=False,
    )

    store = ActivationStore(tmp_path / "resumed")
    cnn = make_cnn()
    with pytest.raises(KeyboardInterrupt):
        extract(
            cnn,
            batches_then_die(images, 10, 5),
            layers,
            store=store,
            model_name="cnn",
            shard_rows=16,
            progress=False,
        )
    assert store.info("cnn", "6").n_samples == 48 and not store.info("cnn", "6").complete  # 3 shards of 16
    with pytest.raises(ValueError, match="incomplete"):
        stats_from_store(store, [("cnn", "6")], progress=False)

    rows = count_forward_rows(cnn)
    out = extract(
        cnn, batches_then_die(images, 10, None), layers, store=store, model_name="cnn", progress=False
    )
    assert sum(rows) == 90 - 40  # batches 0..3 (rows < 40) were fully on disk: not run again
    for layer in layers:
        assert store.info("cnn", layer).complete
        assert manifest_shards(store, "cnn", layer) == manifest_shards(full, "cnn", layer)
        np.testing.assert_array_equal(out[layer], full.load("cnn", layer))
    # running the same extraction once more is a no-op that still checks the ids
    rows.clear()
    extract(cnn, images, layers, batch_size=30, store=store, model_name="cnn", progress=False)
    assert sum(rows) == 0


def test_resume_refuses_other_weights_order_or_more_data(tmp_path, images):
    store = ActivationStore(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        extract(
            make_cnn(),
            batches_then_die(images, 10, 4),
            ["6"],
            store=store,
            model_name="cnn",
            shard_rows=16,
            progress=False,
        )
    with pytest.raises(StoreMismatchError, match="model_fingerprint"):
        extract(make_cnn(seed=5), images, ["6"], store=store, model_name="cnn", progress=False)
    with pytest.raises(SampleMismatchError, match="row 0"):
        extract(
            make_cnn(),
            images.flip(0),
            ["6"],
            store=store,
            model_name="cnn",
            sample_ids=np.arange(90)[::-1],
            progress=False,
        )
    extract(make_cnn(), images, ["6"], store=store, model_name="cnn", progress=False)
    with pytest.raises(ValueError, match="already complete"):
        extract(
            make_cnn(), torch.cat([images, images[:5]]), ["6"], store=store, model_name="cnn", progress=False
        )
    with pytest.raises(SampleMismatchError, match="yielded 80"):
        extract(make_cnn(), images[:80], ["6"], store=store, model_name="cnn", progress=False)
    out = extract(
        make_cnn(seed=5), images, ["6"], store=store, model_name="cnn", overwrite=True, progress=False
    )
    assert out["6"].shape == (90, 10)


SCRIPT = """
import sys, time, torch
sys.path.insert(0, {repo!r})
from ccalens.extract import ActivationStore, extract
from tests.test_extract import make_cnn
images = torch.load({data!r})
def slow():
    for i in range(0, len(images), 6):
        if i >= 36:
            time.sleep(0.3)
        yield images[i : i + 6]
extract(make_cnn(), slow(), ["0", "6"], store=ActivationStore({root!r}), model_name="cnn", shard_rows=12,
        progress=False)
"""


def test_sigkilled_extraction_resumes_identically(tmp_path, images):
    torch.save(images, tmp_path / "images.pt")
    root = tmp_path / "killed"
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(repo=str(REPO), data=str(tmp_path / "images.pt"), root=str(root)))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=REPO)
    manifest = root / "cnn" / "6" / "manifest.json"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if manifest.exists() and json.loads(manifest.read_text())["n_samples"] >= 36:
                break
            assert proc.poll() is None, "the extraction ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("the extraction made no progress")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = ActivationStore(root)
    info = store.info("cnn", "6")
    assert 36 <= info.n_samples < 90 and not info.complete

    out = extract(make_cnn(), images, ["0", "6"], batch_size=6, store=store, model_name="cnn", progress=False)
    full = extract(make_cnn(), images, ["0", "6"], batch_size=6, progress=False)
    for layer in ["0", "6"]:
        np.testing.assert_array_equal(out[layer], full[layer])
    np.testing.assert_array_equal(out.sample_ids, np.arange(90))
    store.verify()


def test_corrupted_shard_after_extraction_is_named(tmp_path, images):
    store = ActivationStore(tmp_path)
    out = extract(make_cnn(), images, ["3"], store=store, model_name="cnn", shard_rows=30, progress=False)
    shard = tmp_path / "cnn" / "3" / "shard-000001.npy"
    data = bytearray(shard.read_bytes())
    data[200] ^= 0x01
    shard.write_bytes(bytes(data))
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731
    with pytest.raises(CorruptShardError, match=r"shard-000001\.npy"):
        stats_from_store(ActivationStore(tmp_path), out.keys, transform=flat, progress=False)
    with pytest.raises(CorruptShardError, match=r"shard-000001\.npy"):
        stats_with_dask(ActivationStore(tmp_path), out.keys, transform=flat)
    shard.write_bytes(bytes(data[:-100]))
    with pytest.raises(CorruptShardError, match=r"shard-000001\.npy.*truncated"):
        list(aligned_batches(ActivationStore(tmp_path, verify="never"), out.keys))


# ------------------------------------------------------------------------------------------- dask
@pytest.fixture
def two_models(tmp_path, images) -> tuple[ActivationStore, list[tuple[str, str]], SufficientStats]:
    store = ActivationStore(tmp_path)
    big = torch.cat([images] * 4) + 0.1 * torch.randn(
        360, 1, 8, 8, generator=torch.Generator().manual_seed(1)
    )
    a = extract(make_cnn(), big, ["3", "6"], store=store, model_name="cnn", shard_rows=50, progress=False)
    b = extract(TinyMLP(), big, ["fc1"], store=store, model_name="mlp", shard_rows=64, progress=False)
    keys = [*a.keys, *b.keys]
    flat = [lambda x: x.mean(axis=(2, 3)), None, None]  # conv map pooled to (n, C)
    single = stats_from_store(store, keys, transform=flat, progress=False)
    ref = SufficientStats.from_arrays(
        store.load("cnn", "3").mean(axis=(2, 3)), store.load("cnn", "6"), store.load("mlp", "fc1")
    )
    np.testing.assert_allclose(
        single.comoment, ref.comoment, rtol=1e-10, atol=1e-10 * np.abs(ref.comoment).max()
    )
    return store, keys, single


def _assert_close(a: SufficientStats, b: SufficientStats) -> None:
    assert a.sizes == b.sizes and a.n_samples == b.n_samples
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.comoment, b.comoment, rtol=1e-10, atol=1e-10 * np.abs(b.comoment).max())


def test_dask_threaded_equals_single_process(two_models):
    pytest.importorskip("dask")
    store, keys, single = two_models
    flat = [lambda x: x.mean(axis=(2, 3)), None, None]
    _assert_close(stats_with_dask(store, keys, transform=flat, split_every=2), single)
    _assert_close(stats_with_dask(store, keys, transform=flat, batch_size=37), single)
    arr = store_to_dask_array(store, "cnn", "3")
    assert arr.shape == (360, 6, 4, 4) and arr.numblocks[0] == 8
    np.testing.assert_array_equal(arr.compute(), store.load("cnn", "3"))


def test_dask_local_cluster_equals_single_process(two_models):
    distributed = pytest.importorskip("dask.distributed")
    store, keys, single = two_models
    flat = [lambda x: x.mean(axis=(2, 3)), None, None]
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        _assert_close(stats_with_dask(store, keys, client=client, transform=flat), single)


# ------------------------------------------------------------------------------------------- one capture path
class WithFeatures(nn.Module):
    """``features(x)`` -> (n, 12), ``forward(x)`` -> logits (n, 5)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.ReLU())
        self.head = nn.Linear(12, 5)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _manual(cnn: nn.Module, images: torch.Tensor, index: int) -> np.ndarray:
    cnn.eval()
    with torch.no_grad():
        return cnn[: index + 1](images).numpy()


def test_transform_mean_flatten_callable_and_per_layer(images):
    cnn = make_cnn()
    cnn.train()
    pooled = extract(cnn, images, ["0", "3"], transform="mean", batch_size=32, progress=False)
    ref0, ref3 = _manual(cnn, images, 0), _manual(cnn, images, 3)
    np.testing.assert_allclose(pooled["0"], ref0.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pooled["3"], ref3.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    flat = extract(cnn, images, ["3"], transform="flatten", batch_size=32, progress=False)
    np.testing.assert_allclose(flat["3"], ref3.reshape(90, -1), rtol=1e-5, atol=1e-6)
    mixed = extract(
        cnn, images, ["0", "3"], transform={"0": lambda t: t.amax(dim=(2, 3))}, batch_size=32, progress=False
    )
    np.testing.assert_allclose(mixed["0"], ref0.max(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    assert mixed["3"].shape == (90, 6, 4, 4)  # layers missing from the mapping keep their maps
    cnn.train()
    with pytest.raises(ValueError, match="transform must be one of"):
        extract(cnn, images, ["0"], transform="max", progress=False)
    with pytest.raises(ValueError, match="not extracted"):
        extract(cnn, images, ["0"], transform={"9": "mean"}, progress=False)
    with pytest.raises(ValueError, match="batch axis first"):
        extract(cnn, images, ["0"], transform=lambda t: t.mean(dim=0), progress=False)
    assert cnn.training and all(not m._forward_hooks for m in cnn.modules())


def test_output_is_a_layer_and_forward_picks_the_method(images):
    model = WithFeatures()
    acts = extract(model, images, ["body", "output"], batch_size=40, progress=False)
    model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(acts["output"], model(images).numpy(), rtol=1e-6)
        np.testing.assert_allclose(acts["body"], model.features(images).numpy(), rtol=1e-6)
    pen = extract(model, images, "output", forward="features", batch_size=40, progress=False)
    np.testing.assert_allclose(pen["output"], acts["body"], rtol=1e-6)
    with pytest.raises(AttributeError, match="no method 'penultimate'"):
        extract(model, images, "output", forward="penultimate", progress=False)


def test_into_streams_batches_into_statistics(images):
    from ccalens.conv import DFTStats

    cnn = make_cnn()
    seen = count_forward_rows(cnn)
    stats = extract(cnn, images, ["0", "6", "output"], into=SufficientStats(), transform="mean", batch_size=32,
                    progress=False)
    assert seen == [32, 32, 26]
    acts = extract(cnn, images, ["0", "6", "output"], transform="mean", batch_size=90, progress=False)
    ref = SufficientStats.from_arrays(acts["0"], acts["6"], acts["output"])
    assert stats.n_samples == 90 and stats.sizes == (4, 10, 3)
    np.testing.assert_allclose(stats.comoment, ref.comoment, rtol=1e-9, atol=1e-9)
    # conv maps kept as they are feed the DFT statistics of two layers
    dft = extract(cnn, images, ["0", "3"], into=DFTStats(), batch_size=32, progress=False)
    full = extract(cnn, images, ["0", "3"], batch_size=90, progress=False)
    np.testing.assert_allclose(
        dft.result("cca").score, DFTStats.from_arrays(full["0"], full["3"]).result("cca").score, atol=1e-10
    )
    with pytest.raises(ValueError, match=r"layer '3' gives blocks of shape .*transform='mean'"):
        extract(cnn, images, ["3"], into=SufficientStats(), progress=False)
    with pytest.raises(TypeError, match="update"):
        extract(cnn, images, ["3"], into=object(), progress=False)
    assert cnn.training and all(not m._forward_hooks for m in cnn.modules())


def test_into_sink_with_names_gets_the_layer_names(images):
    class Sink:
        def __init__(self) -> None:
            self.names: tuple[str, ...] | None = None
            self.rows = 0

        def update(self, *blocks: np.ndarray) -> None:
            assert len(blocks) == 2
            self.rows += len(blocks[0])

    sink = extract(TinyMLP(), images, ["fc1", "output"], into=Sink(), batch_size=50, progress=False)
    assert sink.names == ("fc1", "output") and sink.rows == 90


def test_mapping_batches_and_tokens_as_samples():
    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(4)
            self.embed = nn.Embedding(11, 6)
            self.proj = nn.Linear(6, 4)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
            h = self.embed(input_ids) * attention_mask[..., None]
            return {"hidden": h, "logits": self.proj(h)}

    ids = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 7, 8, 9]])
    mask = (ids != 0).long()
    data = {"input_ids": ids, "attention_mask": mask, "sid": np.array(["a", "b", "c"])}
    acts = extract(Tagger(), data, ["embed", "output"], tokens=True, ids_position="sid", batch_size=2,
                   progress=False)
    assert acts["embed"].shape == (9, 6) and acts["output"].shape == (9, 4)
    assert acts.sample_ids.tolist() == ["a"] * 3 + ["b"] * 2 + ["c"] * 4
    model = Tagger().eval()
    with torch.no_grad():
        out = model(ids, mask)
    np.testing.assert_allclose(acts["output"], out["logits"][mask.bool()].numpy(), rtol=1e-6)
    loader = [{"input_ids": ids[:2], "attention_mask": mask[:2]}, {"input_ids": ids[2:], "attention_mask": mask[2:]}]
    streamed = extract(Tagger(), loader, ["output"], tokens=True, progress=False)
    np.testing.assert_allclose(streamed["output"], acts["output"], rtol=1e-6)
