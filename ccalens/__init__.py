"""ccalens: canonical correlation analysis and its family for comparing neural-network features.

``import ccalens`` gives the measures (``cca``, ``svcca``, ``pwcca``, ``linear_cka``, ``debiased_linear_cka``,
``rbf_cka``, ``procrustes``), ``compare``, ``similarity_matrix``, the main types (``CCA``, ``SufficientStats``,
``SimilarityResult``, ``SimilarityMatrix``), uncertainty (``bootstrap``, ``bootstrap_difference``, ``bootstrap_matrix``,
``permutation_test``, ``cca_test``, ``null_mean_rho``, ``edge_corrected_correlations``) and minibatch CKA
(``MinibatchCKA``, ``minibatch_cka``); numpy and scipy only. The conv names (``conv_similarity``, ``DFTStats``,
...) and the extraction names (``extract``, ``ActivationStore``, ...) load on first use, so torch is never
imported by ``import ccalens``.
"""

from __future__ import annotations

import importlib
import importlib.metadata as _metadata
from typing import Any

from .core import (
    CCA,
    MEASURES,
    MinibatchCKA,
    SimilarityMatrix,
    SimilarityResult,
    SmallSampleWarning,
    SufficientStats,
    bootstrap,
    bootstrap_difference,
    bootstrap_matrix,
    cca,
    cca_test,
    compare,
    debiased_linear_cka,
    edge_corrected_correlations,
    linear_cka,
    minibatch_cka,
    null_mean_rho,
    permutation_test,
    procrustes,
    pwcca,
    rbf_cka,
    similarity_matrix,
    svcca,
)

try:  # one source of truth: the version in pyproject.toml, as installed
    __version__: str = _metadata.version("ccalens")
except _metadata.PackageNotFoundError:  # pragma: no cover - a source tree on sys.path without installing
    __version__ = "0+unknown"

_CONV = (
    "CONVENTIONS",
    "ConvSimilarityResult",
    "DFTResult",
    "DFTStats",
    "SpatialStats",
    "conv_similarity",
    "conv_similarity_from_batches",
    "conv_stats",
)
_EXTRACT = (
    "ActivationStore",
    "CrossSimilarity",
    "LayerCapture",
    "aligned_batches",
    "compare_models",
    "describe_layers",
    "extract",
    "list_layers",
    "stats_from_store",
)
_SUBPACKAGES = ("conv", "core", "data", "experiments", "extract", "models", "report")

__all__ = [
    "CCA",
    "MEASURES",
    "MinibatchCKA",
    "SimilarityMatrix",
    "SimilarityResult",
    "SmallSampleWarning",
    "SufficientStats",
    "__version__",
    "bootstrap",
    "bootstrap_difference",
    "bootstrap_matrix",
    "cca",
    "cca_test",
    "compare",
    "debiased_linear_cka",
    "linear_cka",
    "minibatch_cka",
    "edge_corrected_correlations",
    "null_mean_rho",
    "permutation_test",
    "procrustes",
    "pwcca",
    "rbf_cka",
    "similarity_matrix",
    "svcca",
    *_CONV,
    *_EXTRACT,
]


def __getattr__(name: str) -> Any:
    if name in _CONV:
        return getattr(importlib.import_module(".conv", __name__), name)
    if name in _EXTRACT:
        return getattr(importlib.import_module(".extract", __name__), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'ccalens' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
