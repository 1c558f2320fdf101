"""A real text corpus that ships with Python: the help topics of the Python Language Reference
(``pydoc_data.topics``, the text ``help("if")`` shows; Python Software Foundation License), for the
character-level language model of the SVCCA paper's App. 6.

The corpus is the topics' texts in the order of their sorted names, joined by blank lines (79 topics, 465,126
characters on Python 3.11.7). It is the same on every machine with the same Python version; :class:`TextCorpus`
records the version, the character count and the SHA-256 of the text so a run says which text it used.

Split: fixed, no randomness. Topic ``i`` (in sorted order) is held out when ``i % val_every == val_every - 1``;
the rest is the training text. Windows of ``seq_len + 1`` characters are cut at multiples of ``seq_len``; input
= the first ``seq_len`` characters, target = the next character at each position. ``n_train`` (``n_val``)
windows are taken evenly spaced over the training (held-out) text, so they cover all of it. The vocabulary is
the training text's characters, sorted, after id 0, which stands for a character the training text lacks.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass, field

import numpy as np

__all__ = ["TextCorpus", "bigram_cross_entropy", "load_python_reference", "unigram_cross_entropy"]

UNKNOWN = "\x00"  # id 0: a held-out character that the training text lacks


@dataclass(frozen=True)
class TextCorpus:
    """Windows of a character corpus. ``X_*``: ``(n, seq_len)`` int64 ids; ``y_*``: ``(n, seq_len)`` the next
    character's id at each position; ``vocab``: the characters, id order (``vocab[0]`` = unknown)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    vocab: str
    source: dict[str, object] = field(default_factory=dict)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)


def _windows(ids: np.ndarray, seq_len: int, n: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``n`` windows ``(X, y)`` evenly spaced over ``ids``, starting at multiples of ``seq_len``."""
    total = (ids.size - 1) // seq_len
    if total < n:
        raise ValueError(f"the {what} text has {total} windows of {seq_len} characters, fewer than the {n} asked")
    starts = np.unique(np.linspace(0, total - 1, n).astype(np.int64)) * seq_len
    rows = starts[:, None] + np.arange(seq_len + 1)[None, :]
    block = ids[rows]
    return block[:, :-1].copy(), block[:, 1:].copy()


def load_python_reference(seq_len: int = 32, n_train: int = 2400, n_val: int = 64,
                          val_every: int = 10) -> TextCorpus:
    """The Python Language Reference's help topics as ``n_train`` training and ``n_val`` held-out windows of
    ``seq_len`` characters (see the module docstring for the split)."""
    from pydoc_data.topics import topics

    for key, value in (("seq_len", seq_len), ("n_train", n_train), ("n_val", n_val), ("val_every", val_every)):
        if int(value) < (2 if key == "val_every" else 1):
            raise ValueError(f"{key} must be >= {2 if key == 'val_every' else 1}, got {value}")
    names = sorted(topics)
    held = [i % val_every == val_every - 1 for i in range(len(names))]
    train_text = "\n\n".join(topics[k] for k, h in zip(names, held, strict=True) if not h)
    val_text = "\n\n".join(topics[k] for k, h in zip(names, held, strict=True) if h)
    vocab = UNKNOWN + "".join(sorted(set(train_text) - {UNKNOWN}))
    index = {c: i for i, c in enumerate(vocab)}

    def encode(text: str) -> np.ndarray:
        return np.fromiter((index.get(c, 0) for c in text), dtype=np.int64, count=len(text))

    full = "\n\n".join(topics[k] for k in names)
    X_train, y_train = _windows(encode(train_text), seq_len, n_train, "training")
    X_val, y_val = _windows(encode(val_text), seq_len, n_val, "held-out")
    source = {"name": "pydoc_data.topics (Python Language Reference help topics)",
              "python": platform.python_version(), "topics": len(names), "held_out_topics": int(sum(held)),
              "characters": len(full), "train_characters": len(train_text), "held_out_characters": len(val_text),
              "sha256": hashlib.sha256(full.encode("utf-8")).hexdigest(), "seq_len": int(seq_len),
              "val_every": int(val_every)}
    return TextCorpus(X_train, y_train, X_val, y_val, vocab, source)


def unigram_cross_entropy(y_train: np.ndarray, y_test: np.ndarray, vocab_size: int) -> float:
    """Cross-entropy (nats per character) on ``y_test`` of the training characters' frequencies (add-one
    smoothed): what a model that ignores the context scores, the baseline of a language model's loss."""
    counts = np.bincount(np.ravel(y_train), minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[np.ravel(y_test)].mean())


def bigram_cross_entropy(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
                         vocab_size: int) -> float:
    """Cross-entropy (nats per character) on ``(X_test, y_test)`` of the training pairs' next-character
    frequencies given the current character (add-one smoothed): a model whose context is one character, the
    baseline a language model must beat to show it uses a longer context. ``X_*, y_*: (n, T)`` ids."""
    counts = np.ones((vocab_size, vocab_size))
    np.add.at(counts, (np.ravel(X_train), np.ravel(y_train)), 1.0)
    logp = np.log(counts / counts.sum(axis=1, keepdims=True))
    return float(-logp[np.ravel(X_test), np.ravel(y_test)].mean())
