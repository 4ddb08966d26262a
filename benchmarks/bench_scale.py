"""Memory of training on a store of the paper's size: peak resident memory of ``chromtransfer train``.

Builds (or reuses) a synthetic store of ``--rows`` x ``--length`` uint8 codes (default 7,000,000 x
600 = 4.2 GB, the size of the pre-training set: ~2.2 M rDHSs plus ~4.8 M background windows) with
:class:`chromtransfer.datasets.store.StoreWriter`, in chunks of random codes, random labels, a
validation fold of ``--valid-rows`` rows (fold 0) and every other row in fold 1. Then, each in its
own child process whose resident memory is polled from ``/proc/PID/status`` (VmRSS, and its split
into anonymous and file-backed pages) and whose high-water mark ``ru_maxrss`` is read when it ends
(``os.wait4``):

* ``train``: ``chromtransfer train --preset pretrain --fold 0 --limit-train-batches N`` on the big
  store: one epoch slice of N global batches drawn from the permutation of all training rows,
  then validation on fold 0 and the export;
* ``train_small``: the same command on a store of ``--small-rows`` rows, so that the difference
  between the two peaks is what the store's size costs (the rest is Python, torch, Lightning and
  the network's activations);
* ``epoch_reads``: a whole epoch of the training loader (every training row read once, in
  shuffled global batches, no network): the data path alone over a full epoch;
* ``epoch_reads_memmap`` (``--compare-memmap``): the same epoch read by fancy-indexing a memory map
  of ``sequences.npy``, for comparison: the pages of a mapping that an epoch touches are counted in
  the process's resident memory.

The network's width (``--width``, default 0.25) and the batch size (``--batch-size``, default
256, the pre-training preset's) set the activation memory of the training children, which on a GPU
lives in device memory; the published width 1.0 on the CPU needs several GB of activations at batch
256 for reasons unrelated to the store. The point here is the data path: the store is read with
positioned reads, so its size must not show up in the resident memory.

Usage::

    python benchmarks/bench_scale.py [--workdir /tmp/chromtransfer-scale] [--rows 7000000]
        [--limit-train-batches 50] [--keep] [--json scale.json]

Checks free disk space first; removes the stores unless ``--keep`` (an existing store of the same
shape in ``--workdir`` is reused).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

GB = 1024**3


# ---------------------------------------------------------------------------------------------
# Building the stores
# ---------------------------------------------------------------------------------------------
def build_store(path: Path, rows: int, length: int, valid_rows: int, seed: int = 0,
                chunk_rows: int = 250_000) -> dict:
    """Write a synthetic binary store of random codes; returns timing and size facts.

    ``chunk_rows`` rows at a time: random bytes masked to 0..3 and written into the store's
    memory-mapped ``sequences.npy``, flushed chunk by chunk.
    """
    import numpy as np
    import pandas as pd

    from chromtransfer.datasets.store import StoreWriter

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    with StoreWriter(path, rows, length) as writer:
        for first in range(0, rows, chunk_rows):
            last = min(first + chunk_rows, rows)
            block = np.frombuffer(rng.bytes((last - first) * length), dtype=np.uint8)
            writer.sequences[first:last] = (block & 3).reshape(last - first, length)
            writer.sequences.flush()
        labels = rng.integers(0, 2, size=rows, dtype=np.int32)
        split = np.zeros(rows, dtype=np.uint8)
        fold = np.ones(rows, dtype=np.int8)
        fold[rng.choice(rows, size=min(valid_rows, rows - 2), replace=False)] = 0
        regions = pd.DataFrame({"name": pd.RangeIndex(rows).astype(str)})
        writer.finish(labels, split, fold, regions, task="binary", classes=["negative", "positive"],
                      seed=seed, extra={"synthetic": "bench_scale random codes"})
    return {"seconds": time.perf_counter() - start, "bytes": _size(path)}


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def _reusable(path: Path, rows: int, length: int) -> bool:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return manifest.get("rows") == rows and manifest.get("length") == length


# ---------------------------------------------------------------------------------------------
# Measuring a child process
# ---------------------------------------------------------------------------------------------
def _status_kib(pid: int) -> dict[str, int]:
    values = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    values[key] = int(rest.split()[0])
    except (OSError, ValueError):
        pass
    return values


def measure(command: list[str], env: dict[str, str], interval_s: float = 0.05) -> dict:
    """Run ``command``; its wall time and peak resident memory.

    ``ru_maxrss_gb`` is the child's own high-water mark (``os.wait4``); the ``peak_rss*`` values
    come from polling ``/proc/PID/status`` and split it into anonymous and file-backed pages.
    (The high-water mark of a child also covers the moment it was forked, so this script keeps its
    own memory small: the stores are built in a child process too.)
    """
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
        peaks = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0, "RssShmem": 0}
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                for key, value in _status_kib(process.pid).items():
                    peaks[key] = max(peaks[key], value)
                stop.wait(interval_s)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        poller.join()
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])} ... failed ({process.returncode}):\n{stderr[-3000:]}")
    maxrss_kib = usage.ru_maxrss // (1024 if sys.platform == "darwin" else 1)
    return {
        "seconds": seconds,
        "ru_maxrss_gb": maxrss_kib / 2**20,
        "peak_rss_gb": peaks["VmRSS"] / 2**20,
        "peak_rss_anon_gb": peaks["RssAnon"] / 2**20,
        "peak_rss_file_gb": peaks["RssFile"] / 2**20,
        "stdout": stdout.strip().splitlines()[-3:],
    }


_EPOCH_READS = r"""
import sys, time
import numpy as np
from chromtransfer.datasets.store import open_store
from chromtransfer.training.data import make_loader, split_rows
store = open_store(sys.argv[1])
train, _ = split_rows(store, 0, 0)
mode, batch = sys.argv[2], int(sys.argv[3])
start, rows, checksum = time.perf_counter(), 0, 0
if mode == "pread":
    for codes, labels, total in make_loader(store, train, batch, shuffle=True, seed=0):
        rows += len(labels); checksum += int(codes[:, 0].sum())
