"""Fusion study (DESIGN.md section 4): is CCA feature fusion just logit averaging?

Two networks, one per sensor (view), see the same samples. CCA fusion (Haghighat's ccaFuse, as used by
Ahmad & Khan 2020 and Imran & Raman 2020): centre, PCA, CCA between the two feature sets on the training
samples, then fuse the canonical variates by SUM (``U + V``) or concatenation (``[U, V]``) and classify with an
SVM. The claim tested: the top ``nc`` canonical directions span the class components (the rows of each last
layer W), so sum fusion behaves like averaging the two networks' logits.

Reported per pair: accuracy and macro F1 of each network alone, logit average, probability average,
CCA-sum + SVM, CCA-concat + SVM, CCA-sum of the top nc components + SVM, raw concatenated features + SVM; the
prediction agreement of each fusion with logit averaging; and the principal angles (degrees) between the
class components and the top nc canonical directions, in two geometries:

* ``weights``: span of the rows of W (``(c, p)``, as vectors of the feature space) vs the span of the top nc
  canonical weight vectors (the DESIGN.md definition; depends on the feature coordinates);
* ``variates``: span of the centred training logits ``Xc W^T`` vs the span of the top nc canonical variates
  ``Xc B[:nc]^T`` (``(n, c)`` vs ``(n, nc)`` in sample space; invariant to any invertible change of feature
  coordinates, which is what "the logits are combinations of the top canonical variates" means).

Both are also given with W centred over classes (``W - mean row``, rank nc - 1: softmax ignores a common shift).
``random_weights``: the centred-weights angles against k random directions of the same kept PCA space, the baseline
of the weights geometry: whitened canonical weights lie along low-variance directions, so their angles to W are
about as large as a random subspace's, and that geometry says little; the variates geometry is the informative one.

``angle_null[side][geometry]`` (``centred_variates``, ``centred_weights``): the null distribution of the median
angle, from ``null_subspaces`` uniformly random k-dimensional subspaces of the same kept space (the span of the
canonical variates, or of the canonical weight vectors): its mean and 5th percentile, beside the observed median.
An observed median below the 5th percentile means the top nc canonical directions are closer to the class
components than chance.
"""

from __future__ import annotations

import itertools
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
from tqdm.auto import tqdm

from ccalens.experiments.bases import cca_bases
from ccalens.experiments.common import NetworkFeatures, scores, softmax
from ccalens.io import write_csv, write_json

__all__ = ["FUSION_METHODS", "FusionConfig", "FusionResult", "cca_fusion_features", "fusion_study", "run_fusion"]

FUSION_METHODS: tuple[str, ...] = (
    "view_a",
    "view_b",
    "logit_average",
    "probability_average",
    "cca_sum_svm",
    "cca_concat_svm",
    "cca_sum_top_nc_svm",
    "raw_concat_svm",
)


