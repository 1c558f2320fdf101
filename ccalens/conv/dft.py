"""DFT-CCA (Raghu et al. 2017, appendix C): CCA of conv maps frequency by frequency, streamed over images.

Each channel of each image is transformed by a 2-D DFT over ``H x W``. For a translation-invariant
distribution of images (the statistics of every cyclic shift are the same) the covariance of the
flattened DFT coefficients is block diagonal, one ``C x C`` block per frequency: coefficients of
different frequencies are uncorrelated. Because the DFT is an invertible linear map of each map, CCA
on the full flattened maps (``C*H*W`` features) then equals the union over frequencies of the complex
CCAs of the per-frequency blocks; a pair ``{f, -f}`` contributes its correlations twice. The cost is
``~ N*C*HW*log(HW)`` for the FFTs plus ``~ N*HW*C^2`` for the statistics and ``HW*C^3`` for the CCAs,
instead of ``(C*HW)^3``.

:class:`DFTStats` holds, per kept frequency (see :mod:`ccalens.conv.frequencies`), the number of images,
the complex means and the complex co-moment blocks ``S_aa: (C_a, C_a)``, ``S_bb``, ``S_ab: (C_a, C_b)``,
with the Chan et al. merge vectorised over frequencies. Statistics accumulate in complex128 whatever
the input dtype, so 50,000 images never need to be in memory together.

Conventions: rows are samples, so ``S_ab = Ac^H Bc`` with ``Ac: (n, C_a)`` the centred coefficients of
one frequency (``S_ab[i, j] = sum_n conj(a_ni) b_nj``), as in :mod:`ccalens.core`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.fft

from ccalens.core.linalg import DEFAULT_TOL, Whitening, principal_block_whitenings
from ccalens.core.measures import REGISTRY
from ccalens.core.stats import add_merge_correction
from ccalens.core.validation import SvccaRule, UnderdeterminedWarning

from ._blocks import BlockResult, block_measure, check_measure, pwcca_block_weights
from ._input import check_layout, check_map_pair, to_nchw
from .dft_result import DFTResult
from .frequencies import FrequencyPlan, frequency_plan

__all__ = ["DFTResult", "DFTStats"]

#: Images per internal chunk are chosen so that one chunk's complex working arrays take about this many bytes.
DEFAULT_CHUNK_BYTES = 256 << 20


def _coefficients(chunk: np.ndarray, index: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``(F, n, C)`` complex128 DFT coefficients of the kept frequencies of ``chunk: (n, C, H, W)``."""
    spectrum = scipy.fft.rfft2(chunk.astype(np.float64, copy=False), axes=(-2, -1))  # (n, C, H, W//2+1)
    picked = spectrum[:, :, index[0], index[1]]  # (n, C, F)
    return np.ascontiguousarray(picked.transpose(2, 0, 1))


