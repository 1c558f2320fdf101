"""The bundled UCI "Multiple Features" data set: 2,000 handwritten digits seen through six feature sets.

Source: UCI Machine Learning Repository, "Multiple Features" (R. P. W. Duin), CC BY 4.0; see
``ccalens/data/bundled/uci_multiple_features/README.md``. The six views are different "sensors" of the same
digits, which makes the set a small, fast stand-in for the multi-sensor experiments of Moreau et al. (2021).

Split: fixed and stratified, no randomness. The digits are stored in class order, 200 per class; within each
class the samples at positions 3, 7, 11, ... (every fourth, ``position % 4 == 3``) form the validation set
(50 per class) and the other 150 the training set. Interleaving rather than a contiguous block keeps any drift
in the original ordering out of the train/validation difference.
"""

from __future__ import annotations

import functools
import gzip
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

__all__ = ["VIEW_DESCRIPTIONS", "VIEW_NAMES", "MultiViewDataset", "load_multiple_features"]

VIEW_NAMES: tuple[str, ...] = ("fou", "fac", "kar", "pix", "zer", "mor")

VIEW_DESCRIPTIONS: dict[str, str] = {
    "fou": "Fourier coefficients of the character shapes (76)",
    "fac": "profile correlations (216)",
    "kar": "Karhunen-Loeve coefficients (64)",
    "pix": "pixel averages in 2 x 3 windows, a 15 x 16 image with values 0-6 (240)",
    "zer": "Zernike moments (47)",
    "mor": "morphological features (6)",
}

_N_FEATURES = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
_N_SAMPLES = 2000
_N_CLASSES = 10
_VAL_EVERY = 4  # within each class, every fourth sample (position % 4 == 3) is validation
_PACKAGE = "ccalens.data"
_FOLDER = ("bundled", "uci_multiple_features")


@dataclass(frozen=True)
class MultiViewDataset:
    """Several views (feature sets) of the same samples, with labels and a fixed train/validation split.

    views: view name -> ``(n_samples, d_view)`` float32; labels: ``(n_samples,)`` int64 in ``0..n_classes-1``;
    train_idx, val_idx: disjoint int64 index arrays into the samples.
    """

    views: dict[str, np.ndarray]
    labels: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    n_classes: int
    view_names: tuple[str, ...]
    description: dict[str, str] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return int(self.labels.shape[0])

    def split(self, view: str, part: str) -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)`` of one view for ``part`` in {'train', 'val'}.

        X: ``(n_part, d_view)``, y: ``(n_part,)``.
        """
        if view not in self.views:
            raise KeyError(f"view must be one of {self.view_names}, got {view!r}")
        if part == "train":
            idx = self.train_idx
        elif part == "val":
            idx = self.val_idx
        else:
            raise ValueError(f"part must be 'train' or 'val', got {part!r}")
        return self.views[view][idx], self.labels[idx]


def _read_view_file(view: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse one bundled gzip'd CSV: header row, features, label in the last column."""
    ref = resources.files(_PACKAGE).joinpath(*_FOLDER, f"mfeat-{view}.csv.gz")
    with ref.open("rb") as raw, gzip.open(raw, "rt", encoding="ascii") as text:
        arr = np.loadtxt(io.StringIO(text.read()), delimiter=",", skiprows=1, dtype=np.float64)
    expected = (_N_SAMPLES, _N_FEATURES[view] + 1)
    if arr.shape != expected:
        raise RuntimeError(f"bundled file mfeat-{view}.csv.gz has shape {arr.shape}, expected {expected}")
    return arr[:, :-1].astype(np.float32), arr[:, -1].astype(np.int64)


@functools.cache
def _cached_view(view: str) -> tuple[np.ndarray, np.ndarray]:
    X, y = _read_view_file(view)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def stratified_interleaved_split(
    labels: np.ndarray, val_every: int = _VAL_EVERY
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: within each class (in order of appearance), every ``val_every``-th
    sample (positions ``val_every-1, 2*val_every-1, ...``) goes to validation.

    Returns ``(train_idx, val_idx)``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if val_every < 2:
        raise ValueError(f"val_every must be >= 2, got {val_every}")
    is_val = np.zeros(labels.shape[0], dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        is_val[members[val_every - 1 :: val_every]] = True
    return np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64)


def load_multiple_features(views: Sequence[str] | None = None) -> MultiViewDataset:
    """Load the bundled UCI multiple-features digits.

    views: subset of ``('fou', 'fac', 'kar', 'pix', 'zer', 'mor')`` (None = all six, kept in that order).
    Returns a :class:`MultiViewDataset` with 2,000 samples, 10 classes, 1,500 train / 500 validation.
    The arrays are fresh, writable copies.
    """
    if views is None:
        chosen = VIEW_NAMES
    else:
        if isinstance(views, str):
            raise TypeError(
                f"views must be a sequence of view names such as ['fou', 'pix'], got the string {views!r}"
            )
        unknown = [v for v in views if v not in VIEW_NAMES]
        if unknown:
            raise ValueError(f"views must be taken from {VIEW_NAMES}, got unknown {unknown}")
        if len(set(views)) != len(views):
            raise ValueError(f"views contains duplicates: {list(views)}")
        if len(views) == 0:
            raise ValueError("views must name at least one view")
        chosen = tuple(v for v in VIEW_NAMES if v in views)
    data: dict[str, np.ndarray] = {}
    labels: np.ndarray | None = None
    for v in chosen:
        X, y = _cached_view(v)
        if labels is None:
            labels = y
        elif not np.array_equal(labels, y):
            raise RuntimeError(f"bundled view {v!r} has labels that differ from view {chosen[0]!r}")
        data[v] = X.copy()
    assert labels is not None
    train_idx, val_idx = stratified_interleaved_split(labels)
    return MultiViewDataset(
        views=data,
        labels=labels.copy(),
        train_idx=train_idx,
        val_idx=val_idx,
        n_classes=_N_CLASSES,
        view_names=chosen,
        description={v: VIEW_DESCRIPTIONS[v] for v in chosen},
    )
