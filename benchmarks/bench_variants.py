"""Benchmark of variant scoring: the shared-reference SNV path against two full passes per variant,
and a whole ``score_variants`` run on synthetic SNVs (throughput and peak memory).

Set-up (in a temporary folder): a random genome of one chromosome with ``--elements`` 600 bp
elements 1 kb apart, a VCF of ``--variants`` random SNVs inside them (sorted by position), and the
published network (width 1.0, fine-tuning head) with random weights and BatchNorm statistics (the
cost does not depend on the values).

* ``speedup``: on the first ``--compare`` variants, :func:`~chromtransfer.variants.scoring.score_windows`
  (element windows: one reference pass per element, then only each changed base's receptive field)
  against :func:`~chromtransfer.variants.scoring.score_windows_naive` (two full forward passes per
  variant), same models and batch size; the largest probability difference must stay below 1e-5
  (the script fails otherwise). ``variants_speedup`` is naive time over fast time.
* ``centred``: the same comparison with centred windows and one SNV per element (no window holds
  two SNVs, so nothing can be shared: both paths run two full passes per variant; reported for
  completeness as ``variants_speedup_centred``).
* ``run``: ``score_variants`` on the whole VCF with ``--regions`` (no motif scan, no null), in a
  child process: ``variants_per_s`` (scored variants over the run's wall time, VCF checking and
  writing included) and ``variants_peak_rss_gb`` (the child's peak resident memory).

Usage::

    python benchmarks/bench_variants.py [--variants 1000000] [--elements 2000] [--compare 2000]
                                        [--threads 1] [--batch-size 256] [--json results.json]

The issue's figure is for 1,000,000 SNVs; ``--variants 20000`` gives a quick run (the rate and the
memory per chunk do not depend on the count; the plan arrays grow by about 100 bytes per variant).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

TOLERANCE = 1e-5
ELEMENT = 600
SPACING = 1000


def make_inputs(folder: Path, n_variants: int, n_elements: int, seed: int) -> dict:
    """Genome, elements BED, VCF of SNVs inside the elements, and a random published-size model."""
    from chromtransfer.modelio import save_model
    from chromtransfer.models import build_model

    rng = np.random.default_rng(seed)
    size = n_elements * SPACING + SPACING
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, size)]
    genome = folder / "genome.fa"
    with open(genome, "wb") as handle:
        handle.write(b">chr1\n")
        lines = bases[: size - size % 100].reshape(-1, 100)
        handle.write(b"\n".join(line.tobytes() for line in lines) + b"\n")
        if size % 100:
            handle.write(bases[size - size % 100:].tobytes() + b"\n")
    starts = np.arange(n_elements, dtype=np.int64) * SPACING + SPACING // 2
    bed = folder / "elements.bed"
    bed.write_text("".join(f"chr1\t{s}\t{s + ELEMENT}\tE{i}\n" for i, s in enumerate(starts)))
    element = rng.integers(0, n_elements, n_variants)
    pos = np.sort(starts[element] + rng.integers(0, ELEMENT, n_variants))
    ref = bases[pos]
    alt = np.frombuffer(b"ACGT", dtype=np.uint8)[(np.searchsorted(np.frombuffer(b"ACGT", np.uint8), ref)
                                                  + rng.integers(1, 4, n_variants)) % 4]
    vcf = folder / "snvs.vcf"
    with open(vcf, "w") as handle:
        handle.write("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=%d>\n" % size)
        handle.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        block = 100_000
        for lo in range(0, n_variants, block):
            handle.write("".join(f"chr1\t{p + 1}\t.\t{chr(r)}\t{chr(a)}\t.\t.\t.\n" for p, r, a in
                                 zip(pos[lo:lo + block].tolist(), ref[lo:lo + block].tolist(),
                                     alt[lo:lo + block].tolist())))
    sparse = folder / "sparse.vcf"  # one SNV per element, for the centred comparison
    with open(sparse, "w") as handle:
        handle.write("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        one = np.sort(starts + ELEMENT // 2)
        one_ref = bases[one]
        one_alt = np.where(one_ref == ord("A"), ord("C"), ord("A"))
        handle.write("".join(f"chr1\t{p + 1}\t.\t{chr(r)}\t{chr(a)}\t.\t.\t.\n"
                             for p, r, a in zip(one.tolist(), one_ref.tolist(), one_alt.tolist())))
    torch.manual_seed(seed)
    model = build_model("finetune", width=1.0)
    generator = torch.Generator().manual_seed(seed + 1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
    save_model(model.eval(), folder / "model")
    return {"genome": genome, "bed": bed, "vcf": vcf, "sparse": sparse, "model": folder / "model"}


def _time(fn, repeats: int) -> tuple[float, float, object]:
    best_wall, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, result


def compare(inputs: dict, vcf: Path, n: int, regions: bool, batch_size: int, repeats: int) -> dict:
    """Fast against naive on the first ``n`` variants of ``vcf``."""
    from chromtransfer.genome import Genome
    from chromtransfer.variants.run import _place
    from chromtransfer.variants.scoring import load_cell_models, score_windows, score_windows_naive
    from chromtransfer.variants.vcf import iter_variants
    from chromtransfer.variants.windows import Elements

    genome = Genome(inputs["genome"])
    cells = load_cell_models([inputs["model"]], torch.device("cpu"))
    elements = Elements.read(inputs["bed"], genome) if regions else None
    variants = []
    for v in iter_variants(vcf, genome):
        variants.append(v)
        if len(variants) == n:
            break
    batch = _place(variants, genome, cells, elements)[0]
    fast_wall, fast_cpu, fast = _time(lambda: score_windows(cells, batch, batch_size=batch_size), repeats)
    naive_wall, naive_cpu, naive = _time(lambda: score_windows_naive(cells, batch, batch_size=batch_size), repeats)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(fast, naive))
    return {"variants": len(variants), "windows": len(batch.windows), "fast_s": fast_wall, "naive_s": naive_wall,
            "fast_cpu_s": fast_cpu, "naive_cpu_s": naive_cpu, "speedup": naive_wall / fast_wall,
            "speedup_cpu": naive_cpu / fast_cpu, "max_abs_diff": diff}


_CHILD = """
import json, sys, torch
sys.path.insert(0, {src!r})
torch.set_num_threads({threads})
from chromtransfer.variants import score_variants
summary = score_variants({vcf!r}, {genome!r}, [{model!r}], {out!r}, regions={bed!r}, motifs=None,
                         batch_size={batch_size}, chunk_size={chunk_size}, device="cpu")
