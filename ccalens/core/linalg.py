"""The low-level building blocks of the engine, in one namespace.

Whitenings of one covariance (:func:`whiten`, :class:`Whitening`, :class:`CholeskyWhitening`,
:func:`principal_whitening`), CCA from whitenings, covariances or statistics (:func:`cca_from_whitenings`,
:func:`cca_from_covariances`, :func:`cca_from_stats`) and by QR (:func:`cca_qr`), and the canonical
correlations of a pair of whitenings (:func:`canonical_correlations`). The measures
(:mod:`ccalens.core.measures`) are built on these; most users never need them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .cca import CCAResult, cca_from_covariances, cca_from_stats, cca_from_whitenings, cca_qr
from .whitening import DEFAULT_TOL, CholeskyWhitening, Whitening, whiten

__all__ = [
    "DEFAULT_TOL",
    "CCAResult",
    "CholeskyWhitening",
    "Whitening",
    "canonical_correlations",
    "cca_from_covariances",
    "cca_from_stats",
    "cca_from_whitenings",
    "cca_qr",
    "principal_block_whitenings",
    "principal_whitening",
    "whiten",
]


def principal_whitening(covariance: np.ndarray, *, tol: float = DEFAULT_TOL, name: str = "X") -> Whitening:
    """Eigendecomposition whitening of ``covariance: (d, d)`` that also knows its whole spectrum.

    Like ``whiten(covariance, tol=tol, method="eigh")`` (directions below ``tol`` times the largest eigenvalue
    dropped), with :attr:`Whitening.total_deviation` set: the sum of ``sqrt(eigenvalue)`` over every direction
    above the float noise floor ``d * eps * largest`` (below it, eigenvalues are rounding noise of exact zeros),
    kept or not. SVCCA's singular-value rule (:meth:`Whitening.top`) needs that total.
    """
    out = principal_block_whitenings([covariance], tol=tol, names=[name])[0]
    assert out is not None  # no variance raised above
    return out


def principal_block_whitenings(
    blocks: Sequence[np.ndarray], *, tol: float = DEFAULT_TOL, names: Sequence[str], no_variance: str | None = None
) -> list[Whitening | None]:
    """:func:`principal_whitening` of each diagonal block ``(d_f, d_f)`` (real symmetric or complex Hermitian) of
    one block-diagonal covariance (DFT-CCA's frequencies), with the whole covariance's cut-off: directions below
    ``tol`` times the largest eigenvalue over ALL blocks are dropped, and the noise floor of ``total_deviation`` is
    ``(sum d_f) * eps * that largest``. A block with nothing kept (or no variance) is None when there are several
    blocks; ``whiten`` names the representation ``names[f]`` when a block holds NaN/Inf. ``no_variance``: the
    error's message when no block has any variance (default: the engine's, naming ``names[0]``).
    """
    if len(blocks) != len(names):
        raise ValueError(f"names has {len(names)} entries for {len(blocks)} blocks")
    if not 0.0 <= tol < 1.0:
        raise ValueError(f"tol must be in [0, 1), got {tol}")
    message = no_variance or (f"{names[0]} has no variance: every feature is constant over the samples, so no "
                              "correlation with it is defined")
    every: list[Whitening | None] = []
    for cov, name in zip(blocks, names, strict=True):
        variances = np.real(np.diagonal(cov))
        if np.isfinite(variances).all() and not variances.max(initial=0.0) > 0.0:
            every.append(None)  # a block without variance (NaN/Inf go on to whiten, which names them)
            continue
        w = whiten(cov, tol=0.0, name=name, method="eigh")
        assert isinstance(w, Whitening)
        every.append(w)
    live = [w for w in every if w is not None]
    if not live:
        raise ValueError(message)
    largest = max(float(w.eigenvalues[0]) for w in live if w.eigenvalues.size)
    floor = sum(int(np.shape(cov)[0]) for cov in blocks) * np.finfo(np.float64).eps * largest
    out: list[Whitening | None] = []
    for w in every:
        keep = 0 if w is None else int(np.count_nonzero(w.eigenvalues > tol * largest))
        if w is None or keep == 0:
            out.append(None)
            continue
        values = w.eigenvalues
        out.append(Whitening(
            eigenvalues=np.ascontiguousarray(values[:keep]),
            eigenvectors=np.ascontiguousarray(w.eigenvectors[:, :keep]),
            n_features=w.n_features,
            total_variance=w.total_variance,
            total_deviation=float(np.sqrt(values[values > floor]).sum()),
        ))
    return out


def canonical_correlations(
    wx: Whitening | CholeskyWhitening,
    wy: Whitening | CholeskyWhitening,
    cross: np.ndarray,
    cross_scale: float = 1.0,
    *,
    vectors: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Canonical correlations of two whitened sides given ``cross_scale * cross: (p, q)``, the cross-covariance
    (e.g. a co-moment block and ``1 / (n - 1)``: the scale is applied to the small whitened product).

    Returns ``rho: (k,)`` descending (``k = min(rank_x, rank_y)``), the left singular vectors ``U: (rank_x,
    rank_x)`` of ``M = Wx' cross Wy`` (all of them, descending, if ``vectors``; else None), and the eigenvalues
    ``(rank_x,)`` of ``M M'`` when ``vectors`` (the squared correlations of every X direction, zeros included;
    else an empty array). Uses the eigendecomposition of the smaller Gram matrix of M (about 3x faster than an
    SVD; rho near 0 are then accurate to ~1e-8 absolute, immaterial for the summaries; :class:`CCA` uses an SVD).
    """
    M = wy.whiten_columns(wx.whiten_rows(cross))  # Wx' C Wy
    if cross_scale != 1.0:
        M *= cross_scale
    k = min(M.shape)
    if vectors:
        # every left vector (the X side's whole canonical basis), from X's Gram M M'
        vals, vecs = np.linalg.eigh(M @ M.conj().T)
        vals = np.clip(vals[::-1].real, 0.0, 1.0)
        return np.sqrt(vals[:k]), vecs[:, ::-1], vals
    gram = M @ M.conj().T if M.shape[0] <= M.shape[1] else M.conj().T @ M  # syrk
    vals = np.linalg.eigvalsh(gram)
    return np.sqrt(np.clip(vals[::-1], 0.0, 1.0)), None, np.zeros(0)
