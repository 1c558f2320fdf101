"""The similarity engine: pure numpy/scipy, imports nothing else of ccalens and never torch.

The vocabulary: the measures (:func:`cca`, :func:`svcca`, :func:`pwcca`, :func:`linear_cka`,
:func:`debiased_linear_cka`, :func:`rbf_cka`, :func:`procrustes`), :func:`compare` and :func:`similarity_matrix`,
the types :class:`CCA`, :class:`SufficientStats`, :class:`SimilarityResult`, :class:`SimilarityMatrix`. The
low-level building blocks (whitenings, ``cca_from_*``, ``cca_qr``) live in :mod:`ccalens.core.linalg`.
"""

from __future__ import annotations

from . import linalg
from .cca import CCAResult
from .cca_estimator import CCA
from .measures import (
    MEASURES,
    STATS_MEASURES,
    cca,
    compare,
    debiased_linear_cka,
    linear_cka,
    procrustes,
    pwcca,
    rbf_cka,
    similarity_matrix,
    svcca,
)
from .minibatch import MinibatchCKA, minibatch_cka
from .noise_edge import edge_corrected_correlations
from .null import SmallSampleWarning, null_mean_rho
from .result import SimilarityMatrix, SimilarityResult
from .stats import SufficientStats
from .uncertainty import (
    BootstrapMatrixResult,
    BootstrapResult,
    CCATestResult,
    ConfidenceInterval,
    DifferenceResult,
    FewBlocksWarning,
    PermutationTestResult,
    bootstrap,
    bootstrap_difference,
    bootstrap_matrix,
    cca_test,
    permutation_test,
)
from .validation import UnderdeterminedWarning, check_features, check_paired
from .whitening import DEFAULT_TOL

__all__ = [
    "CCA",
    "DEFAULT_TOL",
    "MEASURES",
    "STATS_MEASURES",
    "BootstrapMatrixResult",
    "BootstrapResult",
    "CCAResult",
    "CCATestResult",
    "ConfidenceInterval",
    "DifferenceResult",
    "FewBlocksWarning",
    "MinibatchCKA",
    "PermutationTestResult",
    "SimilarityMatrix",
    "SimilarityResult",
    "SmallSampleWarning",
    "SufficientStats",
    "UnderdeterminedWarning",
    "bootstrap",
    "bootstrap_difference",
    "bootstrap_matrix",
    "cca",
    "cca_test",
    "check_features",
    "check_paired",
    "compare",
    "debiased_linear_cka",
    "edge_corrected_correlations",
    "linalg",
    "linear_cka",
    "minibatch_cka",
    "null_mean_rho",
    "permutation_test",
    "procrustes",
    "pwcca",
    "rbf_cka",
    "similarity_matrix",
    "svcca",
]
