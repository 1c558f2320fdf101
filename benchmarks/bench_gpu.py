"""Device benchmark (issue #24): the measures on torch tensors, each timed against one torch GEMM of the same data
on the same device in the same run, with the peak device memory and the speed-up over the NumPy backend.

    python -m benchmarks.bench_gpu                 # the issue's sizes, on CUDA when there is one
    python -m benchmarks.bench_gpu --quick         # small sizes (seconds; also on CPU torch)
    python -m benchmarks.bench_gpu --device cpu --quick

The device is detected (``cuda`` when ``torch.cuda.is_available()``, else ``cpu``) and written in the results with
its name. Cases:

* tall: ``X: (n, p)``, ``Y: (n, q)`` float32 tensors; CCA, SVCCA, PWCCA, linear CKA and Procrustes, each from the
  tensors (co-moments multiplied on the device, :mod:`ccalens.core.device`); references: one ``Z' Z`` of the
  stacked data in float32 and in float64 (the CCA family multiplies in float64, linear CKA in float32 chunks);
* many: ``similarity_matrix`` of L representations (linear CKA, SVCCA) from one joint pass on the device;
  reference: one float32 ``Z' Z`` of the L stacked representations;
* compare_models: two GPT-2-shaped models (``transformers``, random weights) over ``tokens`` tokens, every block's
  output against every block's, SVCCA; reference: the two models' forward passes alone (what the statistics add
  is the difference).

Every timing is the best of ``--repeats``, interleaved with its reference (reference, measure, reference, ...),
synchronised with the device. Not yet on the device (they copy the tensors to the host, as the docs say): the
sample-space (Gram) path of wide layers, DFT-CCA and the bootstrap; they are left out of this benchmark until
they are. Results: ``benchmarks/results/gpu.json``.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.bench_core import interleaved
from ccalens.io import write_json

PAIR_MEASURES = ("cca", "svcca", "pwcca", "linear_cka", "procrustes")


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_on(device: Any, fn: Callable[[], object], reference: Callable[[], object],
                   repeats: int) -> tuple[float, float]:
    """:func:`benchmarks.bench_core.interleaved` of ``fn`` and ``reference``, each call ending with the device
    synchronised (so a timing includes the queued device work, and the next call starts on an idle device)."""

    def synced(call: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            call()
            _sync(device)

        return run

    _sync(device)
    return interleaved(synced(fn), synced(reference), repeats)


def peak_memory(device: Any, fn: Callable[[], object]) -> int | None:
    """Peak device memory (bytes) allocated while ``fn`` runs above what was allocated before (CUDA; None on CPU)."""
    import torch

    if device.type != "cuda":
        fn()
        return None
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - before)


def correlated_tensors(n: int, widths: list[int], device: Any, seed: int = 0) -> list[Any]:
    """float32 tensors on ``device`` sharing a 64-d latent signal plus noise and an offset (as ReLU features)."""
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)
    latent = torch.randn(n, 64, generator=g).to(device)
    out = []
    for d in widths:
        mix = torch.randn(64, d, generator=g).to(device)
        out.append(latent @ mix + torch.randn(n, d, generator=g).to(device) + 0.5)
    return out


def _float64_gemm_seconds(Z: Any, device: Any, repeats: int) -> float:
    """Best time of one float64 ``Z' Z`` of ``Z`` (converted once, outside the timing)."""
    wide = Z.double()
    _, seconds = interleaved_on(device, lambda: None, lambda: wide.T @ wide, repeats)
    return seconds


