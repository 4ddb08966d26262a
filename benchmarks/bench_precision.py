"""The bf16 accuracy contract on real data: predictions, AUROC and ISM of a model trained on real
GRCh37 sequence, in float32 and in bf16 (``--precision bf16``, chromtransfer.precision).

The contract (issue 17): max |delta p| <= 1e-2, AUROC within 1e-3 of float32, ISM scores' rank
correlation >= 0.99. Keys: ``bf16_max_abs_dp`` (the fused CPU path, the one ``predict`` takes;
``bf16_autocast_max_abs_dp`` for the autocast path that CUDA and gradients take),
``bf16_auroc_delta`` (|AUROC bf16 - AUROC float32|), ``bf16_ism_rank_correlation`` (Spearman
correlation of the per-base ISM scores, the smallest over the sequences; the median too).

Model: ``--model DIR`` (e.g. a fine-tuned model of examples/real_interpret.sh; ``--store`` the
store whose test split is scored), else a binary
model trained here (``--width``, ``--epochs``, ``--train-rows``; kept in ``--work`` and reused)
on the real open-chromatin windows of shared/data (Ensembl regulatory build open chromatin vs
matched non-open windows, 600 bp, GRCh37): training on chr20 and chrX, test on chr22.

Usage::

    python benchmarks/bench_precision.py [--work DIR] [--model DIR] [--ism-sequences 8] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CHROMTRANSFER_SHARED_DATA", ROOT.parent / "shared" / "data"))
TEST_CHROM = "chr22"


def build_store(work: Path, train_rows: int, seed: int) -> Path:
    """The open-chromatin store (train: chr20 + chrX, subsampled to ``train_rows``; test: chr22)."""
    import pandas as pd

    from chromtransfer.datasets.store import write_store
    from chromtransfer.genome import Genome

    store = work / "store"
    if (store / "manifest.json").exists():
        return store
    bed = pd.read_csv(SHARED / "real" / "labels" / "ensembl_open_chromatin_GRCh37.bed.gz", sep="\t", header=None,
                      names=["chrom", "start", "end", "label"])
    rng = np.random.default_rng(seed)
    test = bed["chrom"] == TEST_CHROM
    train_index = rng.permutation(np.flatnonzero(~test))[:train_rows]
    bed = pd.concat([bed.iloc[np.sort(train_index)], bed[test]], ignore_index=True)
    genome = Genome(SHARED / "real" / "genome" / "GRCh37_dev.fa.gz")
    codes = genome.fetch_many(bed["chrom"].to_numpy(object), bed["start"].to_numpy(), bed["end"].to_numpy())
    labels = (bed["label"] == "positive").to_numpy(np.int64)
    split = (bed["chrom"] == TEST_CHROM).to_numpy(np.uint8)
    fold = np.where(split == 1, -1, rng.integers(0, 3, size=len(bed))).astype(np.int8)
    return write_store(store, codes, labels, split, fold, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=str(ROOT / ".bench-precision"), help="store and trained model (reused)")
    parser.add_argument("--model", default=None, help="a model directory to use instead of training one")
    parser.add_argument("--store", default=None, help="with --model: the store whose test split is scored "
                                                      "(default: the open-chromatin store built here)")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-rows", type=int, default=2000)
    parser.add_argument("--ism-sequences", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import torch
    from scipy.stats import spearmanr

    from chromtransfer.datasets.store import open_store
    from chromtransfer.evaluation.metrics import auroc
    from chromtransfer.inference import predict_codes
    from chromtransfer.interpret.ism import ism, ism_scores
    from chromtransfer.modelio import load_model
    from chromtransfer.precision import autocast, cpu_has_native_bf16
    from chromtransfer.runtime import set_cpu_defaults

    set_cpu_defaults(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    store_path = Path(args.store) if args.store else build_store(work, args.train_rows, args.seed)
    result: dict = {"store": str(store_path), "cpu_native_bf16": cpu_has_native_bf16()}
    if args.model:
        model_dir = Path(args.model)
    else:
        from chromtransfer.training import train_model

        model_dir = work / f"model_w{args.width:g}_e{args.epochs}"
        if not (model_dir / "model.safetensors").exists():
            start = time.perf_counter()
            train_model(preset="baseline", store=str(store_path), out=str(model_dir), width=args.width,
                        max_epochs=args.epochs, device="cpu", quiet=True, resume=model_dir.exists())
            result["train_seconds"] = time.perf_counter() - start
    model = load_model(model_dir)
    store = open_store(store_path)
    rows = store.indices("test")
    codes = np.asarray(store.sequences[rows])
    labels = np.asarray(store.labels[rows])
    result.update({"model": str(model_dir), "model_width": model.config.width, "test_rows": int(rows.size),
                   "test_positives": int(labels.sum())})

    timings = {}
    probs = {}
    for name, precision, fast in (("float32", "float32", True), ("bf16", "bf16", True),
                                  ("bf16_autocast", "bf16", False)):
        start = time.perf_counter()
        probs[name] = predict_codes(model, codes, device="cpu", precision=precision, fast=fast)[:, 0]
        timings[name] = rows.size / (time.perf_counter() - start)
    result["predict_seq_per_s"] = timings
    result["auroc_float32"] = auroc(labels, probs["float32"])
    result["auroc_bf16"] = auroc(labels, probs["bf16"])
    result["bf16_max_abs_dp"] = float(np.abs(probs["bf16"] - probs["float32"]).max())
    result["bf16_autocast_max_abs_dp"] = float(np.abs(probs["bf16_autocast"] - probs["float32"]).max())
    result["bf16_auroc_delta"] = abs(result["auroc_bf16"] - result["auroc_float32"])
    result["bf16_autocast_auroc_delta"] = abs(auroc(labels, probs["bf16_autocast"]) - result["auroc_float32"])

    chosen = np.random.default_rng(args.seed).choice(rows.size, size=min(args.ism_sequences, rows.size), replace=False)
    block = codes[np.sort(chosen)]
    start = time.perf_counter()
    reference = ism(model, block, device="cpu")
    seconds32 = time.perf_counter() - start
    start = time.perf_counter()
    with torch.inference_mode(), autocast("cpu", "bf16"):
        deltas = ism(model, block, device="cpu")
    seconds16 = time.perf_counter() - start
    a, b = ism_scores(reference, block), ism_scores(deltas, block)
    rho = [float(spearmanr(a[i], b[i]).statistic) for i in range(len(block))]
    result["bf16_ism_rank_correlation"] = min(rho)
    result["bf16_ism_rank_correlation_median"] = float(np.median(rho))
    result["ism_sequences"] = int(len(block))
    result["ism_seq_per_s"] = {"float32": len(block) / seconds32, "bf16": len(block) / seconds16}
    result["contract_met"] = bool(result["bf16_max_abs_dp"] <= 1e-2 and result["bf16_auroc_delta"] <= 1e-3
                                  and result["bf16_ism_rank_correlation"] >= 0.99)
    result["torch_threads"] = torch.get_num_threads()
    for key in ("auroc_float32", "auroc_bf16", "bf16_max_abs_dp", "bf16_autocast_max_abs_dp", "bf16_auroc_delta",
                "bf16_ism_rank_correlation", "bf16_ism_rank_correlation_median", "contract_met"):
        print(f"{key} = {result[key]}")
    print(f"predict seq/s: {timings}; ISM seq/s: {result['ism_seq_per_s']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
