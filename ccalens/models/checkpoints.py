"""Checkpoints of a training run: ``checkpoint_dir/step_{step:08d}.pt``, written atomically (temporary file +
``os.replace``), each a dict with ``model`` (state dict), ``optimizer``, ``step``, ``epoch``, ``batch_in_epoch``,
``loss_sum``, ``loss_count``, ``rng_state``, ``history`` and ``config``: tensors and plain Python data only, so
that they load with ``torch.load(weights_only=True)``, the only way this module loads them (a checkpoint holding
anything else, e.g. a planted pickle that would run code, is refused with a ValueError naming the file).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ccalens.io import save_torch

__all__ = ["check_resumable", "checkpoint_path", "list_checkpoints", "load_checkpoint", "save_checkpoint"]

_CHECKPOINT_PREFIX = "step_"
# Fields that must agree between a checkpoint and the config of the run that resumes it.
_RESUME_FIELDS = (
    "optimizer",
    "lr",
    "weight_decay",
    "momentum",
    "batch_size",
    "class_weighted",
    "seed",
    "lr_milestones",
    "lr_milestone_unit",
    "lr_gamma",
)




def list_checkpoints(checkpoint_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, path)`` of the checkpoints in a folder, in step order."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.glob(f"{_CHECKPOINT_PREFIX}*.pt"):
        stem = p.stem[len(_CHECKPOINT_PREFIX) :]
        if stem.isdigit():
            found.append((int(stem), p))
    return sorted(found)


_CHECKPOINT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "model": dict,
    "optimizer": dict,
    "step": int,
    "epoch": int,
    "batch_in_epoch": int,
    "loss_sum": (float, int),
    "loss_count": int,
    "rng_state": torch.Tensor,
    "history": dict,
    "config": dict,
}


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None) -> dict[str, Any]:
    """Read a checkpoint (a dict, see the module docstring); with ``model``, also load its weights into it.

    Loaded with ``torch.load(weights_only=True)`` only (tensors and plain data; never arbitrary pickled objects):
    a file holding anything else, or missing a field, raises a one-line ValueError naming it.
    """
    path = Path(path)
    fix = f"delete the checkpoint folder {path.parent} (or re-train with resume=False)"
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"checkpoint {path} was refused: it holds more than tensors and plain data, which could run code when "
            f"loaded ({reason[:200]}); {fix}"
        ) from e
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"checkpoint {path} is not a readable torch checkpoint ({type(e).__name__}); {fix}") from e
    if not isinstance(ckpt, dict):
        raise ValueError(f"checkpoint {path} must hold a dict, got {type(ckpt).__name__}; {fix}")
    for key, kind in _CHECKPOINT_FIELDS.items():
        if key not in ckpt:
            raise ValueError(f"checkpoint {path} has no {key!r} field; {fix}")
        if not isinstance(ckpt[key], kind) or isinstance(ckpt[key], bool):
            raise ValueError(f"checkpoint {path}: field {key!r} has the wrong type {type(ckpt[key]).__name__}; {fix}")
    if model is not None:
        try:
            model.load_state_dict(ckpt["model"])
        except (RuntimeError, KeyError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"checkpoint {path} does not fit the model ({first[:200]}); {fix}") from e
    return ckpt



def checkpoint_path(checkpoint_dir: str | os.PathLike, step: int) -> Path:
    """``checkpoint_dir/step_{step:08d}.pt``."""
    return Path(checkpoint_dir) / f"{_CHECKPOINT_PREFIX}{int(step):08d}.pt"


def save_checkpoint(checkpoint_dir: str | os.PathLike, step: int, state: Mapping[str, Any]) -> Path:
    """Write ``state`` (tensors and plain data only, see the module docstring) atomically as the checkpoint of
    ``step``; returns its path."""
    missing = [key for key in _CHECKPOINT_FIELDS if key not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks the field(s) {missing}")
    return save_torch(checkpoint_path(checkpoint_dir, step), dict(state))


def check_resumable(
    saved_config: Mapping[str, Any], config: Mapping[str, Any], checkpoint_dir: str | os.PathLike
) -> None:
    """Raise a ValueError naming the fields when a checkpoint's training config differs from the resuming run's in
    what changes the result (optimizer, learning rate and schedule, batch size, seed, ...)."""
    mismatched = [f for f in _RESUME_FIELDS if f in saved_config and saved_config[f] != config[f]]
    if mismatched:
        raise ValueError(
            f"checkpoint_dir {checkpoint_dir} holds a run with a different config "
            f"({', '.join(mismatched)}); use another folder or resume=False"
        )
