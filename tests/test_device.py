"""Torch tensors on their device (issue #24, the statistics path): the co-moments are multiplied where the tensors
live and only the small results come to the host; the numbers equal the NumPy path's.

Run here on CPU torch (CI has no GPU); on CUDA the same code runs with ``device="cuda"``. Tolerance: the device's
products are another ordering of the same float64 (or float32) sums, so they differ from NumPy's by at most
``2 gamma_k`` of the summands' magnitude (tests/numerics.py), amplified by the whitening's condition for the CCA
family, as in tests/test_measure_paths.py.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
from numerics import two_way_tolerance
from test_measure_paths import CORPUS, _condition, _spread

from ccalens.core import SufficientStats
from ccalens.core.measures import MEASURES, REGISTRY, STATS_MEASURES, compare, similarity_matrix
from ccalens.core.stats import second_moment_statistics

torch = pytest.importorskip("torch")


def _tolerance(measure: str, X: np.ndarray, Y: np.ndarray) -> float:
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    if REGISTRY[measure].correlation_family:
        amplification = _condition(X) * _condition(Y)
    elif "spectrum" in REGISTRY[measure].needs:
        amplification = _spread(X) + _spread(Y)
    else:
        amplification = 1.0
    return two_way_tolerance(dtype, X.shape[0] * max(X.shape[1], Y.shape[1]), 1.0) * amplification


@contextlib.contextmanager
def no_host_copy_of(*n_rows: int, allow: tuple[tuple[int, int], ...] = ()):
    """Fail if a 2-D tensor with one of ``n_rows`` rows (the activations) reaches NumPy: ``.numpy()`` and
    ``__array__`` raise for it (the (d, d) products and (d,) sums still may, and the shapes in ``allow``, e.g. an
    (n, n) Gram)."""
    numpy_method, array_method = torch.Tensor.numpy, torch.Tensor.__array__

    def guarded(method):
        def call(self, *args, **kwargs):
            if self.ndim == 2 and self.shape[0] in n_rows and tuple(self.shape) not in allow:
                raise AssertionError(f"activations of shape {tuple(self.shape)} copied to the host")
            return method(self, *args, **kwargs)

        return call

    torch.Tensor.numpy, torch.Tensor.__array__ = guarded(numpy_method), guarded(array_method)
    try:
        yield
    finally:
        torch.Tensor.numpy, torch.Tensor.__array__ = numpy_method, array_method


@pytest.mark.parametrize("case", [c for c in CORPUS if c != "n <= d"])
@pytest.mark.parametrize("measure", STATS_MEASURES)
def test_tensor_input_equals_numpy_input_on_the_degenerate_corpus(measure: str, case: str) -> None:
    X, Y = CORPUS[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = MEASURES[measure](X, Y)
        with no_host_copy_of(X.shape[0]):
            got = MEASURES[measure](torch.from_numpy(X), torch.from_numpy(Y))
    assert abs(got.score - expected.score) <= _tolerance(measure, X, Y), (got.score, expected.score)
    assert (got.rank_x, got.rank_y) == (expected.rank_x, expected.rank_y)
    if X.dtype == np.float64 and case == "generic":  # the figure for float64
        assert abs(got.score - expected.score) <= 1e-10 * abs(expected.score)
    assert got.details.get("plan", {}).get("method", "primal") == "primal"


@pytest.mark.parametrize("case", list(CORPUS))
@pytest.mark.parametrize("measure", STATS_MEASURES)
def test_sample_space_path_multiplies_the_grams_on_the_device(measure: str, case: str) -> None:
    """The Gram (dual) path of tensors: Grams and PWCCA's loadings multiplied on the device, only the (n, n) Grams
    and small results on the host; the NumPy Gram path's score, ranks and plan."""
    X, Y = CORPUS[case]
    n = X.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = MEASURES[measure](X, Y, method="dual")
        with no_host_copy_of(n, allow=((n, n),)):
            got = MEASURES[measure](torch.from_numpy(X), torch.from_numpy(Y), method="dual")
    assert got.details["plan"]["method"] == "dual"
    assert abs(got.score - expected.score) <= _tolerance(measure, X, Y), (got.score, expected.score)
    assert (got.rank_x, got.rank_y) == (expected.rank_x, expected.rank_y)


