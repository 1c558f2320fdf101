"""Train one :class:`ViewMLP` per (view, seed) on a multi-view data set (the bundled UCI multiple-features digits
on the command line), each with :func:`ccalens.models.loop.train_network`, the trainer the experiment runner uses.

``python -m ccalens.models.train_multiview --out DIR [--views fou pix] [--seeds 0 1] [--epochs 40]``

For each run ``{view}_seed{seed}`` it writes, atomically, into ``out_dir``:

- ``{view}_seed{seed}.pt``: the model's state dict (it takes RAW view features: the train mean/std are stored
  in its ``input_mean`` / ``input_std`` buffers) plus its constructor arguments;
- ``{view}_seed{seed}.npz``: ``features_train (1500, 128)``, ``features_val (500, 128)`` (penultimate, eval
  mode), ``logits_train``, ``logits_val``, ``y_train``, ``y_val``, ``train_idx``, ``val_idx``, ``input_mean``,
  ``input_std``, ``classifier_weight (10, 128)``, ``classifier_bias (10,)``;
- ``{view}_seed{seed}.json``: accuracy / macro F1 on train and validation, the config and the history;

and ``summary.json`` with every run's metrics. The return value is that summary as a dict.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ccalens.io import save_npz, save_torch, write_json
from ccalens.metrics import accuracy, macro_f1
from ccalens.models.inference import extract_penultimate, predict_logits
from ccalens.models.loop import train_network
from ccalens.models.nets import ViewMLP
from ccalens.models.train_config import TrainConfig

__all__ = ["MultiViewData", "main", "run_name", "train_multiview"]


class MultiViewData(Protocol):
    """What :func:`train_multiview` reads of a data set (e.g. :class:`ccalens.data.multiview.MultiViewDataset`):
    ``views[v]: (n_samples, d_v)``, ``labels: (n_samples,)``, index arrays ``train_idx`` / ``val_idx``."""

    views: Any
    labels: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    n_classes: int
    view_names: Sequence[str]
    description: Any


def run_name(view: str, seed: int) -> str:
    """File stem of one run, e.g. ``'fou_seed0'``."""
    return f"{view}_seed{int(seed)}"


def train_multiview(
    out_dir: str | os.PathLike,
    data: MultiViewData,
    seeds: Sequence[int] = (0, 1),
    config: TrainConfig | None = None,
    progress: bool = True,
    num_threads: int | None = 1,
) -> dict[str, Any]:
    """Train a ViewMLP for every view and seed; save weights, features, logits and metrics to ``out_dir``.

    data: the views and labels, every view trained (e.g. ``load_multiple_features(["fou", "pix"])``); seeds:
    initialisation / shuffling seeds (``config.seed`` is replaced by each seed); config: default
    :meth:`TrainConfig.multiview_default`. num_threads: torch intra-op threads while training (the MLPs are
    too small to gain from more; on a busy machine extra threads only spin; None = leave as is).
    Returns the summary dict also written to ``summary.json``:
    ``{'out_dir', 'views', 'seeds', 'config', 'wall_time_s', 'runs': [{'view', 'seed', 'name', 'val_accuracy',
    'val_macro_f1', 'train_accuracy', 'train_macro_f1', 'wall_time_s', 'weights', 'arrays', 'metrics'}]}``.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must contain at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds contains duplicates: {seeds}")
    base = config if config is not None else TrainConfig.multiview_default()
    if not isinstance(base, TrainConfig):
        raise TypeError(f"config must be a TrainConfig or None, got {type(base).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    previous_threads = torch.get_num_threads()
    if num_threads is not None:
        if int(num_threads) < 1:
            raise ValueError(f"num_threads must be None or >= 1, got {num_threads}")
        torch.set_num_threads(int(num_threads))
    try:
        return _train_all(data, out, seeds, base, progress)
    finally:
        torch.set_num_threads(previous_threads)


def _view_mlp(in_features: int, n_classes: int, mean: np.ndarray, std: np.ndarray) -> ViewMLP:
    """A ViewMLP that standardises its raw inputs with the training ``mean`` and ``std`` (``(in_features,)``)."""
    model = ViewMLP(in_features, n_classes)
    model.set_input_normalization(mean, std)
    return model


def _train_all(data: Any, out: Path, seeds: list[int], base: TrainConfig, progress: bool) -> dict[str, Any]:
    y_train, y_val = data.labels[data.train_idx], data.labels[data.val_idx]
    runs = []
    t_all = time.perf_counter()
    for view in data.view_names:
        X = data.views[view]
        X_train, X_val = X[data.train_idx], X[data.val_idx]
        mean = X_train.mean(axis=0, dtype=np.float64).astype(np.float32)
        std = X_train.std(axis=0, dtype=np.float64).astype(np.float32)
        std[std <= 0] = 1.0
        for seed in seeds:
            t0 = time.perf_counter()
            cfg = TrainConfig(**{**base.to_dict(), "seed": seed, "progress": progress})
            make_model = functools.partial(_view_mlp, X.shape[1], data.n_classes, mean, std)
            model, history = train_network(make_model, (X_train, y_train), (X_val, y_val), cfg, seed=seed)
            logits_train = predict_logits(model, X_train)
            logits_val = predict_logits(model, X_val)
            name = run_name(view, seed)
            metrics = {
                "view": view,
                "seed": seed,
                "name": name,
                "description": data.description[view],
                "n_features": int(X.shape[1]),
                "train_accuracy": accuracy(y_train, logits_train.argmax(1)),
                "train_macro_f1": macro_f1(y_train, logits_train.argmax(1), data.n_classes),
                "val_accuracy": accuracy(y_val, logits_val.argmax(1)),
                "val_macro_f1": macro_f1(y_val, logits_val.argmax(1), data.n_classes),
                "config": cfg.to_dict(),
                "history": history.to_dict(),
            }
            weights = save_torch(
                out / f"{name}.pt",
                {
                    "state_dict": model.state_dict(),
                    "kwargs": {
                        "in_features": model.in_features,
                        "n_classes": model.n_classes,
                        "hidden": list(model.hidden),
                    },
                },
            )
            arrays = save_npz(
                out / f"{name}.npz",
                features_train=extract_penultimate(model, X_train),
                features_val=extract_penultimate(model, X_val),
                logits_train=logits_train,
                logits_val=logits_val,
                y_train=y_train,
                y_val=y_val,
                train_idx=data.train_idx,
                val_idx=data.val_idx,
                input_mean=mean,
                input_std=std,
                classifier_weight=model.classifier.weight.detach().cpu().numpy(),
                classifier_bias=model.classifier.bias.detach().cpu().numpy(),
            )
            metrics_path = write_json(out / f"{name}.json", metrics)
            wall = time.perf_counter() - t0
            runs.append(
                {
                    "view": view,
                    "seed": seed,
                    "name": name,
                    "val_accuracy": metrics["val_accuracy"],
                    "val_macro_f1": metrics["val_macro_f1"],
                    "train_accuracy": metrics["train_accuracy"],
                    "train_macro_f1": metrics["train_macro_f1"],
                    "wall_time_s": wall,
                    "weights": str(weights),
                    "arrays": str(arrays),
                    "metrics": str(metrics_path),
                }
            )
            if progress:
                print(
                    f"{name:>12s}: val accuracy {metrics['val_accuracy']:.3f}, "
                    f"macro F1 {metrics['val_macro_f1']:.3f} ({wall:.1f} s)",
                    flush=True,
                )
    summary = {
        "out_dir": str(out),
        "views": list(data.view_names),
        "seeds": seeds,
        "config": base.to_dict(),
        "wall_time_s": time.perf_counter() - t_all,
        "runs": runs,
    }
    write_json(out / "summary.json", summary)
    return summary


def load_view_model(path: str | os.PathLike) -> ViewMLP:
    """Rebuild a ViewMLP saved by :func:`train_multiview` (``{view}_seed{seed}.pt``), in eval mode."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = ViewMLP(**blob["kwargs"])
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: train the multi-view networks and print a table of validation scores."""
    parser = argparse.ArgumentParser(
        prog="python -m ccalens.models.train_multiview", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--views", nargs="+", default=None, help="views among fou fac kar pix zer mor (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="seeds (default: 0 1)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the multiview preset)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    overrides = {} if args.epochs is None else {"epochs": args.epochs}
    from ccalens.data.multiview import load_multiple_features  # the command line's data set; the module takes any

    summary = train_multiview(
        args.out,
        load_multiple_features(args.views),
        seeds=args.seeds,
        config=TrainConfig.multiview_default(**overrides),
        progress=not args.no_progress,
    )
    print(f"{'run':>12s}  val_acc  val_F1")
    for r in summary["runs"]:
        print(f"{r['name']:>12s}  {r['val_accuracy']:.3f}    {r['val_macro_f1']:.3f}")
    print(f"total {summary['wall_time_s']:.1f} s; results in {summary['out_dir']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
