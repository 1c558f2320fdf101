"""What every stage of a run reads: the typed config, the trained networks, the output folder, the report being
written, the metric of the tables, whether to show progress bars and the run's worker processes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

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