@pytest.mark.parametrize("case", list(CORPUS))
@pytest.mark.parametrize("measure", STATS_MEASURES)
def test_prepared_matrix_reduces_each_tensor_on_its_device(measure: str, case: str) -> None:
    """similarity_matrix with each representation prepared once (the many-layers path, forced by a tiny budget):
    coordinates formed and kept on the device, each pair one product there; the NumPy matrix within tolerance."""
    X, Y = CORPUS[case]
    n = X.shape[0]
    reps = [X, Y, X[:, :3] + Y[:, :3]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = similarity_matrix(reps, measure, memory_budget=1)
        with no_host_copy_of(n, allow=((n, n),)):
            got = similarity_matrix([torch.from_numpy(r) for r in reps], measure, memory_budget=1)
    assert got.details["plan"]["method"] == expected.details["plan"]["method"] == "prepared"
    tolerance = max(_tolerance(measure, a, b) for a in reps for b in reps)
    np.testing.assert_allclose(got.scores, expected.scores, rtol=0, atol=tolerance)


def test_wide_tensors_take_the_sample_space_path() -> None:
    X, Y = CORPUS["n <= d"]
    for measure in ("cca", "linear_cka"):
        expected = MEASURES[measure](X, Y).score
        with no_host_copy_of(X.shape[0], allow=((X.shape[0], X.shape[0]),)):
            got = MEASURES[measure](torch.from_numpy(X), torch.from_numpy(Y))
        assert got.details["plan"]["method"] == "dual"
        assert got.score == pytest.approx(expected, abs=_tolerance(measure, X, Y))


def test_batched_tensor_statistics_equal_numpy_statistics_and_merge_with_them() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((1000, 7)) + 50.0  # an offset: the provisional shift runs on the device
    Y = X[:, :3] @ rng.standard_normal((3, 5)) + rng.standard_normal((1000, 5))
    reference = SufficientStats.from_arrays(X, Y)
    with no_host_copy_of(250):
        stats = SufficientStats()
        for rows in np.array_split(np.arange(1000), 4):
            stats.update(torch.from_numpy(X[rows]), torch.from_numpy(Y[rows]))
    assert stats.n_samples == 1000
    scale = float(np.abs(reference.comoment).max())
    np.testing.assert_allclose(stats.comoment, reference.comoment, rtol=0,
                               atol=two_way_tolerance(np.float64, 1000, scale))
    np.testing.assert_allclose(stats.mean, reference.mean, rtol=1e-14)
    assert isinstance(stats.comoment, np.ndarray) and np.array_equal(stats.comoment, stats.comoment.T)
    # statistics of tensors merge with statistics of arrays (another process, another device)
    half = SufficientStats.from_arrays(torch.from_numpy(X[:500]), torch.from_numpy(Y[:500]))
    merged = half.merge(SufficientStats.from_arrays(X[500:], Y[500:]))
    np.testing.assert_allclose(merged.comoment, reference.comoment, rtol=0,
                               atol=two_way_tolerance(np.float64, 1000, scale))


def test_float32_tensors_follow_the_float32_rules() -> None:
    """Linear CKA alone multiplies float32 in float32 chunks (second_moment_statistics); the CCA family in float64,
    as for float32 arrays."""
    X, Y = CORPUS["float32"]
    t = second_moment_statistics(torch.from_numpy(X), torch.from_numpy(Y))
    a = second_moment_statistics(X, Y)
    scale = float(np.abs(a.comoment).max())
    np.testing.assert_allclose(t.comoment, a.comoment, rtol=0,
                               atol=two_way_tolerance(np.float32, X.shape[0], scale))
    full = SufficientStats.from_arrays(torch.from_numpy(X), torch.from_numpy(Y))
    np.testing.assert_allclose(full.comoment, SufficientStats.from_arrays(X, Y).comoment, rtol=0,
                               atol=two_way_tolerance(np.float64, X.shape[0], scale))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int64", "bool"])
def test_low_precision_and_integer_tensors_are_widened_exactly(dtype: str) -> None:
    """Every value of these dtypes is exact in float64, so the tensor's score is that of its float64 copy."""
    rng = np.random.default_rng(4)
    values = {"float16": rng.standard_normal((300, 4)), "bfloat16": rng.standard_normal((300, 4)),
              "int64": rng.integers(-5, 5, (300, 4)), "bool": rng.random((300, 4)) > 0.5}[dtype]
    X = torch.from_numpy(values).to(getattr(torch, dtype))
    Y = torch.from_numpy(rng.standard_normal((300, 3)))
    widened = X.to(torch.float64).numpy()
    for measure in ("cca", "linear_cka"):
        expected = MEASURES[measure](widened, Y.numpy()).score
        got = MEASURES[measure](X, Y).score
        assert abs(got - expected) <= _tolerance(measure, widened, Y.numpy()), (measure, got, expected)


def test_results_hold_no_tensors() -> None:
    X, Y = CORPUS["generic"]
    res = compare(torch.from_numpy(X), torch.from_numpy(Y), ("cca", "svcca", "pwcca", "linear_cka", "procrustes"))
    for result in res.values():
        for value in vars(result).values():
            assert not isinstance(value, torch.Tensor)
            if isinstance(value, np.ndarray):
                assert value.dtype.kind in "fiub"
    matrix = similarity_matrix([torch.from_numpy(X), torch.from_numpy(Y), torch.from_numpy(X[:, :4])], "svcca")
    expected = similarity_matrix([X, Y, X[:, :4]], "svcca")
    assert isinstance(matrix.scores, np.ndarray)
    np.testing.assert_allclose(matrix.scores, expected.scores, rtol=0, atol=1e-10)


def test_bad_tensors_are_named() -> None:
    X = torch.zeros((10, 3), dtype=torch.float64)
    X[:, 0] = torch.arange(10)
    Y = torch.randn((10, 2), dtype=torch.float64)
    bad = X.clone()
    bad[4, 1] = float("nan")
    with pytest.raises(ValueError, match=r"X contains 1 NaN/Inf value.* sample 4, feature 1"), no_host_copy_of(10):
        MEASURES["cca"](bad, Y)  # found and named by a reduction on the device
    # a tensor beside an array: both on the host, the same statistics
    mixed = SufficientStats.from_arrays(X, Y.numpy())
    np.testing.assert_allclose(mixed.comoment, SufficientStats.from_arrays(X, Y).comoment, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="sample counts differ: X has 10, Y has 9"):
        MEASURES["cca"](X, Y[:9])
    with pytest.raises(ValueError, match="must be on one device"):
        SufficientStats.from_arrays(X, Y.to("meta"))
    with pytest.raises(ValueError, match="Y must be 2-D"):
        MEASURES["cca"](X, Y[:, 0])
    with pytest.raises(TypeError, match="X must be real-valued"):
        MEASURES["cca"](X.to(torch.complex128), Y)
    with pytest.raises(ValueError, match="X needs at least 2 samples"):
        MEASURES["cca"](X[:1], Y[:1])


def test_compare_models_streams_activations_into_device_statistics(monkeypatch) -> None:
    """On an accelerator compare_models keeps the activations on the device (streams_on_device); here the rule is
    switched on for the CPU: the same matrix as the NumPy stream, intervals included, and no activation reaches
    NumPy (batches of 40 and a last one of 30 rows)."""
    import ccalens.extract.compare as compare_module
    from ccalens.extract.compare import compare_models
    from tests.test_compare_models import make_cnn

    images = torch.randn(150, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    a, b = make_cnn(0), make_cnn(1)
    layers = {"layers_a": ["1", "3", "7", "output"], "layers_b": ["3", "7", "9"], "batch_size": 40}
    for measure, conv, boot in (("svcca", "pooled", 0), ("linear_cka", "flatten", 0), ("cca", "pooled", 20)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            host = compare_models(a, b, images, measure=measure, conv=conv, bootstrap=boot, seed=1, **layers)
            with monkeypatch.context() as patch:
                patch.setattr(compare_module, "streams_on_device", lambda device: True)
                with no_host_copy_of(40, 30):
                    device = compare_models(a, b, images, measure=measure, conv=conv, bootstrap=boot, seed=1,
                                            **layers)
        # float64 products of the same float32 activations in another order; whitening amplifies (conditions < 1e4)
        np.testing.assert_allclose(device.scores, host.scores, rtol=0, atol=1e-9)
        if boot:
            np.testing.assert_allclose(device.low, host.low, rtol=0, atol=1e-9)
            np.testing.assert_allclose(device.high, host.high, rtol=0, atol=1e-9)


def test_compare_models_on_device_drops_padding_tokens(monkeypatch) -> None:
    import ccalens.extract.compare as compare_module
    from ccalens.extract.compare import compare_models
    from tests.test_compare_models import TinyTransformer

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 20, (40, 6), generator=g)
    lengths = torch.randint(2, 7, (40,), generator=g)
    mask = (torch.arange(6)[None, :] < lengths[:, None]).long()
    tokens = {"input_ids": ids * mask, "attention_mask": mask}
    a, b = TinyTransformer(0), TinyTransformer(1)
    layers = {"layers_a": ["embed", "block", "output"], "layers_b": ["block", "output"], "batch_size": 16}
    host = compare_models(a, b, tokens, **layers)
    monkeypatch.setattr(compare_module, "streams_on_device", lambda device: True)
    device = compare_models(a, b, tokens, **layers)
    assert device.n_samples == host.n_samples == int(mask.sum())
    np.testing.assert_allclose(device.scores, host.scores, rtol=0, atol=1e-9)