print(json.dumps(summary))
"""


def full_run(inputs: dict, folder: Path, threads: int, batch_size: int, chunk_size: int) -> dict:
    code = _CHILD.format(src=str(ROOT / "src"), threads=threads, vcf=str(inputs["vcf"]), genome=str(inputs["genome"]),
                         model=str(inputs["model"]), out=str(folder / "out"), bed=str(inputs["bed"]),
                         batch_size=batch_size, chunk_size=chunk_size)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    wall = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - wall
    if done.returncode:
        raise RuntimeError(f"score_variants failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scored = summary["counts"]["scored"] + summary["counts"]["flipped"]
    return {"variants": summary["variants"], "scored": scored, "wall_s": wall,
            "variants_per_s": scored / wall, "scoring_variants_per_s": summary["variants_per_s"],
            "peak_rss_gb": peak_kb / 1024 ** 2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=1_000_000, help="SNVs in the whole run")
    parser.add_argument("--elements", type=int, default=2000, help="600 bp elements holding them")
    parser.add_argument("--compare", type=int, default=2000, help="variants in the fast/naive comparison")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-run", action="store_true", help="only the fast/naive comparison")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-variants-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        inputs = make_inputs(folder, args.variants, args.elements, args.seed)
        print(f"inputs: {args.variants} SNVs in {args.elements} elements ({time.perf_counter() - started:.1f} s)")
        elements = compare(inputs, inputs["vcf"], args.compare, True, args.batch_size, args.repeats)
        print(f"element windows: {elements['variants']} SNVs in {elements['windows']} windows: fast "
              f"{elements['fast_s']:.2f} s, naive {elements['naive_s']:.2f} s, speed-up {elements['speedup']:.2f}x "
              f"(CPU time {elements['speedup_cpu']:.2f}x), max |diff| {elements['max_abs_diff']:.2e}")
        centred = compare(inputs, inputs["sparse"], min(args.compare, args.elements), False, args.batch_size,
                          args.repeats)
        print(f"centred windows, one SNV each: {centred['variants']} SNVs: fast {centred['fast_s']:.2f} s, "
              f"naive {centred['naive_s']:.2f} s, speed-up {centred['speedup']:.2f}x, "
              f"max |diff| {centred['max_abs_diff']:.2e}")
        ok = max(elements["max_abs_diff"], centred["max_abs_diff"]) < TOLERANCE
        run = None
        if not args.skip_run:
            run = full_run(inputs, folder, args.threads, args.batch_size, args.chunk_size)
            print(f"score_variants: {run['scored']} SNVs in {run['wall_s']:.1f} s ({run['variants_per_s']:.1f} "
                  f"variants/s), peak RSS {run['peak_rss_gb']:.3f} GB")
    result = {
        "variants_speedup": round(elements["speedup"], 3),
        "variants_speedup_cpu_time": round(elements["speedup_cpu"], 3),
        "variants_speedup_centred": round(centred["speedup"], 3),
        "variants_max_abs_diff": elements["max_abs_diff"],
        "variants_per_s": None if run is None else round(run["variants_per_s"], 2),
        "variants_peak_rss_gb": None if run is None else round(run["peak_rss_gb"], 3),
        "variants_in_run": None if run is None else run["variants"],
        "equal_within_1e-5": ok,
        "settings": {"variants": args.variants, "elements": args.elements, "compare": args.compare,
                     "threads": args.threads, "batch_size": args.batch_size, "chunk_size": args.chunk_size,
                     "model": "published network, width 1.0, random weights", "window": ELEMENT,
                     "device": "cpu", "torch": torch.__version__, "python": platform.python_version()},
        "element_windows": elements, "centred_windows": centred, "run": run,
    }
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n")
    if not ok:
        print(f"FAIL: fast and naive scores differ by more than {TOLERANCE}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
