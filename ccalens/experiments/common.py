"""Shared pieces of the experiments: a trained network's features and last layer, scoring, PCA reduction, and
the batched retraining of a last (linear) layer.

Shapes: ``n`` training samples, ``m`` validation samples, ``p`` features, ``c`` classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ccalens.core.whitening import whiten
from ccalens.metrics import accuracy, macro_f1
from ccalens.recipes import check_recipe, scheduled_lr

__all__ = [
    "NetworkFeatures",
    "PCAReduction",
    "RetrainConfig",
    "pca_reduce",
    "scores",
    "softmax",
    "train_linear_layers",
]


@dataclass(frozen=True)
class NetworkFeatures:
    """Penultimate features of one trained network and its last layer.

    Attributes:
        name: label used in tables and figures (e.g. ``"fou/seed0"``).
        train: ``(n, p)`` features of the training samples.
        val: ``(m, p)`` features of the validation samples.
        weight: ``(c, p)`` last-layer weight W; logits are ``features @ W.T + bias``.
        bias: ``(c,)`` last-layer bias b.
    """

    name: str
    train: np.ndarray
    val: np.ndarray
    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self) -> None:
        for attr in ("train", "val"):
            arr = np.asarray(getattr(self, attr))
            if arr.ndim != 2:
                raise ValueError(f"{self.name}: {attr} must be 2-D (samples, features), got shape {arr.shape}")
            if not np.isfinite(arr).all():
                raise ValueError(f"{self.name}: {attr} contains NaN or Inf")
        p = np.asarray(self.train).shape[1]
        if np.asarray(self.val).shape[1] != p:
            raise ValueError(f"{self.name}: val has {np.asarray(self.val).shape[1]} features, train has {p}")
        W, b = np.asarray(self.weight), np.asarray(self.bias)
        if W.ndim != 2 or W.shape[1] != p:
            raise ValueError(f"{self.name}: weight must have shape (n_classes, {p}), got {W.shape}")
        if b.shape != (W.shape[0],):
            raise ValueError(f"{self.name}: bias must have shape ({W.shape[0]},), got {b.shape}")

    @property
    def n_features(self) -> int:
        return int(np.asarray(self.train).shape[1])

    @property
    def n_classes(self) -> int:
        return int(np.asarray(self.weight).shape[0])

    def logits(self, X: np.ndarray) -> np.ndarray:
        """``(m, c)`` logits of the original last layer on ``X: (m, p)``."""
        return np.asarray(X, dtype=np.float64) @ np.asarray(self.weight, dtype=np.float64).T + np.asarray(
            self.bias, dtype=np.float64
        )


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(m, c)`` logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """``{"accuracy", "macro_f1"}`` of integer predictions ``(m,)``."""
    return {"accuracy": accuracy(y_true, y_pred), "macro_f1": macro_f1(y_true, y_pred, n_classes)}


@dataclass(frozen=True)
class PCAReduction:
    """Top principal directions of training features: ``reduced = (X - mean) @ components``.

    ``mean: (p,)``, ``components: (p, r)`` orthonormal columns, ``variances: (r,)`` descending,
    ``explained: float`` fraction of the total variance kept.
    """

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray
    explained: float

    @property
    def rank(self) -> int:
        return int(self.components.shape[1])

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean) @ self.components


def pca_reduce(X: np.ndarray, variance: float = 0.9999, name: str = "X", keep: str = "variance") -> PCAReduction:
    """PCA of ``X: (n, p)`` keeping the fewest top directions that reach ``variance`` of the total under SVCCA's
    rule ``keep`` (``"variance"``: of the variance; ``"singular_values"``: of the sum of the singular values, the
    SVCCA appendix's); ``variance=1`` keeps every direction above the engine's relative eigenvalue cut-off."""
    if not 0.0 < variance <= 1.0:
        raise ValueError(f"variance must be in (0, 1], got {variance}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"{name} must be 2-D with at least 2 samples, got shape {X.shape}")
    mean = X.mean(axis=0)
    Xc = X - mean
    cov = Xc.T @ Xc / (X.shape[0] - 1)
    w = whiten(cov, name=name)
    if variance < 1.0:
        w = w.top(variance, keep)  # type: ignore[arg-type]
    return PCAReduction(mean=mean, components=w.eigenvectors, variances=w.eigenvalues, explained=w.explained_variance)


@dataclass(frozen=True)
class RetrainConfig:
    """Hyper-parameters for retraining a last layer (multinomial logistic regression), by default the
    original training's recipe, as the code of Moreau et al. does: Adam (L2 weight decay as in
    ``torch.optim.Adam``), mini-batches, the same epochs and learning-rate schedule.

    ``init="original"`` starts from the network's own last layer (the paper's protocol); ``init="zero"`` from a
    zero layer (a variant that measures what the projected features support on their own). The schedule
    multiplies the learning rate by ``lr_gamma`` at each of ``lr_milestones``, counted in epochs or optimizer
    steps (``lr_milestone_unit``). Mini-batch order comes from ``seed``: the result is deterministic.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    epochs: int = 40
    batch_size: int = 64
    class_weighted: bool = False
    lr_milestones: tuple[int, ...] = ()
    lr_milestone_unit: str = "epoch"
    lr_gamma: float = 0.1
    init: str = "original"
    seed: int = 0
    group_size: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr_milestones", check_recipe(self))
        if int(self.group_size) < 1:
            raise ValueError(f"group_size must be >= 1, got {self.group_size}")
        if self.init not in ("original", "zero"):
            raise ValueError(f"init must be 'original' or 'zero', got {self.init!r}")

    def lr_at(self, step: int, epoch: int) -> float:
        """Learning rate of optimizer step ``step`` (1-based) in epoch ``epoch`` (0-based)."""
        return scheduled_lr(self, step - 1, epoch)

    @classmethod
    def from_mapping(cls, d: dict[str, Any] | None) -> RetrainConfig:
        """Build from a training config's dictionary, leaving out what only the network's training uses
        (checkpoints, device, step limit, progress bars)."""
        d = dict(d or {})
        fields = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in fields})

    @classmethod
    def from_training(cls, training: dict[str, Any], overrides: dict[str, Any] | None = None) -> RetrainConfig:
        """The network's own recipe (``training``: a training config's dictionary) with ``overrides`` (a config
        table, e.g. ``[projection.retrain_hparams]``) on top; an unknown override key is an error that names it."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"unknown retrain_hparams key(s) {unknown}; expected some of {sorted(cls.__dataclass_fields__)}"
            )
        return cls.from_mapping({**training, **overrides})

    def to_dict(self) -> dict[str, Any]:
        out = {f: getattr(self, f) for f in self.__dataclass_fields__}
        out["lr_milestones"] = list(self.lr_milestones)
        return out


def train_linear_layers(
    train_sets: Sequence[np.ndarray],
    y: np.ndarray,
    n_classes: int,
    config: RetrainConfig | None = None,
    *,
    initial_layer: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train one multinomial logistic layer per feature set, all at once (batched numpy, float32).

    ``train_sets``: G arrays ``(n, p)`` of the same samples (same ``p``); ``y: (n,)`` labels in 0..c-1.
    ``initial_layer``: the network's own ``(W (c, p), b (c,))``, where every layer starts when
    ``config.init == "original"`` (required then). Returns G pairs ``(W (c, p), b (c,))``. Each problem gets
    exactly the updates of a separate run: mean (or class-weighted mean) cross-entropy over the mini-batch, L2
    weight decay added to the gradient of W and b, then Adam or SGD with momentum with the update rules of
    ``torch.optim`` (the training loop's optimizers) at the scheduled learning rate. A fixed start and a
    seeded mini-batch order make the result deterministic.
    """
    config = config or RetrainConfig()
    if len(train_sets) == 0:
        return []
    start_layer = None
    if config.init == "original":
        if initial_layer is None:
            raise ValueError("config.init='original' needs initial_layer=(W, b), the network's own last layer")
        W0 = np.asarray(initial_layer[0], dtype=np.float32)
        b0 = np.asarray(initial_layer[1], dtype=np.float32).ravel()
        p_sets = np.asarray(train_sets[0]).shape[1]
        if W0.shape != (n_classes, p_sets) or b0.shape != (n_classes,):
            raise ValueError(
                f"initial_layer must be W ({n_classes}, {p_sets}) and b ({n_classes},), got {W0.shape} and {b0.shape}"
            )
        start_layer = (W0, b0)
    y = np.asarray(y).astype(np.int64).ravel()
    shapes = {np.asarray(t).shape for t in train_sets}
    if len(shapes) != 1:
        raise ValueError(f"train_sets must all have the same shape, got {sorted(shapes)}")
    n = next(iter(shapes))[0]
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} labels but the feature sets have {n} samples")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"y must lie in 0..{n_classes - 1}")
    weights = None
    if config.class_weighted:
        counts = np.bincount(y, minlength=n_classes).astype(np.float64)
        weights = np.divide(n, n_classes * counts, out=np.zeros(n_classes), where=counts > 0).astype(np.float32)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for start in range(0, len(train_sets), config.group_size):
        group = train_sets[start : start + config.group_size]
        out.extend(_train_group(group, y, n_classes, weights, config, start_layer))
    return out


