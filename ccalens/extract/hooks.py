"""Activations out of PyTorch models by module name: forward hooks, eval mode, no_grad, aligned sample ids.

``extract(model, data, ["layer1", "fc"])`` runs the model over the data in batches (eval mode, no
gradients, on the chosen device), captures the output of each named module with a forward hook, and
returns them with the sample id of every row, in memory or written to an :class:`ActivationStore`
(resumable). torch is imported inside the functions, so ``ccalens.extract`` imports without it.

The code lives in one module per job: :mod:`.naming` (layer names), :mod:`.batching` (data into batches),
:mod:`.capture` (hooks, the batch loop), :mod:`.results` and :mod:`.extraction` (``extract``); this module
gathers their public names.
"""

from __future__ import annotations

from ._exports import HOOKS
from .capture import ActivationBatch, LayerCapture, LayerSummary, describe_layers, iter_activations
from .extraction import extract
from .naming import LayerNotFoundError, list_layers, model_fingerprint
from .results import Activations, StoredActivations

__all__ = [  # the same names as _exports.HOOKS, which ccalens.extract offers lazily
    "ActivationBatch",
    "Activations",
    "LayerCapture",
    "LayerNotFoundError",
    "LayerSummary",
    "StoredActivations",
    "describe_layers",
    "extract",
    "iter_activations",
    "list_layers",
    "model_fingerprint",
]
assert set(__all__) == set(HOOKS)
