"""Linear CKA of wide representations from tiles of both centred Gram matrices (``tile_rows`` x ``tile_rows``,
never a whole ``n x n``): the upper triangle of tiles, syrk on the diagonal; raw products centred afterwards from
the Grams' row sums while the offsets are small, rows centred per tile when they are not (the planner that picks
this path: :mod:`ccalens.core.plan`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .dual import OFFSET_RATIO, centred_rows, compute_dtype, offsets_within
from .plan import TILE_ROWS
from .validation import check_features

__all__ = ["linear_cka_tiled", "linear_cka_tiled_parts"]


#: Rows of a tile widened to float64 at a time for the inner products.
_INNER_ROWS = 512


@dataclass(frozen=True)
class _TileSide:
    """One representation prepared for centred Gram tiles: ``Kc_RS = Xc_R Xc_S'`` for row ranges R, S."""

    X: np.ndarray
    mean: np.ndarray
    dtype: np.dtype

    @classmethod
    def prepare(cls, X: np.ndarray, name: str) -> _TileSide:
        n = X.shape[0]
        sums = np.zeros(X.shape[1])
        with np.errstate(all="ignore"):  # NaN/Inf are reported below, by name
            for lo in range(0, n, TILE_ROWS):
                sums += X[lo : lo + TILE_ROWS].sum(axis=0, dtype=np.float64)
            mean = sums / n
        if not np.isfinite(mean).all():
            check_features(X, name)
            raise ValueError(f"{name} has values whose sums overflow; rescale it")
        return cls(X, mean, compute_dtype(X))

    def centred_rows(self, rows: slice) -> np.ndarray:
        return centred_rows(self.X[rows], self.mean, self.dtype)


#: The raw-tile path of :func:`linear_cka_tiled` centres the Frobenius inner products afterwards; it is kept only
#: while ``||K||_F^2 / ||Kc||_F^2`` (the digits that centring afterwards cancels) stays below this, per compute dtype.
_RAW_CANCELLATION = {np.dtype(np.float32): 1e6, np.dtype(np.float64): 1e4}


def linear_cka_tiled(X: np.ndarray, Y: np.ndarray, *, tile_rows: int = TILE_ROWS) -> float:
    """Linear CKA ``<Kc, Lc>_F / (||Kc||_F ||Lc||_F)`` of ``X: (n, p)``, ``Y: (n, q)`` from tiles of their centred
    Grams, never holding a whole ``(n, n)`` Gram.

    The upper triangle of ``tile_rows``-square tiles is formed side by side for both representations (one GEMM
    each, syrk on the diagonal; off-diagonal tiles count twice), so the work is that of the two Gram products and
    the memory a few tiles. When the offsets are small (``tr(X X') <= OFFSET_RATIO tr(Xc Xc')``, judged from the
    tiles themselves) the tiles are the raw products and the inner products are centred afterwards from the Grams'
    row sums (:func:`_raw_tile_products`: no pass over the data besides the products); otherwise rows are centred
    per tile. float32 input is multiplied in float32; the inner products are summed in float64. Scale-free.
    """
    kk, ll, kl = linear_cka_tiled_parts(X, Y, tile_rows=tile_rows)
    return float(kl / np.sqrt(kk) / np.sqrt(ll))


def linear_cka_tiled_parts(X: np.ndarray, Y: np.ndarray, *, tile_rows: int = TILE_ROWS) -> tuple[float, float, float]:
    """``(||Kc||_F^2, ||Lc||_F^2, <Kc, Lc>_F)`` from tiles of the centred Grams (see :func:`linear_cka_tiled`);
    clear errors when they overflow or a representation has no variance."""
    raw = _raw_tile_products(X, Y, tile_rows)
    kk, ll, kl = raw if raw is not None else _centred_tile_products(X, Y, tile_rows)
    if not (np.isfinite(kk) and np.isfinite(ll) and np.isfinite(kl)):
        raise ValueError("linear CKA overflowed: the products of the features exceed float range; rescale them")
    if not (kk > 0 and ll > 0):
        raise ValueError("linear CKA is undefined: a representation has no variance")
    return float(kk), float(ll), float(kl)


def _tile_ranges(n: int, tile_rows: int) -> list[slice]:
    return [slice(lo, min(n, lo + tile_rows)) for lo in range(0, n, tile_rows)]


