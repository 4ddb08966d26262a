"""Benchmark of in-silico saturation mutagenesis: the receptive-field ISM against full forward passes.

Times, on the same sequences and the published network (width 1.0, fine-tuning head):

* ``fast``: :func:`chromtransfer.interpret.ism.ism` (only the changed window of every layer is
  recomputed per mutant);
* ``naive``: :func:`chromtransfer.interpret.ism.naive_ism` (the whole network on every mutant,
  batched);
* ``tangermeme``, ``tangermeme_fastism``: tangermeme's ``saturation_mutagenesis`` with
  ``fast=False`` and ``fast=True`` (its generic fastISM over a ``torch.export`` graph), when
  tangermeme is importable (the benchmark environment ``.venv-bench`` has it; see below).

Every result is compared with ``naive``: ``fast`` must agree within 1e-5 (the script fails
otherwise); tangermeme's differences are reported. The speed-up ``ism_speedup`` is naive time over
fast time (wall clock, best of ``--repeats``); CPU time is reported too, since on a shared
machine it is the steadier measure.

Weights are random (He-normal convolutions, BatchNorm statistics drawn at random) unless
``--model`` names a model directory: the cost does not depend on the values.

Usage::

    python benchmarks/bench_ism.py [--sequences 4] [--length 600] [--threads 1] [--repeats 1]
                                   [--device cpu] [--model DIR] [--json results.json]

With tangermeme (installed into .venv-bench next to the CPU torch wheel)::

    .venv-bench/bin/pip install torch tangermeme
    PYTHONPATH=src .venv-bench/bin/python benchmarks/bench_ism.py --sequences 8 --json ism.json
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from chromtransfer.encoding import N_CODE, one_hot  # noqa: E402
from chromtransfer.interpret.ism import ism, naive_ism  # noqa: E402
from chromtransfer.models import build_model  # noqa: E402

TOLERANCE = 1e-5


def random_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("finetune", width=1.0)
    generator = torch.Generator().manual_seed(seed + 1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) * 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return model.eval()


def bench_model(path: str | None, seed: int, device: torch.device) -> torch.nn.Module:
    """The model of ``--model`` (in eval mode), else :func:`random_model` of ``seed``, on ``device``."""
    if path:
        from chromtransfer.modelio import load_model

        return load_model(path, device=device)
    return random_model(seed).to(device)


def timed(function, repeats: int, device: torch.device):
    """Best wall-clock and CPU seconds over ``repeats`` runs, and the last result."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        if device.type == "cuda":
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), result


class _Output(torch.nn.Module):
    """The attributed output as a ``(B, 1)`` tensor, for tangermeme."""

    def __init__(self, model: torch.nn.Module, target: str):
        super().__init__()
        self.model = model
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return logits if self.target == "logit" else torch.sigmoid(logits)


