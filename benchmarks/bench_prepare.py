"""Benchmark of dataset building: windows per second and peak memory of ``prepare``.

Makes the synthetic genome (``--size medium``: 80 Mb over 16 chromosomes, ~20,000 sites), then
times, each stage in a fresh process so that its peak resident memory (``resource.getrusage``,
``ru_maxrss``) is its own:

* ``read_regions``: reading and validating a BED of ``--regions`` random regions (rows/s);
* ``pretrain``: ``prepare_pretrain`` with every candidate tile as a negative (windows/s written);
* ``finetune``: ``prepare_finetune`` of one cell line from the label matrix;
* ``multiclass``: the 7-class set;
* ``pretrain_bgzf``: the pre-training set again from a bgzip-compressed copy of the genome.

Usage::

    python benchmarks/bench_prepare.py [--size medium] [--regions 500000] [--json out.json]

Prints a table and, with ``--json``, writes ``{"stages": {name: {...}}, "genome_bp": ..., ...}``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import queue as queue_module
import resource
import sys
import tempfile
import time
from pathlib import Path


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 1024 / 1024  # Linux: KiB, macOS: bytes


def _stage(name: str, args: dict, queue) -> None:
    import numpy as np

    from chromtransfer.datasets.finetune import prepare_finetune
    from chromtransfer.datasets.pretrain import prepare_pretrain
    from chromtransfer.datasets.store import open_store
    from chromtransfer.intervals import read_regions

    start = time.perf_counter()
    if name == "setup":
        queue.put(_setup(args))
        return
    if name == "read_regions":
        table = read_regions(args["bed"], args["genome"])
        rows = len(table)
        elapsed = time.perf_counter() - start
        queue.put({"rows": rows, "seconds": elapsed, "rows_per_s": rows / elapsed, "peak_rss_mb": _peak_rss_mb()})
        return
    out = Path(args["work"]) / name
    if name.startswith("pretrain"):
        path = prepare_pretrain(args["genome_bgzf"] if name == "pretrain_bgzf" else args["genome"], args["rdhs"], out,
                                exclude_positives=args["open_beds"], blacklist=args["blacklist"], seed=0)
    elif name == "finetune":
        path = prepare_finetune(args["genome"], out, cell="HepG2", label_matrix=args["label_matrix"],
                                blacklist=args["blacklist"], seed=0)
    else:
        path = prepare_finetune(args["genome"], out, task="multiclass", label_matrix=args["label_matrix"],
                                blacklist=args["blacklist"], seed=0)
    elapsed = time.perf_counter() - start
    store = open_store(path)
    rows = store.n_rows
    checksum = int(np.asarray(store.sequences[: min(rows, 1000)], dtype=np.int64).sum())
    queue.put({"rows": rows, "seconds": elapsed, "windows_per_s": rows / elapsed, "peak_rss_mb": _peak_rss_mb(),
               "store_mb": sum(f.stat().st_size for f in Path(path).iterdir()) / 2**20, "checksum": checksum})


def _run(name: str, args: dict) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_stage, args=(name, args, queue))
    proc.start()
    while True:
        try:
            result = queue.get(timeout=1.0)
            break
        except queue_module.Empty:  # keep waiting while the stage runs
            if not proc.is_alive():
                raise RuntimeError(f"stage {name} failed with exit code {proc.exitcode}") from None
    proc.join()
    return result


def _random_bed(path: Path, genome_path: Path, n: int, seed: int) -> None:
    import numpy as np

    from chromtransfer.genome import Genome

    g = Genome(genome_path)
    rng = np.random.default_rng(seed)
    names = np.array(g.names, dtype=object)
    sizes = np.array([g.lengths[c] for c in g.names])
    chrom = rng.choice(len(names), size=n, p=sizes / sizes.sum())
    width = rng.integers(150, 400, size=n)
    start = (rng.random(n) * (sizes[chrom] - width)).astype(np.int64)
    with open(path, "w") as handle:
        for c, s, w in zip(names[chrom], start, width):
            handle.write(f"{c}\t{s}\t{s + w}\n")


def _setup(options: dict) -> dict:
    """Make the synthetic data set (and the extra inputs of the chosen stages)."""
    from chromtransfer.datasets.synthetic import make_synthetic

    work = Path(options["work"])
    t0 = time.perf_counter()
    data = make_synthetic(work / "synthetic", seed=0, size=options["size"])
    seconds = time.perf_counter() - t0
    truth = json.loads(data.truth.read_text())
    args = {"work": str(work), "genome": str(data.genome), "rdhs": str(data.rdhs),
            "open_beds": [str(p) for p in data.open_beds.values()], "blacklist": str(data.blacklist),
            "label_matrix": str(data.label_matrix)}
    if "read_regions" in options["stages"]:
        bed = work / "random.bed"
        _random_bed(bed, data.genome, options["regions"], 1)
        args["bed"] = str(bed)
    if "pretrain_bgzf" in options["stages"]:
        from Bio import bgzf

        bgz = work / "genome.fa.gz"
        with open(data.genome, "rb") as src, bgzf.BgzfWriter(str(bgz), "wb") as dst:
            while block := src.read(1 << 22):
                dst.write(block)
        args["genome_bgzf"] = str(bgz)
    return {"args": args, "genome_bp": sum(truth["chromosomes"].values()), "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=["tiny", "small", "medium"])
    parser.add_argument("--regions", type=int, default=500_000, help="rows of the BED read by read_regions")
    parser.add_argument("--stages", default="read_regions,pretrain,finetune,multiclass,pretrain_bgzf")
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--json", default=None, help="write the numbers to this JSON file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_prepare_") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        stages = [s.strip() for s in args.stages.split(",") if s.strip()]
        # Every stage, data generation included, runs in its own process: this one stays small, so
        # that each child's getrusage peak (which starts from the parent's size at fork) is its own.
        setup = _run("setup", {"work": str(work), "size": args.size, "regions": args.regions, "stages": stages})
        stage_args = setup["args"]
        genome_bp, synth_seconds = setup["genome_bp"], setup["seconds"]
        results = {name: _run(name, stage_args) for name in stages}

    print(f"synthetic genome: {genome_bp / 1e6:.1f} Mb ({args.size}, made in {synth_seconds:.1f} s)")
    print(f"{'stage':<15} {'rows':>9} {'seconds':>8} {'rows/s':>10} {'peak RSS MB':>12}")
    for name, r in results.items():
        rate = r.get("windows_per_s", r.get("rows_per_s"))
        print(f"{name:<15} {r['rows']:>9} {r['seconds']:>8.2f} {rate:>10.0f} {r['peak_rss_mb']:>12.0f}")
    if args.json:
        doc = {"benchmark": "prepare", "size": args.size, "genome_bp": genome_bp, "synthetic_seconds": synth_seconds,
               "stages": results, "python": platform.python_version(), "machine": platform.machine(),
               "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
