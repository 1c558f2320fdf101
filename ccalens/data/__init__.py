"""Data sets: the bundled UCI multiple-features digits, SHL 2018 (loader + synthetic generator), CIFAR-10.

``ccalens.data.cifar`` needs torch and is imported on demand; the rest needs numpy and scipy only.
"""

from ccalens.data.multiview import VIEW_NAMES, MultiViewDataset, load_multiple_features

__all__ = ["VIEW_NAMES", "MultiViewDataset", "load_multiple_features"]
