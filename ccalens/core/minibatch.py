"""Minibatch CKA (Nguyen, Raghu and Kornblith 2021): linear CKA when neither n x n nor d x d fits.

For minibatches b = 1..B of a fixed size m, with ``K_b = X_b X_b'`` and ``L_b = Y_b Y_b'`` (m x m Grams),

    CKA_mb = mean_b HSIC_1(K_b, L_b) / sqrt(mean_b HSIC_1(K_b, K_b) * mean_b HSIC_1(L_b, L_b)),

where HSIC_1 is the unbiased estimator of Song et al. (2012): with the diagonals of K and L set to 0,
``HSIC_1 = [tr(KL) + 1'K1 1'L1 / ((m-1)(m-2)) - 2/(m-2) 1'KL1] / (m (m-3))``. Each average is an unbiased
estimate of the population HSIC, so CKA_mb is a consistent estimator of the population linear CKA. It is an
*estimator*, not the exact CKA of the data: only pairs of samples within a minibatch are compared, so it is
noisier than the full-data debiased CKA (:func:`ccalens.core.measures.debiased_linear_cka`), to which it
converges as n grows (in the tests: within 0.03 at n = 2,000 with minibatches of 250). With a single minibatch
holding all the samples it *is* the debiased CKA. Memory: one m x m Gram per representation
(``L * m^2 * 8`` bytes), never d x d, so arbitrarily wide layers work; time O(n m sum(d) + n m L^2).

Streaming, torchmetrics style: :meth:`MinibatchCKA.update` takes one batch of every representation (any
number of rows; they are re-chunked into minibatches of exactly ``batch_size`` rows in arrival order, so
how the stream is cut does not change the result), :meth:`~MinibatchCKA.compute` reads the estimate,
:meth:`~MinibatchCKA.merge` combines streams (other processes, shards), :meth:`~MinibatchCKA.reset` clears.

The remainder (fewer than ``batch_size`` rows left at :meth:`~MinibatchCKA.compute`) is handled with the
``seed``: it is completed to a full minibatch by ``batch_size - r`` rows drawn without replacement
(``numpy.random.default_rng(seed)``) from the last complete minibatch, so every sample counts and every
minibatch has the same size. When the whole stream is shorter than one minibatch (at least 4 rows), it is
used as one minibatch (the debiased CKA). Two runs over the same samples give identical numbers.

Each minibatch must be a fair sample of the data: the within-minibatch pairs then represent all pairs. A
stream sorted by class (or by time, subject, sensor...) estimates something else (the average *within-group*
HSIC); shuffle the samples first, as a data loader with ``shuffle=True`` does. :func:`minibatch_cka`, for
arrays in memory, shuffles the rows with the seed before chunking (``shuffle=False`` keeps their order).

``kernel="rbf"`` replaces the linear Grams by Gaussian kernels ``exp(-|x_i - x_j|^2 / (2 sigma^2))`` with one
bandwidth per representation for the whole stream: given (``sigmas``), or ``sigma_factor`` times the root
median squared distance (``median="distinct"`` or ``"all"``, see :mod:`ccalens.core.kernel`) within the
first complete minibatch. Streams merge only with equal bandwidths (give ``sigmas`` to streams that will be
merged). It estimates the population RBF CKA; :func:`ccalens.core.kernel.rbf_cka` uses it for
``method="minibatch"``.

Per-batch centring (HSIC_1 does not change) and a per-representation power-of-two scale fixed by the first
batch keep the sums accurate for offsets and any float64 magnitude.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from .bandwidth import check_median_rule, median_squared, squared_distances
from .minibatch_hsic import MIN_BATCH, linear_gram, power_of_two_scale, rbf_gram, unbiased_hsic_matrix
from .result import SimilarityMatrix, SimilarityResult
from .validation import check_paired

__all__ = ["MinibatchCKA", "minibatch_cka"]


class MinibatchCKA:
    """Streaming minibatch CKA (linear or RBF) of L representations of the same samples (see the module docstring).

    Args:
        representations: how many representations (names then ``R0, R1, ...``) or their names.
        batch_size: rows per minibatch (at least 4); memory ``L * batch_size^2 * 8`` bytes per minibatch.
        seed: seeds the completion of the last, partial minibatch.
        kernel: ``"linear"`` (Nguyen et al.) or ``"rbf"`` (Gaussian kernels).
        sigmas: RBF bandwidths, one per representation, in the input's units (default: estimated on the
            first complete minibatch as ``sigma_factor * sqrt(median squared distance)`` by ``median``).

    Example::

        metric = MinibatchCKA(["conv3", "fc1"], batch_size=256)
        for xb, yb in batches:
            metric.update(xb, yb)      # (n_b, d_conv3), (n_b, d_fc1): the same samples
        metric.compute().score         # two representations: a SimilarityResult; more: a SimilarityMatrix
    """

    def __init__(
        self,
        representations: int | Sequence[str],
        *,
        batch_size: int = 256,
        seed: int = 0,
        kernel: Literal["linear", "rbf"] = "linear",
        sigmas: Sequence[float] | None = None,
        sigma_factor: float = 1.0,
        median: Literal["distinct", "all"] = "all",
    ) -> None:
        if isinstance(representations, (int, np.integer)) and not isinstance(representations, bool):
            if representations < 1:
                raise ValueError(f"representations must be at least 1, got {representations}")
            names = tuple(f"R{i}" for i in range(int(representations)))
        elif isinstance(representations, Sequence) and not isinstance(representations, str):
            names = tuple(str(nm) for nm in representations)
            if not names or len(set(names)) != len(names):
                raise ValueError(f"representations must be distinct names, got {list(representations)}")
        else:
            raise TypeError(f"representations must be a count or a sequence of names, got {representations!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < MIN_BATCH:
            raise ValueError(f"batch_size must be an integer of at least {MIN_BATCH}, got {batch_size!r}")
        if kernel not in ("linear", "rbf"):
            raise ValueError(f"kernel must be 'linear' or 'rbf', got {kernel!r}")
        check_median_rule(median)
        if not (np.isfinite(sigma_factor) and sigma_factor > 0):
            raise ValueError(f"sigma_factor must be positive and finite, got {sigma_factor}")
        given = None
        if sigmas is not None:
            if kernel != "rbf":
                raise ValueError("sigmas applies to kernel='rbf' only")
            given = np.asarray(sigmas, dtype=np.float64).reshape(-1)
            if given.shape != (len(names),) or not np.all(np.isfinite(given) & (given > 0)):
                raise ValueError(f"sigmas must hold {len(names)} positive bandwidths, one per representation, "
                                 f"got {list(np.atleast_1d(sigmas))}")
        self.names: tuple[str, ...] = names
        self.batch_size = int(batch_size)
        self.seed = seed
        self.kernel = kernel
        self.sigma_factor = float(sigma_factor)
        self.median = median
        self._given_sigmas = given
        self.reset()

    # ---------------------------------------------------------------- state
    def reset(self) -> MinibatchCKA:
        """Forget every sample seen. Returns self."""
        L = len(self.names)
        self._hsic_sum = np.zeros((L, L))
        self._n_minibatches = 0
        self._n_samples = 0
        self._widths: tuple[int, ...] | None = None
        self._scales: np.ndarray | None = None  # per representation, a power of two fixed by the first batch
        self._pending: list[np.ndarray] | None = None  # scaled rows not yet in a minibatch (< batch_size)
        self._last_full: list[np.ndarray] | None = None  # scaled rows of the last complete minibatch
        # RBF bandwidths in the input's units: given, or estimated on the first complete minibatch
        self._sigmas: np.ndarray | None = None if self._given_sigmas is None else self._given_sigmas.copy()
        return self

    @property
    def sigmas(self) -> np.ndarray | None:
        """RBF bandwidths in the input's units (None for the linear kernel, or before the first minibatch)."""
        return None if self._sigmas is None else self._sigmas.copy()

    def _estimated_sigmas(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """``sigma_factor * sqrt(median squared distance)`` of each representation in ``batch``, input units."""
        assert self._scales is not None
        out = np.empty(len(self.names))
        for i, (block, scale) in enumerate(zip(batch, self._scales, strict=True)):
            med = median_squared(squared_distances(block - block.mean(axis=0)), self.median)
            if not med > 0.0:
                raise ValueError(
                    f"{self.names[i]}: the median squared distance between the samples of the first minibatch "
                    f"(median={self.median!r}) is 0, so the RBF bandwidth is 0; pass sigmas= explicitly"
                )
            out[i] = self.sigma_factor * float(np.sqrt(med)) * scale
        return out

    def _batch_hsic(self, batch: Sequence[np.ndarray], sigmas: np.ndarray | None) -> np.ndarray:
        """``(L, L)`` HSIC_1 of one minibatch of scaled rows."""
        m = batch[0].shape[0]
        grams = np.empty((len(batch), m, m))
        for i, block in enumerate(batch):
            if self.kernel == "linear":
                linear_gram(block, grams[i])
            else:
                assert sigmas is not None and self._scales is not None
                rbf_gram(block, float(sigmas[i] / self._scales[i]), grams[i])
        return unbiased_hsic_matrix(grams)

    @property
    def n_samples(self) -> int:
        """Samples received so far."""
        return self._n_samples

    @property
    def n_minibatches(self) -> int:
        """Complete minibatches so far (compute() adds one for a remainder)."""
        return self._n_minibatches

    # ---------------------------------------------------------------- accumulation
    def update(self, *blocks: Any) -> MinibatchCKA:
        """Add one batch: ``blocks[l]: (n_b, d_l)`` (the same samples in every block), or one mapping name -> block.

        Any number of rows per call; rows are buffered and processed in minibatches of ``batch_size``.
        Returns self.
        """
        if len(blocks) == 1 and isinstance(blocks[0], Mapping):
            given = blocks[0]
            missing = [nm for nm in self.names if nm not in given]
            extra = [nm for nm in given if nm not in self.names]
            if missing or extra:
                raise ValueError(f"update expects the representations {list(self.names)}; missing {missing}, "
                                 f"unexpected {extra}")
            blocks = tuple(given[nm] for nm in self.names)
        if len(blocks) != len(self.names):
            raise ValueError(f"update expects {len(self.names)} arrays ({', '.join(self.names)}), got {len(blocks)}")
        checked = check_paired(*blocks, names=self.names, min_samples=1)
        widths = tuple(int(b.shape[1]) for b in checked)
        if self._widths is None:
            self._widths = widths
        elif widths != self._widths:
            raise ValueError(f"batch feature counts {widths} differ from the earlier batches' {self._widths}")
        if self._scales is None:
            self._scales = np.array([power_of_two_scale(np.asarray(b, dtype=np.float64)) for b in checked])
        scaled = [np.asarray(b, dtype=np.float64) / s for b, s in zip(checked, self._scales, strict=True)]
        self._n_samples += scaled[0].shape[0]
        self._append(scaled)
        return self

    def _append(self, scaled: list[np.ndarray]) -> None:
        """Buffer scaled rows and process every complete minibatch, in arrival order."""
        if self._pending is not None:
            scaled = [np.concatenate([p, s]) for p, s in zip(self._pending, scaled, strict=True)]
        m = self.batch_size
        full = scaled[0].shape[0] // m
        for b in range(full):
            batch = [s[b * m : (b + 1) * m] for s in scaled]
            if self.kernel == "rbf" and self._sigmas is None:
                self._sigmas = self._estimated_sigmas(batch)
            self._hsic_sum += self._batch_hsic(batch, self._sigmas)
            self._n_minibatches += 1
            if b == full - 1:
                self._last_full = [blk.copy() for blk in batch]
        rest = [s[full * m :] for s in scaled]
        self._pending = [r.copy() for r in rest] if rest[0].shape[0] else None

    def merge(self, other: MinibatchCKA) -> MinibatchCKA:
        """The estimate over both streams (a new object; neither input changes).

        Complete minibatches of both are kept; the two remainders are joined (``self``'s rows first) and
        re-chunked. The result equals one stream that saw self's complete minibatches, then other's, then
        self's remainder and other's remainder: the single stream over self's samples then other's
        whenever self's sample count is a multiple of ``batch_size``.
        """
        if not isinstance(other, MinibatchCKA):
            raise TypeError(f"other must be MinibatchCKA, got {type(other).__name__}")
        if other.names != self.names or other.batch_size != self.batch_size:
            raise ValueError(
                f"cannot merge MinibatchCKA of representations {list(other.names)} with batch_size "
                f"{other.batch_size} into one of {list(self.names)} with batch_size {self.batch_size}"
            )
        if (other.kernel, other.median, other.sigma_factor) != (self.kernel, self.median, self.sigma_factor):
            raise ValueError(
                f"cannot merge kernel={other.kernel!r} (median={other.median!r}, sigma_factor={other.sigma_factor}) "
                f"into kernel={self.kernel!r} (median={self.median!r}, sigma_factor={self.sigma_factor})"
            )
        if self._sigmas is not None and other._sigmas is not None and not np.array_equal(self._sigmas, other._sigmas):
            raise ValueError(
                f"cannot merge RBF streams with different bandwidths {list(other._sigmas)} and {list(self._sigmas)} "
                "(each estimated them on its first minibatch): give both the same sigmas="
            )
        if self._widths is not None and other._widths is not None and self._widths != other._widths:
            raise ValueError(f"cannot merge feature counts {other._widths} into {self._widths}")
        merged = MinibatchCKA(
            self.names, batch_size=self.batch_size, seed=self.seed, kernel=self.kernel,
            sigmas=None if self._given_sigmas is None else list(self._given_sigmas),
            sigma_factor=self.sigma_factor, median=self.median,
        )
        merged._sigmas = self._sigmas if self._sigmas is not None else other._sigmas
        merged._widths = self._widths or other._widths
        merged._scales = self._scales if self._scales is not None else other._scales
        merged._hsic_sum = self._hsic_sum.copy()
        merged._n_minibatches = self._n_minibatches + other._n_minibatches
        merged._n_samples = self._n_samples + other._n_samples
        merged._pending = None if self._pending is None else [p.copy() for p in self._pending]
        merged._last_full = None if self._last_full is None else [p.copy() for p in self._last_full]
        if other._scales is not None:
            assert merged._scales is not None
            factor = other._scales / merged._scales  # powers of two: the rescaling is exact
            if self.kernel == "linear":  # linear HSIC scales with the data; Gaussian kernels do not
                merged._hsic_sum += other._hsic_sum * np.outer(factor**2, factor**2)
            else:
                merged._hsic_sum += other._hsic_sum
            if other._last_full is not None:
                merged._last_full = [blk * f for blk, f in zip(other._last_full, factor, strict=True)]
            if other._pending is not None:
                merged._append([blk * f for blk, f in zip(other._pending, factor, strict=True)])
        return merged

    def __add__(self, other: MinibatchCKA) -> MinibatchCKA:
        return self.merge(other)

    # ---------------------------------------------------------------- reading
    def _mean_hsic(self) -> tuple[np.ndarray, int, int]:
        """Mean HSIC_1 over the minibatches, the remainder included; minibatch count; rows drawn to fill."""
        if self._n_samples == 0:
            raise ValueError("MinibatchCKA has no samples: call update() first")
        total, count, filled = self._hsic_sum.copy(), self._n_minibatches, 0
        if self._pending is not None:
            r = self._pending[0].shape[0]
            if self._last_full is not None:
                filled = self.batch_size - r
                rng = np.random.default_rng(self.seed)
                idx = np.sort(rng.choice(self.batch_size, filled, replace=False))
                batch = [np.concatenate([p, f[idx]]) for p, f in zip(self._pending, self._last_full, strict=True)]
            elif r >= MIN_BATCH:
                batch = self._pending  # the whole stream is one (smaller) minibatch
            else:
                raise ValueError(f"minibatch CKA needs at least {MIN_BATCH} samples, got {r}")
            sigmas = self._sigmas
            if self.kernel == "rbf" and sigmas is None:
                sigmas = self._estimated_sigmas(batch)
            total += self._batch_hsic(batch, sigmas)
            count += 1
        return total / count, count, filled

    def _scores(self) -> tuple[np.ndarray, int, int]:
        hsic, count, filled = self._mean_hsic()
        self_hsic = np.diag(hsic).copy()
        bad = [nm for nm, h in zip(self.names, self_hsic, strict=True) if not h > 0.0]
        if bad:
            raise ValueError(
                f"minibatch CKA is undefined for {', '.join(bad)}: the mean unbiased self-HSIC is not positive "
                "(a constant representation, or too few samples per minibatch)"
            )
        scores = hsic / np.sqrt(np.outer(self_hsic, self_hsic))
        np.fill_diagonal(scores, 1.0)
        return scores, count, filled

    def compute_matrix(self) -> SimilarityMatrix:
        """``scores: (L, L)`` minibatch CKA of every pair (diagonal 1). Does not change the state."""
        scores, _, _ = self._scores()
        return SimilarityMatrix(measure="minibatch_cka", scores=scores, names=self.names)

    def compute(self) -> SimilarityResult | SimilarityMatrix:
        """Two representations: a :class:`SimilarityResult`; otherwise the :class:`SimilarityMatrix`.

        ``details`` of the result: ``batch_size``, ``n_minibatches`` (the completed remainder included),
        ``n_filled`` (rows drawn to complete it) and ``seed``. Does not change the state.
        """
        scores, count, filled = self._scores()
        if len(self.names) != 2:
            return SimilarityMatrix(measure="minibatch_cka", scores=scores, names=self.names)
        details: dict[str, Any] = {
            "batch_size": self.batch_size, "n_minibatches": count, "n_filled": filled, "seed": self.seed,
            "kernel": self.kernel,
        }
        if self.kernel == "rbf":
            sigmas = self._sigmas
            if sigmas is None:  # only a remainder so far: estimated on it, as compute() did
                assert self._pending is not None
                sigmas = self._estimated_sigmas(self._pending)
            details.update(median=self.median, sigma_x=float(sigmas[0]), sigma_y=float(sigmas[1]))
        return SimilarityResult("minibatch_cka", float(scores[0, 1]), n_samples=self._n_samples, details=details)


def minibatch_cka(
    *representations: Any,
    batch_size: int = 256,
    seed: int = 0,
    shuffle: bool = True,
    names: Sequence[str] | None = None,
    **kernel_options: Any,
) -> SimilarityResult | SimilarityMatrix:
    """Minibatch CKA of arrays in memory: ``representations[l]: (n, d_l)``, the same samples in each.

    The rows are put in a random order drawn from ``seed`` (unless ``shuffle=False``), cut into minibatches of
    ``batch_size`` and streamed through :class:`MinibatchCKA`. Two representations give a
    :class:`SimilarityResult`, more a :class:`SimilarityMatrix`. Identical calls give identical numbers.
    ``kernel_options`` (``kernel``, ``sigmas``, ``sigma_factor``, ``median``) go to :class:`MinibatchCKA`.
    """
    if not representations:
        raise ValueError("minibatch_cka needs at least one representation")
    if names is not None and len(names) != len(representations):
        raise ValueError(f"names has {len(names)} entries for {len(representations)} representations")
    metric = MinibatchCKA(
        len(representations) if names is None else names, batch_size=batch_size, seed=seed, **kernel_options
    )
    checked = check_paired(*representations, names=metric.names, min_samples=MIN_BATCH)
    n = checked[0].shape[0]
    order = np.random.default_rng(seed).permutation(n) if shuffle else None
    step = metric.batch_size * max(1, 4096 // metric.batch_size)  # a few minibatches per update: bounded copies
    for start in range(0, n, step):
        rows = slice(start, start + step) if order is None else order[start : start + step]
        metric.update(*(block[rows] for block in checked))
    return metric.compute()
