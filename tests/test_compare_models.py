"""compare_models: two models, one streamed pass, a layers x layers matrix equal to the brute-force one.

Brute force = every activation captured in memory by plain torch (slicing / manual forward), then the measure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from ccalens.conv import DFTStats  # noqa: E402
from ccalens.core.measures import MEASURES  # noqa: E402
from ccalens.extract.compare import CrossSimilarity, compare_models  # noqa: E402
from ccalens.report.heatmaps import plot_similarity_matrix  # noqa: E402
from tests.numerics import assert_close_computed_two_ways  # noqa: E402


def make_cnn(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),  # 0
        nn.ReLU(),  # 1: (n, 6, 8, 8)
        nn.Conv2d(6, 5, 3, padding=1),  # 2
        nn.BatchNorm2d(5),  # 3: (n, 5, 8, 8)
        nn.AdaptiveAvgPool2d(2),  # 4
        nn.Flatten(),  # 5
        nn.Linear(20, 10),  # 6
        nn.ReLU(),  # 7: (n, 10)
        nn.Dropout(0.3),  # 8
        nn.Linear(10, 4),  # 9: (n, 4) = output
    )


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(150, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def brute(model: nn.Sequential, x: torch.Tensor, index: int | str) -> np.ndarray:
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(x) if index == "output" else model[: int(index) + 1](x)
    model.train(was)
    return out.numpy()


def as_rows(arr: np.ndarray, conv: str) -> np.ndarray:
    """Pooled like compare_models pools on the device (float32 torch mean), or flattened."""
    if arr.ndim == 4:
        return torch.from_numpy(arr).mean(dim=(2, 3)).numpy() if conv == "pooled" else arr.reshape(len(arr), -1)
    return arr


@pytest.mark.parametrize(
    ("measure", "conv"), [("svcca", "pooled"), ("pwcca", "pooled"), ("linear_cka", "flatten"), ("cca", "flatten")]
)
def test_matches_brute_force(images, measure, conv):
    a, b = make_cnn(0), make_cnn(1)
    layers_a, layers_b = ["1", "3", "7", "output"], ["3", "7", "9"]
    result = compare_models(a, b, images, layers_a=layers_a, layers_b=layers_b, measure=measure, conv=conv,
                            batch_size=40)
    assert isinstance(result, CrossSimilarity)
    assert result.scores.shape == (4, 3) and result.row_names == tuple(layers_a) and result.col_names == tuple(layers_b)
    assert result.n_samples == 150
    rows_a = {la: as_rows(brute(a, images, la), conv) for la in layers_a}
    rows_b = {lb: as_rows(brute(b, images, lb), conv) for lb in layers_b}
    for i, la in enumerate(layers_a):
        for j, lb in enumerate(layers_b):
            # float64 products of the same float32 values (linear CKA of float32 arrays multiplies in float32)
            expected = MEASURES[measure](rows_a[la].astype(np.float64), rows_b[lb].astype(np.float64),
                                         method="primal").score
            assert abs(result.scores[i, j] - expected) < 1e-8, (la, lb)


def test_dft_pairs_and_mixed_layers(images):
    a, b = make_cnn(0), make_cnn(1)
    result = compare_models(a, b, images, layers_a=["1", "7"], layers_b=["3", "9"], conv="dft", batch_size=64)
    A1, A7 = brute(a, images, 1), brute(a, images, 7)
    B3, B9 = brute(b, images, 3), brute(b, images, 9)
    svcca = MEASURES["svcca"]
    assert abs(result.scores[0, 0] - DFTStats.from_arrays(A1, B3).result("svcca").score) < 1e-8
    # a vector against a map is a 1 x 1 map: only the zero frequency, i.e. CCA with the pooled map
    pooled_a1, pooled_b3 = A1.astype(np.float64).mean(axis=(2, 3)), B3.astype(np.float64).mean(axis=(2, 3))
    assert abs(result.scores[0, 1] - svcca(pooled_a1, B9).score) < 1e-8
    assert abs(result.scores[1, 0] - svcca(A7, pooled_b3).score) < 1e-8
    assert abs(result.scores[1, 1] - svcca(A7, B9).score) < 1e-8
    with pytest.raises(ValueError, match="measure must be one of 'cca', 'svcca', 'pwcca' with conv='dft'"):
        compare_models(a, b, images, layers_a=["1"], layers_b=["3"], conv="dft", measure="linear_cka")
    with pytest.raises(ValueError, match="conv must be one of"):
        compare_models(a, b, images, layers_a=["1"], layers_b=["3"], conv="spatial")


def test_memory_planner_splits_into_passes_with_the_same_result(images):
    a, b = make_cnn(0), make_cnn(1)
    calls: list[int] = []
    a.register_forward_pre_hook(lambda m, args: calls.append(int(args[0].shape[0])))
    kwargs = {"layers_a": ["1", "3"], "layers_b": ["1", "3"], "conv": "flatten", "batch_size": 75}
    kwargs["measure"] = "linear_cka"
    one = compare_models(a, b, images, **kwargs)
    assert calls == [75, 75]
    calls.clear()
    # 384- and 320-wide layers: one pair's statistics take 2 * 8 * (768^2, 704^2 or 640^2) <= 9.5 MB; all four 32 MB
    split = compare_models(a, b, images, memory_budget=10_000_000, **kwargs)
    assert calls == [75, 75] * 4  # one pass per pair: no pair's statistics fit beside another's
    np.testing.assert_allclose(split.scores, one.scores, atol=1e-10)
    with pytest.raises(ValueError, match="one-shot iterator"):
        compare_models(a, b, (images[i : i + 75] for i in (0, 75)), memory_budget=10_000_000, **kwargs)
    with pytest.raises(MemoryError, match="alone needs"):
        compare_models(a, b, images, memory_budget=1_000_000, **kwargs)


def test_same_model_runs_once_per_batch_and_restores_modes_and_hooks(images):
    model = make_cnn(0)
    model.train()
    model[3].eval()  # a mixed state must survive
    before = {name: m.training for name, m in model.named_modules()}
    calls: list[int] = []
    model.register_forward_pre_hook(lambda m, args: calls.append(1))
    result = compare_models(model, model, images, layers_a=["1", "7"], layers_b=["1", "7"], batch_size=50)
    assert len(calls) == 3
    np.testing.assert_allclose(np.diag(result.scores), 1.0, atol=1e-8)
    assert {name: m.training for name, m in model.named_modules()} == before
    assert all(not m._forward_hooks for m in model.modules())

    def failing():
        yield images[:20]
        raise RuntimeError("data source died")

    other = make_cnn(1)
    with pytest.raises(RuntimeError, match="data source died"):
        compare_models(model, other, failing(), layers_a=["1"], layers_b=["7"])
    assert {name: m.training for name, m in model.named_modules()} == before
    assert all(not m._forward_hooks for m in list(model.modules()) + list(other.modules()))
    assert other.training
    with pytest.raises(KeyError, match="no module named 'fc'"):
        compare_models(model, other, images, layers_a=["1"], layers_b=["fc"])
    assert all(not m._forward_hooks for m in model.modules())


def test_bad_arguments_name_the_argument(images):
    a, b = make_cnn(0), make_cnn(1)
    ok = {"layers_a": ["1"], "layers_b": ["7"]}
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        compare_models(a, b, images, batch_size=0, **ok)
    with pytest.raises(TypeError, match="layers_a must be a non-empty list"):
        compare_models(a, b, images, layers_a=[], layers_b=["7"])
    with pytest.raises(ValueError, match="layers_b contains duplicates"):
        compare_models(a, b, images, layers_a=["1"], layers_b=["7", "7"])
    with pytest.raises(ValueError, match="measure must be one of"):
        compare_models(a, b, images, measure="rbf_cka", **ok)
    with pytest.raises(TypeError, match="model_names must be a pair of strings"):
        compare_models(a, b, images, model_names=("a",), **ok)
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        compare_models(a, "resnet", images, **ok)
    with pytest.raises(ValueError, match="no samples"):
        compare_models(a, b, [], **ok)
    assert a.training and b.training


# --------------------------------------------------------------------------------------------- transformer
@dataclass
class TinyOutput:
    """A stand-in for a HuggingFace ``ModelOutput``: attributes, ``logits`` among them."""

    last_hidden_state: torch.Tensor
    logits: torch.Tensor


class Block(nn.Module):
    """Attention block returning ``(hidden, attention weights)`` like HuggingFace layers do."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, 2, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, h: torch.Tensor, pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, weights = self.attn(h, h, h, key_padding_mask=pad)
        h = h + a
        return h + self.mlp(h), weights


