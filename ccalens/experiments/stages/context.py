"""What every stage of a run reads: the typed config, the trained networks, the output folder, the report being
written, the metric of the tables, whether to show progress bars and the run's worker processes."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccalens.experiments.config import ExperimentConfig
from ccalens.experiments.parallel import Workers
from ccalens.report.html import Report

if TYPE_CHECKING:
    from ccalens.experiments.stages.networks import Networks

__all__ = ["RunContext"]


@dataclass
class RunContext:
    """One run. ``networks`` is None when no stage needs trained networks (a sanity-only config)."""

    config: ExperimentConfig
    out: Path
    report: Report
    progress: bool = False
    networks: Networks | None = None
    workers: Workers = field(default_factory=lambda: Workers(1))
    _figures: list[tuple[Future[Any], dict[str, Path]]] = field(default_factory=list, repr=False)

    def figure(self, plot: Callable[..., dict[str, Path]], *args: Any, **kwargs: Any) -> dict[str, Path]:
        """Draw ``plot(*args, **kwargs)`` (a :mod:`ccalens.report` plotting function with a ``stem`` argument) on one
        of the run's workers while the run goes on; returns the paths it writes (``stem.png``, ``stem.svg``) at
        once. :meth:`wait_for_figures` waits for them (before the report is written) and raises a figure's error."""
        stem = Path(inspect.signature(plot).bind(*args, **kwargs).arguments["stem"])
        paths = {fmt: stem.with_name(f"{stem.name}.{fmt}") for fmt in ("png", "svg")}
        self._figures.append((self.workers.submit(plot, *args, **kwargs), paths))
        return paths

    def wait_for_figures(self) -> None:
        """Wait for every figure started by :meth:`figure`; raise the first error, or a mismatch of its paths."""
        figures, self._figures = self._figures, []
        for future, paths in figures:
            written = future.result()
            if {k: Path(v) for k, v in written.items()} != paths:
                raise RuntimeError(f"a figure wrote {written}, expected {paths}")

    @property
    def metric(self) -> str:
        """``accuracy`` or ``macro_f1`` (``[report] metric``)."""
        return self.config.report.metric

    @property
    def nets(self) -> Networks:
        """The trained networks (a stage that needs them runs only when they exist)."""
        if self.networks is None:
            raise RuntimeError("this stage needs trained networks; none were trained for this config")
        return self.networks
