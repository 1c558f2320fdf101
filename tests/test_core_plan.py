"""The memory planner (ccalens.core.plan): one memory_budget default, every budget decision in one module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ccalens
from ccalens.core import plan

PACKAGE = Path(ccalens.__file__).parent


def test_one_default_and_one_check():
    assert plan.check_memory_budget(None) > 0
    assert plan.check_memory_budget(1024) == 1024
    for bad in (0, -1, 1.5, True, "1G"):
        with pytest.raises(ValueError, match="memory_budget must be a positive number of bytes"):
            plan.check_memory_budget(bad)


def test_budget_decisions_live_in_the_planner():
    """No other module defines a memory default or its own budget check; every ``memory_budget`` parameter
    defaults to None (the planner's default)."""
    for path in PACKAGE.rglob("*.py"):
        if path.name == "plan.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                assert node.name not in {"check_memory_budget", "default_memory_budget", "available_memory",
                                         "plan_stream_groups", "plan_pair"}, (path, node.name)
                args = node.args.args + node.args.kwonlyargs
                defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + list(node.args.defaults)
                defaults += list(node.args.kw_defaults)
                for arg, default in zip(args, defaults, strict=True):
                    if arg.arg == "memory_budget" and default is not None:
                        assert isinstance(default, ast.Constant) and default.value is None, (path, node.name)


def test_plan_matrix_prepares_when_the_joint_pass_does_not_fit():
    joint = 2 * 8 * (3 * 100) ** 2
    assert plan.plan_matrix(1000, [100] * 3, n_pairs=None, memory_budget=joint).method == "primal"
    small = plan.plan_matrix(1000, [100] * 3, n_pairs=None, memory_budget=joint - 1)
    assert small.method == "prepared" and "exceeds the budget" in small.reason
    assert plan.plan_matrix(50, [100, 10], n_pairs=None, memory_budget=1 << 30).reason.endswith(
        "wider than the sample count")
    assert plan.plan_matrix(1000, [10] * 8, n_pairs=7, memory_budget=1 << 30).method == "prepared"  # sparse pairs
    with pytest.raises(MemoryError, match="joint co-moment"):
        plan.plan_matrix(1000, [100] * 3, n_pairs=None, method="primal", memory_budget=joint - 1)


def test_pack_pairs_fills_groups_in_order_and_names_a_pair_too_big():
    pairs = [(0, 1), (0, 2), (1, 2), (2, 3)]
    assert plan.pack_pairs(pairs, [4, 4, 4, 4], memory_budget=8) == [[(0, 1), (0, 2)], [(1, 2), (2, 3)]]
    assert plan.pack_pairs(pairs, [1, 1, 1, 1], memory_budget=8) == [pairs]
    with pytest.raises(MemoryError, match=r"b vs c alone need 9 bytes.*use conv='pooled'"):
        plan.pack_pairs([(1, 2)], [9], memory_budget=8, names=["a", "b", "c"], advice="use conv='pooled'")


def test_plan_rbf_is_exact_while_the_kernels_fit():
    need = plan.exact_rbf_bytes(150)
    assert plan.plan_rbf(150, "auto", need) == "exact"
    assert plan.plan_rbf(150, "auto", need - 1) == "random_features"
    assert plan.plan_rbf(150, "minibatch", 1) == "minibatch"
    with pytest.raises(ValueError, match="needs about"):
        plan.plan_rbf(150, "exact", need - 1)