class TinyTransformer(nn.Module):
    def __init__(self, seed: int, width: int = 8) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(20, width)
        self.pos = nn.Parameter(torch.randn(6, width))
        self.block = Block(width)
        self.head = nn.Linear(width, 5)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TinyOutput:
        h = self.embed(input_ids) + self.pos[: input_ids.shape[1]]
        h, _ = self.block(h, attention_mask == 0)
        h = h + 50.0 * (attention_mask == 0)[..., None]  # padding rows hold junk: they must be dropped
        return TinyOutput(last_hidden_state=h, logits=self.head(h))


@pytest.fixture
def tokens() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 20, (40, 6), generator=g)
    lengths = torch.randint(2, 7, (40,), generator=g)
    mask = (torch.arange(6)[None, :] < lengths[:, None]).long()
    return {"input_ids": ids * mask, "attention_mask": mask}


def test_tiny_transformer_tokens_as_samples_with_padding_dropped(tokens):
    a, b = TinyTransformer(0), TinyTransformer(1)
    loader = [{k: v[i : i + 16] for k, v in tokens.items()} for i in range(0, 40, 16)]  # dict batches
    result = compare_models(a, b, loader, layers_a=["embed", "block", "output"], layers_b=["block", "output"],
                            measure="svcca")
    keep = tokens["attention_mask"].bool()
    assert result.n_samples == int(keep.sum())

    def rows(model: TinyTransformer, name: str) -> np.ndarray:
        seen = {}
        handle = None
        if name != "output":
            handle = getattr(model, name).register_forward_hook(lambda m, i, o: seen.update(out=o))
        model.eval()
        with torch.no_grad():
            out = model(**tokens)
        if handle is not None:
            handle.remove()
        value = out.logits if name == "output" else seen["out"]
        value = value[0] if isinstance(value, tuple) else value
        return value[keep].numpy()

    svcca = MEASURES["svcca"]
    for i, la in enumerate(["embed", "block", "output"]):
        for j, lb in enumerate(["block", "output"]):
            expected = svcca(rows(a, la), rows(b, lb)).score
            assert abs(result.scores[i, j] - expected) < 1e-8, (la, lb)
    # the padding rows would change the result: keeping them gives another value
    with torch.no_grad():
        junk = a(**tokens).logits.reshape(-1, 5).numpy(), b(**tokens).logits.reshape(-1, 5).numpy()
    assert abs(result.scores[2, 1] - svcca(*junk).score) > 1e-3
    # the whole mapping at once, batched by compare_models, gives the same
    again = compare_models(a, b, tokens, layers_a=["embed", "block", "output"], layers_b=["block", "output"],
                           batch_size=7)
    np.testing.assert_allclose(again.scores, result.scores, atol=1e-10)