@dataclass(frozen=True)
class FusionConfig:
    """``pca_variance``: PCA before CCA; ``n_components``: canonical components fused (None = all, as
    ccaFuse); ``svm_kernel``/``svm_c``: scikit-learn ``SVC`` settings; ``null_subspaces``: random subspaces drawn
    for the null of the principal angles."""

    pca_variance: float = 0.9999
    n_components: int | None = None
    svm_kernel: str = "linear"
    svm_c: float = 1.0
    null_subspaces: int = 200

    def __post_init__(self) -> None:
        if not 0 < self.pca_variance <= 1:
            raise ValueError(f"pca_variance must be in (0, 1], got {self.pca_variance}")
        if self.n_components is not None and int(self.n_components) < 1:
            raise ValueError(f"n_components must be None or >= 1, got {self.n_components}")
        if self.svm_kernel not in ("linear", "rbf", "poly", "sigmoid"):
            raise ValueError(f"svm_kernel must be 'linear', 'rbf', 'poly' or 'sigmoid', got {self.svm_kernel!r}")
        if not self.svm_c > 0:
            raise ValueError(f"svm_c must be positive, got {self.svm_c}")
        if isinstance(self.null_subspaces, bool) or not isinstance(self.null_subspaces, int) \
                or self.null_subspaces < 20:
            raise ValueError(f"null_subspaces must be an integer >= 20, got {self.null_subspaces!r}")

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass
class FusionResult:
    """Scores, agreements and principal angles of one pair of networks (see the module docstring)."""

    view_a: str
    view_b: str
    n_classes: int
    scores: dict[str, dict[str, float]]
    agreement_with_logit_average: dict[str, float]
    principal_angles_deg: dict[str, list[float]]
    canonical_correlations: np.ndarray
    angle_null: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "view_a": self.view_a,
            "view_b": self.view_b,
            "n_classes": self.n_classes,
            "scores": self.scores,
            "agreement_with_logit_average": self.agreement_with_logit_average,
            "principal_angles_deg": self.principal_angles_deg,
            "canonical_correlations": self.canonical_correlations,
            "angle_null": self.angle_null,
            "config": self.config,
            "wall_time_s": self.wall_time_s,
        }

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows for CSV: one per method, with the agreement with logit averaging."""
        return [
            {
                "view_a": self.view_a,
                "view_b": self.view_b,
                "method": m,
                "accuracy": s["accuracy"],
                "macro_f1": s["macro_f1"],
                "agreement_with_logit_average": self.agreement_with_logit_average.get(m),
            }
            for m, s in self.scores.items()
        ]


def _svm_predict(train: np.ndarray, y: np.ndarray, test: np.ndarray, config: FusionConfig) -> np.ndarray:
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    scaler = StandardScaler().fit(train)
    clf = SVC(kernel=config.svm_kernel, C=config.svm_c)
    clf.fit(scaler.transform(train), y)
    return clf.predict(scaler.transform(test)).astype(np.int64)


def cca_fusion_features(
    a_train: np.ndarray,
    b_train: np.ndarray,
    a_test: np.ndarray,
    b_test: np.ndarray,
    *,
    pca_variance: float = 0.9999,
    n_components: int | None = None,
) -> dict[str, Any]:
    """Canonical variates of both sides, fitted on the training pair (``(n, p)``, ``(n, q)``) and applied to the
    test pair (``(m, p)``, ``(m, q)``). Returns ``u_train, v_train, u_test, v_test`` (``(., d)`` each, d = number
    of canonical pairs kept), ``correlations (d,)``, ``basis_a`` and ``basis_b`` (:class:`Basis`)."""
    basis_a, basis_b, corr = cca_bases(a_train, b_train, pca_variance)
    d = corr.shape[0] if n_components is None else min(corr.shape[0], int(n_components))

    def variates(X: np.ndarray, basis: Any) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - basis.mean) @ basis.basis[:d].T

    return {
        "u_train": variates(a_train, basis_a),
        "v_train": variates(b_train, basis_b),
        "u_test": variates(a_test, basis_a),
        "v_test": variates(b_test, basis_b),
        "correlations": corr[:d],
        "basis_a": basis_a,
        "basis_b": basis_b,
    }


def _angles(A: np.ndarray, B: np.ndarray) -> list[float]:
    return sorted(np.degrees(scipy.linalg.subspace_angles(A, B)).tolist())


def _random_subspace_null(
    target: np.ndarray, span: np.ndarray, k: int, draws: int, rng: np.random.Generator
) -> dict[str, float]:
    """The null of the median principal angle between ``span(target: (m, c))`` and a k-dimensional subspace of
    ``span(span: (m, r))``: ``draws`` uniformly random k-dimensional subspaces of that span (Haar: an orthonormal
    basis of the span times a Gaussian ``(r, k)``). Returns ``mean_deg``, ``p05_deg`` (5th percentile), ``draws``.
    Cheap: both spans are orthonormalised once, then each draw is an SVD of a ``(c, k)`` matrix."""
    qt = scipy.linalg.orth(target)  # (m, c') orthonormal
    qs = scipy.linalg.orth(span)  # (m, r') orthonormal
    k = min(k, qs.shape[1])
    cross = qt.T @ qs  # (c', r')
    medians = np.empty(draws)
    for d in range(draws):
        basis, _ = np.linalg.qr(rng.standard_normal((qs.shape[1], k)))  # Haar-random k-frame of the span
        cosines = np.clip(np.linalg.svd(cross @ basis, compute_uv=False), 0.0, 1.0)
        medians[d] = np.median(np.degrees(np.arccos(cosines)))
    return {"mean_deg": float(medians.mean()), "p05_deg": float(np.percentile(medians, 5)), "draws": draws}


def fusion_study(
    a: NetworkFeatures,
    b: NetworkFeatures,
    y_train: np.ndarray,
    y_val: np.ndarray,
    config: FusionConfig | None = None,
) -> FusionResult:
    """Compare CCA fusion with logit averaging for networks ``a`` and ``b`` (same samples, same classes).

    ``y_train: (n,)`` and ``y_val: (m,)`` labels of the samples behind ``a.train``/``b.train`` and
    ``a.val``/``b.val``.
    """
    config = config or FusionConfig()
    t0 = time.perf_counter()
    if a.n_classes != b.n_classes:
        raise ValueError(f"{a.name} has {a.n_classes} classes but {b.name} has {b.n_classes}")
    for net in (a, b):
        if net.train.shape[0] != len(y_train) or net.val.shape[0] != len(y_val):
            raise ValueError(
                f"{net.name}: features have {net.train.shape[0]}/{net.val.shape[0]} train/val rows, labels "
                f"{len(y_train)}/{len(y_val)}"
            )
    c = a.n_classes
    y_train = np.asarray(y_train).astype(np.int64)
    y_val = np.asarray(y_val).astype(np.int64)
    la, lb = a.logits(a.val), b.logits(b.val)
    preds: dict[str, np.ndarray] = {
        "view_a": la.argmax(axis=1),
        "view_b": lb.argmax(axis=1),
        "logit_average": (la + lb).argmax(axis=1),
        "probability_average": (softmax(la) + softmax(lb)).argmax(axis=1),
    }
    fused = cca_fusion_features(
        a.train, b.train, a.val, b.val, pca_variance=config.pca_variance, n_components=config.n_components
    )
    u_tr, v_tr, u_te, v_te = fused["u_train"], fused["v_train"], fused["u_test"], fused["v_test"]
    preds["cca_sum_svm"] = _svm_predict(u_tr + v_tr, y_train, u_te + v_te, config)
    preds["cca_concat_svm"] = _svm_predict(np.hstack([u_tr, v_tr]), y_train, np.hstack([u_te, v_te]), config)
    top = min(c, u_tr.shape[1])
    preds["cca_sum_top_nc_svm"] = _svm_predict(
        u_tr[:, :top] + v_tr[:, :top], y_train, u_te[:, :top] + v_te[:, :top], config
    )
    preds["raw_concat_svm"] = _svm_predict(
        np.hstack([a.train, b.train]), y_train, np.hstack([a.val, b.val]), config
    )
    result_scores = {m: scores(y_val, preds[m], c) for m in FUSION_METHODS}
    agreement = {m: float(np.mean(preds[m] == preds["logit_average"])) for m in FUSION_METHODS}

    angles: dict[str, list[float]] = {}
    nulls: dict[str, dict[str, dict[str, float]]] = {}
    for side, net, basis in (("a", a, fused["basis_a"]), ("b", b, fused["basis_b"])):
        W = np.asarray(net.weight, dtype=np.float64)
        Wc = W - W.mean(axis=0, keepdims=True)
        k = min(c, basis.rank)
        dirs = basis.basis[:k].T  # (p, k) top canonical weight vectors
        Xc = np.asarray(net.train, dtype=np.float64) - basis.mean
        angles[f"{side}_weights"] = _angles(W.T, dirs)
        angles[f"{side}_centred_weights"] = _angles(Wc.T, dirs)
        angles[f"{side}_variates"] = _angles(Xc @ W.T, Xc @ dirs)
        angles[f"{side}_centred_variates"] = _angles(Xc @ Wc.T, Xc @ dirs)
        # baseline of the weights geometry: k random directions of the same PCA space (seeded per pair)
        rng = np.random.default_rng([zlib.crc32(f"{a.name}|{b.name}|{side}".encode()), 0])
        space = basis.basis[: basis.rank].T  # (p, rank): the kept subspace the canonical weights live in
        angles[f"{side}_random_weights"] = _angles(Wc.T, space @ rng.standard_normal((space.shape[1], k)))
        null_rng = np.random.default_rng([zlib.crc32(f"{a.name}|{b.name}|{side}".encode()), 1])
        nulls[side] = {
            geometry: _random_subspace_null(target, span, k, config.null_subspaces, null_rng)
            for geometry, target, span in (("centred_variates", Xc @ Wc.T, Xc @ space),
                                           ("centred_weights", Wc.T, space))
        }
    return FusionResult(
        view_a=a.name,
        view_b=b.name,
        n_classes=c,
        scores=result_scores,
        agreement_with_logit_average=agreement,
        principal_angles_deg=angles,
        canonical_correlations=fused["correlations"],
        angle_null={side: {g: {**v, "observed_median_deg": float(np.median(angles[f"{side}_{g}"]))}
                           for g, v in geo.items()} for side, geo in nulls.items()},
        config=config.to_dict(),
        wall_time_s=time.perf_counter() - t0,
    )


def run_fusion(
    nets: Mapping[str, NetworkFeatures],
    y_train: np.ndarray,
    y_val: np.ndarray,
    *,
    pairs: Sequence[tuple[str, str]] | None = None,
    config: FusionConfig | None = None,
    out_dir: str | Path | None = None,
    progress: bool = False,
) -> list[FusionResult]:
    """:func:`fusion_study` for each pair (default: all unordered pairs of ``nets``); with ``out_dir``, writes
    ``fusion.json`` and ``fusion.csv``."""
    names = list(nets)
    pairs = list(pairs) if pairs is not None else list(itertools.combinations(names, 2))
    for pa, pb in pairs:
        for nm in (pa, pb):
            if nm not in nets:
                raise KeyError(f"fusion pair names {nm!r}, which is not one of the networks {names}")
    results = [
        fusion_study(nets[pa], nets[pb], y_train, y_val, config)
        for pa, pb in tqdm(pairs, desc="fusion", disable=not progress, leave=False)
    ]
    if out_dir is not None:
        out = Path(out_dir)
        write_json(out / "fusion.json", {"pairs": [r.to_dict() for r in results]})
        write_csv(out / "fusion.csv", [row for r in results for row in r.rows()])
        write_csv(
            out / "fusion_angles.csv",
            [
                {"view_a": r.view_a, "view_b": r.view_b, "geometry": g, "angles_deg": v, "max_deg": max(v)}
                for r in results
                for g, v in r.principal_angles_deg.items()
            ],
        )
    return results
