"""Benchmark of the training data loader: sequences per second from a dataset store.

Writes a store of random 600 bp windows (``--rows``, in a temporary folder; 120 MB at 200,000
rows) and reads it the way ``train`` does (:func:`chromtransfer.training.data.make_loader`:
shuffled global batches of 256 rows, one positioned read per run of consecutive rows, uint8 codes
and int64 labels), with 0 and 2 worker processes by default. Two rates per setting:

* ``loader``: batches delivered to the training loop (codes moved to the device; on a GPU with
  pinned memory and a non-blocking copy);
* ``loader+one_hot``: the same plus the one-hot encoding the training module does on the device
  (on the CPU this is CPU work that a GPU would take over).

The store is read once before timing, so its pages are in the kernel's page cache (a store that
fits in memory, as the training sets do; a cold read from disk is the disk's speed). The top-level
``loader_seq_per_s`` is the best ``loader`` rate over the settings tried.

Usage::

    python benchmarks/bench_loader.py [--rows 200000] [--batches 300] [--workers 0 2]
        [--device cpu|cuda] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _write_store(path: Path, rows: int, length: int, seed: int):
    from chromtransfer.datasets.store import StoreWriter, open_store

    rng = np.random.default_rng(seed)
    with StoreWriter(path, rows, length) as writer:
        for lo in range(0, rows, 50_000):
            hi = min(lo + 50_000, rows)
            writer.sequences[lo:hi] = rng.integers(0, 4, size=(hi - lo, length), dtype=np.uint8)
        labels = rng.integers(0, 2, size=rows)
        writer.finish(labels, np.zeros(rows, np.uint8), rng.integers(0, 10, size=rows).astype(np.int8),
                      _regions(rows), task="binary", classes=["negative", "positive"])
    return open_store(path)


def _regions(rows: int):
    import pandas as pd

    return pd.DataFrame({"name": [f"r{i}" for i in range(rows)]})


def _measure(store, rows: np.ndarray, batch: int, batches: int, workers: int, device, one_hot_too: bool) -> float:
    import torch

    from chromtransfer.encoding import one_hot
    from chromtransfer.training.data import make_loader

    cuda = device.type == "cuda"
    loader = make_loader(store, rows, batch, shuffle=True, seed=0, num_workers=workers, pin_memory=cuda)
    iterator = iter(loader)
    next(iterator)  # worker start-up is not counted
    seen = 0
    start = time.perf_counter()
    for _ in range(batches):
        try:
            codes, labels, _ = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            codes, labels, _ = next(iterator)
        codes = codes.to(device, non_blocking=cuda)
        labels = labels.to(device, non_blocking=cuda)
        if one_hot_too:
            x = one_hot(codes)
            del x
        seen += codes.shape[0]
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    del iterator, loader
    return seen / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--length", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=300, help="timed batches per setting")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--store", default=None, help="an existing store to read instead of a random one")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import torch

    from chromtransfer.datasets.store import open_store

    device = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        if args.store:
            store = open_store(args.store)
        else:
            start = time.perf_counter()
            store = _write_store(Path(tmp) / "store", args.rows, args.length, seed=0)
            print(f"wrote a store of {args.rows} x {args.length} in {time.perf_counter() - start:.1f} s")
        rows = np.arange(store.n_rows, dtype=np.int64)
        np.asarray(np.load(Path(store.path) / "sequences.npy", mmap_mode="r")).sum()  # into the page cache
        results = {"rows": int(store.n_rows), "length": int(store.length), "batch_size": args.batch_size,
                   "batches": args.batches, "device": str(device), "cpu_count": os.cpu_count(),
                   "torch_threads": torch.get_num_threads(), "settings": []}
        for workers in args.workers:
            for one_hot_too in (False, True):
                rate = _measure(store, rows, args.batch_size, args.batches, workers, device, one_hot_too)
                label = "loader+one_hot" if one_hot_too else "loader"
                results["settings"].append({"workers": workers, "what": label, "sequences_per_second": rate})
                print(f"{label:<16} workers {workers}: {rate:>10.0f} sequences/s")
    loader_rates = [s["sequences_per_second"] for s in results["settings"] if s["what"] == "loader"]
    results["loader_seq_per_s"] = max(loader_rates)
    results["loader_onehot_seq_per_s"] = max(s["sequences_per_second"] for s in results["settings"]
                                             if s["what"] == "loader+one_hot")
    print(f"loader_seq_per_s = {results['loader_seq_per_s']:.0f}  "
          f"(with one-hot on {device}: {results['loader_onehot_seq_per_s']:.0f})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