def _row_sum(P: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[..., 0] = P.sum(axis=-1)`` for ``P: (G, B, c)``, added in the order of NumPy's pairwise summation
    (eight partial sums for c >= 8, then the rest in turn): c strided additions of (G, B) slices instead of one
    reduction over a short contiguous axis, which NumPy runs element by element (3x slower at c = 10)."""
    c = P.shape[-1]
    res = out[..., 0]
    if c < 8:
        res[...] = P[..., 0]
        for k in range(1, c):
            res += P[..., k]
        return out
    r = [P[..., k].copy() for k in range(8)]
    for k in range(8, c - c % 8):
        r[k % 8] += P[..., k]
    np.add(r[0], r[1], out=r[0])
    np.add(r[2], r[3], out=r[2])
    np.add(r[4], r[5], out=r[4])
    np.add(r[6], r[7], out=r[6])
    np.add(r[0], r[2], out=r[0])
    np.add(r[4], r[6], out=r[4])
    np.add(r[0], r[4], out=res)
    for k in range(c - c % 8, c):
        res += P[..., k]
    return out


def _row_max(P: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[..., 0] = P.max(axis=-1)`` for ``P: (G, B, c)`` by c - 1 strided maxima (exact in any order)."""
    res = out[..., 0]
    res[...] = P[..., 0]
    for k in range(1, P.shape[-1]):
        np.maximum(res, P[..., k], out=res)
    return out


def _train_group(
    group: Sequence[np.ndarray],
    y: np.ndarray,
    n_classes: int,
    weights: np.ndarray | None,
    config: RetrainConfig,
    start_layer: tuple[np.ndarray, np.ndarray] | None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train one group of G problems. Every array of the loop (the logits, the gradients, Adam's moments and
    denominators) is allocated once and updated in place, W and b side by side in one ``(G, p + 1, c)`` array so
    that each elementwise step of the optimizer is one call; the arithmetic is that of the textbook update (the
    same operations in the same order and precision: float32 products and moments, Adam's step computed in
    float64 and stored in float32, as NumPy evaluates ``m / (sqrt(v) / c + eps)``)."""
    n, p = np.asarray(group[0]).shape
    G, c = len(group), n_classes
    X = np.empty((n, G, p), dtype=np.float32)  # sample-major: a mini-batch is B contiguous rows of G x p
    for g, t in enumerate(group):
        X[:, g] = t
    theta = np.zeros((G, p + 1, c), dtype=np.float32)  # [W; b]
    W, b = theta[:, :p], theta[:, p:]
    if start_layer is not None:
        W[:] = start_layer[0].T
        b[:] = start_layer[1]
    m_buf, v_buf, grad, tmp = (np.zeros_like(theta) for _ in range(4))
    wide = np.empty(theta.shape, dtype=np.float64)  # Adam's float64 step
    gW, gb = grad[:, :p], grad[:, p:]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    wd = np.float32(config.weight_decay)
    rng = np.random.default_rng(int(config.seed))
    bs = int(config.batch_size)
    step = 0
    eye = np.eye(c, dtype=np.float32)
    logits_full = np.empty((G, bs, c), dtype=np.float32)
    row_stat_full = np.empty((G, bs, 1), dtype=np.float32)
    for epoch in range(int(config.epochs)):
        perm = rng.permutation(n)
        for i in range(0, n, bs):
            rows = perm[i : i + bs]
            yb = y[rows]
            B = len(yb)
            Xb = X[rows].transpose(1, 0, 2)  # (G, B, p): one mini-batch, B contiguous rows gathered
            P = logits_full[:, :B]
            row = row_stat_full[:, :B]
            np.matmul(Xb, W, out=P)  # logits (G, B, c)
            P += b
            P -= _row_max(P, row)
            np.exp(P, out=P)
            P /= _row_sum(P, row)
            P -= eye[yb]  # d(cross-entropy)/d(logits), per sample
            if weights is None:
                P /= np.float32(B)
            else:
                wb = weights[yb]
                P *= (wb / wb.sum())[None, :, None]
            np.matmul(Xb.transpose(0, 2, 1), P, out=gW)
            np.sum(P, axis=1, keepdims=True, out=gb)
            np.multiply(theta, wd, out=tmp)
            grad += tmp
            step += 1
            lr = np.float32(config.lr_at(step, epoch))
            if config.optimizer == "adam":
                bias2 = np.sqrt(1 - beta2**step)  # a float64 scalar: the denominator is float64
                rate = lr / (1 - beta1**step)  # float32
                m_buf *= beta1
                np.multiply(grad, 1 - beta1, out=tmp)
                m_buf += tmp
                v_buf *= beta2
                np.multiply(grad, 1 - beta2, out=tmp)
                tmp *= grad
                v_buf += tmp
                np.sqrt(v_buf, out=tmp)
                np.divide(tmp, bias2, out=wide)
                wide += eps  # denom (float64)
                np.multiply(m_buf, rate, out=tmp)
                np.divide(tmp, wide, out=wide)
                np.subtract(theta, wide, out=theta, casting="same_kind")
            else:
                if step == 1:
                    m_buf[...] = grad
                else:
                    m_buf *= np.float32(config.momentum)
                    m_buf += grad
                np.multiply(m_buf, lr, out=tmp)
                theta -= tmp
    return [(W[g].T.astype(np.float64), b[g, 0].astype(np.float64)) for g in range(G)]
