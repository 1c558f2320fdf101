"""Similarity measures, all computed from one :class:`~ccalens.core.stats.SufficientStats` where they can be.

Every measure has one signature, ``measure(X=None, Y=None, *, stats=None, i=None, j=None, **options)``:
``X: (n, p)`` and ``Y: (n, q)`` (rows = the same samples), or precomputed ``stats`` with ``i, j`` the two
representations to compare (required when ``stats`` holds more than two). It returns a
:class:`SimilarityResult`. Definitions (C = covariances, W = whiteners):

* ``cca``: canonical correlations rho_i = singular values of ``Wx' Cxy Wy``; score = mean rho.
* ``svcca``: the same after keeping on each side the top principal directions (Raghu et al. 2017). The rule is
  ``keep``: ``"singular_values"`` (default, the SVCCA appendix: the fewest m with
  ``sum_{i<=m} s_i >= threshold * sum_i s_i``, s = singular values of the centred data) or ``"variance"``
  (Kornblith et al.'s reading: the same with ``s_i^2``); ``threshold`` defaults to 0.99. score = mean rho.
* ``pwcca``: rho weighted by alpha_i ~ sum_j |<h_i, x_j>| (h_i: unit-variance canonical variates of one side,
  x_j: its centred neurons; Morcos et al. 2018). ``weights_from="x" | "y" | "smaller"`` (the side with fewer kept
  dimensions, as google's reference code does). Tied correlations (a group g of m equal within
  1e-9) each weigh ``E|u_1| sum_j ||P_g x_j||`` (P_g: projection on the group's variates; u uniform on the unit
  sphere of R^m), the expectation of Morcos's weight over the bases of the tied subspace: basis invariant and
  continuous across the tie boundary; for a single correlation this is the definition above.
* ``linear_cka``: ``||Cxy||_F^2 / (||Cxx||_F ||Cyy||_F)`` (Kornblith et al. 2019); distance ``arccos(score)``.
* ``debiased_linear_cka``: CKA with the unbiased HSIC estimator (Song et al. 2012); needs the data.
* ``rbf_cka``: CKA with Gaussian kernels; see :mod:`ccalens.core.kernel`; needs the data.
* ``procrustes``: ``||Cxy||_* / sqrt(tr Cxx tr Cyy)``; distance ``sqrt(2 - 2 score)``, the orthogonal Procrustes
  distance between the centred, Frobenius-normalised representations (Ding et al. 2021).

Scale: every measure is invariant to rescaling one side. Arrays whose largest magnitude lies outside
``[2^-32, 2^32]`` are first rescaled by a power of two (exact), so any scale over the float64 range gives the
same value; statistics whose co-moments are too close to float64's limits raise a clear error.

:func:`compare` computes several measures of one pair and :func:`similarity_matrix` one measure of every pair of
L representations, with one joint pass over the data and one whitening per representation.

The package: :mod:`.definitions` (each measure once: its options, what it needs, how it finishes a score),
:mod:`.sides` (the ways of preparing two sides: statistics, Gram matrices, representations reduced once),
:mod:`.api` (the measures' signatures and :func:`compare`), :mod:`.matrix` (:func:`similarity_matrix`).
"""

from ..result import SimilarityMatrix, SimilarityResult
from .api import (
    MEASURES,
    PLAN_DOC,
    cca,
    compare,
    debiased_linear_cka,
    linear_cka,
    procrustes,
    pwcca,
    rbf_cka,
    svcca,
)
from .definitions import PWCCA_TIE, REGISTRY, STATS_MEASURES, Measure
from .matrix import similarity_matrix

__all__ = [
    "MEASURES",
    "PLAN_DOC",
    "PWCCA_TIE",
    "REGISTRY",
    "STATS_MEASURES",
    "Measure",
    "SimilarityMatrix",
    "SimilarityResult",
    "cca",
    "compare",
    "debiased_linear_cka",
    "linear_cka",
    "procrustes",
    "pwcca",
    "rbf_cka",
    "similarity_matrix",
    "svcca",
]
