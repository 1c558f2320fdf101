"""The sample-space (dual) path equals the feature-space (primal) path wherever both fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ccalens.core import dual
from ccalens.core.measures import debiased_linear_cka, linear_cka, procrustes


def _pair(n: int, p: int, q: int, seed: int = 0, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) @ rng.standard_normal((p, p)) + offset
    k = min(p, q)
    Y = X[:, :k] @ rng.standard_normal((k, q)) + rng.standard_normal((n, q)) + 2 * offset
    return X, Y


@pytest.mark.parametrize(("n", "p", "q"), [(300, 40, 60), (50, 120, 90), (40, 8, 200)])
@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_second_moment_measures_match_primal(n: int, p: int, q: int, offset: float) -> None:
    X, Y = _pair(n, p, q, offset=offset)
    gx, gy = dual.centred_gram(X), dual.centred_gram(Y, name="Y")
    bx = dual.SampleBasis.from_gram(gx, tol=1e-12)
    by = dual.SampleBasis.from_gram(gy, tol=1e-12)
    assert dual.linear_cka_from_grams(gx.matrix, gy.matrix) == pytest.approx(linear_cka(X, Y).score, rel=1e-9)
    proc = dual.procrustes_nuclear(bx, by) / np.sqrt(gx.trace * gy.trace)
    assert proc == pytest.approx(procrustes(X, Y).score, rel=1e-9)
    h = dual.unbiased_hsic
    dcka = h(gx.matrix, gy.matrix) / np.sqrt(h(gx.matrix, gx.matrix) * h(gy.matrix, gy.matrix))
    assert dcka == pytest.approx(debiased_linear_cka(X, Y).score, rel=1e-9)


def test_float32_blocks_accumulate_in_float64() -> None:
    X, _ = _pair(200, 700, 10, offset=1e3)
    g64 = dual.centred_gram(X)
    g32 = dual.centred_gram(X.astype(np.float32))
    g_ref = dual.centred_gram(X.astype(np.float32).astype(np.float64))
    assert g32.matrix.dtype == np.float64
    rel = np.linalg.norm(g32.matrix - g_ref.matrix) / np.linalg.norm(g_ref.matrix)
    assert rel < 1e-6  # centred before the float32 product: the offset costs nothing
    assert np.linalg.norm(g64.matrix - g_ref.matrix) / np.linalg.norm(g64.matrix) < 1e-6


def test_truncation_rules_keep_different_ranks() -> None:
    rng = np.random.default_rng(3)
    s = np.logspace(0, -3, 60)
    X = rng.standard_normal((400, 60)) * s
    b = dual.SampleBasis.from_gram(dual.centred_gram(X), tol=1e-12)
    by_values = b.top(0.99, "singular_values").rank
    by_variance = b.top(0.99, "variance").rank
    assert by_variance < by_values
    s_hat = b.all_singular_values
    m = int(np.searchsorted(np.cumsum(s_hat) / s_hat.sum(), 0.99 - 1e-12)) + 1
    assert by_values == m


def test_constant_representation_is_refused() -> None:
    with pytest.raises(ValueError, match="Z has no variance"):
        dual.SampleBasis.from_gram(dual.centred_gram(np.ones((10, 30)), name="Z"), tol=1e-10, name="Z")


def test_planner_prefers_dual_for_wide_and_primal_for_tall() -> None:
    wide = dual.plan_pair(2000, (8192, 8192), needs_basis=True, memory_budget=8 << 30)
    tall = dual.plan_pair(50_000, (512, 512), needs_basis=True, memory_budget=8 << 30)
    assert wide.method == "dual" and tall.method == "primal"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        forced = dual.plan_pair(50_000, (512, 512), needs_basis=True, method="dual", memory_budget=1 << 40)
    assert forced.method == "dual" and "forced" in forced.reason


def test_planner_error_says_what_would_fit() -> None:
    with pytest.raises(MemoryError, match="minibatch CKA"):
        dual.plan_pair(100_000, (65_536, 65_536), needs_basis=False, memory_budget=1 << 30)
    with pytest.raises(ValueError, match="memory_budget"):
        dual.plan_pair(10, (3, 3), needs_basis=False, memory_budget=-1)
