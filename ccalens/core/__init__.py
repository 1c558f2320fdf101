"""The similarity engine: pure numpy/scipy, imports nothing else of ccalens and never torch."""

from .cca import CCA, CCAResult, cca_from_covariances, cca_from_stats, cca_from_whitenings, cca_qr
from .stats import SufficientStats
from .validation import UnderdeterminedWarning, check_features, check_paired
from .whitening import DEFAULT_TOL, Whitening, whiten

__all__ = [
    "CCA",
    "DEFAULT_TOL",
    "CCAResult",
    "SufficientStats",
    "UnderdeterminedWarning",
    "Whitening",
    "cca_from_covariances",
    "cca_from_stats",
    "cca_from_whitenings",
    "cca_qr",
    "check_features",
    "check_paired",
    "whiten",
]
