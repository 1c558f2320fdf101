"""Where :func:`~ccalens.extract.compare.compare_models` streams a pass's activations: the joint statistics of a
group of layers (with the block statistics of ``bootstrap=N``), or one :class:`~ccalens.conv.DFTStats` per pair of
conv maps; and the memory planner's split of the layers into such groups."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ccalens.core.measures import similarity_matrix
from ccalens.core.null import SmallSampleWarning
from ccalens.core.plan import check_memory_budget, pack_pairs, plan_stream_groups
from ccalens.core.stats import SufficientStats
from ccalens.core.uncertainty.intervals import FEW_BLOCKS

#: most blocks (groups of consecutive batches) kept per group of layers for ``bootstrap=N``: twice the number below
#: which intervals warn (FEW_BLOCKS), so that merging blocks in pairs never takes a long stream below it
MAX_BOOTSTRAP_BLOCKS = 2 * FEW_BLOCKS

__all__ = ["MAX_BOOTSTRAP_BLOCKS", "DFTGroup", "StatsGroup", "dft_pair_bytes", "plan_groups"]


class StatsGroup:
    """Joint :class:`SufficientStats` of some layers, for the cross pairs among them."""

    def __init__(
        self, reps: Sequence[int], pairs: Sequence[tuple[int, int]], names: Sequence[str], keep_blocks: bool = False
    ) -> None:
        self.reps = list(reps)
        self.pairs = list(pairs)
        self.names = tuple(names[r] for r in self.reps)
        self.stats: SufficientStats | None = SufficientStats()
        self.blocks: list[SufficientStats] | None = [] if keep_blocks else None  # for the bootstrap
        self._batches_per_block = 1
        self._batches_in_last = 0

    def layers(self) -> set[int]:
        return set(self.reps)

    def update(self, blocks: Sequence[np.ndarray]) -> None:
        assert self.stats is not None
        if self.blocks is None:
            self.stats.update(*(blocks[r] for r in self.reps), names=self.names)
            return
        batch = SufficientStats().update(*(blocks[r] for r in self.reps), names=self.names)
        self.stats = self.stats.merge(batch)
        self._add_block(batch)

    def _add_block(self, batch: SufficientStats) -> None:
        """Append one batch's statistics to the bootstrap blocks, at most MAX_BOOTSTRAP_BLOCKS of them."""
        assert self.blocks is not None
        if self.blocks and self._batches_in_last < self._batches_per_block:
            self.blocks[-1] = self.blocks[-1].merge(batch)
            self._batches_in_last += 1
            return
        self.blocks.append(batch)
        self._batches_in_last = 1
        if len(self.blocks) > MAX_BOOTSTRAP_BLOCKS:  # merge neighbours in pairs: blocks of twice as many batches
            paired = [a.merge(b) for a, b in zip(self.blocks[0::2], self.blocks[1::2], strict=False)]
            if len(self.blocks) % 2:
                paired.append(self.blocks[-1])
                self._batches_in_last = 1
            else:
                self._batches_in_last = 2 * self._batches_per_block
            self.blocks = paired
            self._batches_per_block *= 2

    def results(self, measure: str, options: dict[str, Any]) -> Iterator[tuple[int, int, float, float | None]]:
        assert self.stats is not None
        position = {r: k for k, r in enumerate(self.reps)}
        wanted = [(position[i], position[j]) for i, j in self.pairs]  # cross pairs only, not within a model
        matrix = similarity_matrix(self.stats, measure, names=self.names, pairs=wanted, **options)
        for i, j in self.pairs:
            a, b = position[i], position[j]
            yield i, j, float(matrix.scores[a, b]), None if matrix.mean_rho is None else float(matrix.mean_rho[a, b])

    def intervals(
        self, measure: str, options: dict[str, Any], n_resamples: int, confidence_level: float, seed: Any
    ) -> tuple[Iterator[tuple[int, int, float, float]], int]:
        """``(i, j, low, high)`` of every pair from the bootstrap of the kept blocks, and the number of blocks."""
        from ccalens.core.uncertainty import bootstrap_matrix

        assert self.blocks is not None
        if len(self.blocks) < 4:
            raise ValueError(
                f"bootstrap needs at least 4 batches (its blocks, halved by the half-sampling interval), the data "
                f"gave {len(self.blocks)}: use a smaller batch_size"
            )
        position = {r: k for k, r in enumerate(self.reps)}
        wanted = [(position[i], position[j]) for i, j in self.pairs]
        with warnings.catch_warnings():  # the estimate gave its small-sample warning once; not once per replicate
            warnings.simplefilter("ignore", SmallSampleWarning)
            boot = bootstrap_matrix(
                blocks=self.blocks, measure=measure, n_resamples=n_resamples, confidence_level=confidence_level,
                seed=seed, names=self.names, pairs=wanted, **options,
            )
        low, high = boot.confidence_interval
        cells = ((i, j, float(low[position[i], position[j]]), float(high[position[i], position[j]]))
                 for i, j in self.pairs)
        return cells, boot.n_blocks


class DFTGroup:
    """One :class:`DFTStats` per cross pair of conv maps."""

    def __init__(self, pairs: Sequence[tuple[int, int]]) -> None:
        from ccalens.conv import DFTStats

        self.pairs = list(pairs)
        self.stats = {pair: DFTStats() for pair in self.pairs}

    def layers(self) -> set[int]:
        return {r for pair in self.pairs for r in pair}

    def update(self, blocks: Sequence[np.ndarray]) -> None:
        for (i, j), stats in self.stats.items():
            stats.update(blocks[i], blocks[j])

    def results(self, measure: str, options: dict[str, Any]) -> Iterator[tuple[int, int, float, float | None]]:
        for (i, j), stats in self.stats.items():
            result = stats.result(measure, **options)  # type: ignore[arg-type]
            yield i, j, float(result.score), float(result.mean_rho)


def dft_pair_bytes(a: np.ndarray, b: np.ndarray) -> int:
    """Bytes of the DFT statistics of one pair (complex co-moments and means, twice for each merge)."""
    from ccalens.conv.frequencies import frequency_plan

    n_freq = frequency_plan(a.shape[2:], b.shape[2:]).n_frequencies
    ca, cb = a.shape[1], b.shape[1]
    return 2 * 16 * n_freq * (ca * ca + cb * cb + ca * cb + ca + cb)


def plan_groups(
    first: Sequence[np.ndarray],
    pairs: list[tuple[int, int]],
    names: Sequence[str],
    conv: str,
    budget: int | None,
    keep_blocks: bool = False,
) -> list[StatsGroup | DFTGroup]:
    if conv != "dft":
        widths = [block.shape[1] for block in first]
        if keep_blocks:  # up to MAX_BOOTSTRAP_BLOCKS block statistics per group, and the bootstrap's packed copy
            budget = max(1, check_memory_budget(budget) // (2 * MAX_BOOTSTRAP_BLOCKS))
        planned = plan_stream_groups(widths, pairs, memory_budget=budget)
        return [StatsGroup(reps, prs, names, keep_blocks) for reps, prs in planned]
    costs = [dft_pair_bytes(first[i], first[j]) for i, j in pairs]
    groups = pack_pairs(pairs, costs, memory_budget=budget, names=names, advice="raise the budget or use conv='pooled'")
    return [DFTGroup(prs) for prs in groups]
