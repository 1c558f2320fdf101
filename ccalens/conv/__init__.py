"""Similarity of conv layers: spatial positions as samples, pooled, or DFT-CCA (SVCCA paper, appendix C).

Pure numpy/scipy on top of :mod:`ccalens.core`. Entry points: :func:`conv_similarity` (arrays or memory
maps), :func:`conv_similarity_from_batches` (a stream of batches), :func:`dft_linear_cka` (linear CKA summed over
frequency blocks, by Parseval), and the streaming statistics :class:`DFTStats` / :class:`SpatialStats`
(``update``, ``merge``, ``result``).
"""

from ._blocks import BLOCK_MEASURES
from ._input import LAYOUTS
from .cka import PARSEVAL_MEASURES, dft_linear_cka
from .dft import DFTResult, DFTStats
from .frequencies import FrequencyPlan, frequency_plan
from .similarity import (
    CONVENTIONS,
    ConvSimilarityResult,
    SpatialStats,
    conv_similarity,
    conv_similarity_from_batches,
    conv_stats,
    dft_null_mean_rho,
)

__all__ = [
    "BLOCK_MEASURES",
    "CONVENTIONS",
    "LAYOUTS",
    "PARSEVAL_MEASURES",
    "ConvSimilarityResult",
    "DFTResult",
    "DFTStats",
    "FrequencyPlan",
    "SpatialStats",
    "conv_similarity",
    "conv_similarity_from_batches",
    "conv_stats",
    "dft_linear_cka",
    "dft_null_mean_rho",
    "frequency_plan",
]
