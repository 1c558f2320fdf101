"""The memory planner: one ``memory_budget`` default and every decision that depends on it.

Every call that takes ``memory_budget`` (bytes; ``None``: :func:`default_memory_budget`, a quarter of the memory
available when the call starts) passes it through :func:`check_memory_budget` here, and every choice made under
it is made here:

* :func:`plan_pair`: the feature-space (primal) or the sample-space (dual, Gram) path of one comparison given
  the data (:mod:`ccalens.core.measures`, :mod:`ccalens.core.dual`);
* :func:`plan_matrix`: one joint pass over many representations, or each representation prepared once
  (:func:`ccalens.core.measures.similarity_matrix`);
* :func:`plan_stream_groups`: streamed representations split into groups whose joint statistics fit, one pass
  over the data per group (:mod:`ccalens.core.many`, ``compare_models``); :func:`pack_pairs`: the same greedy
  packing for pairs of known cost (DFT statistics of conv maps);
* :func:`plan_rbf`: exact RBF CKA (two n x n kernels) or its seeded approximation (:mod:`ccalens.core.kernel`).

The decisions between exact paths (primal, dual, prepared, groups) change the time and the memory, never the
numbers beyond rounding; only :func:`plan_rbf` may choose an approximation, and it records which.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "DEFAULT_COLUMN_BLOCK",
    "TILE_ROWS",
    "Plan",
    "available_memory",
    "check_memory_budget",
    "default_memory_budget",
    "exact_rbf_bytes",
    "pack_pairs",
    "plan_matrix",
    "plan_pair",
    "plan_rbf",
    "plan_stream_groups",
]

#: Columns centred and multiplied at a time on the dual path: wide enough for GEMM efficiency, small enough to
#: stay in cache budgets (``n x 512`` float64 is 20 MB at n = 5,000).
DEFAULT_COLUMN_BLOCK = 512
#: Rows (and columns) of the Gram tiles of :func:`ccalens.core.gram_tiles.linear_cka_tiled`: a float32 tile is 16 MB.
TILE_ROWS = 2048

Method = Literal["auto", "primal", "dual"]


# --------------------------------------------------------------------------------- the budget
def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable`` on Linux, else the physical memory; 8 GiB if unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def default_memory_budget() -> int:
    """The default ``memory_budget``: a quarter of the memory available when the call starts."""
    return available_memory() // 4


def check_memory_budget(memory_budget: int | None) -> int:
    """``memory_budget`` in bytes (None: :func:`default_memory_budget`); a clear error for nonsense."""
    if memory_budget is None:
        return default_memory_budget()
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, np.integer)) or memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    return int(memory_budget)


# --------------------------------------------------------------------------------- one pair
@dataclass(frozen=True)
class Plan:
    """How one comparison is computed, and why.

    Attributes:
        method: ``"primal"`` (feature-space co-moments, streamed over samples), ``"dual"`` (sample-space Gram
            matrices of the centred data) or ``"prepared"`` (many representations, each reduced once).
        bytes_needed: the plan's estimated working memory (the inputs excluded).
        memory_budget: the budget it was chosen under.
        reason: one sentence for the record.
    """

    method: str
    bytes_needed: int
    memory_budget: int
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "bytes_needed": self.bytes_needed,
            "memory_budget": self.memory_budget,
            "reason": self.reason,
        }


def _primal_cost(n: int, widths: tuple[int, ...], needs_basis: bool) -> tuple[float, int]:
    """(flops, bytes) of the feature-space path: joint co-moment, then one eigendecomposition per side."""
    total = sum(widths)
    flops = float(n) * total * total + (sum(9.0 * d**3 for d in widths) if needs_basis else 0.0)
    memory = 8 * (total * total + (2 * max(widths) ** 2 if needs_basis else 0))
    return flops, memory


def _dual_cost(n: int, widths: tuple[int, ...], needs_basis: bool, tiled: bool = False) -> tuple[float, int]:
    """(flops, bytes) of the sample-space path: one Gram per side, one eigendecomposition per side; or, for an
    inner product of Grams (``tiled``), tiles of both Grams (:func:`ccalens.core.gram_tiles.linear_cka_tiled`)."""
    L = len(widths)
    if tiled:
        tile = min(n, TILE_ROWS)
        return float(n) * n * sum(widths), 4 * (L + 1) * tile * tile + 8 * n * L
    flops = float(n) * n * sum(widths) + (L * 9.0 * n**3 if needs_basis else 0.0)
    memory = 8 * (L * n * n + (2 * n * n if needs_basis else 0) + n * DEFAULT_COLUMN_BLOCK)
    return flops, memory


def plan_pair(
    n_samples: int,
    widths: tuple[int, ...],
    *,
    needs_basis: bool,
    method: Method = "auto",
    memory_budget: int | None = None,
    tiled: bool = False,
) -> Plan:
    """Choose the primal or the dual path for representations of ``widths`` features over ``n_samples``.

    ``needs_basis``: the measure needs each side's principal basis (CCA family) rather than second moments only
    (CKA, Procrustes); ``tiled``: the measure is an inner product of Gram matrices (linear CKA), computed tile by
    tile on the dual path without holding a whole Gram. ``auto`` takes the cheaper path in flops among those that
    fit ``memory_budget``; ``primal``/``dual`` force one and still check the budget. Raises ``MemoryError`` with
    what would fit when nothing does.
    """
    budget = check_memory_budget(memory_budget)
    if method not in ("auto", "primal", "dual"):
        raise ValueError(f"method must be 'auto', 'primal' or 'dual', got {method!r}")
    primal = _primal_cost(n_samples, widths, needs_basis)
    dual = _dual_cost(n_samples, widths, needs_basis, tiled)
    options = {"primal": primal, "dual": dual}
    candidates = [method] if method != "auto" else ["primal", "dual"]
    fitting = [m for m in candidates if options[m][1] <= budget]
    if not fitting:
        need = min(options[m][1] for m in candidates)
        raise MemoryError(
            f"no plan fits memory_budget={budget:,} bytes: the {'/'.join(candidates)} path needs about {need:,} "
            f"bytes for {n_samples} samples of widths {list(widths)}. Raise memory_budget, use fewer samples, "
            "pool conv maps or use DFT-CCA (ccalens.conv) instead of flattening them, or estimate CKA with "
            "ccalens.core.minibatch (minibatch CKA)."
        )
    chosen = min(fitting, key=lambda m: options[m][0])
    flops, memory = options[chosen]
    if method != "auto":
        reason = f"{chosen} path forced by method={method!r}"
    elif len(fitting) == 1 and len(candidates) == 2:
        reason = f"only the {chosen} path fits the memory budget"
    else:
        other = "dual" if chosen == "primal" else "primal"
        reason = f"{chosen} path: {flops:.3g} flops against {options[other][0]:.3g} for the {other} path"
    return Plan(method=chosen, bytes_needed=int(memory), memory_budget=budget, reason=reason)


# --------------------------------------------------------------------------------- many representations
def plan_matrix(
    n_samples: int,
    widths: Sequence[int],
    *,
    n_pairs: int | None,
    method: Method = "auto",
    memory_budget: int | None = None,
) -> Plan:
    """One joint pass (``"primal"``: the joint co-moment of every representation) or each representation
    prepared once (``"prepared"``) for a matrix of ``len(widths)`` representations over ``n_samples``.

    ``n_pairs``: the pairs wanted (None: all). ``auto`` prepares each representation when the joint co-moment
    exceeds the budget, a representation is wider than the sample count, or few pairs are wanted (fewer than
    half of the matrix, e.g. checkpoints against the final one); ``"dual"`` forces the preparation; ``"primal"``
    forces the joint pass and raises ``MemoryError`` when it does not fit.
    """
    budget = check_memory_budget(memory_budget)
    L, n = len(widths), int(n_samples)
    joint = 2 * 8 * sum(int(w) for w in widths) ** 2
    wide = any(int(w) > n for w in widths)
    sparse = n_pairs is not None and n_pairs < L * (L + 1) / 4
    if method == "dual" or (method == "auto" and (joint > budget or wide or sparse)):
        why = ("forced by method='dual'" if method == "dual" else
               "representations wider than the sample count" if wide else
               f"the joint co-moment ({joint:,} bytes) exceeds the budget" if joint > budget else
               f"{n_pairs} of the {L * L} pairs: preparing each representation costs less")
        return Plan("prepared", 0, budget, f"each representation prepared once: {why}")
    if joint > budget:
        raise MemoryError(
            f"the joint co-moment of {L} representations needs about {joint:,} bytes, over memory_budget="
            f"{budget:,}: use method='auto' (each representation prepared once) or raise the budget"
        )
    return Plan("primal", joint, budget, "one joint pass: the joint co-moment fits the budget")


def plan_stream_groups(
    widths: Sequence[int], pairs: Sequence[tuple[int, int]], *, memory_budget: int | None = None
) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """Split ``pairs`` of streamed representations into groups whose joint co-moment fits ``memory_budget``.

    ``widths[l]``: features of representation l. Returns ``[(representations, pairs), ...]``: one pass over the
    data per group accumulates the statistics of its representations only (``8 (sum of their widths)^2``
    bytes, twice for the merge of each batch), and every pair is computed in exactly one group. Greedy: pairs
    that share representations (e.g. T checkpoints of a layer against its final state) are packed together.
    """
    budget = check_memory_budget(memory_budget)
    widths = [int(w) for w in widths]

    def cost(reps: set[int]) -> int:
        total = sum(widths[r] for r in reps)
        return 2 * 8 * total * total

    groups: list[tuple[set[int], list[tuple[int, int]]]] = []
    for i, j in pairs:
        if not (0 <= i < len(widths) and 0 <= j < len(widths)):
            raise IndexError(f"pair ({i}, {j}) names a representation outside 0..{len(widths) - 1}")
        need = {i, j}
        if cost(need) > budget:
            raise MemoryError(
                f"the pair ({i}, {j}) alone needs {cost(need):,} bytes of statistics, over memory_budget={budget:,}: "
                "raise the budget, pool conv maps or reduce the representations first"
            )
        best = None
        for g in groups:
            if need <= g[0]:
                best = g
                break
            if best is None and cost(g[0] | need) <= budget:
                best = g
        if best is None:
            groups.append((set(need), [(i, j)]))
        else:
            best[0].update(need)
            best[1].append((i, j))
    return [(sorted(reps), prs) for reps, prs in groups]


def pack_pairs(
    pairs: Sequence[tuple[int, int]], costs: Sequence[int], *, memory_budget: int | None = None,
    names: Sequence[str] | None = None, advice: str = "raise the budget",
) -> list[list[tuple[int, int]]]:
    """Consecutive ``pairs`` packed into groups whose summed ``costs`` (bytes, one per pair) fit the budget (one
    pass over the data per group). A pair that alone exceeds it raises ``MemoryError`` naming it
    (``names[i]``) and ``advice``."""
    limit = check_memory_budget(memory_budget)
    groups: list[list[tuple[int, int]]] = [[]]
    used = 0
    for (i, j), cost in zip(pairs, costs, strict=True):
        if cost > limit:
            label = f"{names[i]} vs {names[j]}" if names is not None else f"pair ({i}, {j})"
            raise MemoryError(f"the statistics of {label} alone need {cost:,} bytes, over memory_budget={limit:,}: "
                              f"{advice}")
        if used + cost > limit and groups[-1]:
            groups.append([])
            used = 0
        groups[-1].append((i, j))
        used += cost
    return groups


# --------------------------------------------------------------------------------- RBF CKA
def exact_rbf_bytes(n_samples: int) -> int:
    """Peak memory of exact RBF CKA on ``n_samples`` samples: two n x n float64 kernels plus a triangle."""
    return 8 * (2 * n_samples * n_samples + n_samples * (n_samples - 1) // 2)


def plan_rbf(n_samples: int, method: str, memory_budget: int | None = None) -> str:
    """``"exact"`` while :func:`exact_rbf_bytes` fits the budget, else ``"random_features"`` (``method="auto"``);
    a forced ``"exact"`` that does not fit raises ``ValueError`` with what it needs."""
    budget = check_memory_budget(memory_budget)
    need = exact_rbf_bytes(n_samples)
    if method == "auto":
        return "exact" if need <= budget else "random_features"
    if method == "exact" and need > budget:
        raise ValueError(
            f"method='exact' needs about {need / 2**30:.2f} GiB for n = {n_samples} samples (two n x n kernels), "
            f"more than memory_budget = {budget} bytes; raise memory_budget or use method='random_features'"
        )
    return method