def _widened_rows(K: np.ndarray, L: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(lo, K[lo:hi], L[lo:hi])`` in float64, :data:`_INNER_ROWS` rows of two tiles at a time."""
    for lo in range(0, K.shape[0], _INNER_ROWS):
        yield lo, K[lo : lo + _INNER_ROWS].astype(np.float64), L[lo : lo + _INNER_ROWS].astype(np.float64)


def _raw_tile_products(X: np.ndarray, Y: np.ndarray, tile_rows: int) -> tuple[float, float, float] | None:
    """``(||Kc||^2, ||Lc||^2, <Kc, Lc>)`` from tiles of the raw Grams ``K = X X'``, ``L = Y Y'``, or None where that
    would cost digits (offsets not small, or input that must be widened first).

    With ``H = I - 11'/n``: ``<HKH, HLH> = <K, L> - (2/n) (K1).(L1) + (1'K1)(1'L1) / n^2``, so the raw tiles'
    inner products and row sums give the centred values exactly. The offsets are judged on the first diagonal tile
    (to give up early) and then exactly, on the whole Grams: ``n |m|^2 = 1'K1 / n`` and ``tr(Kc) = tr(K) - 1'K1 / n``
    (:func:`small_offsets`); the digits centring afterwards cancels are checked too (:data:`_RAW_CANCELLATION`).
    """
    dtype = compute_dtype(X)
    if X.dtype != dtype or Y.dtype != dtype:
        return None
    n = X.shape[0]
    ranges = _tile_ranges(n, tile_rows)
    sums = {"kk": 0.0, "ll": 0.0, "kl": 0.0, "tk": 0.0, "tl": 0.0}
    rows_k, rows_l = np.zeros(n), np.zeros(n)

    def offsets_small(trace: float, total: float, count: int, ratio: float) -> bool:
        """:func:`small_offsets` from a Gram: ``n |m|^2 = 1'K1 / n``, ``tr(Kc) = tr(K) - 1'K1 / n``."""
        finite = bool(np.isfinite(trace) and np.isfinite(total))
        return finite and offsets_within(total / count, trace - total / count, ratio)

    with np.errstate(all="ignore"):  # NaN/Inf: the centred path names the culprit
        for a, R in enumerate(ranges):
            for S in ranges[a:]:
                A, B = X[R], Y[R]
                K = A @ A.T if S == R else A @ X[S].T  # syrk on the diagonal tiles
                L = B @ B.T if S == R else B @ Y[S].T
                weight = 1.0 if S == R else 2.0
                if S == R:
                    sums["tk"] += float(np.trace(K, dtype=np.float64))
                    sums["tl"] += float(np.trace(L, dtype=np.float64))
                for lo, k, m in _widened_rows(K, L):
                    sums["kk"] += weight * float(np.vdot(k, k))
                    sums["ll"] += weight * float(np.vdot(m, m))
                    sums["kl"] += weight * float(np.vdot(k, m))
                    rows = slice(R.start + lo, R.start + lo + k.shape[0])
                    rows_k[rows] += k.sum(axis=1)
                    rows_l[rows] += m.sum(axis=1)
                    if S != R:  # the mirrored tile's row sums
                        rows_k[S] += k.sum(axis=0)
                        rows_l[S] += m.sum(axis=0)
                if a == 0 and S == R:  # the first rows decide early (with a margin) whether raw tiles can serve
                    count = R.stop - R.start
                    half = (OFFSET_RATIO - 1.0) / 2.0
                    if not (offsets_small(sums["tk"], float(rows_k[R].sum()), count, half)
                            and offsets_small(sums["tl"], float(rows_l[R].sum()), count, half)):
                        return None
        total_k, total_l = float(rows_k.sum()), float(rows_l.sum())
        ratio = OFFSET_RATIO - 1.0
        if not (offsets_small(sums["tk"], total_k, n, ratio) and offsets_small(sums["tl"], total_l, n, ratio)):
            return None
        kk = sums["kk"] - 2.0 / n * float(rows_k @ rows_k) + (total_k / n) ** 2
        ll = sums["ll"] - 2.0 / n * float(rows_l @ rows_l) + (total_l / n) ** 2
        kl = sums["kl"] - 2.0 / n * float(rows_k @ rows_l) + (total_k / n) * (total_l / n)
    limit = _RAW_CANCELLATION[dtype]
    if not (kk > 0.0 and ll > 0.0 and sums["kk"] <= limit * kk and sums["ll"] <= limit * ll):
        return None
    return kk, ll, kl


def _centred_tile_products(X: np.ndarray, Y: np.ndarray, tile_rows: int) -> tuple[float, float, float]:
    """``(||Kc||^2, ||Lc||^2, <Kc, Lc>)`` from tiles of the centred Grams, rows centred per tile (:class:`_TileSide`;
    large offsets, float16 input, or NaN/Inf, which :meth:`_TileSide.prepare` names)."""
    n = X.shape[0]
    sx, sy = _TileSide.prepare(X, "X"), _TileSide.prepare(Y, "Y")
    ranges = _tile_ranges(n, tile_rows)
    kk = ll = kl = 0.0
    for a, R in enumerate(ranges):
        cx, cy = sx.centred_rows(R), sy.centred_rows(R)
        for S in ranges[a:]:
            if S == R:  # syrk
                K, L = cx @ cx.T, cy @ cy.T
            else:
                K, L = cx @ sx.centred_rows(S).T, cy @ sy.centred_rows(S).T
            weight = 1.0 if S == R else 2.0
            for _, k, m in _widened_rows(K, L):
                kk += weight * float(np.vdot(k, k))
                ll += weight * float(np.vdot(m, m))
                kl += weight * float(np.vdot(k, m))
    return kk, ll, kl