def test_mixed_rows_are_refused_with_the_layers_named(images, tokens):
    a = TinyTransformer(0)
    with pytest.raises(ValueError, match=r"different numbers of rows .*A:embed .*B:1"):
        compare_models(a, make_cnn(0), [tokens], layers_a=["embed"], layers_b=["1"],
                       forward_b=lambda m, inputs: m(torch.randn(len(inputs["input_ids"]), 3, 8, 8)))


# --------------------------------------------------------------------------------------------- results
def test_result_dict_frame_and_plot(images, tmp_path):
    a, b = make_cnn(0), make_cnn(1)
    result = compare_models(a, b, images, layers_a=["1", "7"], layers_b=["7", "output"], model_names=("a", "b"))
    d = result.to_dict()
    assert d["row_names"] == ["1", "7"] and d["col_names"] == ["7", "output"] and d["models"] == ["a", "b"]
    assert np.array_equal(np.asarray(d["scores"]), result.scores) and "mean_rho" in d
    pd = pytest.importorskip("pandas")
    frame = result.to_frame()
    assert isinstance(frame, pd.DataFrame) and frame.loc["7", "output"] == result.scores[1, 1]
    assert not hasattr(result, "plot")  # drawing lives in report (extract does not import report)
    paths = plot_similarity_matrix(result, tmp_path / "ab")
    assert paths["png"].read_bytes()[:4] == b"\x89PNG" and b"<svg" in paths["svg"].read_bytes()
    svg = paths["svg"].read_text()
    assert all(f"{v:.2f}" in svg for v in result.scores.ravel())  # annotated cells
    assert f"{result.measure} ({result.conv}): a vs b" in svg  # title and labels from the models
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ab.png", "ab.svg"]


