"""Input validation at the edge of the engine: shapes, finiteness, dtypes, sample alignment."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "NotFittedError",
    "RankCutWarning",
    "UnderdeterminedWarning",
    "check_features",
    "check_paired",
    "not_fitted_error",
    "warn_if_underdetermined",
]


class UnderdeterminedWarning(UserWarning):
    """Raised (as a warning) when there are too few samples for CCA to mean anything.

    With n samples, centred data live in an (n - 1)-dimensional space. If the ranks of the two
    representations add up to more than n - 1, their spans must intersect and at least
    ``rank_x + rank_y - (n - 1)`` canonical correlations equal 1 whatever the data: the score then
    measures the sample size, not the similarity.
    """


class RankCutWarning(UserWarning):
    """Raised (as a warning) when a whitening's relative cut-off drops directions that carry real variance.

    Eigenvalues at the float noise floor (about ``d * eps * largest``) are rounding of exact dependencies
    (duplicated or constant neurons) and are dropped silently; a direction above that floor but below
    ``tol * largest`` is a genuine, if small, part of the representation, and dropping it changes the answer.
    """


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before fitting (like scikit-learn's, whose bases it shares)."""


def not_fitted_error(message: str) -> Exception:
    """The error to raise for an unfitted estimator: scikit-learn's ``NotFittedError`` if scikit-learn is loaded
    (anyone catching it has imported it), else :class:`NotFittedError`. Never imports scikit-learn."""
    sklearn_exceptions = sys.modules.get("sklearn.exceptions")
    cls = getattr(sklearn_exceptions, "NotFittedError", NotFittedError)
    return cls(message)


_FLOAT_KINDS = "fiub"


def check_features(
    X: Any, name: str = "X", *, min_samples: int = 2, copy: bool = False, check_finite: bool = True
) -> np.ndarray:
    """Validate one feature matrix ``X: (n_samples, n_features)``.

    Accepts any array-like (numpy, lists, torch tensors without importing torch). Integer, boolean, float16
    and float32 input is accepted as is (bfloat16 tensors are widened to float32); the engine accumulates in
    float64. ``check_finite=False`` leaves the
    NaN/Inf scan to the caller (the statistics engine checks its column sums instead). Raises ``ValueError``
    naming ``name`` for wrong dimensionality, too few samples, no features, or NaN/Inf values, and
    ``TypeError`` for non-numeric input.
    """
    if hasattr(X, "detach") and hasattr(X, "cpu"):  # a torch tensor, without importing torch
        X = _tensor_to_numpy(X)
    arr = np.array(X, copy=copy) if copy else np.asarray(X)
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real-valued, got dtype {arr.dtype} (complex)")
    if arr.dtype.kind not in _FLOAT_KINDS:
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    check_shape(arr.shape, name, min_samples)
    if check_finite and arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            bad = np.argwhere(~finite)
            i, j = bad[0]
            raise ValueError(
                f"{name} contains {len(bad)} NaN/Inf value(s); first at sample {i}, feature {j} "
                f"(value {arr[i, j]}). Remove or impute them before measuring similarity."
            )
    return arr


def _tensor_to_numpy(tensor: Any) -> np.ndarray:
    """A torch tensor as a NumPy array (duck-typed: torch is never imported here).

    NumPy has no bfloat16: such tensors (and any other dtype NumPy lacks) are widened to float32 first.
    """
    tensor = tensor.detach().cpu()
    if str(getattr(tensor, "dtype", "")) == "torch.bfloat16":
        tensor = tensor.float()
    return tensor.numpy()


def check_paired(
    *arrays: Any, names: tuple[str, ...] | None = None, min_samples: int = 2, check_finite: bool = True
) -> list[np.ndarray]:
    """Validate several feature matrices of the SAME samples: each 2-D and finite, equal sample counts."""
    if names is None:
        names = default_names(len(arrays))
    checked = [
        check_features(a, nm, min_samples=min_samples, check_finite=check_finite)
        for a, nm in zip(arrays, names, strict=True)
    ]
    counts = {nm: a.shape[0] for a, nm in zip(checked, names, strict=True)}
    check_sample_counts(counts)
    return checked


