"""Property suite of the measures (hypothesis): invariances, symmetry, and the batch APIs equal single calls."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ortho_group

from ccalens.core import MEASURES, STATS_MEASURES, SufficientStats, compare, similarity_matrix

#: invariant to orthogonal transforms of one side's features (PWCCA's weights live in the neuron basis: not it)
ORTHOGONAL = ("cca", "svcca", "linear_cka", "debiased_linear_cka", "rbf_cka", "procrustes")
SYMMETRIC = ORTHOGONAL
TOL = 1e-8


def pair(seed: int, n: int, p: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 3))
    X = latent @ rng.standard_normal((3, p)) + 0.6 * rng.standard_normal((n, p))
    Y = np.tanh(latent @ rng.standard_normal((3, q))) + 0.6 * rng.standard_normal((n, q))
    return X * rng.uniform(0.5, 2.0, p), Y


shapes = st.tuples(st.integers(0, 10_000), st.integers(60, 140), st.integers(2, 8), st.integers(2, 8))


def scores(X: np.ndarray, Y: np.ndarray, names=tuple(MEASURES)) -> dict[str, float]:
    return {name: MEASURES[name](X, Y).score for name in names}


@settings(max_examples=8, deadline=None)
@given(shape=shapes)
def test_orthogonal_transforms(shape):
    seed, n, p, q = shape
    X, Y = pair(seed, n, p, q)
    Q = ortho_group.rvs(p, random_state=seed) if p > 1 else np.ones((1, 1))
    base, moved = scores(X, Y, ORTHOGONAL), scores(X @ Q, Y, ORTHOGONAL)
    for name in ORTHOGONAL:
        assert moved[name] == pytest.approx(base[name], abs=TOL), name


@settings(max_examples=8, deadline=None)
@given(shape=shapes, exponent=st.floats(-200, 200), offset=st.floats(-1e3, 1e3))
def test_isotropic_scaling_and_offsets_over_the_float64_range(shape, exponent, offset):
    seed, n, p, q = shape
    X, Y = pair(seed, n, p, q)
    scale = 10.0**exponent
    base, moved = scores(X, Y), scores(X * scale + offset * scale, Y)
    for name in MEASURES:
        assert np.isfinite(moved[name]), name
        assert moved[name] == pytest.approx(base[name], abs=1e-7), name


@settings(max_examples=8, deadline=None)
@given(shape=shapes)
def test_permutations_of_neurons_and_of_samples(shape):
    seed, n, p, q = shape
    X, Y = pair(seed, n, p, q)
    rng = np.random.default_rng(seed)
    base = scores(X, Y)
    neurons = scores(X[:, rng.permutation(p)], Y[:, rng.permutation(q)])
    rows = rng.permutation(n)
    samples = scores(X[rows], Y[rows])
    for name in MEASURES:
        assert neurons[name] == pytest.approx(base[name], abs=TOL), name
        assert samples[name] == pytest.approx(base[name], abs=TOL), name


@settings(max_examples=8, deadline=None)
@given(shape=shapes)
def test_symmetry(shape):
    seed, n, p, q = shape
    X, Y = pair(seed, n, p, q)
    forward, backward = scores(X, Y, SYMMETRIC), scores(Y, X, SYMMETRIC)
    for name in SYMMETRIC:
        assert forward[name] == pytest.approx(backward[name], abs=TOL), name
    # PWCCA: weights from X against from Y swap with the arguments
    assert MEASURES["pwcca"](X, Y, weights_from="y").score == pytest.approx(MEASURES["pwcca"](Y, X).score, abs=TOL)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), widths=st.lists(st.integers(2, 7), min_size=2, max_size=4),
       keep=st.sampled_from(["singular_values", "variance"]), threshold=st.floats(0.5, 1.0),
       weights_from=st.sampled_from(["x", "y", "smaller"]))
def test_similarity_matrix_equals_pairwise_calls(seed, widths, keep, threshold, weights_from):
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((150, 3))
    reps = [latent @ rng.standard_normal((3, w)) + rng.standard_normal((150, w)) for w in widths]
    stats = SufficientStats.from_arrays(*reps)
    options = {"svcca": {"keep": keep, "threshold": threshold}, "pwcca": {"weights_from": weights_from}}
    for name in STATS_MEASURES:
        opts = options.get(name, {})
        M = similarity_matrix(reps, name, **opts)
        from_stats = similarity_matrix(stats, name, **opts)
        for i in range(len(reps)):
            for j in range(len(reps)):
                single = MEASURES[name](reps[i], reps[j], **opts).score
                assert M.scores[i, j] == pytest.approx(single, abs=1e-9), (name, i, j)
                assert from_stats.scores[i, j] == pytest.approx(
                    MEASURES[name](stats=stats, i=i, j=j, **opts).score, abs=1e-9
                ), (name, i, j)


@settings(max_examples=6, deadline=None)
@given(shape=shapes, keep=st.sampled_from(["singular_values", "variance"]), threshold=st.floats(0.5, 1.0),
       weights_from=st.sampled_from(["x", "y", "smaller"]))
def test_compare_equals_individual_calls(shape, keep, threshold, weights_from):
    seed, n, p, q = shape
    X, Y = pair(seed, n, p, q)
    results = compare(X, Y, list(MEASURES), keep=keep, threshold=threshold, weights_from=weights_from)
    own = {"svcca": {"keep": keep, "threshold": threshold}, "pwcca": {"weights_from": weights_from}}
    for name, res in results.items():
        single = MEASURES[name](X, Y, **own.get(name, {}))
        assert res.score == pytest.approx(single.score, abs=1e-10), name
        assert (res.rank_x, res.rank_y) == (single.rank_x, single.rank_y), name
        # the same options and values; the plan differs (compare plans once for all its measures)
        assert {k: v for k, v in res.details.items() if k != "plan"} == {
            k: v for k, v in single.details.items() if k != "plan"
        }, name


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.integers(0, 10_000), st.integers(5, 90), st.integers(1, 40), st.integers(1, 40)),
    log_offset=st.floats(-3.0, 4.0),
    tile_rows=st.sampled_from([3, 16, 2048]),
    float32=st.booleans(),
)
def test_tiled_linear_cka_equals_the_primal_value(shape, log_offset, tile_rows, float32):
    """Gram tiles (raw and centred afterwards when the offsets are small, centred rows otherwise) give the
    feature-space linear CKA of the same values, whatever the offsets, the tiling and the sample count."""
    from ccalens.core import gram_tiles, linear_cka

    seed, n, p, q = shape
    X, Y = pair(seed, n, p, q)
    X, Y = X + 10.0**log_offset, Y - 0.5 * 10.0**log_offset
    if float32:
        X, Y = X.astype(np.float32), Y.astype(np.float32)
    reference = linear_cka(X.astype(np.float64), Y.astype(np.float64), method="primal").score
    tolerance = 2e-5 if float32 else 1e-9
    tiled = gram_tiles.linear_cka_tiled(X, Y, tile_rows=tile_rows)
    assert tiled == pytest.approx(reference, rel=tolerance, abs=tolerance)