@pytest.mark.slow
def test_plot_similarity_matrix_50_by_50(tmp_path):
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=(50, 50))
    scores[3, 4] = np.nan
    names = [f"encoder.layer.{i}" for i in range(50)]
    paths = plot_similarity_matrix(scores, tmp_path / "big", row_names=names, col_names=names, title="50 x 50")
    svg = paths["svg"].read_text()
    assert f"{scores[10, 20]:.2f}" in svg and "encoder.layer.49" in svg


def test_plot_similarity_matrix_checks_its_input(tmp_path):
    scores = np.zeros((50, 50))
    names = [f"encoder.layer.{i}" for i in range(50)]
    with pytest.raises(ValueError, match=r"shape \(50, 50\) but row_names/col_names give \(2, 50\)"):
        plot_similarity_matrix(scores, tmp_path / "bad", row_names=names[:2], col_names=names)
    with pytest.raises(ValueError, match="row_names and col_names are required"):
        plot_similarity_matrix(scores, tmp_path / "bad")
    with pytest.raises(ValueError, match="non-empty 2-D"):
        plot_similarity_matrix(np.zeros(3), tmp_path / "bad", row_names=["a"], col_names=["b"])
    assert not list(tmp_path.iterdir())


def test_same_model_with_two_forwards(images):
    model = make_cnn(0)
    half = compare_models(model, model, images, layers_a=["1", "output"], layers_b=["1", "output"],
                          forward_b=lambda m, x: m(x[:, :, :4]), batch_size=50)
    small = images[:, :, :4]
    A1, B1 = brute(model, images, 1), brute(model, small, 1)
    svcca = MEASURES["svcca"]
    assert abs(half.scores[0, 0] - svcca(as_rows(A1, "pooled"), as_rows(B1, "pooled")).score) < 1e-8
    assert abs(half.scores[1, 1] - svcca(brute(model, images, "output"), brute(model, small, "output")).score) < 1e-8


def test_bootstrap_intervals_equal_bootstrap_matrix_of_the_batches(images):
    """bootstrap=N: each cell's interval is bootstrap_matrix of the per-batch statistics (the batches as blocks)."""
    from ccalens.core.stats import SufficientStats
    from ccalens.core.uncertainty import bootstrap_matrix

    a, b = make_cnn(0), make_cnn(1)
    layers_a, layers_b = ["3", "7"], ["7", "9"]
    result = compare_models(a, b, images, layers_a=layers_a, layers_b=layers_b, measure="pwcca", batch_size=15,
                            bootstrap=50, seed=3)
    plain = compare_models(a, b, images, layers_a=layers_a, layers_b=layers_b, measure="pwcca", batch_size=15)
    np.testing.assert_allclose(result.scores, plain.scores, rtol=0, atol=1e-12)
    # the brute-force activations in the same batches of 15 as compare_models: the same float32 products (a batch
    # of 150 may run another kernel and round differently), so only the float64 statistics are computed two ways
    batches = [images[s : s + 15] for s in range(0, 150, 15)]
    reps = [np.concatenate([as_rows(brute(a, x, la), "pooled") for x in batches]) for la in layers_a]
    reps += [np.concatenate([brute(b, x, lb) for x in batches]) for lb in layers_b]
    blocks = [SufficientStats.from_arrays(*(r[s : s + 15] for r in reps)) for s in range(0, 150, 15)]
    cross = [(i, 2 + j) for i in range(2) for j in range(2)]
    expected = bootstrap_matrix(blocks=blocks, measure="pwcca", n_resamples=50, seed=3, pairs=cross)
    low, high = expected.confidence_interval
    # float64 sums over the 150 rows, amplified by the whitening at most by the covariances' condition number
    condition = max(float(np.linalg.cond(np.cov(r, rowvar=False))) for r in reps)
    for got, want in ((result.low, low[:2, 2:]), (result.high, high[:2, 2:])):
        assert_close_computed_two_ways(got, want, dtype=np.float64, k=150, scale=condition)
    assert np.all(result.high - result.low > 0)  # (a percentile interval of a biased score need not hold it)
    d = result.to_dict()
    assert np.array(d["low"]).shape == (2, 2) and np.array(d["high"]).shape == (2, 2)
    assert d["bootstrap"]["n_resamples"] == 50 and d["bootstrap"]["n_blocks"] == 10
    assert "low" not in plain.to_dict() and plain.low is None
    rows = result.to_rows()
    assert [(r["layer_a"], r["layer_b"]) for r in rows] == [("3", "7"), ("3", "9"), ("7", "7"), ("7", "9")]
    assert rows[1]["low"] == result.low[0, 1] and rows[1]["high"] == result.high[0, 1]
    assert rows[1]["score"] == result.scores[0, 1] and "low" not in plain.to_rows()[0]


