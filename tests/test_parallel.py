"""The run's worker processes: the same numbers with one process or several, results in input order, strict
``workers`` key."""

from __future__ import annotations

import numpy as np
import pytest

from ccalens.errors import UserInputError
from ccalens.experiments.common import NetworkFeatures, RetrainConfig, train_linear_layers
from ccalens.experiments.config import parse_config
from ccalens.experiments.parallel import Workers, available_cores
from ccalens.experiments.projection import ProjectionConfig, run_projection_views

NC = 3


def _square(x: int, offset: int) -> int:
    return x * x + offset


def _network(seed: int, n: int = 150, m: int = 60, p: int = 8) -> tuple[NetworkFeatures, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.tile(np.arange(NC), (n + m) // NC + 1)[: n + m]
    X = rng.standard_normal((NC, p))[y] * 2 + rng.standard_normal((n + m, p))
    (W, b), = train_linear_layers([X[:n]], y[:n], NC, RetrainConfig(epochs=5, lr=1e-2, init="zero"))
    return NetworkFeatures(name=f"net{seed}", train=X[:n], val=X[n:], weight=W, bias=b), y[:n], y[n:]


def test_map_returns_results_in_input_order_in_one_process_or_several() -> None:
    items = [(i, 10) for i in range(7)]
    with Workers(1) as serial, Workers(2) as pool:
        assert serial.map(_square, items) == pool.map(_square, items) == [i * i + 10 for i in range(7)]


def test_projection_numbers_do_not_depend_on_the_number_of_workers() -> None:
    """Each pair seeds its own draws and trains its own layers: the records are bit for bit the same."""
    (a, y_tr, y_va), (b, _, _), (c, _, _) = _network(0), _network(1), _network(2)
    cfg = ProjectionConfig(methods=("cca_highest", "random_selection", "pca"), repeats=2, k_values=(1, 2, 4),
                           retrain=True, retrain_config=RetrainConfig(epochs=2, init="zero"))
    views = [("v", [(a, b.train), (b, c.train)], None), ("w", [(c, a.train)], None)]
    serial = run_projection_views(views, y_tr, y_va, cfg)
    with Workers(2) as pool:
        spread = run_projection_views(views, y_tr, y_va, cfg, workers=pool)
    for one, many in zip(serial, spread, strict=True):
        assert one.records == many.records
        assert one.baseline == many.baseline
        np.testing.assert_array_equal(one.canonical_correlations, many.canonical_correlations)


def test_workers_key_is_checked() -> None:
    assert parse_config({"workers": 2}).workers == 2
    assert parse_config({}).workers == 0
    with pytest.raises(UserInputError, match="workers must be >= 0"):
        parse_config({"workers": -1})
    with pytest.raises(ValueError, match="workers must be an integer"):
        Workers(-2)
    assert Workers(0).workers == available_cores()


def _fail(message: str) -> None:
    raise ValueError(message)


def test_submit_returns_a_future_in_one_process_or_several() -> None:
    with Workers(1) as serial, Workers(2) as pool:
        assert serial.submit(_square, 3, offset=1).result() == pool.submit(_square, 3, offset=1).result() == 10
        for workers in (serial, pool):
            with pytest.raises(ValueError, match="boom"):
                workers.submit(_fail, "boom").result()


def _fake_plot(values: list[float], stem: str, *, title: str = "") -> dict[str, object]:
    from pathlib import Path

    stem_path = Path(stem)
    out = {}
    for fmt in ("png", "svg"):
        path = stem_path.with_name(f"{stem_path.name}.{fmt}")
        path.write_text(f"{title} {sum(values)}")
        out[fmt] = path
    return out


def test_figures_are_drawn_by_the_workers_and_waited_for(tmp_path) -> None:
    from ccalens.experiments.config import ExperimentConfig
    from ccalens.experiments.stages.context import RunContext
    from ccalens.report.html import Report

    with Workers(2) as pool:
        ctx = RunContext(config=ExperimentConfig(), out=tmp_path, report=Report(title="t"), workers=pool)
        paths = ctx.figure(_fake_plot, [1.0, 2.0], str(tmp_path / "fig"), title="a")
        assert paths == {"png": tmp_path / "fig.png", "svg": tmp_path / "fig.svg"}
        ctx.figure(_fake_plot, [1.0], str(tmp_path / "other"))
        ctx.wait_for_figures()
        assert (tmp_path / "fig.svg").read_text() == "a 3.0" and (tmp_path / "other.png").exists()
        ctx.figure(_broken_plot, str(tmp_path / "broken"))
        with pytest.raises(ValueError, match="drawing failed"):
            ctx.wait_for_figures()


def _broken_plot(stem: str) -> dict[str, object]:
    raise ValueError(f"drawing failed: {stem}")
