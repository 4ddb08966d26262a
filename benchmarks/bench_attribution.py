"""Benchmark of DeepLIFT/SHAP contributions: chromtransfer's against tangermeme's own call.

Times, on the same sequences and the same network (the published width 1.0, fine-tuning head):

* ``ours``: :func:`chromtransfer.interpret.deeplift.deeplift_shap` (the DeepLIFT-safe copy of the
  network, dinucleotide-shuffled references seeded per sequence, hypothetical contributions and
  the convergence delta of every sequence);
* ``tangermeme``: ``tangermeme.deep_lift_shap`` called directly on the loaded model, as its
  documentation shows (its own shuffles, ``hypothetical=True``), with the same number of
  references and pairs per pass.

Both run ``2 * references`` network passes (forward and backward) per sequence; the difference is
the overhead of the copy, the references and the convergence bookkeeping. To show both compute
the same thing, tangermeme is run once more on *our* references: the largest difference of the
hypothetical contributions is reported (``max_abs_diff_same_references``; the script fails above
1e-4 of the largest contribution). The convergence deltas of ours are summarised too.

Weights are random (He-normal convolutions, BatchNorm statistics drawn at random) unless
``--model`` names a model directory: the cost does not depend on the values.

Usage::

    python benchmarks/bench_attribution.py [--sequences 4] [--length 600] [--references 20]
        [--batch-size 128] [--threads N] [--repeats 1] [--device cpu] [--model DIR] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
from bench_ism import bench_model, timed  # noqa: E402  (the same network choice and timer)

from chromtransfer.encoding import one_hot  # noqa: E402
from chromtransfer.interpret.deeplift import (  # noqa: E402
    TargetOutput,
    convergence_summary,
    deeplift_shap,
    dinucleotide_references,
)

AGREEMENT = 1e-4  # relative to the largest contribution


def tangermeme_call(model, x: torch.Tensor, target: str, references, n_shuffles: int, batch_size: int, seed: int,
                    device) -> np.ndarray:
    """tangermeme's deep_lift_shap hypothetical contributions, ``(N, L, 4)``."""
    from tangermeme.deep_lift_shap import deep_lift_shap

    kwargs = {"references": references} if references is not None else {"n_shuffles": n_shuffles,
                                                                         "random_state": seed}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = deep_lift_shap(TargetOutput(model, target, False, 0).eval(), x, hypothetical=True,
                             batch_size=batch_size, device=device, verbose=False, **kwargs)
    return out.permute(0, 2, 1).float().cpu().numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=4)
    parser.add_argument("--length", type=int, default=600)
    parser.add_argument("--references", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128, help="sequence-reference pairs per pass")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--target", choices=["probability", "logit"], default="logit")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=None, help="model directory (default: random weights)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)

    import tangermeme

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = bench_model(args.model, args.seed, device)
    codes = np.random.default_rng(args.seed).integers(0, 4, size=(args.sequences, args.length)).astype(np.uint8)
    x = one_hot(torch.from_numpy(codes), torch.float32)
    r, n = args.references, args.sequences

    # warm-up of both paths (allocator, kernel selection, the shuffle's compilation)
    deeplift_shap(model, codes[:1, :64], target=args.target, references=2, device=device)
    tangermeme_call(model, x[:1, :, :64], args.target, None, 2, args.batch_size, args.seed, device)
    wall, cpu, ours = timed(lambda: deeplift_shap(model, codes, target=args.target, references=r, seed=args.seed,
                                                  batch_size=args.batch_size, device=device), args.repeats, device)
    results = {"ours": {"wall_s": wall, "cpu_s": cpu}}
    wall, cpu, _ = timed(lambda: tangermeme_call(model, x, args.target, None, r, args.batch_size, args.seed, device),
                         args.repeats, device)
    results["tangermeme"] = {"wall_s": wall, "cpu_s": cpu}
    refs = dinucleotide_references(x, r, args.seed)
    same = tangermeme_call(model, x, args.target, refs, r, args.batch_size, args.seed, device)
    scale = float(np.abs(ours.hypothetical).max())
    max_diff = float(np.abs(same - ours.hypothetical).max())
    convergence = convergence_summary(ours.delta, ours.output_difference)

    print(f"DeepLIFT/SHAP of {n} x {args.length} bp, {r} references, width 1.0, {args.target}, device {device}, "
          f"torch threads {torch.get_num_threads()}, tangermeme {tangermeme.__version__}")
    print(f"{'implementation':<14} {'wall s':>8} {'cpu s':>8} {'s/seq':>8} {'cpu s/seq':>10}")
    for name, row in results.items():
        row["s_per_seq"] = row["wall_s"] / n
        row["cpu_s_per_seq"] = row["cpu_s"] / n
        print(f"{name:<14} {row['wall_s']:>8.2f} {row['cpu_s']:>8.2f} {row['s_per_seq']:>8.3f} "
              f"{row['cpu_s_per_seq']:>10.3f}")
    print(f"same references: max |ours - tangermeme| = {max_diff:.2e} (largest contribution {scale:.2e}); "
          f"convergence: {convergence['within_tolerance']}/{convergence['sequences']} within tolerance, "
          f"max |delta| {convergence['max_abs']:.2e}")
    summary = {
        "sequences": n,
        "length": args.length,
        "references": r,
        "batch_size": args.batch_size,
        "target": args.target,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "weights": args.model or f"random (seed {args.seed})",
        "implementations": results,
        "deeplift_shap_s_per_seq": results["ours"]["s_per_seq"],
        "deeplift_shap_cpu_s_per_seq": results["ours"]["cpu_s_per_seq"],
        "tangermeme_s_per_seq": results["tangermeme"]["s_per_seq"],
        "tangermeme_cpu_s_per_seq": results["tangermeme"]["cpu_s_per_seq"],
        "overhead_vs_tangermeme": results["ours"]["wall_s"] / results["tangermeme"]["wall_s"],
        "overhead_vs_tangermeme_cpu": results["ours"]["cpu_s"] / results["tangermeme"]["cpu_s"],
        "max_abs_diff_same_references": max_diff,
        "largest_contribution": scale,
        "convergence": convergence,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "tangermeme": tangermeme.__version__, "machine": platform.machine()},
    }
    print(f"overhead vs tangermeme (wall): {summary['overhead_vs_tangermeme']:.2f}   "
          f"cpu: {summary['overhead_vs_tangermeme_cpu']:.2f}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(summary, indent=2) + "\n")
    if max_diff > AGREEMENT * max(scale, 1e-12):
        print(f"FAILED: ours and tangermeme's differ by {max_diff:.3e} on the same references")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