def test_bootstrap_keeps_at_most_128_blocks_of_consecutive_batches():
    from ccalens.core.stats import SufficientStats
    from ccalens.core.uncertainty.intervals import FEW_BLOCKS
    from ccalens.extract.sinks import MAX_BOOTSTRAP_BLOCKS, StatsGroup

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(278, 3)), rng.normal(size=(278, 2))
    group = StatsGroup([0, 1], [(0, 1)], ["a", "b"], keep_blocks=True)
    for start in range(0, 258, 2):  # the 129th batch: the 128 blocks merge in pairs, then 64 + 1 blocks
        group.update([X[start : start + 2], Y[start : start + 2]])
    assert MAX_BOOTSTRAP_BLOCKS == 128 and [s.n_samples for s in group.blocks] == [4] * 64 + [2]
    assert len(group.blocks) > FEW_BLOCKS  # merging never takes a long stream below the few-block warning
    for start in range(258, 278, 2):  # the last block fills to 2 batches, then new blocks of 2 batches
        group.update([X[start : start + 2], Y[start : start + 2]])
    assert [s.n_samples for s in group.blocks] == [4] * 69 + [2]
    np.testing.assert_allclose(group.blocks[65].mean, np.concatenate([X[260:264].mean(0), Y[260:264].mean(0)]))
    total = SufficientStats.from_arrays(X, Y)
    np.testing.assert_allclose(group.stats.comoment, total.comoment, atol=1e-10)


def test_bootstrap_refuses_dft_one_batch_and_one_replicate(images):
    a, b = make_cnn(0), make_cnn(1)
    with pytest.raises(ValueError, match="conv='pooled'/'flatten'"):
        compare_models(a, b, images, layers_a=["7"], layers_b=["9"], conv="dft", bootstrap=20)
    with pytest.raises(ValueError, match="at least 4 batches"):
        compare_models(a, b, images, layers_a=["7"], layers_b=["9"], batch_size=None, bootstrap=20)
    with pytest.raises(ValueError, match="bootstrap must be"):
        compare_models(a, b, images, layers_a=["7"], layers_b=["9"], bootstrap=1)


def test_bootstrap_shares_the_memory_budget_and_passes_give_the_same_intervals(images):
    """With bootstrap the planner budgets the kept block statistics: a budget that holds 3 layers' statistics once but
    not 2 * MAX_BOOTSTRAP_BLOCKS times splits the layers into passes, and each cell's interval is unchanged (same
    blocks, same seed)."""
    from ccalens.extract.compare import MAX_BOOTSTRAP_BLOCKS

    a, b = make_cnn(0), make_cnn(1)
    kwargs = dict(layers_a=["3", "7"], layers_b=["9"], measure="cca", batch_size=15, bootstrap=30, seed=1)
    one = compare_models(a, b, images, **kwargs)
    # (5 + 10 + 4)^2 * 16 > 3600
    split = compare_models(a, b, images, memory_budget=3600 * 2 * MAX_BOOTSTRAP_BLOCKS, **kwargs)
    np.testing.assert_allclose(split.scores, one.scores, atol=1e-12)
    np.testing.assert_allclose(split.low, one.low, atol=1e-10)
    np.testing.assert_allclose(split.high, one.high, atol=1e-10)
