"""Data sets: the bundled UCI multiple-features digits, SHL 2018 (loader + synthetic generator), CIFAR-10.

``ccalens.data.cifar`` needs torch and is imported on demand; the rest needs numpy and scipy only.
"""

from ccalens.data.multiview import VIEW_NAMES, MultiViewDataset, load_multiple_features
from ccalens.data.shl import SHL_CLASSES, SHLDataset, write_synthetic_shl
from ccalens.data.spectrogram import spectrogram

__all__ = [
    "SHL_CLASSES",
    "VIEW_NAMES",
    "MultiViewDataset",
    "SHLDataset",
    "load_multiple_features",
    "spectrogram",
    "write_synthetic_shl",
]
