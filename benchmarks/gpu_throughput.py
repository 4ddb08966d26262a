"""GPU throughput of the full network: training and inference at fp32, TF32 and bf16, and ISM.

Run by ``benchmarks/gpu_check.sh`` on a machine with an NVIDIA GPU (refuses to run without CUDA).

* **training step**: forward + backward + Adam (``fused=True``) on a batch of ``--train-batch``
  (256) 600 bp sequences, one-hot made on the GPU inside the step, binary cross-entropy on the
  logits; the published network (``width 1``, pre-training head), training mode.
* **inference**: probabilities for a batch of ``--infer-batch`` (1024), eval mode, no gradients.
* precisions: ``fp32`` (TF32 off), ``tf32`` (TF32 matmuls and cuDNN convolutions),
  ``bf16`` (``torch.autocast(bfloat16)`` over TF32); with ``--compile`` also ``bf16+compile``
  (``torch.compile`` of the model; its compile time is reported apart and the variant is kept
  only where it is faster).
* **ISM**: :func:`chromtransfer.interpret.ism.ism` (incremental, float32) of ``--ism-sequences``
  600 bp sequences, sequences/s.

Each configuration is warmed up, then timed for at least ``--seconds`` of GPU work (synchronised).
Usage::

    python benchmarks/gpu_throughput.py [--seconds 3] [--compile] [--json out.json]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np
import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(step, seconds: float, device: torch.device, warmup: int = 3) -> tuple[float, int]:
    for _ in range(warmup):
        step()
    _sync(device)
    calls, start = 0, time.perf_counter()
    while True:
        step()
        calls += 1
        if calls % 5 == 0:
            _sync(device)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return elapsed, calls


@contextlib.contextmanager
def _precision(name: str, device: torch.device):
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    tf32 = name != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        if name.startswith("bf16"):
            with torch.autocast(device.type, dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=600)
    parser.add_argument("--train-batch", type=int, default=256)
    parser.add_argument("--infer-batch", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed GPU seconds per configuration")
    parser.add_argument("--compile", action="store_true", help="also try torch.compile (bf16)")
    parser.add_argument("--ism-sequences", type=int, default=4)
    parser.add_argument("--json", default=None)
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # cpu: a smoke run of the script
    parser.add_argument("--width", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: gpu_throughput.py needs CUDA (an NVIDIA GPU and a CUDA build of torch)")

    from chromtransfer.encoding import one_hot
    from chromtransfer.interpret.ism import ism
    from chromtransfer.models import ChromTransferNet

    torch.backends.cudnn.benchmark = True
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    codes = torch.from_numpy(rng.integers(0, 4, size=(args.infer_batch, args.length), dtype=np.uint8)).to(device)
    labels = torch.from_numpy(rng.integers(0, 2, size=(args.train_batch, 1)).astype(np.float32)).to(device)
    results: dict = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "torch": torch.__version__,
                     "cuda": torch.version.cuda, "length": args.length, "train_batch": args.train_batch,
                     "infer_batch": args.infer_batch, "training": {}, "inference": {}}

    if device.type == "cuda":
        variants = ["fp32", "tf32", "bf16"] + (["bf16+compile"] if args.compile else [])
    else:  # the smoke run of the script (bf16 on the CPU is not what this measures)
        variants = ["fp32"] + (["fp32+compile"] if args.compile else [])
    def save() -> None:
        """Write what is measured so far (a run stopped by a time limit keeps it)."""
        for kind in ("training", "inference"):
            if results[kind]:
                best = max(results[kind], key=lambda v: results[kind][v]["sequences_per_second"])
                results[f"{kind}_best"] = {"variant": best, **results[kind][best]}
        if "bf16" in results["training"]:
            results["train_bf16_seq_per_s"] = results["training"]["bf16"]["sequences_per_second"]
            results["infer_bf16_seq_per_s"] = results["inference"]["bf16"]["sequences_per_second"]
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")

    def measure(variant: str) -> None:
        torch.manual_seed(0)
        model = ChromTransferNet(head="pretrain", width=args.width).to(device)
        runner = model
        compile_seconds = None
        start = time.perf_counter()
        if variant.endswith("+compile"):
            runner = torch.compile(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=device.type == "cuda")
        loss_fn = torch.nn.BCEWithLogitsLoss()
        train_codes = codes[:args.train_batch]

        def train_step():
            optimizer.zero_grad(set_to_none=True)
            with _precision(variant, device):
                loss = loss_fn(runner(one_hot(train_codes)).float(), labels)
            loss.backward()
            optimizer.step()

        model.train()
        if variant.endswith("+compile"):
            train_step()
            _sync(device)
            compile_seconds = time.perf_counter() - start
        elapsed, calls = _timed(train_step, args.seconds, device)
        results["training"][variant] = {"sequences_per_second": calls * args.train_batch / elapsed,
                                        "compile_seconds": compile_seconds}
        model.eval()

        def infer_step():
            with torch.no_grad(), _precision(variant, device):
                torch.sigmoid(runner(one_hot(codes)).float())

        if variant.endswith("+compile"):
            start = time.perf_counter()
            infer_step()
            _sync(device)
            results["inference_compile_seconds"] = time.perf_counter() - start
        elapsed, calls = _timed(infer_step, args.seconds, device)
        results["inference"][variant] = {"sequences_per_second": calls * args.infer_batch / elapsed}
        print(f"{variant:<14} train {results['training'][variant]['sequences_per_second']:>10.0f} seq/s   "
              f"infer {results['inference'][variant]['sequences_per_second']:>10.0f} seq/s", flush=True)
        save()

    # Plain variants, then ISM, then torch.compile (whose compile time may run into the limit).
    for variant in [v for v in variants if not v.endswith("+compile")]:
        measure(variant)

    torch.manual_seed(0)
    model = ChromTransferNet(head="finetune-bn", width=args.width).eval()
    ism_codes = rng.integers(0, 4, size=(args.ism_sequences, args.length), dtype=np.uint8)
    ism(model, ism_codes[:1], device=device, batch_size=512)  # warm-up
    _sync(device)
    start = time.perf_counter()
    ism(model, ism_codes, device=device, batch_size=512)
    _sync(device)
    results["ism_seq_per_s"] = args.ism_sequences / (time.perf_counter() - start)
    print(f"ism            {results['ism_seq_per_s']:.2f} sequences/s ({args.length} bp, all 3 x L mutants)")
    save()

    for variant in [v for v in variants if v.endswith("+compile")]:
        measure(variant)


if __name__ == "__main__":
    main()