def check_shape(shape: tuple[int, ...], name: str, min_samples: int) -> None:
    """``shape`` is that of a feature matrix ``(n_samples, n_features)`` with a feature and ``min_samples`` rows
    (an array's or a tensor's); else ``ValueError`` naming ``name``."""
    shape = tuple(int(v) for v in shape)
    if len(shape) != 2:
        hint = " (use ccalens.conv for conv maps, or reshape to (n_samples, n_features))" if len(shape) > 2 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {shape}{hint}")
    n, d = shape
    if d == 0:
        raise ValueError(f"{name} has no features (shape {shape})")
    if n < min_samples:
        raise ValueError(f"{name} needs at least {min_samples} samples, got {n}")


def check_sample_counts(counts: dict[str, int]) -> None:
    """The representations named in ``counts`` (name -> samples) hold the same number of samples."""
    if len(set(counts.values())) > 1:
        desc = ", ".join(f"{nm} has {c}" for nm, c in counts.items())
        raise ValueError(
            f"all representations must hold the same samples in the same order, but the sample counts "
            f"differ: {desc}"
        )


def default_names(count: int) -> tuple[str, ...]:
    """Argument names used in error messages: X, Y for a pair, representations[i] otherwise."""
    return ("X", "Y") if count == 2 else tuple(f"representations[{i}]" for i in range(count))


def warn_if_underdetermined(n_samples: int, rank_x: int, rank_y: int, *, stacklevel: int = 3) -> None:
    """Warn when ``rank_x + rank_y > n_samples - 1`` (see :class:`UnderdeterminedWarning`)."""
    excess = rank_x + rank_y - (n_samples - 1)
    if excess > 0:
        warnings.warn(
            f"only {n_samples} samples for representations of rank {rank_x} and {rank_y}: centred data span "
            f"at most {n_samples - 1} dimensions, so at least {excess} canonical correlation(s) are 1 "
            "whatever the data. Use more samples than rank_x + rank_y (ideally many times more), or reduce "
            "dimensionality first (SVCCA).",
            UnderdeterminedWarning,
            stacklevel=stacklevel,
        )


@dataclass(frozen=True)
class SvccaRule:
    """SVCCA's truncation rule, validated once: keep the fewest top principal directions whose ``keep`` weights
    (``"singular_values"``: the singular values of the centred data, the SVCCA appendix; ``"variance"``: their
    squares, Kornblith et al.'s reading) reach ``threshold`` of the total."""

    keep: str = "singular_values"
    threshold: float = 0.99

    def __post_init__(self) -> None:
        if self.keep not in SVCCA_KEEP_RULES:
            raise ValueError(f"keep must be 'singular_values' or 'variance', got {self.keep!r}")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) or not (
            0.0 < self.threshold <= 1.0
        ):
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold!r}")

    def weights(self, singular_values: np.ndarray) -> np.ndarray:
        """The weight of each direction under the rule: ``s`` or ``s^2``."""
        return singular_values if self.keep == "singular_values" else singular_values**2

    def count(self, kept: np.ndarray, total: float) -> int:
        """Directions kept: the smallest m with ``sum_{i<=m} kept_i >= threshold * total`` (``kept``: the weights of
        the available directions, descending; ``total``: of every direction), at most ``len(kept)``, extended over
        every direction tied with the m-th (weights within :data:`SVCCA_TIE` of the largest): a cut inside an
        eigenspace of equal singular values would keep an arbitrary part of it, so the kept span would depend on
        round-off and on the basis (e.g. a frequency and its mirror in flattened conv maps, whose SVCCA then
        equals DFT-SVCCA). A relative slack of 1e-12 keeps the threshold itself from depending on round-off."""
        kept = np.asarray(kept, dtype=np.float64)
        if kept.shape[0] == 0:
            return 0
        cumulative = np.cumsum(kept) / total
        m = min(int(np.searchsorted(cumulative, self.threshold - 1e-12)) + 1, int(kept.shape[0]))
        last = kept[m - 1]
        return m + int(np.count_nonzero(kept[m:] >= last - SVCCA_TIE * float(kept[0])))


#: Singular values (or variances) of SVCCA's rule closer than this fraction of the largest are one eigenspace: the
#: rule keeps all of it or none (round-off of an eigendecomposition is ~d * 2.2e-16 of the largest eigenvalue).
SVCCA_TIE = 1e-9

#: The rules SvccaRule accepts, and the default rule (the SVCCA appendix: 99% of the sum of singular values).
SVCCA_KEEP_RULES = ("singular_values", "variance")
DEFAULT_SVCCA_RULE = SvccaRule()
SVCCA_THRESHOLD = DEFAULT_SVCCA_RULE.threshold


