"""Synthetic variant truth: SNVs of known effect class on the synthetic genome.

:func:`draw_truth_snvs` chooses, from the genome as planted by
:func:`~chromtransfer.datasets.synthetic.make_synthetic`, three classes of SNV:

* ``driver``: for every element open in exactly one cell line, one of its intact planted driver
  instances (a site of that line's driver TFs inside the element's interval, unchanged by later
  plantings; elements without one get no driver SNV) is broken at its most
  informative base: the motif column ``j`` and ALT base ``b`` maximising
  ``log2 P[ref, j] - log2 P[b, j]`` in the JASPAR matrix, i.e. the single substitution that lowers
  the site's log-odds score most (on the site's strand; the genome base is its complement for a
  site on the minus strand). ``tf`` is the planted TF; ``shared_with`` names the other lines
  (``;``-separated, empty if none) whose drivers include a TF of the same JASPAR family (HNF4A of
  HepG2 and HCT116; FOXA2 of HepG2 and FOXA1 of MCF7): SNVs a model that tells its line from the
  others need not heed.
* ``nonmotif``: in the same elements, one position within the core (the central 200 bp where the
  motifs lie) covered by no planted instance of any motif (drivers, ubiquitous motifs, decoys),
  with a random ALT base.
* ``background``: positions at least half a site spacing from every site, outside gaps and
  satellites, with a random ALT base.

Drawn from their own generator (``numpy.random.default_rng([seed, VARIANT_STREAM])``), so the
genome and every other file of the data set are those of the same seed without variants.
:func:`write_truth_files` writes them as ``variants.vcf.gz`` (VCF 4.2, BGZF, sorted, with the
contigs; INFO ``CLASS``, ``CELL``, ``TF``, ``ELEMENT``) and ``variants_truth.tsv`` (columns
:data:`TRUTH_COLUMNS`; ``pos`` 1-based as in the VCF, ``cell``/``tf``/``element`` empty where they
do not apply).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..artifacts import atomic_path
from ..encoding import ALPHABET

__all__ = ["DriverInstance", "TRUTH_COLUMNS", "TruthSite", "VARIANT_CLASSES", "draw_truth_snvs",
           "write_truth_files"]

VARIANT_CLASSES = ("driver", "nonmotif", "background")
TRUTH_COLUMNS = ["chrom", "pos", "ref", "alt", "class", "cell", "tf", "element", "motif_id", "shared_with"]
#: Second word of the variants' seed sequence (the genome uses the plain seed).
VARIANT_STREAM = 15


@dataclass
class DriverInstance:
    """A planted driver site: ``tf`` at ``[start, start + width)`` of ``chrom``, its codes on its own
    strand (``(width,)`` uint8) and whether it lies on the minus strand."""

    tf: str
    chrom: str
    start: int
    codes: np.ndarray
    reverse: bool


@dataclass
class TruthSite:
    """An element open in exactly one cell line: its name, coordinates, core and driver sites."""

    name: str
    chrom: str
    start: int
    end: int
    core_start: int
    core_end: int
    cell: str
    drivers: list[DriverInstance]


def _breaking_base(pwm: np.ndarray, codes: np.ndarray) -> tuple[int, int]:
    """``(column, alt code)`` of the substitution that lowers the instance's log-odds most.

    ``pwm`` is ``(4, width)`` probabilities; ``codes`` the instance on the motif's strand."""
    logp = np.log2(pwm)
    ref = logp[codes, np.arange(codes.size)]
    worst = logp.argmin(axis=0)
    drop = ref - logp[worst, np.arange(codes.size)]
    column = int(np.argmax(drop))
    return column, int(worst[column])


def draw_truth_snvs(seed: int, genome: dict[str, np.ndarray], sites: Sequence[TruthSite],
                    planted: dict[str, np.ndarray], avoid: dict[str, list[tuple[int, int]]],
                    centres: dict[str, np.ndarray], motifs: dict[str, np.ndarray], motif_ids: dict[str, str],
                    spacing: int, n_background: int,
                    shared: dict[tuple[str, str], list[str]] | None = None) -> list[dict]:
    """The truth rows (see the module docstring), sorted by chromosome order of ``genome`` and position.

    Args:
        genome: chromosome -> codes ``(length,)`` (A, C, G, T = 0..3, N = 4), as written.
        sites: the elements open in exactly one line, with their driver instances.
        planted: chromosome -> ``(length,)`` bool, True on every base of a planted motif instance.
        avoid: chromosome -> ``(start, end)`` gaps and satellites.
        centres: chromosome -> sorted site centres (every site, whatever its cell lines).
        motifs: TF -> ``(4, width)`` probability matrix; motif_ids: TF -> JASPAR id.
        spacing: minimum site spacing (bp); background SNVs keep half of it from every centre.
        n_background: background SNVs wanted.
        shared: ``(cell, tf)`` -> the other lines with a driver of the same family (``shared_with``).
    """
    rng = np.random.default_rng([seed, VARIANT_STREAM])
    rows: list[dict] = []
    for site in sites:
        intact = [d for d in site.drivers
                  if site.start <= d.start and d.start + d.codes.size <= site.end and np.array_equal(genome[d.chrom][d.start:d.start + d.codes.size],
                                    (3 - d.codes)[::-1] if d.reverse else d.codes)]
        if intact:
            d = intact[int(rng.integers(len(intact)))]
            column, alt = _breaking_base(motifs[d.tf], d.codes)
            width = d.codes.size
            pos = d.start + (width - 1 - column if d.reverse else column)
            ref_code, alt_code = (3 - d.codes[column], 3 - alt) if d.reverse else (d.codes[column], alt)
            rows.append(_row(d.chrom, pos, int(ref_code), int(alt_code), "driver", site.cell, d.tf, site.name,
                             motif_ids[d.tf], ";".join((shared or {}).get((site.cell, d.tf), []))))
        codes = genome[site.chrom]
        lo, hi = max(site.core_start, site.start), min(site.core_end, site.end)
        free = np.flatnonzero(~planted[site.chrom][lo:hi] & (codes[lo:hi] < 4)) + lo
        if free.size:
            pos = int(free[rng.integers(free.size)])
            ref = int(codes[pos])
            rows.append(_row(site.chrom, pos, ref, _other_base(rng, ref), "nonmotif", site.cell, "", site.name, ""))
    rows += _background(rng, genome, avoid, centres, spacing, n_background)
    order = {name: i for i, name in enumerate(genome)}
    rows.sort(key=lambda r: (order[r["chrom"]], r["pos"]))
    return rows


