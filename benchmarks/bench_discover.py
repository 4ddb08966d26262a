"""Benchmark of de novo motif matching: memelite's TOMTOM of TF-MoDISco patterns against JASPAR 2022.

Times :func:`chromtransfer.interpret.discover.match_patterns` (TOMTOM, in process, both strands,
q-values over the database) of ``--patterns`` query matrices against the 841 matrices of JASPAR
2022 CORE vertebrates:

* ``tomtom_first_call_s``: the first call in this process. memelite's kernels are numba
  functions cached on disk: in a fresh environment this includes their compilation (minutes on
  a loaded 2-core machine), afterwards only loading them from the cache;
* ``tomtom_s``: the best of ``--repeats`` later calls, and ``tomtom_ms_per_pattern``.

The queries are the patterns of a ``motifs discover`` folder (``--patterns-from DIR``, e.g. the
demo's ``interpret/K562/motifs``), repeated to ``--patterns``, or by default JASPAR matrices
trimmed and blurred (frequencies mixed 30 % with uniform), so the benchmark needs no input.
With ``--attributions DIR`` TF-MoDISco itself is also timed on that attribution folder
(``modisco_s``, the demo's per-cell cost).

Usage::

    python benchmarks/bench_discover.py [--patterns 20] [--repeats 3] [--patterns-from DIR]
                                        [--attributions DIR] [--json results.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from chromtransfer.interpret.discover import Pattern, discover_motifs, match_patterns  # noqa: E402
from chromtransfer.interpret.jaspar import load_jaspar  # noqa: E402


def _queries(count: int, source: str | None, motifs, seed: int) -> list[Pattern]:
    if source:
        from chromtransfer.interpret.discover_io import read_discovery

        found = read_discovery(source).patterns
        if not found:
            raise SystemExit(f"{source}: holds no pattern")
        return [found[i % len(found)] for i in range(count)]
    rng = np.random.default_rng(seed)
    patterns = []
    for i, j in enumerate(rng.choice(len(motifs), size=count, replace=False)):
        ppm = 0.7 * motifs[j].frequencies + 0.3 / 4
        patterns.append(Pattern(f"q{i}", 1, 20, ppm, ppm, ppm, (0, len(ppm))))
    return patterns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patterns", type=int, default=20, help="query patterns per call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--patterns-from", default=None, help="a 'motifs discover' folder whose patterns to use")
    parser.add_argument("--attributions", default=None, help="also time TF-MoDISco on this attribution folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()

    motifs = load_jaspar()
    queries = _queries(args.patterns, args.patterns_from, motifs, args.seed)
    started = time.perf_counter()
    match_patterns(queries, motifs)
    first = time.perf_counter() - started
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        table = match_patterns(queries, motifs)
        times.append(time.perf_counter() - started)
    best = min(times)
    summary = {"patterns": len(queries), "targets": len(motifs), "database": "JASPAR2022 CORE vertebrates",
               "queries": args.patterns_from or "JASPAR matrices blurred 30 % toward uniform",
               "tomtom_first_call_s": round(first, 3), "tomtom_s": round(best, 4),
               "tomtom_ms_per_pattern": round(1000 * best / len(queries), 3),
               "matches_q_below_0.05": int((table["q"] < 0.05).sum())}
    print(f"TOMTOM: {len(queries)} patterns x {len(motifs)} JASPAR matrices: first call {first:.2f} s, "
          f"then {best:.3f} s ({summary['tomtom_ms_per_pattern']:.1f} ms per pattern)")
    if args.attributions:
        from chromtransfer.interpret.attributions import load_attributions

        attributions = load_attributions(args.attributions)
        started = time.perf_counter()
        result = discover_motifs(attributions, motifs)
        summary.update({"modisco_s": result.seconds["modisco"], "discover_s": round(time.perf_counter() - started, 3),
                        "modisco_sequences": result.sequences, "modisco_length": result.length,
                        "modisco_patterns": len(result.patterns), "attributions": args.attributions})
        print(f"TF-MoDISco: {result.sequences} x {result.length} bp -> {len(result.patterns)} patterns in "
              f"{result.seconds['modisco']:.2f} s (with TOMTOM {summary['discover_s']:.2f} s)")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
