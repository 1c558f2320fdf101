"""The tolerance rule of tests/numerics.py accepts a genuine reordering and rejects a real error."""

from __future__ import annotations

import numpy as np
import pytest

from tests.numerics import assert_close_computed_two_ways, gamma, two_way_tolerance, unit_roundoff


def test_unit_roundoff_of_each_precision() -> None:
    assert unit_roundoff(np.float32) == 2.0**-24 and unit_roundoff("float64") == 2.0**-53
    assert unit_roundoff("torch.bfloat16") == 2.0**-8 and unit_roundoff(np.float16) == 2.0**-11
    with pytest.raises(ValueError, match="exceed"):
        gamma(2**25, np.float32)


def test_reordered_float32_sums_pass_and_a_larger_error_fails() -> None:
    rng = np.random.default_rng(0)
    k = 4096
    terms = rng.standard_normal((200, k)).astype(np.float32)
    forward = terms.sum(axis=1, dtype=np.float32)
    backward = terms[:, ::-1].copy().sum(axis=1, dtype=np.float32)
    blocked = terms.reshape(200, 64, 64).sum(axis=2).sum(axis=1)
    scale = float(np.abs(terms).sum(axis=1).max())  # the terms cancel: their magnitude is the scale
    assert_close_computed_two_ways(backward, forward, dtype=np.float32, k=k, scale=scale)
    assert_close_computed_two_ways(blocked, forward, dtype=np.float32, k=k, scale=scale)
    exact = terms.astype(np.float64).sum(axis=1)
    assert np.abs(forward - exact).max() <= gamma(k, np.float32) * scale
    wrong = forward + np.float32(100 * two_way_tolerance(np.float32, k, scale))
    with pytest.raises(AssertionError):
        assert_close_computed_two_ways(wrong, forward, dtype=np.float32, k=k, scale=scale)
