"""Layer activations of a model for the SVCCA studies, and the pair score they share (DESIGN.md section 5).

Layer activations come from :func:`ccalens.extract.extract` on the modules named by
:func:`ccalens.models.named_feature_layers` plus the classifier (:data:`LOGITS`). Convolutional outputs
``(N, C, H, W)`` are averaged over positions (the "pooled" convention of DESIGN.md section 2, ``(N, C)``) or kept
as maps for DFT-CCA.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["LOGITS", "layer_activations", "pair_score"]

LOGITS = "logits"


def layer_activations(
    model: Any, X: Any, layers: Sequence[str], *, batch_size: int = 512, conv: str = "pooled", tokens: bool = False
) -> dict[str, np.ndarray]:
    """Outputs of the named sub-modules (and ``"logits"``) on ``X: (n, ...)`` through :func:`ccalens.extract.extract`
    (eval mode, no_grad, modes and hooks restored): name -> ``(n, d)``, or ``(n, C, H, W)`` for conv maps when
    ``conv="maps"`` (for DFT-CCA); ``conv="pooled"`` averages them over positions. ``tokens=True``: ``X: (n, T)``
    token ids, every position a sample: name -> ``(n * T, d)`` (a sequence model's hidden states, e.g. an LSTM's
    ``(batch, T, d)`` output)."""
    from ccalens.extract import extract

    if conv not in ("pooled", "maps"):
        raise ValueError(f"conv must be 'pooled' or 'maps', got {conv!r}")
    names = ["output" if nm == LOGITS else nm for nm in layers]
    inputs = np.asarray(X, dtype=np.int64) if tokens else np.asarray(X, dtype=np.float32)
    acts = extract(model, inputs, names, batch_size=batch_size, progress=False, tokens=tokens,
                   transform="mean" if conv == "pooled" and not tokens else None)
    return {nm: np.asarray(acts["output" if nm == LOGITS else nm], dtype=np.float64) for nm in layers}


def pair_score(A: np.ndarray, B: np.ndarray, measure: str, keep: str, threshold: float) -> tuple[Any, str]:
    """``measure`` of two activations and the convention used: the Fourier one (DFT-CCA, SVCCA appendix C) when
    both are conv maps, else dense (a map against a vector: the map pooled over positions, its zero frequency). A
    measure with a Parseval form (:data:`ccalens.conv.PARSEVAL_MEASURES`: linear CKA) stays in the Fourier
    convention whenever one side is a map: the vector is a ``1 x 1`` map, the map's norm keeps all its frequencies."""
    from ccalens.conv import PARSEVAL_MEASURES, conv_similarity
    from ccalens.core import measures

    options: dict[str, Any] = measures.REGISTRY[measure].rule_options(keep, threshold)
    one_map = A.ndim == 4 or B.ndim == 4
    if (A.ndim == 4 and B.ndim == 4) or (one_map and measure in PARSEVAL_MEASURES):
        return conv_similarity(A, B, convention="dft", measure=measure, **options), "dft"
    pooled = [Z.mean(axis=(2, 3)) if Z.ndim == 4 else Z for Z in (A, B)]
    convention = "pooled" if one_map else "dense"
    return measures.MEASURES[measure](*pooled, **options), convention