def _other_base(rng: np.random.Generator, ref: int) -> int:
    return int((ref + rng.integers(1, 4)) % 4)


def _row(chrom: str, pos0: int, ref: int, alt: int, kind: str, cell: str, tf: str, element: str,
         motif_id: str, shared_with: str = "") -> dict:
    return {"chrom": chrom, "pos": pos0 + 1, "ref": ALPHABET[ref], "alt": ALPHABET[alt], "class": kind,
            "cell": cell, "tf": tf, "element": element, "motif_id": motif_id, "shared_with": shared_with}


def _background(rng: np.random.Generator, genome: dict[str, np.ndarray], avoid: dict[str, list[tuple[int, int]]],
                centres: dict[str, np.ndarray], spacing: int, n: int) -> list[dict]:
    names = list(genome)
    lengths = np.array([genome[c].size for c in names], dtype=np.float64)
    rows: list[dict] = []
    taken: set[tuple[str, int]] = set()
    for _ in range(n * 50):
        if len(rows) == n:
            break
        chrom = names[int(rng.choice(len(names), p=lengths / lengths.sum()))]
        pos = int(rng.integers(0, genome[chrom].size))
        ref = int(genome[chrom][pos])
        near = centres.get(chrom, np.empty(0, np.int64))
        i = int(np.searchsorted(near, pos))
        close = any(abs(int(near[j]) - pos) < spacing // 2 for j in (i - 1, i) if 0 <= j < near.size)
        if ref > 3 or close or (chrom, pos) in taken or any(a - 1000 <= pos < b + 1000 for a, b in avoid[chrom]):
            continue
        taken.add((chrom, pos))
        rows.append(_row(chrom, pos, ref, _other_base(rng, ref), "background", "", "", "", ""))
    return rows


def write_truth_files(rows: Sequence[dict], chromosomes: dict[str, int], vcf_path: Path, table_path: Path,
                      seed: int) -> None:
    """``variants.vcf.gz`` (BGZF) and ``variants_truth.tsv`` of ``rows`` (see the module docstring)."""
    from Bio import bgzf

    header = ["##fileformat=VCFv4.2", f"##source=chromtransfer synth (seed {seed})"]
    header += [f"##contig=<ID={name},length={size}>" for name, size in chromosomes.items()]
    header += ['##INFO=<ID=CLASS,Number=1,Type=String,Description="driver: breaks a planted driver site; '
               'nonmotif: a non-motif base of the same element; background: a background tile">',
               '##INFO=<ID=CELL,Number=1,Type=String,Description="cell line whose element holds the SNV">',
               '##INFO=<ID=TF,Number=1,Type=String,Description="planted TF whose site the SNV breaks">',
               '##INFO=<ID=ELEMENT,Number=1,Type=String,Description="rDHS element holding the SNV">',
               "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    lines = []
    for k, r in enumerate(rows):
        info = [f"CLASS={r['class']}"] + [f"{key.upper()}={r[key]}" for key in ("cell", "tf", "element") if r[key]]
        lines.append(f"{r['chrom']}\t{r['pos']}\tsnv{k + 1:06d}\t{r['ref']}\t{r['alt']}\t.\tPASS\t{';'.join(info)}")
    with atomic_path(vcf_path) as tmp:
        handle = bgzf.BgzfWriter(str(tmp), "wb")
        try:
            handle.write(("\n".join(header + lines) + "\n").encode())
        finally:
            handle.close()
    with atomic_path(table_path) as tmp:
        text = "\t".join(TRUTH_COLUMNS) + "\n"
        text += "".join("\t".join(str(r[c]) for c in TRUTH_COLUMNS) + "\n" for r in rows)
        tmp.write_text(text)
