"""Similarity of two conv layers under an explicit convention: positions, pooled or DFT-CCA.

Conventions (maps ``A: (N, C_a, H_a, W_a)`` and ``B: (N, C_b, H_b, W_b)`` of the same N images):

* ``'positions'``: every spatial position of every image is a sample: ``(N*H*W, C)`` against
  ``(N*H*W, C)``. Needs the same ``H x W`` on both sides (position ``(i, j)`` of A is paired with
  position ``(i, j)`` of B). Correlations describe channel mixing at a location, shared over locations.
* ``'pooled'``: global average pooling first: ``(N, C_a)`` against ``(N, C_b)``; any spatial sizes.
  Only what survives averaging over space is compared.
* ``'dft'``: DFT-CCA (:mod:`ccalens.conv.dft`): per-frequency CCA of the channels' 2-D DFTs; for
  translation-invariant data it equals CCA of the full flattened maps (``C*H*W`` features) at a tiny
  fraction of the cost. Different spatial sizes keep the common low frequencies.

All three stream: statistics accumulate over batches of images (:class:`SpatialStats`,
:class:`~ccalens.conv.dft.DFTStats`) and merge exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ccalens.core.measures import MEASURES, REGISTRY
from ccalens.core.null import null_mean_rho
from ccalens.core.result import SimilarityResult
from ccalens.core.stats import SufficientStats
from ccalens.core.whitening import DEFAULT_TOL

from ._blocks import check_measure
from ._input import check_layout, check_map_pair, to_nchw
from .cka import PARSEVAL_MEASURES, dft_linear_cka
from .dft import DEFAULT_CHUNK_BYTES, DFTResult, DFTStats

__all__ = [
    "CONVENTIONS",
    "ConvSimilarityResult",
    "SpatialStats",
    "conv_similarity",
    "conv_similarity_from_batches",
    "conv_stats",
    "dft_null_mean_rho",
]

Convention = Literal["positions", "pooled", "dft"]
CONVENTIONS: tuple[str, ...] = ("positions", "pooled", "dft")


def _check_convention(convention: object) -> str:
    if not isinstance(convention, str) or convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    return convention


@dataclass(frozen=True, kw_only=True)
class ConvSimilarityResult(SimilarityResult):
    """Similarity of two conv layers: a :class:`~ccalens.core.result.SimilarityResult` plus its convention.

    The shared fields mean what they mean for core results (``rank_x``/``rank_y``: dimensions kept, summed over
    frequencies with multiplicity for DFT; ``weights``: PWCCA weights of ``correlations`` for the spatial
    conventions; ``n_samples``: ``N*H*W`` for positions, ``N`` for pooled and dft). Extra fields:

    Attributes:
        convention: ``'positions'``, ``'pooled'`` or ``'dft'``.
        dft: the per-frequency result (:class:`~ccalens.conv.dft.DFTResult`) for ``convention='dft'``, else None.
    """

    convention: str
    dft: DFTResult | None = field(default=None, repr=False)

    @classmethod
    def of(cls, res: SimilarityResult, convention: str, **changes: Any) -> ConvSimilarityResult:
        """The core result ``res`` under ``convention``, with ``changes`` to its fields (e.g. ``details``)."""
        fields = {f: getattr(res, f) for f in SimilarityResult.__dataclass_fields__}
        return cls(**{**fields, **changes}, convention=convention)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["convention"] = self.convention
        if self.dft is not None:
            d = self.dft
            out["per_frequency"] = {
                "frequencies": d.frequencies.tolist(),
                "multiplicity": d.multiplicity.tolist(),
                "score": [None if np.isnan(v) else float(v) for v in d.per_frequency_score],
                "rank_x": d.rank_a.tolist(),
                "rank_y": d.rank_b.tolist(),
            }
        return out


@dataclass
class SpatialStats:
    """Streaming statistics for the ``'positions'`` and ``'pooled'`` conventions.

    Each batch is reduced to 2-D (positions: ``(n*H*W, C)``; pooled: ``(n, C)``) and added to a core
    :class:`~ccalens.core.stats.SufficientStats` (``stats``), so the maths is the core engine's.
    """

    convention: str = "positions"
    layout: str = "NCHW"
    stats: SufficientStats = field(default_factory=SufficientStats)
    n_images: int = 0

    def __post_init__(self) -> None:
        if _check_convention(self.convention) == "dft":
            raise ValueError("SpatialStats handles 'positions' and 'pooled'; use DFTStats for convention='dft'")
        check_layout(self.layout)

    def reduce(self, A: Any, B: Any) -> tuple[np.ndarray, np.ndarray]:
        """The 2-D samples of a batch of maps: positions ``(n*H*W, C)`` or pooled ``(n, C)`` per side."""
        a, b = check_map_pair(A, B, self.layout)
        a, b = to_nchw(a, self.layout), to_nchw(b, self.layout)
        if self.convention == "pooled":
            return a.mean(axis=(2, 3), dtype=np.float64), b.mean(axis=(2, 3), dtype=np.float64)
        if a.shape[2:] != b.shape[2:]:
            raise ValueError(
                f"convention='positions' pairs position (i, j) of A with (i, j) of B, so both need the same "
                f"spatial size; got A {a.shape[2:]} and B {b.shape[2:]} (H, W). Use 'pooled' or 'dft'."
            )

        def flat(x: np.ndarray) -> np.ndarray:  # (n, C, H, W) -> (n*H*W, C), rows ordered image, row, column
            return np.moveaxis(x, 1, 3).reshape(-1, x.shape[1])

        return flat(a), flat(b)

    def update(self, A: Any, B: Any) -> SpatialStats:
        """Add a batch of maps of the same images. Returns self."""
        x, y = self.reduce(A, B)
        self.stats.update(x, y, names=("A", "B"))
        self.n_images += int(np.shape(A)[0])
        return self

    def merge(self, other: SpatialStats) -> SpatialStats:
        if not isinstance(other, SpatialStats):
            raise TypeError(f"other must be SpatialStats, got {type(other).__name__}")
        if other.convention != self.convention:
            raise ValueError(f"cannot merge {self.convention!r} statistics with {other.convention!r} ones")
        return SpatialStats(self.convention, self.layout, self.stats.merge(other.stats), self.n_images + other.n_images)

    def result(
        self,
        measure: Literal["cca", "svcca", "pwcca"] = "cca",
        *,
        keep: Literal["singular_values", "variance"] = "singular_values",
        threshold: float = 0.99,
        weights_from: Literal["x", "y", "smaller"] = "x",
        tol: float = DEFAULT_TOL,
    ) -> ConvSimilarityResult:
        """CCA / SVCCA (``keep``, ``threshold`` as in :func:`ccalens.svcca`) / PWCCA from the statistics."""
        measure = check_measure(measure, threshold, keep)
        st = self.stats
        if st.n_samples < 2:
            raise ValueError(f"need at least 2 samples, the statistics have {st.n_samples}")
        # the core measures, from the same statistics (one implementation of CCA / SVCCA / PWCCA)
        spec = REGISTRY[measure]
        options = {"tol": tol, **spec.rule_options(keep, threshold)}
        if "weights_from" in spec.options:
            options["weights_from"] = weights_from
        res = MEASURES[measure](stats=st, **options)
        return ConvSimilarityResult.of(res, self.convention, details={**res.details, "n_images": self.n_images})


def conv_stats(
    convention: Convention, *, layout: str = "NCHW", chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> SpatialStats | DFTStats:
    """Empty streaming statistics for ``convention``: call ``update(A_batch, B_batch)``, then ``result``."""
    if _check_convention(convention) == "dft":
        return DFTStats(layout=check_layout(layout), chunk_bytes=chunk_bytes)
    return SpatialStats(convention, check_layout(layout))


def dft_null_mean_rho(res: DFTResult) -> float | None:
    """Mean canonical correlation that unrelated maps of the same image count and per-frequency kept ranks reach
    under DFT-CCA: each frequency's expectation (:func:`ccalens.null_mean_rho` of ``n`` samples and its two kept
    ranks) weighted by its number of correlations and multiplicity; the ``n_zeros`` correlations pairing different
    frequencies are 0 by construction, so they count as 0. A complex frequency uses the real expectation, which has
    the same large-sample limit (Wachter's law holds for real and complex ensembles alike). None below 3 images."""
    if res.n_samples < 3 or res.correlations.size == 0:
        return None
    total = 0.0
    for ra, rb, m in zip(res.rank_a, res.rank_b, res.multiplicity, strict=True):
        if ra > 0 and rb > 0:
            k = min(int(ra), int(rb))  # the block's number of correlations
            total += float(m) * k * null_mean_rho(res.n_samples, int(ra), int(rb))
    return total / res.correlations.size


def _finish(
    stats: SpatialStats | DFTStats, measure: str, keep: str, threshold: float, tol: float, svcca_scope: str
) -> ConvSimilarityResult:
    if isinstance(stats, SpatialStats):
        return stats.result(measure, keep=keep, threshold=threshold, tol=tol)  # type: ignore[arg-type]
    res = stats.result(
        measure, keep=keep, threshold=threshold, tol=tol, svcca_scope=svcca_scope  # type: ignore[arg-type]
    )
    details: dict[str, Any] = {"grid": res.grid, "n_frequencies": int(res.frequencies.shape[0])}
    if REGISTRY[measure].rule({"keep": keep, "threshold": threshold}) is not None:
        details.update(keep=keep, threshold=threshold, svcca_scope=svcca_scope)
    return ConvSimilarityResult(
        convention="dft",
        measure=res.measure,
        score=res.score,
        mean_rho=res.mean_rho,
        mean_rho2=res.mean_rho2,
        correlations=res.correlations,
        n_samples=res.n_samples,
        rank_x=int(res.rank_a @ res.multiplicity),
        rank_y=int(res.rank_b @ res.multiplicity),
        dft=res,
        details=details,
        null_mean_rho=dft_null_mean_rho(res),
    )


def conv_similarity(
    A: Any,
    B: Any,
    *,
    convention: Convention,
    layout: Literal["NCHW", "NHWC"] = "NCHW",
    measure: Literal["cca", "svcca", "pwcca", "linear_cka"] = "cca",
    keep: Literal["singular_values", "variance"] = "singular_values",
    threshold: float = 0.99,
    tol: float = DEFAULT_TOL,
    svcca_scope: Literal["global", "frequency"] = "global",
    batch_size: int = 1024,
) -> ConvSimilarityResult:
    """Similarity of conv maps ``A`` and ``B`` of the same N images under an explicit ``convention``.

    ``A: (N, C_a, H_a, W_a)`` and ``B: (N, C_b, H_b, W_b)`` for ``layout='NCHW'`` (``(N, H, W, C)`` for
    ``'NHWC'``); numpy arrays, memory maps or torch tensors. Images are processed ``batch_size`` at a time,
    so memory-mapped inputs are never loaded whole. ``measure``: ``'cca'``, ``'svcca'`` (truncation rule
    ``keep``/``threshold`` as in :func:`ccalens.svcca`; ``svcca_scope`` for DFT, see :meth:`DFTStats.result`) or
    ``'pwcca'``; under ``convention='dft'`` also ``'linear_cka'``, summed over the frequency blocks (Parseval, see
    :func:`ccalens.conv.dft_linear_cka`; a ``(N, d)`` vector is then a ``1 x 1`` map).
    """
    layout = check_layout(layout)
    stats = conv_stats(convention, layout=layout)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if isinstance(stats, DFTStats) and measure in PARSEVAL_MEASURES:
        res = dft_linear_cka(A, B, layout=layout, batch_size=batch_size)
        return ConvSimilarityResult.of(res, "dft")
    check_measure(measure, threshold, keep)
    A = A if hasattr(A, "shape") else np.asarray(A)
    B = B if hasattr(B, "shape") else np.asarray(B)
    if len(A.shape) != 4 or len(B.shape) != 4 or A.shape[0] != B.shape[0] or A.shape[0] < 1:
        check_map_pair(A, B, layout)  # raises the precise error
    for start in range(0, A.shape[0], batch_size):
        stats.update(A[start : start + batch_size], B[start : start + batch_size])
    return _finish(stats, measure, keep, threshold, tol, svcca_scope)


def conv_similarity_from_batches(
    batches: Iterable[tuple[Any, Any]],
    *,
    convention: Convention,
    layout: Literal["NCHW", "NHWC"] = "NCHW",
    measure: Literal["cca", "svcca", "pwcca"] = "cca",
    keep: Literal["singular_values", "variance"] = "singular_values",
    threshold: float = 0.99,
    tol: float = DEFAULT_TOL,
    svcca_scope: Literal["global", "frequency"] = "global",
) -> ConvSimilarityResult:
    """:func:`conv_similarity` over an iterator of ``(A_batch, B_batch)`` pairs (e.g. a data loader)."""
    stats = conv_stats(convention, layout=layout)
    check_measure(measure, threshold, keep)
    seen = False
    for a, b in batches:
        stats.update(a, b)
        seen = True
    if not seen:
        raise ValueError("batches was empty: no images to compare")
    return _finish(stats, measure, keep, threshold, tol, svcca_scope)