def tangermeme_ism(model, codes: np.ndarray, target: str, fast: bool, batch_size: int, device) -> tuple[np.ndarray, str]:
    """tangermeme's saturation_mutagenesis deltas as ``(N, L, 4)``, and how it ran."""
    from tangermeme.saturation_mutagenesis import saturation_mutagenesis

    x = one_hot(torch.from_numpy(codes), torch.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y0, y_hat = saturation_mutagenesis(_Output(model, target), x, batch_size=batch_size, raw_outputs=True,
                                           fast=fast, device=str(device), verbose=False)
    notes = "; ".join(str(w.message).splitlines()[0] for w in caught)
    delta = (y_hat[..., 0] - y0[:, None, None, 0]).permute(0, 2, 1)  # (N, L, 4)
    return delta.float().cpu().numpy(), notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=4)
    parser.add_argument("--length", type=int, default=600)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128, help="mutants per batch of the fast ISM")
    parser.add_argument("--naive-batch-size", type=int, default=32, help="mutants per forward pass (naive)")
    parser.add_argument("--target", choices=["probability", "logit"], default="probability")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=None, help="model directory (default: random weights)")
    parser.add_argument("--skip-tangermeme", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = bench_model(args.model, args.seed, device)
    rng = np.random.default_rng(args.seed)
    codes = rng.integers(0, 4, size=(args.sequences, args.length)).astype(np.uint8)
    codes[:, rng.integers(0, args.length, size=3)] = N_CODE
    mutants = int((3 * (codes < N_CODE) + 4 * (codes == N_CODE)).sum())

    # warm-up of both code paths (allocator, kernel selection)
    ism(model, codes[:1, :64], target=args.target, device=device)
    naive_ism(model, codes[:1, :16], target=args.target, device=device)
    results: dict[str, dict] = {}
    wall, cpu, reference = timed(lambda: naive_ism(model, codes, target=args.target, batch_size=args.naive_batch_size,
                                                   device=device), args.repeats, device)
    results["naive"] = {"wall_s": wall, "cpu_s": cpu, "max_abs_diff": 0.0, "notes": ""}
    wall, cpu, fast = timed(lambda: ism(model, codes, target=args.target, batch_size=args.batch_size,
                                        device=device), args.repeats, device)
    results["fast"] = {"wall_s": wall, "cpu_s": cpu, "max_abs_diff": float(np.abs(fast - reference).max()),
                       "notes": ""}
    tangermeme_version = None
    if not args.skip_tangermeme:
        try:
            import tangermeme

            tangermeme_version = getattr(tangermeme, "__version__", "unknown")
        except ImportError:
            print("tangermeme is not importable here: its rows are skipped (see the module docstring)")
    if tangermeme_version is not None:
        for name, fast_flag in (("tangermeme", False), ("tangermeme_fastism", True)):
            wall, cpu, (delta, notes) = timed(
                lambda: tangermeme_ism(model, codes, args.target, fast_flag, args.naive_batch_size, device),
                args.repeats, device)
            results[name] = {"wall_s": wall, "cpu_s": cpu, "max_abs_diff": float(np.abs(delta - reference).max()),
                             "notes": notes}

    print(f"ISM of {args.sequences} x {args.length} bp ({mutants} mutants), width 1.0, {args.target}, "
          f"device {device}, torch threads {torch.get_num_threads()}")
    print(f"{'method':<20} {'wall s':>8} {'cpu s':>8} {'mutants/s':>10} {'x naive':>8} {'max |diff|':>11}")
    for name, row in results.items():
        row["mutants_per_s"] = mutants / row["wall_s"]
        row["speedup_vs_naive"] = results["naive"]["wall_s"] / row["wall_s"]
        row["cpu_speedup_vs_naive"] = results["naive"]["cpu_s"] / row["cpu_s"]
        print(f"{name:<20} {row['wall_s']:>8.2f} {row['cpu_s']:>8.2f} {row['mutants_per_s']:>10.0f} "
              f"{row['speedup_vs_naive']:>8.2f} {row['max_abs_diff']:>11.2e}")
        if row["notes"]:
            print(f"    {name}: {row['notes']}")
    summary = {
        "sequences": args.sequences,
        "length": args.length,
        "mutants": mutants,
        "target": args.target,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "naive_batch_size": args.naive_batch_size,
        "weights": args.model or f"random (seed {args.seed})",
        "methods": results,
        "ism_speedup": results["naive"]["wall_s"] / results["fast"]["wall_s"],
        "ism_speedup_cpu": results["naive"]["cpu_s"] / results["fast"]["cpu_s"],
        "tolerance": TOLERANCE,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "tangermeme": tangermeme_version, "machine": platform.machine(),
                     "processor": platform.processor()},
    }
    for name in ("tangermeme", "tangermeme_fastism"):
        if name in results:
            summary[f"speedup_vs_{name}"] = results[name]["wall_s"] / results["fast"]["wall_s"]
    print(f"ism_speedup (naive / fast, wall): {summary['ism_speedup']:.2f}   cpu: {summary['ism_speedup_cpu']:.2f}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(summary, indent=2) + "\n")
    if results["fast"]["max_abs_diff"] > TOLERANCE:
        print(f"FAILED: fast ISM differs from naive ISM by {results['fast']['max_abs_diff']:.3e} > {TOLERANCE}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