@dataclass
class DFTStats:
    """Streaming per-frequency statistics of two conv maps of the same images.

    ``update(A_batch, B_batch)`` with ``A_batch: (n, C_a, H_a, W_a)`` (or ``(n, H_a, W_a, C_a)`` for
    ``layout='NHWC'``) and ``B_batch`` likewise; ``merge`` combines statistics from elsewhere;
    ``result(measure)`` gives the DFT-CCA. Spatial sizes may differ between A and B (common low
    frequencies are kept, see :mod:`ccalens.conv.frequencies`); channel counts may differ.

    Attributes (after the first update; ``F`` kept frequencies):
        n_samples: images seen.
        mean_a: ``(F, C_a)``, mean_b: ``(F, C_b)`` complex means of the coefficients.
        s_aa: ``(F, C_a, C_a)``, s_bb: ``(F, C_b, C_b)``, s_ab: ``(F, C_a, C_b)`` complex co-moments.
    """

    layout: str = "NCHW"
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    plan: FrequencyPlan | None = field(default=None, repr=False)
    channels: tuple[int, int] | None = None
    n_samples: int = 0
    mean_a: np.ndarray | None = field(default=None, repr=False)
    mean_b: np.ndarray | None = field(default=None, repr=False)
    s_aa: np.ndarray | None = field(default=None, repr=False)
    s_bb: np.ndarray | None = field(default=None, repr=False)
    s_ab: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_layout(self.layout)
        if self.chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be positive, got {self.chunk_bytes}")

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_arrays(cls, A: Any, B: Any, *, layout: str = "NCHW", chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> DFTStats:
        """Statistics of two in-memory (or memory-mapped) arrays of maps of the same images."""
        return cls(layout=layout, chunk_bytes=chunk_bytes).update(A, B)

    @classmethod
    def from_batches(
        cls, batches: Iterable[tuple[Any, Any]], *, layout: str = "NCHW", chunk_bytes: int = DEFAULT_CHUNK_BYTES
    ) -> DFTStats:
        """Statistics of an iterator of ``(A_batch, B_batch)`` pairs."""
        stats = cls(layout=layout, chunk_bytes=chunk_bytes)
        for a, b in batches:
            stats.update(a, b)
        if stats.n_samples == 0:
            raise ValueError("batches was empty: no images to compute statistics from")
        return stats

    # ---------------------------------------------------------------- accumulation
    def update(self, A: Any, B: Any) -> DFTStats:
        """Add a batch of maps of the same images (validated: 4-D, finite, same N). Returns self."""
        a, b = check_map_pair(A, B, self.layout)
        a, b = to_nchw(a, self.layout), to_nchw(b, self.layout)
        channels = (int(a.shape[1]), int(b.shape[1]))
        spatial = ((int(a.shape[2]), int(a.shape[3])), (int(b.shape[2]), int(b.shape[3])))
        if self.plan is None:
            self.plan = frequency_plan(*spatial)
            self.channels = channels
        elif channels != self.channels or spatial != (self.plan.shape_a, self.plan.shape_b):
            raise ValueError(
                f"batch maps have channels {channels} and spatial sizes {spatial}, the earlier batches had "
                f"{self.channels} and {(self.plan.shape_a, self.plan.shape_b)}"
            )
        plan = self.plan
        per_image = plan.n_frequencies * sum(channels) * 16 * 3  # coefficients, centred copy, conjugate copy
        rows = max(1, self.chunk_bytes // per_image)
        for start in range(0, a.shape[0], rows):
            stop = min(a.shape[0], start + rows)
            self._update_chunk(a[start:stop], b[start:stop], plan)
        return self

    def _update_chunk(self, a: np.ndarray, b: np.ndarray, plan: FrequencyPlan) -> None:
        n_b = a.shape[0]
        xa = _coefficients(a, plan.index_a)  # (F, n, C_a)
        xb = _coefficients(b, plan.index_b)
        mean_a = xa.mean(axis=1)
        mean_b = xb.mean(axis=1)
        xa -= mean_a[:, None, :]
        xb -= mean_b[:, None, :]
        ha = np.ascontiguousarray(xa.conj().transpose(0, 2, 1))  # (F, C_a, n): contiguous keeps matmul on BLAS
        s_aa = np.matmul(ha, xa)
        s_ab = np.matmul(ha, xb)
        del ha
        hb = np.ascontiguousarray(xb.conj().transpose(0, 2, 1))
        s_bb = np.matmul(hb, xb)
        self._merge_in(n_b, mean_a, mean_b, s_aa, s_bb, s_ab)

    def _merge_in(
        self, n_b: int, mean_a: np.ndarray, mean_b: np.ndarray, s_aa: np.ndarray, s_bb: np.ndarray, s_ab: np.ndarray
    ) -> None:
        """Chan, Golub and LeVeque's pairwise merge, for every frequency at once (in place): the engine's one
        correction term (:func:`ccalens.core.stats.add_merge_correction`), batched over frequencies."""
        if self.n_samples == 0:
            self.n_samples = n_b
            self.mean_a, self.mean_b = mean_a.copy(), mean_b.copy()
            self.s_aa, self.s_bb, self.s_ab = s_aa.copy(), s_bb.copy(), s_ab.copy()
            return
        assert self.mean_a is not None and self.mean_b is not None
        assert self.s_aa is not None and self.s_bb is not None and self.s_ab is not None
        n_a = self.n_samples
        n = n_a + n_b
        da = mean_a - self.mean_a
        db = mean_b - self.mean_b
        for target, block, left, right in ((self.s_aa, s_aa, da, None), (self.s_bb, s_bb, db, None),
                                           (self.s_ab, s_ab, da, db)):
            target += block
            add_merge_correction(target, n_a, n_b, left, right)
        self.mean_a += da * (n_b / n)
        self.mean_b += db * (n_b / n)
        self.n_samples = n

    def merge(self, other: DFTStats) -> DFTStats:
        """Statistics of the union of both image sets (a new object; neither input changes)."""
        if not isinstance(other, DFTStats):
            raise TypeError(f"other must be DFTStats, got {type(other).__name__}")
        if other.n_samples == 0:
            return self.copy()
        if self.n_samples == 0:
            return other.copy()
        assert self.plan is not None and other.plan is not None
        if self.channels != other.channels or (self.plan.shape_a, self.plan.shape_b) != (
            other.plan.shape_a,
            other.plan.shape_b,
        ):
            raise ValueError(
                f"cannot merge statistics of channels {self.channels} / spatial sizes "
                f"{(self.plan.shape_a, self.plan.shape_b)} with {other.channels} / "
                f"{(other.plan.shape_a, other.plan.shape_b)}"
            )
        merged = self.copy()
        assert other.mean_a is not None and other.mean_b is not None
        assert other.s_aa is not None and other.s_bb is not None and other.s_ab is not None
        merged._merge_in(other.n_samples, other.mean_a, other.mean_b, other.s_aa, other.s_bb, other.s_ab)
        return merged

    def __add__(self, other: DFTStats) -> DFTStats:
        return self.merge(other)

    def copy(self) -> DFTStats:
        def c(x: np.ndarray | None) -> np.ndarray | None:
            return None if x is None else x.copy()

        return DFTStats(
            layout=self.layout,
            chunk_bytes=self.chunk_bytes,
            plan=self.plan,
            channels=self.channels,
            n_samples=self.n_samples,
            mean_a=c(self.mean_a),
            mean_b=c(self.mean_b),
            s_aa=c(self.s_aa),
            s_bb=c(self.s_bb),
            s_ab=c(self.s_ab),
        )

    # ---------------------------------------------------------------- reading
    @property
    def frequencies(self) -> np.ndarray:
        """``(F, 2)`` signed frequencies of the statistics (see :class:`FrequencyPlan`)."""
        if self.plan is None:
            raise ValueError("no data: call update() first")
        return self.plan.frequencies

    def result(
        self,
        measure: Literal["cca", "svcca", "pwcca"] = "cca",
        *,
        keep: Literal["singular_values", "variance"] = "singular_values",
        threshold: float = 0.99,
        svcca_scope: Literal["global", "frequency"] = "global",
        tol: float = DEFAULT_TOL,
    ) -> DFTResult:
        """DFT-CCA from the accumulated statistics.

        Whitening: per-frequency eigendecompositions (batched), dropping eigenvalues below ``tol`` times the
        largest eigenvalue over ALL frequencies of that map (the relative cut-off of the flattened
        covariance, whose eigenvalues are the union of the blocks').

        ``measure``:
            ``'cca'``: every canonical correlation; score = their mean (mirrored frequencies counted twice).
            ``'svcca'``: first keep the fewest top principal directions reaching ``threshold`` of the sum of
            the singular values (``keep='singular_values'``, the SVCCA appendix's rule) or of the variance
            (``keep='variance'``), then CCA. ``svcca_scope='global'`` (default) ranks the eigenvalues of all
            frequencies together (mirrored frequencies twice), which for translation-invariant data is exactly
            SVCCA on the flattened maps (the DFT is unitary up to a scale, so the flattened maps' singular values
            are the union of the blocks'); ``'frequency'`` applies the rule to each frequency's own spectrum
            (``Whitening.top``).
            ``'pwcca'``: CCA with Morcos et al.'s weights, the "neurons" of A being its channels' Fourier
            coefficients at each frequency; weights are normalised over all frequencies (with
            multiplicity; the ``n_zeros`` padding zeros carry no weight). Tied correlations (within
            ``PWCCA_TIE``, in one frequency or across frequencies) share one weight, the expected Morcos weight
            over a random unit variate of their complex span, as on the dense path
            (:func:`~ccalens.conv._blocks.pwcca_block_weights`), so the score does not depend on round-off. PWCCA
            is not rotation invariant, so this differs from PWCCA on flattened pixels.
        """
        measure = check_measure(measure, threshold, keep)
        spec = REGISTRY[measure]
        weighted = "loadings" in spec.needs  # PWCCA: weights from A's neurons
        principal = spec.rule({"keep": keep, "threshold": threshold}) is not None  # SVCCA: top principal directions
        if svcca_scope not in ("global", "frequency"):
            raise ValueError(f"svcca_scope must be 'global' or 'frequency', got {svcca_scope!r}")
        if not 0.0 <= tol < 1.0:
            raise ValueError(f"tol must be in [0, 1), got {tol}")
        if self.n_samples < 2:
            raise ValueError(f"DFT-CCA needs at least 2 images, the statistics have {self.n_samples}")
        assert self.plan is not None and self.s_aa is not None and self.s_bb is not None and self.s_ab is not None
        n = self.n_samples
        mult = self.plan.multiplicity
        cov_aa = self.s_aa / (n - 1)
        cov_bb = self.s_bb / (n - 1)
        cov_ab = self.s_ab / (n - 1)
        whitenings = []
        for name, cov in (("A", cov_aa), ("B", cov_bb)):
            whitenings.append(self._whitenings(cov, name, (keep, threshold) if principal else None, svcca_scope, tol))
        wa_list, wb_list = whitenings

        rank_a = np.array([w.rank if w else 0 for w in wa_list], dtype=np.int64)
        rank_b = np.array([w.rank if w else 0 for w in wb_list], dtype=np.int64)
        excess = rank_a + rank_b > n - 1
        if excess.any():
            warnings.warn(
                f"only {n} images for the per-frequency blocks: at {int(excess.sum())} of {excess.size} frequencies "
                "the kept dimensions of A and B add up to more than n - 1, so some canonical correlations there are "
                "1 whatever the data. Use more images than C_a + C_b (ideally many times more), or SVCCA.",
                UnderdeterminedWarning,
                stacklevel=2,
            )

        blocks: list[BlockResult] = []
        for f, (wa, wb) in enumerate(zip(wa_list, wb_list, strict=True)):
            if wa is None or wb is None:
                blocks.append(BlockResult(np.zeros(0)))
                continue
            blocks.append(block_measure(wa, wb, cov_aa[f], cov_ab[f], n_samples=n, pwcca=weighted))

        per_frequency = [blk.correlations for blk in blocks]
        gathered = np.concatenate([np.repeat(c, m) for c, m in zip(per_frequency, mult, strict=True)])
        # CCA of the flattened maps has min(total rank_a, total rank_b) correlations; those beyond the
        # per-frequency ones pair directions of different frequencies, whose cross-covariance is 0.
        n_zeros = int(min(rank_a @ mult, rank_b @ mult)) - gathered.size
        gathered = np.sort(np.concatenate([gathered, np.zeros(n_zeros)]))[::-1]
        pw: list[np.ndarray] | None = None
        if weighted:
            pw = pwcca_block_weights(blocks, mult)
            score = float(sum(float(w @ c) * m for w, c, m in zip(pw, per_frequency, mult, strict=True)))
            per_score = np.array(
                [float(w @ c / w.sum()) if c.size else np.nan for w, c in zip(pw, per_frequency, strict=True)]
            )
        else:
            score = float(gathered.mean()) if gathered.size else float("nan")
            per_score = np.array([float(c.mean()) if c.size else np.nan for c in per_frequency])
        return DFTResult(
            measure=measure,
            score=score,
            correlations=np.ascontiguousarray(gathered),
            per_frequency=per_frequency,
            per_frequency_score=per_score,
            frequencies=self.plan.frequencies.copy(),
            multiplicity=mult.copy(),
            grid=self.plan.grid,
            n_zeros=n_zeros,
            n_samples=n,
            rank_a=rank_a,
            rank_b=rank_b,
            pwcca_weights=pw,
            keep=keep,
            threshold=threshold,
        )

    def _whitenings(
        self, cov: np.ndarray, name: str, rule: tuple[str, float] | None, scope: str, tol: float
    ) -> list[Whitening | None]:
        """One :class:`Whitening` per frequency (None where nothing is kept): the engine's block whitenings, whose
        cut-off is relative to the largest eigenvalue over all frequencies (the flattened covariance's); ``rule``:
        SVCCA's ``(keep, threshold)``, applied to all frequencies together (``scope="global"``) or to each, or None."""
        assert self.plan is not None
        mult = self.plan.multiplicity
        names = [f"{name} at frequency {tuple(int(v) for v in fr)}" for fr in self.plan.frequencies]
        out = principal_block_whitenings(
            list(cov), tol=tol, names=names,
            no_variance=f"{name} has no variance: every channel is constant over the images, so no correlation with "
                        "it is defined",
        )
        if rule is None:
            return out
        keep, threshold = rule
        if scope == "global":
            # the flattened covariance's spectrum: every block's kept values, mirrored frequencies twice, counted by
            # the one SVCCA rule; the cut keeps whole eigenspaces (a value and all its copies)
            parts = [np.zeros(0) if w is None else (w.eigenvalues if keep == "variance" else np.sqrt(w.eigenvalues))
                     for w in out]
            totals = [0.0 if w is None else (w.total_variance if keep == "variance" else float(w.total_deviation or 0))
                      for w in out]
            flat = np.sort(np.repeat(np.concatenate(parts), np.repeat(mult, [p.size for p in parts])))[::-1]
            count = SvccaRule(keep, threshold).count(flat, float(np.dot(totals, mult)))
            cut = flat[count - 1]
            out = [None if w is None or not parts[f][0] >= cut else _first(w, int(np.count_nonzero(parts[f] >= cut)))
                   for f, w in enumerate(out)]
        else:
            out = [None if w is None else w.top(threshold, keep) for w in out]  # type: ignore[arg-type]
        return out


def _first(w: Whitening, r: int) -> Whitening:
    """``w`` with its first ``r`` directions."""
    return Whitening(
        eigenvalues=np.ascontiguousarray(w.eigenvalues[:r]),
        eigenvectors=np.ascontiguousarray(w.eigenvectors[:, :r]),
        n_features=w.n_features,
        total_variance=w.total_variance,
        total_deviation=w.total_deviation,
    )
