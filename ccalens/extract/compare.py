"""One call from two models to a similarity matrix: :func:`compare_models` (torch_cka's ``CKA(m1, m2).compare``).

``compare_models(model_a, model_b, data, layers_a=[...], layers_b=[...], measure="svcca", conv="pooled")`` runs both
models on every batch of ``data`` (the same batch, so their rows are aligned by construction) and feeds the chosen
layers straight into joint statistics; no activation is kept beyond the current batch, nothing is written.

How an output becomes rows (samples) and columns (features):

* ``(batch, features)``: as it is.
* ``(batch, tokens, features)`` (a sequence layer): tokens are samples; the batch's ``attention_mask`` (batches given
  as mappings, HuggingFace style) drops the padding tokens. Every compared layer must then give the same tokens.
  (Every 3-D output is read this way: for a ``Conv1d`` map ``(batch, C, L)``, compare a layer after its pooling.)
* ``(batch, C, H, W)`` (a conv map), by ``conv``: ``"pooled"`` averages over positions (``(batch, C)``, computed on
  the device), ``"flatten"`` keeps every unit (``(batch, C*H*W)``), ``"dft"`` keeps the map for DFT-CCA
  (:class:`ccalens.conv.DFTStats`, one per pair of layers: exact CCA of the flattened maps for
  translation-invariant data, at a fraction of the cost).

With ``conv="pooled"`` or ``"flatten"`` all layers of one pass share one :class:`SufficientStats` and the matrix comes
from :func:`ccalens.core.measures.similarity_matrix` (each layer whitened once). The memory planner
(:func:`ccalens.core.plan.plan_stream_groups`) splits the layers into groups whose joint statistics fit
``memory_budget``; each further group costs one more pass over ``data`` (which must then be re-iterable).

With ``conv="dft"``, a 2-D layer (or a sequence layer, tokens as samples) paired with a conv map is read as a map of
1 x 1 positions: DFT-CCA then keeps only the zero frequency, i.e. it equals CCA of the globally average-pooled map
with that layer; two 2-D layers give their ordinary CCA. Here ``conv="dft"`` streams the CCA family (``cca``,
``svcca``, ``pwcca``); linear CKA's DFT form (a sum over frequency blocks, by Parseval) is
:func:`ccalens.conv.dft_linear_cka`, on arrays.

Uncertainty (``bootstrap=N``, ``conv="pooled"`` / ``"flatten"``): the streamed batches are the blocks of a block
bootstrap (:mod:`ccalens.core.uncertainty`). Besides the group's statistics, each group keeps one
:class:`SufficientStats` per block: batches are grouped into at most :data:`MAX_BOOTSTRAP_BLOCKS` blocks (when a
129th block would start, neighbouring blocks are merged in pairs and each block then takes twice as many batches,
so a stream of at least 64 batches keeps at least the 64 blocks the few-block warning asks for),
so memory stays bounded whatever the number of batches; the memory planner is given ``memory_budget`` divided by
``2 * MAX_BOOTSTRAP_BLOCKS`` for that reason. Replicates are weighted merges of the block statistics
(:func:`ccalens.core.uncertainty.bootstrap_matrix` with ``blocks=``); nothing is read again. Blocks are runs of
consecutive batches, so the interval is valid when the batches are exchangeable (shuffled data) or the dependence
between samples is shorter than a block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ccalens.core.measures import REGISTRY, STATS_MEASURES
from ccalens.core.result import SimilarityMatrix, _nan_to_none
from ccalens.core.uncertainty.intervals import DEFAULT_METHOD
from ccalens.core.validation import SVCCA_THRESHOLD
from ccalens.core.whitening import DEFAULT_TOL

from .batching import prepare_batches
from .capture import LayerCapture, attention_mask
from .naming import layer_names
from .sinks import MAX_BOOTSTRAP_BLOCKS, StatsGroup, plan_groups
from .transforms import token_rows

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["CONV_MODES", "MAX_BOOTSTRAP_BLOCKS", "CrossSimilarity", "compare_models"]

#: how conv maps ``(batch, C, H, W)`` are compared
CONV_MODES = ("pooled", "flatten", "dft")


@dataclass(frozen=True)
class CrossSimilarity(SimilarityMatrix):
    """A :class:`~ccalens.core.result.SimilarityMatrix` of every layer of model A (rows, ``names``) against every
    layer of model B (columns, ``col_names``), with how it was computed (heat map:
    ``ccalens.report.heatmaps.plot_similarity_matrix``).

    Attributes (beyond SimilarityMatrix's ``measure``, ``scores: (L_a, L_b)``, ``mean_rho``):
        conv: how conv maps were compared (``"pooled"``, ``"flatten"``, ``"dft"``).
        n_samples: rows compared (images, or tokens for sequence layers).
        models: names of the two models (plot titles, frames).
        low, high: ``(L_a, L_b)`` bootstrap confidence bounds of each cell (``bootstrap=N``; NaN where not
            computed), or None without a bootstrap.
        bootstrap: how the bounds were computed (``n_resamples``, ``confidence_level``, ``method``, ``n_blocks``,
            ``seed``), or None.
    """

    conv: str = "pooled"
    n_samples: int = 0
    models: tuple[str, str] = ("A", "B")
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    bootstrap: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update(conv=self.conv, models=list(self.models), n_samples=self.n_samples,
                   row_names=list(self.row_names))
        if self.low is not None and self.high is not None:
            out.update(low=_nan_to_none(self.low), high=_nan_to_none(self.high), bootstrap=dict(self.bootstrap or {}))
        return out

    def to_rows(self) -> list[dict[str, Any]]:
        """One row per cell (for :func:`ccalens.io.write_csv`): ``layer_a``, ``layer_b``, ``score``, ``mean_rho``
        and, with a bootstrap, ``low`` and ``high`` (None where NaN)."""

        def value(arr: np.ndarray | None, i: int, j: int) -> float | None:
            return None if arr is None or not np.isfinite(arr[i, j]) else float(arr[i, j])

        rows = []
        for i, a in enumerate(self.row_names):
            for j, b in enumerate(self.column_names):
                row = {"layer_a": a, "layer_b": b, "score": value(self.scores, i, j),
                       "mean_rho": value(self.mean_rho, i, j)}
                if self.low is not None:
                    row.update(low=value(self.low, i, j), high=value(self.high, i, j))
                rows.append(row)
        return rows

    def to_frame(self) -> Any:
        """A pandas ``DataFrame`` of the scores: index model A's layers, columns model B's."""
        frame = super().to_frame()
        frame.index.name, frame.columns.name = self.models
        return frame


# --------------------------------------------------------------------------------------------- capture
def _pool_maps(t: Any) -> Any:
    return t.mean(dim=tuple(range(2, t.ndim))) if t.ndim >= 4 else t


def _flatten_maps(t: Any) -> Any:
    return t.reshape(t.shape[0], -1) if t.ndim >= 4 else t


_DEVICE_TRANSFORMS: dict[str, Callable[[Any], Any] | None] = {
    "pooled": _pool_maps,
    "flatten": _flatten_maps,
    "dft": None,
}


def streams_on_device(device: Any) -> bool:
    """Whether activations on ``device`` stay there and feed statistics computed on it (:mod:`ccalens.core.device`:
    the co-moment products on the device, only ``(d, d)`` results copied back): on any accelerator. On the CPU the
    activations become NumPy arrays, the reference path."""
    return getattr(device, "type", "cpu") != "cpu"


class _TwoModels:
    """Both models prepared (one :class:`LayerCapture` when they are the same object); :meth:`blocks` runs one batch
    and returns A's layers then B's, each as rows (tokens as samples, conv maps as ``conv`` says)."""

    def __init__(
        self,
        models: tuple[Any, Any],
        layers: tuple[Sequence[str], Sequence[str]],
        forwards: tuple[Any, Any],
        conv: str,
        device: Any,
    ) -> None:
        self.conv = conv
        self.wanted = [(0, name) for name in layers[0]] + [(1, name) for name in layers[1]]
        same = models[0] is models[1] and forwards[0] is forwards[1]
        per_capture: list[list[str]] = [[], []] if not same else [[]]
        for side, name in self.wanted:
            names = per_capture[0 if same else side]
            if name not in names:
                names.append(name)
        self.which = [0 if same else side for side, _ in self.wanted]
        self.captures = [
            LayerCapture(models[k], names, device=device, transform=_DEVICE_TRANSFORMS[conv], forward=forwards[k])
            for k, names in enumerate(per_capture)
        ]
        for capture in self.captures:  # DFT-CCA's statistics are NumPy's: its maps come to the host
            capture.on_device = conv != "dft" and streams_on_device(capture.device)

    def __enter__(self) -> _TwoModels:
        entered: list[LayerCapture] = []
        try:
            for capture in self.captures:
                entered.append(capture.__enter__())
        except BaseException:
            for capture in reversed(entered):
                capture.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for capture in reversed(self.captures):
            capture.__exit__()

    def blocks(self, inputs: Any) -> list[np.ndarray]:
        outputs = [capture.run(inputs)[0] for capture in self.captures]
        mask = attention_mask(inputs)
        blocks = []
        for k, (side, name) in zip(self.which, self.wanted, strict=True):
            blocks.append(_as_rows(f"{'AB'[side]}:{name}", outputs[k][name], mask, self.conv))
        rows = {block.shape[0] for block in blocks}
        if len(rows) > 1:
            shapes = ", ".join(f"{'AB'[s]}:{n} {b.shape}" for (s, n), b in zip(self.wanted, blocks, strict=True))
            raise ValueError(
                "the compared layers give different numbers of rows for the same batch (" + shapes + "): every layer "
                "must give one row per sample, or, for sequence layers (batch, tokens, features), one per token"
            )
        return blocks


def _as_rows(label: str, arr: np.ndarray, mask: np.ndarray | None, conv: str) -> np.ndarray:
    """One layer's batch as rows: ``(n, d)`` for the statistics, ``(n, C, H, W)`` maps for DFT-CCA."""
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim == 3:
        arr = token_rows(label, arr, mask)[0]
    if conv == "dft":
        if arr.ndim == 2:
            return arr.reshape(*arr.shape, 1, 1)
        if arr.ndim == 4:
            return arr
    elif arr.ndim == 2:
        return arr
    raise ValueError(f"layer {label} gives outputs of shape {arr.shape}, which conv={conv!r} cannot compare")


# --------------------------------------------------------------------------------------------- the call
def _one_shot(data: Any) -> bool:
    """Whether iterating ``data`` consumes it (an iterator or generator)."""
    try:
        return iter(data) is data
    except TypeError:
        return False


def compare_models(
    model_a: torch.nn.Module,
    model_b: torch.nn.Module,
    data: Any,
    *,
    layers_a: Sequence[str],
    layers_b: Sequence[str],
    measure: str = "svcca",
    conv: str = "pooled",
    device: Any = None,
    batch_size: int | None = 256,
    ids_position: int | str | None = None,
    forward_a: Any = None,
    forward_b: Any = None,
    keep: str = "singular_values",
    threshold: float = SVCCA_THRESHOLD,
    tol: float = DEFAULT_TOL,
    memory_budget: int | None = None,
    model_names: tuple[str, str] = ("A", "B"),
    progress: bool = False,
    bootstrap: int = 0,
    confidence_level: float = 0.95,
    seed: int | None = None,
) -> CrossSimilarity:
    """Similarity of every layer in ``layers_a`` of ``model_a`` with every layer in ``layers_b`` of ``model_b``.

    Args:
        model_a, model_b: ``torch.nn.Module`` s (may be the same object); each runs in eval mode under ``no_grad``
            on ``device`` (default: its own), and its train/eval flags, device and hooks are restored afterwards.
        data: what :func:`ccalens.extract.extract` accepts: a non-shuffling ``DataLoader``, a ``Dataset``, a tensor
            or array of inputs, a mapping of keyword inputs, or an iterable of batches (inputs, tuples whose first
            element is the inputs, or mappings passed as ``model(**batch)``, HuggingFace style). Both models see
            the same batches. It is read once, or once per group of layers when their joint statistics exceed
            ``memory_budget`` (then it must be re-iterable: not a generator).
        layers_a, layers_b: module names (:func:`ccalens.extract.list_layers`), or ``"output"`` for the model's own
            output (a ``ModelOutput``'s ``logits``, or the first tensor of a tuple / dict output).
        measure: ``"svcca"`` (default), ``"cca"``, ``"pwcca"``, ``"linear_cka"`` or ``"procrustes"`` (DFT: the CCA
            family only).
        conv: conv maps ``(batch, C, H, W)`` ``"pooled"`` (global average, default), ``"flatten"`` or ``"dft"``
            (see the module docstring; sequence layers always give one row per unpadded token).
        batch_size: rows per batch for tensors, arrays, mappings and datasets (a DataLoader keeps its own).
        ids_position: where tuple (index) or mapping (key) batches carry sample ids, which are then not passed
            to the model.
        forward_a, forward_b: how to run each model (see ``extract(forward=)``): None, a method name, or a
            callable ``forward(model, inputs)``.
        keep, threshold: SVCCA's truncation rule (the appendix's sum of singular values, or the variance) and the
            fraction kept; tol: relative eigenvalue cut-off of the whitening.
        memory_budget: bytes the statistics may take (default: the engine's, a share of the available memory).
        model_names: the two models' names for titles and frames.
        progress: show a progress bar over batches.
        bootstrap: 0 (off) or the number of replicates N (>= 2) of a ``confidence_level`` half-sampling
            interval per cell, the batches as blocks (``conv="pooled"`` / ``"flatten"`` only; see the module
            docstring: one :class:`SufficientStats` per block, at most :data:`MAX_BOOTSTRAP_BLOCKS` blocks, so the
            data must come in at least 4 batches, halved by each replicate; fewer than 64 batches warn).
            ``seed``: same seed and batches, same
            intervals.

    Returns:
        :class:`CrossSimilarity` with ``scores: (len(layers_a), len(layers_b))`` (and ``low``, ``high`` of the same
        shape with ``bootstrap``), ``.to_frame()``, ``.to_dict()``; draw it with
        :func:`ccalens.report.heatmaps.plot_similarity_matrix`.
    """
    names_a, names_b = layer_names(layers_a, "layers_a"), layer_names(layers_b, "layers_b")
    if conv not in CONV_MODES:
        raise ValueError(f"conv must be one of {', '.join(map(repr, CONV_MODES))}, got {conv!r}")
    from ccalens.conv import BLOCK_MEASURES  # the measures DFT-CCA finishes per frequency block

    allowed = BLOCK_MEASURES if conv == "dft" else STATS_MEASURES  # the registry's, under each convention
    if measure not in allowed:
        raise ValueError(f"measure must be one of {', '.join(map(repr, allowed))} with conv={conv!r}, got {measure!r}")
    if not (isinstance(model_names, tuple) and len(model_names) == 2 and all(isinstance(n, str) for n in model_names)):
        raise TypeError(f"model_names must be a pair of strings, got {model_names!r}")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)) or bootstrap < 0 or bootstrap == 1:
        raise ValueError(f"bootstrap must be 0 (off) or a number of replicates >= 2, got {bootstrap!r}")
    if bootstrap and conv == "dft":
        raise ValueError("bootstrap is available for conv='pooled'/'flatten', not conv='dft'")
    if bootstrap and not 0.0 < confidence_level < 1.0:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level!r}")
    options: dict[str, Any] = {"tol": tol, **REGISTRY[measure].rule_options(keep, threshold)}
    la, lb = len(names_a), len(names_b)
    labels = [f"{model_names[0]}:{n}" for n in names_a] + [f"{model_names[1]}:{n}" for n in names_b]
    pairs = [(i, la + j) for i in range(la) for j in range(lb)]
    scores = np.full((la, lb), np.nan)
    mean_rho = np.full((la, lb), np.nan)

    def run_pass(keep: set[int] | None, batches: Iterable[Any], sinks: list[Any] | None) -> tuple[list[Any], int]:
        """One pass over the data feeding ``sinks`` (when None: planned from the first batch, and the first group
        fed); returns the sinks and the rows seen."""
        active: list[Any] = [] if sinks is None else sinks
        wanted = range(la + lb) if keep is None else sorted(keep)
        sub_a = [names_a[i] for i in wanted if i < la]
        sub_b = [names_b[i - la] for i in wanted if i >= la]
        index = {r: k for k, r in enumerate(wanted)}  # position of layer r in this pass's blocks
        two = _TwoModels((model_a, model_b), (sub_a, sub_b), (forward_a, forward_b), conv, device)
        n_rows = 0
        with two:
            for inputs, _ in batches:
                got = two.blocks(inputs)
                blocks: list[Any] = [None] * (la + lb)
                for r, k in index.items():
                    blocks[r] = got[k]
                if sinks is None:  # first batch of the first pass: plan the groups, feed the first one now
                    sinks = plan_groups(blocks, pairs, labels, conv, memory_budget, keep_blocks=bootstrap > 0)
                    if len(sinks) > 1 and _one_shot(data):
                        raise ValueError(
                            f"the statistics of these {la + lb} layers exceed memory_budget, so they need "
                            f"{len(sinks)} passes over the data, but data is a one-shot iterator: pass a DataLoader, "
                            "a tensor or a list of batches, conv='pooled', fewer layers, or a larger memory_budget"
                        )
                    active = sinks[:1]
                for sink in active:
                    sink.update(blocks)
                n_rows += got[0].shape[0]
        if sinks is None or n_rows == 0:
            raise ValueError("data yielded no samples")
        return sinks, n_rows

    def batches() -> Iterable[Any]:
        prepared = prepare_batches(data, batch_size, ids_position)
        if not progress:
            return prepared.batches
        from tqdm.auto import tqdm

        return tqdm(prepared.batches, total=prepared.n_batches, desc="compare_models", unit="batch")

    low = np.full((la, lb), np.nan) if bootstrap else None
    high = np.full((la, lb), np.nan) if bootstrap else None
    n_blocks: list[int] = []
    groups, n_samples = run_pass(None, batches(), None)
    for k, group in enumerate(groups):
        if k > 0:
            run_pass(group.layers(), batches(), [group])
        for i, j, score, rho in group.results(measure, options):
            scores[i, j - la] = score
            if rho is not None:
                mean_rho[i, j - la] = rho
        if bootstrap:
            assert isinstance(group, StatsGroup) and low is not None and high is not None
            cells, used = group.intervals(measure, options, bootstrap, confidence_level, seed)
            for i, j, lo, hi in cells:
                low[i, j - la], high[i, j - la] = lo, hi
            n_blocks.append(used)
            group.blocks = None
        group.stats = None  # free this group's statistics before the next pass
    about = None
    if bootstrap:
        about = {"n_resamples": int(bootstrap), "confidence_level": float(confidence_level), "method": DEFAULT_METHOD,
                 "n_blocks": min(n_blocks), "seed": seed, "blocks": "consecutive batches"}
    return CrossSimilarity(
        measure=measure,
        scores=scores,
        names=tuple(names_a),
        col_names=tuple(names_b),
        details=dict(options),
        mean_rho=None if np.isnan(mean_rho).all() else mean_rho,
        conv=conv,
        n_samples=int(n_samples),
        models=model_names,
        low=low,
        high=high,
        bootstrap=about,
    )
