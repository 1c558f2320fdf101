"""Inference for similarity scores: bootstrap intervals for the population value, paired differences,
permutation tests and the classical CCA tests.

One job per module: :mod:`.results` (result types), :mod:`.blocks` (block statistics), :mod:`.replicates`
(running replicates, one warning per call), :mod:`.intervals` (basic, percentile, BCa), :mod:`.bootstrap`,
:mod:`.paired` (:func:`bootstrap_difference`), :mod:`.permutation`, :mod:`.classical` (:func:`cca_test`).
The package imports the measures; the measures never import it.
"""

from __future__ import annotations

from .bootstrap import bootstrap, bootstrap_matrix
from .classical import CCATestResult, cca_test
from .intervals import DEFAULT_METHOD, FEW_BLOCKS, METHODS, FewBlocksWarning
from .paired import bootstrap_difference
from .permutation import permutation_test
from .results import (
    BootstrapMatrixResult,
    BootstrapResult,
    ConfidenceInterval,
    DifferenceResult,
    PermutationTestResult,
)

__all__ = [
    "DEFAULT_METHOD",
    "FEW_BLOCKS",
    "METHODS",
    "BootstrapMatrixResult",
    "BootstrapResult",
    "CCATestResult",
    "ConfidenceInterval",
    "DifferenceResult",
    "FewBlocksWarning",
    "PermutationTestResult",
    "bootstrap",
    "bootstrap_difference",
    "bootstrap_matrix",
    "cca_test",
    "permutation_test",
]