def bench_tall(n: int, p: int, q: int, device: Any, repeats: int, with_numpy: bool) -> dict[str, Any]:
    import torch

    import ccalens

    X, Y = correlated_tensors(n, [p, q], device)
    Z = torch.cat([X, Y], dim=1)
    gemm32 = lambda: Z.T @ Z  # noqa: E731
    # the float64 reference on a quarter of the rows (a float64 copy of all of them may not fit), times 4
    rows = max(1, n // 4)
    quarter = _float64_gemm_seconds(Z[:rows], device, repeats)
    gemm64 = quarter * n / rows
    out: dict[str, Any] = {"n": n, "p": p, "q": q, "dtype": "float32", "gemm64_seconds": gemm64, "measures": {}}
    for name in PAIR_MEASURES:
        fn = lambda name=name: ccalens.MEASURES[name](X, Y)  # noqa: E731
        seconds, ref32 = interleaved_on(device, fn, gemm32, repeats)
        out["measures"][name] = {"seconds": seconds, "gemm32_seconds": ref32, "ratio_to_gemm32": seconds / ref32,
                                 "ratio_to_gemm64": seconds / gemm64, "peak_device_bytes": peak_memory(device, fn)}
    if with_numpy:
        Xh, Yh = X.cpu().numpy(), Y.cpu().numpy()
        for name in PAIR_MEASURES:
            start = time.perf_counter()
            ccalens.MEASURES[name](Xh, Yh)
            host = time.perf_counter() - start
            out["measures"][name]["numpy_seconds"] = host
            out["measures"][name]["speedup_over_numpy"] = host / out["measures"][name]["seconds"]
    return out


def bench_many(n: int, layers: int, width: int, device: Any, repeats: int) -> dict[str, Any]:
    import torch

    import ccalens

    reps = correlated_tensors(n, [width] * layers, device, seed=1)
    Z = torch.cat(reps, dim=1)
    gemm = lambda: Z.T @ Z  # noqa: E731
    out: dict[str, Any] = {"n": n, "layers": layers, "width": width, "measures": {}}
    for name in ("linear_cka", "svcca"):
        fn = lambda name=name: ccalens.similarity_matrix(reps, name)  # noqa: E731
        seconds, ref = interleaved_on(device, fn, gemm, repeats)
        out["measures"][name] = {"seconds": seconds, "gemm32_seconds": ref, "ratio_to_gemm32": seconds / ref,
                                 "peak_device_bytes": peak_memory(device, fn)}
    return out


def bench_compare_models(tokens: int, sequence: int, width: int, blocks: int, device: Any,
                         repeats: int) -> dict[str, Any] | None:
    try:
        import torch
        from transformers import GPT2Config, GPT2Model
    except ImportError:  # pragma: no cover - transformers is an optional dependency
        return None
    from ccalens.extract import compare_models

    config = GPT2Config(n_embd=width, n_layer=blocks, n_head=max(1, width // 64), n_positions=sequence,
                        vocab_size=50257)
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(GPT2Model(config).to(device).eval())
    batch = max(1, 8192 // sequence)
    g = torch.Generator(device="cpu").manual_seed(2)
    n_batches = max(1, tokens // (batch * sequence))
    data = [{"input_ids": torch.randint(0, 50257, (batch, sequence), generator=g).to(device),
             "attention_mask": torch.ones(batch, sequence, dtype=torch.long, device=device)}
            for _ in range(n_batches)]
    layers = [f"h.{k}" for k in range(blocks)]

    def forwards() -> None:
        with torch.no_grad():
            for b in data:
                for model in models:
                    model(**b)

    fn = lambda: compare_models(models[0], models[1], data, layers_a=layers, layers_b=layers,  # noqa: E731
                                measure="svcca")
    seconds, ref = interleaved_on(device, fn, forwards, repeats)
    return {"tokens": n_batches * batch * sequence, "width": width, "blocks": blocks, "seconds": seconds,
            "forward_seconds": ref, "ratio_to_forwards": seconds / ref, "peak_device_bytes": peak_memory(device, fn)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when available)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-numpy", action="store_true", help="skip the NumPy backend's timings")
    parser.add_argument("--out", default="benchmarks/results/gpu.json")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # sample-size warnings are expected on the synthetic data
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device: {device} ({name})")
    if args.quick:
        tall, many, lm = (20_000, 256, 256), (5_000, 6, 128), (8_192, 64, 128, 2)
    else:
        tall, many, lm = (1_000_000, 2048, 2048), (50_000, 48, 1024), (1_000_000, 768, 1024, 12)
    report: dict[str, Any] = {"device": str(device), "device_name": name, "torch": torch.__version__,
                              "numpy": np.__version__, "quick": bool(args.quick)}
    report["tall"] = bench_tall(*tall, device, args.repeats, not args.no_numpy)
    report["many"] = bench_many(*many, device, args.repeats)
    tokens, width, sequence, blocks = lm
    report["compare_models"] = bench_compare_models(tokens, sequence, width, blocks, device, args.repeats)
    for case in ("tall", "many"):
        for measure, row in report[case]["measures"].items():
            extra = f", {row['speedup_over_numpy']:.1f}x numpy" if "speedup_over_numpy" in row else ""
            print(f"{case:5s} {measure:11s} {row['seconds']:.3f} s = {row['ratio_to_gemm32']:.2f}x float32 GEMM"
                  f"{extra}")
    if report["compare_models"] is not None:
        cm = report["compare_models"]
        print(f"compare_models {cm['tokens']} tokens: {cm['seconds']:.2f} s = {cm['ratio_to_forwards']:.2f}x the "
              "forward passes")
    write_json(args.out, report)
    return report


if __name__ == "__main__":
    main()
