"""Learning dynamics of a stacked LSTM language model (Raghu et al. 2017, App. 6): a character-level
:class:`~ccalens.models.nets.CharLSTM` trained on the Python Language Reference's help topics
(:func:`ccalens.data.text.load_python_reference`, shipped with Python) with the one trainer
(:func:`ccalens.models.loop.train_network`, next-character cross-entropy at every position), checkpoints every
``checkpoint_every`` steps; then, for each LSTM layer and checkpoint, SVCCA of its hidden states on the held-out
windows (every position a sample) with the same layer's hidden states at the last checkpoint
(:func:`~ccalens.experiments.learning_dynamics.learning_dynamics`, activations through the one capture path)."""

from __future__ import annotations

import copy
import functools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ccalens.core.validation import SVCCA_THRESHOLD, SvccaRule

__all__ = ["CORPORA", "LanguageModelConfig", "held_out_loss", "language_model_dynamics"]

CORPORA = ("python_reference",)


@dataclass(frozen=True)
class LanguageModelConfig:
    """``[language_model]``: the corpus (``python_reference``: ``pydoc_data.topics``), ``seq_len``-character
    windows (``train_sequences`` for training, ``probe_sequences`` held out for SVCCA), the model (``embedding``,
    ``hidden``, ``layers`` >= 2 stacked LSTMs), its recipe (Adam ``lr``, ``batch_size``, ``epochs``, ``seed``), a
    checkpoint every ``checkpoint_every`` steps (at most ``max_checkpoints`` analysed), the SVCCA rule (``keep``,
    ``threshold``) and the ``levels`` of SVCCA to the final representation whose first step the report gives."""

    corpus: str = "python_reference"
    seq_len: int = 16
    train_sequences: int = 2400
    probe_sequences: int = 512
    embedding: int = 16
    hidden: int = 64
    layers: int = 3
    epochs: int = 6
    batch_size: int = 16
    lr: float = 0.02
    lr_milestones: tuple[int, ...] = (4, 5)
    lr_gamma: float = 0.3
    seed: int = 0
    checkpoint_every: int = 45
    max_checkpoints: int = 41
    keep: str = "singular_values"
    threshold: float = SVCCA_THRESHOLD
    levels: tuple[float, ...] = (0.9, 0.95)

    def __post_init__(self) -> None:
        if self.corpus not in CORPORA:
            raise ValueError(f"corpus must be one of {list(CORPORA)}, got {self.corpus!r}")
        for key in ("seq_len", "train_sequences", "probe_sequences", "embedding", "hidden", "epochs", "batch_size",
                    "checkpoint_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.layers < 2:
            raise ValueError(f"layers must be >= 2 (a stacked LSTM), got {self.layers}")
        if self.max_checkpoints < 2:
            raise ValueError(f"max_checkpoints must be >= 2, got {self.max_checkpoints}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        SvccaRule(self.keep, self.threshold)  # the one validation of SVCCA's rule
        if not self.levels or any(not 0 < v <= 1 for v in self.levels) or list(self.levels) != sorted(
                set(self.levels)):
            raise ValueError(f"levels must be increasing numbers in (0, 1], got {list(self.levels)}")


def held_out_loss(model: Any, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(cross-entropy in nats per character, next-character accuracy)`` of ``model`` on windows ``X, y: (n, T)``
    (logits through :func:`ccalens.models.inference.predict_logits`)."""
    from ccalens.models.inference import predict_logits

    logits = predict_logits(model, X).astype(np.float64)  # (n, T, V)
    z = logits.reshape(-1, logits.shape[-1])
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    target = np.ravel(y)
    return float(-logp[np.arange(target.size), target].mean()), float(np.mean(z.argmax(axis=1) == target))


def _train(corpus: Any, cfg: LanguageModelConfig, checkpoint_dir: str | os.PathLike[str]) -> tuple[Any, Any]:
    from ccalens.models.loop import train_network
    from ccalens.models.nets import CharLSTM
    from ccalens.models.train_config import TrainConfig

    recipe = TrainConfig(optimizer="adam", lr=cfg.lr, batch_size=cfg.batch_size, epochs=cfg.epochs,
                         lr_milestones=cfg.lr_milestones, lr_gamma=cfg.lr_gamma, lr_milestone_unit="epoch",
                         checkpoint_every=cfg.checkpoint_every, progress=False)
    return train_network(lambda: CharLSTM(corpus.vocab_size, cfg.embedding, cfg.hidden, cfg.layers),
                         (corpus.X_train, corpus.y_train), (corpus.X_val, corpus.y_val), recipe, seed=cfg.seed,
                         checkpoint_dir=checkpoint_dir)


def language_model_dynamics(cfg: LanguageModelConfig, checkpoint_dir: str | os.PathLike[str], *,
                            progress: bool = False, workers: Any = None) -> dict[str, Any]:
    """Train the model (checkpoints under ``checkpoint_dir``) and measure its learning dynamics (the checkpoints
    split over ``workers``, a :class:`~ccalens.experiments.parallel.Workers`, when given). Returns
    ``{"corpus": source info, "training": per-epoch history, "held_out": {"loss", "accuracy",
    "unigram_loss", "bigram_loss"} (nats per character; unigram: the training text's character frequencies;
    bigram: its next-character frequencies given the current character), "dynamics":
    learning_dynamics' dict over the LSTM layers, "convergence": convergence_steps' rows, "levels"}``."""
    from ccalens.data.text import bigram_cross_entropy, load_python_reference, unigram_cross_entropy
    from ccalens.experiments.learning_dynamics import convergence_steps, learning_dynamics, spread_checkpoints
    from ccalens.models.checkpoints import list_checkpoints

    corpus = load_python_reference(seq_len=cfg.seq_len, n_train=cfg.train_sequences, n_val=cfg.probe_sequences)
    model, history = _train(corpus, cfg, checkpoint_dir)
    loss, acc = held_out_loss(model, corpus.X_val, corpus.y_val)
    ckpts = spread_checkpoints(list_checkpoints(checkpoint_dir), cfg.max_checkpoints)
    ld = learning_dynamics(functools.partial(copy.deepcopy, model), ckpts, corpus.X_val, model.feature_layer_names(),
                           keep=cfg.keep, threshold=cfg.threshold, progress=progress, tokens=True, workers=workers)
    return {"corpus": {**corpus.source, "vocab_size": corpus.vocab_size, "train_sequences": len(corpus.X_train),
                       "probe_sequences": len(corpus.X_val), "probe_tokens": int(corpus.X_val.size)},
            "model": {"layers": cfg.layers, "hidden": cfg.hidden, "embedding": cfg.embedding,
                      "parameters": int(sum(p.numel() for p in model.parameters()))},
            "training": {"epoch": history.epoch, "step": history.step, "train_loss": history.train_loss,
                         "val_accuracy": history.val_accuracy, "total_steps": history.total_steps,
                         "wall_time_s": history.wall_time_s},
            "held_out": {"loss": loss, "accuracy": acc,
                         "unigram_loss": unigram_cross_entropy(corpus.y_train, corpus.y_val, corpus.vocab_size),
                         "bigram_loss": bigram_cross_entropy(corpus.X_train, corpus.y_train, corpus.X_val,
                                                             corpus.y_val, corpus.vocab_size)},
            "dynamics": ld, "convergence": convergence_steps(ld, cfg.levels), "levels": list(cfg.levels)}
