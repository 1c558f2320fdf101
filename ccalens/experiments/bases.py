"""The bases of Moreau et al.'s projection experiment (2021, section 4.2): the seven ways to pick k directions of a
penultimate feature space (:data:`METHODS`), each a :class:`Basis` fitted on the training features, the oblique
projection on k of its directions (:func:`project_features`) and the grid of k (:func:`k_grid`). The experiment that
scores them is :mod:`ccalens.experiments.projection`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ccalens.core.cca_estimator import CCA
from ccalens.experiments.common import pca_reduce

__all__ = [
    "CCA_METHODS",
    "METHODS",
    "RANDOM_METHODS",
    "Basis",
    "cca_bases",
    "cca_basis",
    "identity_basis",
    "k_grid",
    "method_directions",
    "pca_basis",
    "project",
    "project_features",
    "random_orthonormal_basis",
]

METHODS: tuple[str, ...] = (
    "cca_highest",
    "cca_lowest",
    "cca_random",
    "max_activation",
    "random_selection",
    "random_projection",
    "pca",
)
CCA_METHODS = frozenset({"cca_highest", "cca_lowest", "cca_random"})
RANDOM_METHODS = frozenset({"cca_random", "random_selection", "random_projection"})


def k_grid(n_classes: int, n_features: int) -> list[int]:
    """``1, 2, ..., 2 * n_classes``, then the powers of two above that up to ``n_features``, then
    ``n_features`` itself (the full width), all capped at ``n_features``."""
    if int(n_classes) < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    if int(n_features) < 1:
        raise ValueError(f"n_features must be >= 1, got {n_features}")
    n_classes, n_features = int(n_classes), int(n_features)
    ks = list(range(1, min(2 * n_classes, n_features) + 1))
    power = 1
    while power <= n_features:
        if power > 2 * n_classes:
            ks.append(power)
        power *= 2
    if ks[-1] != n_features:
        ks.append(n_features)
    return ks


@dataclass(frozen=True)
class Basis:
    """A basis change of the feature space fitted on training features.

    ``mean: (p,)``; ``basis: (r, p)`` B, coordinates of x are ``B (x - mean)``; ``pinv: (p, r)`` B^+, so that
    ``x ~= mean + B^+ B (x - mean)`` on the kept subspace. Rows of B are ordered as the method needs
    (canonical correlation, variance, or neuron index).
    """

    mean: np.ndarray
    basis: np.ndarray
    pinv: np.ndarray

    @property
    def rank(self) -> int:
        return int(self.basis.shape[0])

    def projector(self, components: Sequence[int] | np.ndarray) -> np.ndarray:
        """``(p, p)`` projector ``P = B^+ diag(mask) B`` keeping the given rows of B."""
        idx = _check_components(components, self.rank)
        return self.pinv[:, idx] @ self.basis[idx, :]


def _check_components(components: Sequence[int] | np.ndarray, rank: int) -> np.ndarray:
    idx = np.asarray(components, dtype=np.int64).ravel()
    if idx.size and (idx.min() < 0 or idx.max() >= rank):
        raise ValueError(f"components must lie in 0..{rank - 1}, got {idx.min()}..{idx.max()}")
    return idx


def project_features(X: np.ndarray, basis: Basis, components: Sequence[int] | np.ndarray) -> np.ndarray:
    """``mean + (X - mean) @ P.T`` for ``X: (m, p)``, computed through the k coordinates (never forms P)."""
    idx = _check_components(components, basis.rank)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != basis.mean.shape[0]:
        raise ValueError(f"X must have shape (samples, {basis.mean.shape[0]}), got {X.shape}")
    coords = (X - basis.mean) @ basis.basis[idx].T
    return basis.mean + coords @ basis.pinv[:, idx].T


def identity_basis(X_train: np.ndarray) -> Basis:
    """Neuron basis (B = I) with the training mean: selecting rows keeps neurons, the others become their mean."""
    X_train = np.asarray(X_train, dtype=np.float64)
    p = X_train.shape[1]
    return Basis(mean=X_train.mean(axis=0), basis=np.eye(p), pinv=np.eye(p))


def pca_basis(X_train: np.ndarray) -> Basis:
    """Principal directions of the training features, highest variance first (every direction above the
    engine's relative eigenvalue cut-off), as an orthonormal basis."""
    pca = pca_reduce(X_train, 1.0, name="X_train")
    return Basis(mean=pca.mean, basis=pca.components.T.copy(), pinv=pca.components.copy())


def cca_bases(
    X1_train: np.ndarray, X2_train: np.ndarray, pca_variance: float = 0.9999, keep: str = "variance"
) -> tuple[Basis, Basis, np.ndarray]:
    """Canonical bases of both sides after PCA of each side keeping ``pca_variance`` of its variance (``keep``:
    SVCCA's rule, ``"singular_values"`` for the SVCCA appendix's 99% of the sum of the singular values).

    ``X1_train: (n, p)``, ``X2_train: (n, q)`` (same samples). Returns ``(basis1, basis2, correlations)``: row i
    of ``basis1`` and of ``basis2`` form the i-th canonical pair (for ``i < len(correlations)``), expressed in
    each side's feature space, highest correlation first; further rows complete each side's kept PCA subspace
    (correlation 0).
    """
    X1_train = np.asarray(X1_train, dtype=np.float64)
    X2_train = np.asarray(X2_train, dtype=np.float64)
    if X1_train.ndim != 2 or X2_train.ndim != 2:
        raise ValueError(f"X1_train and X2_train must be 2-D, got shapes {X1_train.shape} and {X2_train.shape}")
    if X1_train.shape[0] != X2_train.shape[0]:
        raise ValueError(
            f"X1_train and X2_train must hold the same samples, got {X1_train.shape[0]} and {X2_train.shape[0]} rows"
        )
    pca1 = pca_reduce(X1_train, pca_variance, name="X1_train", keep=keep)
    pca2 = pca_reduce(X2_train, pca_variance, name="X2_train", keep=keep)
    cca = CCA(method="qr").fit(pca1.transform(X1_train), pca2.transform(X2_train))
    b1 = Basis(mean=pca1.mean, basis=cca.x_basis_ @ pca1.components.T, pinv=pca1.components @ cca.x_basis_pinv_)
    b2 = Basis(mean=pca2.mean, basis=cca.y_basis_ @ pca2.components.T, pinv=pca2.components @ cca.y_basis_pinv_)
    return b1, b2, np.asarray(cca.correlations_)


def cca_basis(
    X1_train: np.ndarray, X2_train: np.ndarray, pca_variance: float = 0.9999
) -> tuple[Basis, np.ndarray, tuple[int, int]]:
    """Canonical basis of X1 against X2 (see :func:`cca_bases`): ``(basis1, correlations, (rank1, rank2))``
    with the PCA ranks of both sides."""
    b1, b2, corr = cca_bases(X1_train, X2_train, pca_variance)
    return b1, corr, (b1.rank, b2.rank)


def random_orthonormal_basis(X_train: np.ndarray, k: int, rng: np.random.Generator) -> Basis:
    """k random orthonormal directions (QR of a Gaussian matrix), with the training mean."""
    X_train = np.asarray(X_train, dtype=np.float64)
    p = X_train.shape[1]
    Q, R = np.linalg.qr(rng.standard_normal((p, k)))
    Q = Q * np.sign(np.diag(R))  # Haar-distributed
    return Basis(mean=X_train.mean(axis=0), basis=Q.T.copy(), pinv=Q)


def method_directions(
    method: str,
    k: int,
    *,
    X_train: np.ndarray,
    rng: np.random.Generator | None = None,
    cca: Basis | None = None,
    pca: Basis | None = None,
    neurons: Basis | None = None,
) -> tuple[Basis, np.ndarray]:
    """The basis and the k row indices that ``method`` keeps. ``k`` is capped at the number of directions
    the method has (the CCA/PCA rank, or ``p``). Precomputed bases may be passed to avoid refitting."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if method in RANDOM_METHODS and rng is None:
        raise ValueError(f"method {method!r} is random: pass rng")
    X_train = np.asarray(X_train, dtype=np.float64)
    p = X_train.shape[1]
    if method in CCA_METHODS:
        if cca is None:
            raise ValueError(f"method {method!r} needs the canonical basis: pass cca=cca_basis(X1, X2)[0]")
        r = cca.rank
        k = min(int(k), r)
        if method == "cca_highest":
            return cca, np.arange(k)
        if method == "cca_lowest":
            return cca, np.arange(r - k, r)
        return cca, np.sort(rng.choice(r, size=k, replace=False))  # type: ignore[union-attr]
    if method == "pca":
        pca = pca if pca is not None else pca_basis(X_train)
        k = min(int(k), pca.rank)
        return pca, np.arange(k)
    k = min(int(k), p)
    if method == "random_projection":
        if k == p:  # the whole space: the identity, whatever the rotation
            return (neurons if neurons is not None else identity_basis(X_train)), np.arange(p)
        return random_orthonormal_basis(X_train, k, rng), np.arange(k)  # type: ignore[arg-type]
    neurons = neurons if neurons is not None else identity_basis(X_train)
    if method == "max_activation":
        order = np.argsort(-np.abs(X_train).max(axis=0), kind="stable")
        return neurons, np.sort(order[:k])
    return neurons, np.sort(rng.choice(p, size=k, replace=False))  # type: ignore[union-attr]


def project(
    method: str,
    k: int,
    X1_train: np.ndarray,
    X: np.ndarray,
    *,
    X2_train: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    pca_variance: float = 0.9999,
) -> np.ndarray:
    """Pure one-shot form: fit ``method``'s basis on ``X1_train: (n, p)`` (and ``X2_train: (n, q)`` for the
    CCA methods), project ``X: (m, p)`` on k directions and add back the training mean -> ``(m, p)``."""
    cca = None
    if method in CCA_METHODS:
        if X2_train is None:
            raise ValueError(f"method {method!r} needs X2_train (features of the same samples from another network)")
        cca = cca_basis(X1_train, X2_train, pca_variance)[0]
    basis, comps = method_directions(method, k, X_train=X1_train, rng=rng, cca=cca)
    return project_features(X, basis, comps)