else:  # fancy indexing of a memory map, as numpy.load(mmap_mode="r") gives it
    order = train[np.random.default_rng([0, 0]).permutation(len(train))]
    for first in range(0, len(order), batch):
        codes = np.asarray(store.sequences[np.sort(order[first:first + batch])])
        rows += len(codes); checksum += int(codes[:, 0].sum())
print(f"rows {rows} seconds {time.perf_counter() - start:.1f} checksum {checksum}")
"""


# ---------------------------------------------------------------------------------------------
def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as handle:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), None)
        with open("/proc/meminfo") as handle:
            info["memory_gb"] = round(int(handle.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("chromtransfer", "numpy", "torch", "lightning"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--build"]:  # internal: build one store (in a child process)
        path, rows, length, valid = argv[1], *map(int, argv[2:5])
        build_store(Path(path), rows, length, valid)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="/tmp/chromtransfer-scale")
    parser.add_argument("--rows", type=int, default=7_000_000)
    parser.add_argument("--length", type=int, default=600)
    parser.add_argument("--valid-rows", type=int, default=10_000,
                        help="rows of validation fold 0 (validated on in full after the slice)")
    parser.add_argument("--small-rows", type=int, default=20_000, help="rows of the comparison store")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--limit-train-batches", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-epoch-reads", action="store_true", help="skip the full-epoch read pass")
    parser.add_argument("--compare-memmap", action="store_true",
                        help="also read a full epoch through a memory map (RSS grows with the file)")
    parser.add_argument("--keep", action="store_true", help="keep the stores in --workdir")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    big, small = workdir / f"store_{args.rows}x{args.length}", workdir / f"store_{args.small_rows}x{args.length}"
    needed = args.rows * args.length * 1.1 + 0.5 * GB
    free = shutil.disk_usage(workdir).free
    if not _reusable(big, args.rows, args.length) and free < needed:
        raise SystemExit(f"{workdir}: {free / GB:.1f} GB free, the store needs {needed / GB:.1f} GB; "
                         "choose another --workdir or fewer --rows")

    env = dict(os.environ, PYTHONWARNINGS="ignore")
    results: dict = {"rows": args.rows, "length": args.length, "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "machine": machine_info(), "versions": versions(),
                     "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    try:
        for path, rows in ((big, args.rows), (small, args.small_rows)):
            key = "store" if path == big else "small_store"
            if _reusable(path, rows, args.length):
                results[key] = {"reused": True, "bytes": _size(path)}
            else:
                print(f"building {path} ({rows:,} x {args.length}) ...", flush=True)
                built = measure([sys.executable, __file__, "--build", str(path), str(rows), str(args.length),
                                 str(min(args.valid_rows, rows // 10))], env)
                results[key] = {"reused": False, "seconds": built["seconds"], "bytes": _size(path)}
        train = [sys.executable, "-m", "chromtransfer.cli", "train", "--preset", "pretrain", "--fold", "0",
                 "--width", str(args.width), "--batch-size", str(args.batch_size), "--max-epochs", "1",
                 "--limit-train-batches", str(args.limit_train_batches), "--device", args.device,
                 "--seed", "0", "-q", "--export", "last"]
        with tempfile.TemporaryDirectory(dir=workdir) as runs:
            stages = {}
            print("training on the big store ...", flush=True)
            stages["train"] = measure(train + ["--data", str(big), "-o", f"{runs}/big"], env)
            print("training on the small store ...", flush=True)
            stages["train_small"] = measure(train + ["--data", str(small), "-o", f"{runs}/small"], env)
            if not args.no_epoch_reads:
                print("one epoch of reads ...", flush=True)
                stages["epoch_reads"] = measure([sys.executable, "-c", _EPOCH_READS, str(big), "pread",
                                                 str(args.batch_size)], env)
            if args.compare_memmap:
                print("one epoch of memory-mapped reads ...", flush=True)
                stages["epoch_reads_memmap"] = measure([sys.executable, "-c", _EPOCH_READS, str(big), "memmap",
                                                        str(args.batch_size)], env)
        results["stages"] = stages
        results["peak_rss_gb"] = max(stages["train"]["ru_maxrss_gb"], stages["train"]["peak_rss_gb"])
        results["store_size_cost_gb"] = results["peak_rss_gb"] - max(stages["train_small"]["ru_maxrss_gb"],
                                                                     stages["train_small"]["peak_rss_gb"])
    finally:
        if not args.keep:
            for path in (big, small):
                shutil.rmtree(path, ignore_errors=True)

    print(f"\nstore: {args.rows:,} x {args.length} uint8 = {results['store']['bytes'] / GB:.2f} GB"
          + (f" (built in {results['store']['seconds']:.0f} s)" if "seconds" in results["store"] else " (reused)"))
    print(f"{'stage':<20} {'seconds':>8} {'ru_maxrss GB':>13} {'peak RSS GB':>12} {'anon GB':>8} {'file GB':>8}")
    for name, stage in results["stages"].items():
        print(f"{name:<20} {stage['seconds']:>8.1f} {stage['ru_maxrss_gb']:>13.3f} {stage['peak_rss_gb']:>12.3f} "
              f"{stage['peak_rss_anon_gb']:>8.3f} {stage['peak_rss_file_gb']:>8.3f}")
    print(f"peak RSS of training on the big store: {results['peak_rss_gb']:.3f} GB "
          f"({results['store_size_cost_gb']:+.3f} GB against the {args.small_rows:,}-row store)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
