"""The bundled synthetic data set: a genome with planted regulatory grammar, and the files a real
user would have for it.

What :func:`make_synthetic` writes into ``out``::

    genome.fa            chromosomes chr1..chrN (60 bases per line)
    rdhs.bed             every open-chromatin site (rDHS-like), chrom start end name
    label_matrix.tsv     the sites x the six cell lines, 1 = open (input of ``prepare finetune``)
    open/<CELL>.bed      the sites open in each cell line (for ``--exclude-positives``)
    blacklist.bed        satellite arrays ("high signal regions")
    truth.json           the planted motifs per cell type, motif ids, parameters and counts
    variants.vcf.gz      SNVs of known class (VCF 4.2, BGZF, with contigs; INFO CLASS, CELL, TF, ELEMENT)
    variants_truth.tsv   the same SNVs, one row each: chrom, pos (1-based), ref, alt, class
                         (driver, nonmotif, background), cell, tf, element, motif_id, shared_with
                         (other lines with a driver of the TF's JASPAR family)

The SNVs (:mod:`.synthetic_variants`): per element open in exactly one cell line, a ``driver``
SNV at the most informative base of one of its intact planted driver sites (the substitution that
lowers the site's JASPAR log-odds most) and a ``nonmotif`` SNV at a base of the element's central
200 bp that no planted motif instance covers; and ``background`` SNVs far from every site. They are
the truth of the study's ``variants`` stage: a cell line's model should change its prediction more
for the driver SNVs of its own elements than for their non-motif SNVs.

The genome model:

* **Background**: isochores of 50-300 kb whose GC fraction is drawn around 44.7 % (sd 3.5 %,
  clipped to 36-58 %); bases are drawn independently with that GC; then CpG depletion as in
  vertebrate genomes, by deamination: each CG dinucleotide becomes TG or CA with probability 0.8.
  The background ends near 41 % GC with observed/expected CpG near 0.25 (human: 41 %, 0.2-0.25). SINE-like copies of one 300 bp
  element (15 % divergent) and (CA)n microsatellites are scattered in.
* **Gaps**: runs of N at both chromosome ends (10 kb), a centromere-like run (30-60 kb) and a few
  short gaps; satellite arrays (a 171 bp unit repeated, 5-20 kb) next to the centromere and at
  random places are written to ``blacklist.bed``.
* **Sites**: open-chromatin sites at least 1.5 kb apart, away from gaps and satellites. Each site
  is either open in exactly one cell line (its positives), open in none (the pre-training rDHSs),
  or open in two or three lines. Every open site carries 1-2 instances of *ubiquitous* motifs
  (CTCF, NRF1, NFYA, ZNF143, YY1; few, so that, as in real open chromatin, most sites of a
  window are not ubiquitous ones); a site open in line C carries 3-5 instances of C's *driver*
  motifs (2 per line for shared sites), all within 100 bp of the centre. A site open in none of
  the six lines stands for an rDHS open in other biosamples of the compendium: it carries 1-3
  instances of the drivers of one randomly chosen line (fewer than a positive), so a model
  pre-trained on these sites against background learns detectors of every driver, as a model
  pre-trained on the real compendium does, without seeing any line's own positives. Motif instances are drawn
  from the JASPAR 2022 matrices (pyjaspar's bundled database, no network) with column
  probabilities raised to ``strength`` (default 3: near-consensus sites) and renormalised, on a random
  strand. SP1/KLF and AP-1 motifs are not used as ubiquitous motifs because KLF5 and FOS::JUN are
  drivers here.
* **Decoys** (REST, SOX2, MEF2C, OLIG2) are planted uniformly over the whole genome (one per
  1.5 kb on average), so they occur equally in open sites and background and carry no label.

So a model of open chromatin against background learns the ubiquitous grammar and detectors of the
drivers, but not which drivers mark which line; a model fine-tuned on one line's positives against
the other sites must learn that line's combination of drivers. Everything is drawn from ``numpy.random.default_rng(seed)`` (the SNVs from a stream of their own,
so the genome does not depend on them): the same seed and size give byte-identical files.
"""
from __future__ import annotations

import bisect
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import atomic_path, claim_output_dir
from ..encoding import ALPHABET, DECODE_TABLE
from .labels import CELL_LINES
from .synthetic_variants import VARIANT_CLASSES

__all__ = ["DRIVERS", "DECOYS", "MOTIF_IDS", "SIZES", "SyntheticData", "UBIQUITOUS", "make_synthetic",
           "planted_motif_matrices"]

#: Driver motifs of each pseudo cell type (names as in the paper's biology).
DRIVERS: dict[str, list[str]] = {
    "A549": ["FOS::JUN", "NFE2L2", "TEAD1"],
    "GM12878": ["SPI1", "IRF4", "EBF1"],
    "HCT116": ["CDX2", "KLF5", "HNF4A"],
    "HepG2": ["HNF4A", "CEBPA", "FOXA2", "HNF1A"],
    "K562": ["GATA1", "TAL1::TCF3"],
    "MCF7": ["FOXA1", "ESR1", "GRHL2"],
}
UBIQUITOUS = ["CTCF", "NRF1", "NFYA", "ZNF143", "YY1"]
DECOYS = ["REST", "SOX2", "MEF2C", "OLIG2"]
#: JASPAR 2022 CORE vertebrate matrix of every motif used.
MOTIF_IDS: dict[str, str] = {
    "HNF4A": "MA0114.4", "CEBPA": "MA0102.4", "FOXA2": "MA0047.3", "HNF1A": "MA0046.2",
    "GATA1": "MA0035.4", "TAL1::TCF3": "MA0091.1", "SPI1": "MA0080.6", "IRF4": "MA1419.1",
    "EBF1": "MA0154.4", "FOXA1": "MA0148.4", "ESR1": "MA0112.3", "GRHL2": "MA1105.2",
    "FOS::JUN": "MA0099.3", "NFE2L2": "MA0150.2", "TEAD1": "MA0090.3", "CDX2": "MA0465.2",
    "KLF5": "MA0599.1", "CTCF": "MA0139.1", "NRF1": "MA0506.2", "NFYA": "MA0060.3",
    "ZNF143": "MA0088.2", "YY1": "MA0095.3", "REST": "MA0138.2", "SOX2": "MA0143.4",
    "MEF2C": "MA0497.1", "OLIG2": "MA0678.1",
}

#: Size presets: chromosomes, total genome length (bp), exclusive positives per cell line (before
#: the per-line factor), sites open in none, sites open in several lines. ``tiny`` is for tests.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"chromosomes": 5, "genome_bp": 2_500_000, "positives": 40, "none": 150, "shared": 20},
    "small": {"chromosomes": 10, "genome_bp": 24_000_000, "positives": 700, "none": 3000, "shared": 250},
    # the demo: a large compendium and small cell-type sets, the regime transfer learning is for
    "demo": {"chromosomes": 10, "genome_bp": 16_000_000, "positives": 150, "none": 3000, "shared": 150},
    "medium": {"chromosomes": 16, "genome_bp": 80_000_000, "positives": 2500, "none": 7500, "shared": 1250},
}
#: Per-line factor on the number of positives (the published sets differ in size, too).
_CELL_FACTOR = {"A549": 0.8, "GM12878": 1.0, "HCT116": 0.7, "HepG2": 1.0, "K562": 1.2, "MCF7": 1.1}

# GC before CpG deamination; the loss of C/G in CG pairs brings the mean down to about 41 %.
_GC_MEAN, _GC_SD = 0.447, 0.035
_CPG_LOSS = 0.8
_SITE_SPACING = 1500
_UBIQUITOUS_PER_SITE = (1, 3)  # instances of ubiquitous motifs per open site: 1 or 2
_DRIVERS_PER_SITE = (3, 6)  # instances of driver motifs per positive of one line: 3 to 5
_CORE = 100  # motifs of open sites lie within this many bp of the centre
_DECOY_EVERY = 1500
_LINE = 60
VARIANTS_VCF = "variants.vcf.gz"
VARIANTS_TRUTH = "variants_truth.tsv"


@dataclass
class SyntheticData:
    """Paths of the files :func:`make_synthetic` wrote."""

    out: Path
    genome: Path
    rdhs: Path
    label_matrix: Path
    blacklist: Path
    truth: Path
    variants: Path
    variants_truth: Path
    open_beds: dict[str, Path] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "genome": str(self.genome), "rdhs": str(self.rdhs),
                "label_matrix": str(self.label_matrix), "blacklist": str(self.blacklist),
                "truth": str(self.truth), "variants": str(self.variants),
                "variants_truth": str(self.variants_truth),
                "open_beds": {k: str(v) for k, v in self.open_beds.items()}}


def shared_driver_lines() -> dict[tuple[str, str], list[str]]:
    """``(cell, tf)`` -> the other cell lines whose :data:`DRIVERS` include a TF of the same JASPAR
    2022 family (pyjaspar's ``tf_family`` annotation of the matrices in :data:`MOTIF_IDS`).

    E.g. HepG2's HNF4A -> [HCT116] (the same TF) and FOXA2 -> [MCF7] (FOXA1, family FOX)."""
    from pyjaspar import jaspardb

    db = jaspardb(release="JASPAR2022")
    names = sorted({tf for tfs in DRIVERS.values() for tf in tfs})
    families = {tf: set(db.fetch_motif_by_id(MOTIF_IDS[tf]).tf_family) for tf in names}
    return {(cell, tf): sorted(other for other, theirs in DRIVERS.items()
                               if other != cell and any(families[tf] & families[t] for t in theirs))
            for cell, tfs in DRIVERS.items() for tf in tfs}


def planted_motif_matrices(names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Position probability matrices ``(4, width)`` (rows A, C, G, T) from pyjaspar's offline
    JASPAR 2022 database, by the names of :data:`MOTIF_IDS`."""
    from pyjaspar import jaspardb

    db = jaspardb(release="JASPAR2022")
    out = {}
    for name in names or list(MOTIF_IDS):
        motif = db.fetch_motif_by_id(MOTIF_IDS[name])
        counts = np.array([motif.counts[b] for b in ALPHABET], dtype=np.float64)
        counts += 0.01 * counts.sum(axis=0, keepdims=True) + 1e-9  # a small pseudocount
        out[name] = counts / counts.sum(axis=0, keepdims=True)
    return out


# --------------------------------------------------------------------------- background genome
def _chromosome_lengths(rng: np.random.Generator, n: int, total: int) -> list[int]:
    weights = np.linspace(1.0, 0.45, n) * rng.uniform(0.9, 1.1, n)
    lengths = np.floor(weights / weights.sum() * total / 1000).astype(np.int64) * 1000
    return [int(x) for x in lengths]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Codes of an isochore, CpG-depleted background sequence of ``size`` bp."""
    gc = np.empty(size)
    pos = 0
    while pos < size:
        seg = int(rng.integers(50_000, 300_000))
        gc[pos:pos + seg] = np.clip(rng.normal(_GC_MEAN, _GC_SD), 0.36, 0.58)
        pos += seg
    u = rng.random(size)
    # P(A) = P(T) = (1 - gc) / 2, P(C) = P(G) = gc / 2; order A, C, G, T on [0, 1)
    a = (1 - gc) / 2
    codes = np.where(u < a, 0, np.where(u < a + gc / 2, 1, np.where(u < a + gc, 2, 3))).astype(np.uint8)
    cg = np.flatnonzero((codes[:-1] == 1) & (codes[1:] == 2))
    hit = cg[rng.random(cg.size) < _CPG_LOSS]
    to_tg = rng.random(hit.size) < 0.5
    codes[hit[to_tg]] = 3  # C->T: CG -> TG
    codes[hit[~to_tg] + 1] = 0  # G->A: CG -> CA
    return codes


def _mutate(rng: np.random.Generator, codes: np.ndarray, rate: float) -> np.ndarray:
    out = codes.copy()
    hit = rng.random(out.size) < rate
    out[hit] = (out[hit] + rng.integers(1, 4, int(hit.sum()))) % 4
    return out


def _sample_instances(rng: np.random.Generator, pwm: np.ndarray, k: int, strength: float) -> np.ndarray:
    """``(k, width)`` codes drawn column by column from ``pwm ** strength`` (renormalised)."""
    probs = pwm ** strength
    probs /= probs.sum(axis=0, keepdims=True)
    cum = np.cumsum(probs, axis=0)  # (4, w)
    u = rng.random((k, pwm.shape[1]))
    return np.minimum((u[:, :, None] > cum.T[None, :, :]).sum(-1), 3).astype(np.uint8)


def _place(rng: np.random.Generator, occupied: np.ndarray, width: int, lo: int, hi: int, tries: int = 60) -> int | None:
    """A start in [lo, hi - width] whose ``width`` bases are free in ``occupied``; marks them."""
    if hi - lo < width:
        return None
    for _ in range(tries):
        s = int(rng.integers(lo, hi - width + 1))
        if not occupied[s:s + width].any():
            occupied[s:s + width] = True
            return s
    return None


SYNTHETIC_KIND = "synthetic"


def make_synthetic(out: str | os.PathLike, seed: int = 0, size: str = "small", strength: float = 3.0,
                   overwrite: bool = False) -> SyntheticData:
    """Write the synthetic data set (see the module docstring) and return its paths.

    Args:
        out: output folder, claimed as a synthetic data set (:mod:`chromtransfer.artifacts`: a
            folder holding anything else is refused); ``truth.json`` is written last.
        seed: random seed; the same seed and size give identical files.
        size: ``"small"`` (24 Mb, ~700 positives per line, trains in minutes on a CPU),
            ``"medium"`` (5x), ``"demo"`` (16 Mb, 3,000 rDHSs open in none of the lines and
            ~150 positives per line: small cell-type sets) or ``"tiny"`` (for tests).
        strength: exponent on the motif matrices' probabilities when drawing instances.
        overwrite: replace a complete data set in ``out`` (only its own files).
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, not {size!r}")
    preset = SIZES[size]
    rng = np.random.default_rng(seed)
    out = claim_output_dir(out, SYNTHETIC_KIND, overwrite=overwrite)
    Path(f"{out / 'genome.fa'}.fai").unlink(missing_ok=True)  # the index of an earlier genome.fa
    motifs = planted_motif_matrices()
    cells = list(CELL_LINES)

    # ---------------------------------------------------------------- chromosomes, gaps, satellites
    lengths = _chromosome_lengths(rng, preset["chromosomes"], preset["genome_bp"])
    names = [f"chr{i + 1}" for i in range(len(lengths))]
    sine = rng.integers(0, 4, 300).astype(np.uint8)
    satellite_unit = rng.integers(0, 4, 171).astype(np.uint8)
    genome: dict[str, np.ndarray] = {}
    forbidden: dict[str, list[tuple[int, int]]] = {}
    blacklist: list[tuple[str, int, int, str]] = []
    for name, size_bp in zip(names, lengths):
        codes = _background(rng, size_bp)
        for _ in range(size_bp // 5000):  # SINE-like copies, either strand
            s = int(rng.integers(0, size_bp - 300))
            copy = _mutate(rng, sine, 0.15)
            codes[s:s + 300] = copy if rng.random() < 0.5 else (3 - copy)[::-1]
        for _ in range(size_bp // 20000):  # (CA)n microsatellites
            n = int(rng.integers(10, 30))
            s = int(rng.integers(0, size_bp - 2 * n))
            codes[s:s + 2 * n] = np.tile(np.array([1, 0], dtype=np.uint8), n)
        bad: list[tuple[int, int]] = []
        tel = 10_000
        codes[:tel] = 4
        codes[-tel:] = 4
        bad += [(0, tel), (size_bp - tel, size_bp)]
        cen = int(size_bp * rng.uniform(0.35, 0.5))
        cen_len = int(rng.integers(30_000, 60_000))
        codes[cen:cen + cen_len] = 4
        bad.append((cen, cen + cen_len))
        for _ in range(int(rng.integers(1, 4))):
            g0 = int(rng.integers(tel, size_bp - tel - 5000))
            g1 = g0 + int(rng.integers(1000, 5000))
            codes[g0:g1] = 4
            bad.append((g0, g1))
        arrays = [cen + cen_len] + [int(rng.integers(tel, size_bp - tel - 25_000)) for _ in range(int(rng.integers(1, 3)))]
        for a0 in arrays:
            reps = int(rng.integers(30, 120))
            a1 = min(a0 + reps * 171, size_bp - tel)
            unit = np.tile(satellite_unit, reps + 1)[:a1 - a0]
            codes[a0:a1] = _mutate(rng, unit, 0.03)
            blacklist.append((name, max(a0 - 500, 0), min(a1 + 500, size_bp), "High Signal Region"))
            bad.append((a0, a1))
        genome[name] = codes
        forbidden[name] = bad

    # ---------------------------------------------------------------- sites and their categories
    n_pos = {c: int(round(preset["positives"] * _CELL_FACTOR[c])) for c in cells}
    categories: list[tuple[str, ...]] = []
    for c in cells:
        categories += [(c,)] * n_pos[c]
    categories += [()] * preset["none"]
    for _ in range(preset["shared"]):
        k = int(rng.integers(2, 4))
        categories.append(tuple(sorted(rng.choice(cells, size=k, replace=False).tolist(), key=cells.index)))
    order = rng.permutation(len(categories))
    categories = [categories[i] for i in order]
    sites = _site_positions(rng, names, lengths, forbidden, len(categories))

    # ---------------------------------------------------------------- motif placements
    placements: dict[str, list[tuple[str, int, bool]]] = {m: [] for m in motifs}
    site_rows = []
    # (site, cell line, motif, index in placements[motif]) of the drivers of single-line positives
    driver_spots: list[tuple[int, str, str, int]] = []
    for site_index, ((chrom, centre), open_in) in enumerate(zip(sites, categories)):
        occupied = np.zeros(2 * _CORE, dtype=bool)
        wanted = [str(m) for m in rng.choice(UBIQUITOUS, size=int(rng.integers(*_UBIQUITOUS_PER_SITE)), replace=True)]
        n_other = len(wanted)
        if not open_in:
            # Open in none of the six lines but in other biosamples of the compendium (as most
            # rDHSs are): a few instances of one line's drivers, fewer than a true positive has.
            donor = cells[int(rng.integers(len(cells)))]
            wanted += [str(m) for m in rng.choice(DRIVERS[donor], size=int(rng.integers(1, 4)), replace=True)]
        for c in open_in:
            k = int(rng.integers(*_DRIVERS_PER_SITE)) if len(open_in) == 1 else 2
            drivers = DRIVERS[c]
            picks = list(rng.permutation(drivers)[:min(2, len(drivers))])  # at least two distinct drivers
            picks += [str(m) for m in rng.choice(drivers, size=max(k - len(picks), 0), replace=True)]
            wanted += [str(m) for m in picks]
        if len(open_in) != 1:
            n_other = len(wanted)
        for i, m in enumerate(wanted):
            w = motifs[m].shape[1]
            s = _place(rng, occupied, w, 0, 2 * _CORE)
            if s is not None:
                placements[m].append((chrom, centre - _CORE + s, bool(rng.random() < 0.5)))
                if i >= n_other:
                    driver_spots.append((site_index, open_in[0], m, len(placements[m]) - 1))
        width = int(rng.integers(150, 351))
        start = centre - width // 2
        site_rows.append((chrom, start, start + width, open_in))
    total = sum(lengths)
    n_decoys = total // _DECOY_EVERY
    decoy_motif = rng.integers(0, len(DECOYS), n_decoys)
    decoy_chrom = rng.choice(len(names), size=n_decoys, p=np.asarray(lengths) / total)
    decoy_pos = (rng.random(n_decoys) * (np.asarray(lengths)[decoy_chrom] - 40)).astype(np.int64)
    decoy_rev = rng.random(n_decoys) < 0.5
    for m, ci, s, r in zip(decoy_motif, decoy_chrom, decoy_pos, decoy_rev):
        placements[DECOYS[m]].append((names[ci], int(s), bool(r)))
    # decoys go in last, over everything else (they are uniform and uninformative by design)
    plant_order = [m for m in motifs if m not in DECOYS] + DECOYS
    instances: dict[str, np.ndarray] = {}
    planted = {name: np.zeros(size_bp, dtype=bool) for name, size_bp in zip(names, lengths)}
    for m in plant_order:
        spots = placements[m]
        if not spots:
            continue
        inst = instances[m] = _sample_instances(rng, motifs[m], len(spots), strength)
        for (chrom, s, reverse), seq in zip(spots, inst):
            codes = genome[chrom]
            if (codes[s:s + seq.size] == 4).any():
                continue  # never write into gaps
            codes[s:s + seq.size] = (3 - seq)[::-1] if reverse else seq
            planted[chrom][s:s + seq.size] = True

    # ---------------------------------------------------------------- files
    paths = SyntheticData(out=out, genome=out / "genome.fa", rdhs=out / "rdhs.bed",
                          label_matrix=out / "label_matrix.tsv", blacklist=out / "blacklist.bed",
                          truth=out / "truth.json", variants=out / VARIANTS_VCF,
                          variants_truth=out / VARIANTS_TRUTH)
    _write_fasta(paths.genome, names, genome)
    unsorted_rows = list(site_rows)
    site_rows.sort(key=lambda r: (names.index(r[0]), r[1]))
    ids = [f"rDHS{i + 1:06d}" for i in range(len(site_rows))]
    truth_rows = _truth_snvs(seed, genome, sites, unsorted_rows, dict(zip(((r[0], r[1]) for r in site_rows), ids)),
                             driver_spots, placements, instances, planted, forbidden, motifs)
    from .synthetic_variants import write_truth_files

    write_truth_files(truth_rows, dict(zip(names, lengths)), paths.variants, paths.variants_truth, seed)
    with atomic_path(paths.rdhs) as tmp:
        tmp.write_text("".join(f"{c}\t{s}\t{e}\t{i}\n" for (c, s, e, _), i in zip(site_rows, ids)))
    with atomic_path(paths.label_matrix) as tmp:
        lines = ["chrom\tstart\tend\tname\t" + "\t".join(cells) + "\n"]
        lines += [f"{c}\t{s}\t{e}\t{i}\t" + "\t".join("1" if cell in o else "0" for cell in cells) + "\n"
                  for (c, s, e, o), i in zip(site_rows, ids)]
        tmp.write_text("".join(lines))
    blacklist.sort(key=lambda r: (names.index(r[0]), r[1]))
    with atomic_path(paths.blacklist) as tmp:
        tmp.write_text("".join(f"{c}\t{s}\t{e}\t{n}\n" for c, s, e, n in blacklist))
    (out / "open").mkdir(exist_ok=True)
    for cell in cells:
        p = out / "open" / f"{cell}.bed"
        with atomic_path(p) as tmp:
            tmp.write_text("".join(f"{c}\t{s}\t{e}\t{i}\n" for (c, s, e, o), i in zip(site_rows, ids) if cell in o))
        paths.open_beds[cell] = p
    counts = {
        "sites": len(site_rows),
        "positives": {c: sum(1 for r in site_rows if r[3] == (c,)) for c in cells},
        "open": {c: sum(1 for r in site_rows if c in r[3]) for c in cells},
        "open_in_none": sum(1 for r in site_rows if not r[3]),
        "open_in_several": sum(1 for r in site_rows if len(r[3]) > 1),
        "instances": {m: len(v) for m, v in placements.items()},
        "variants": {kind: sum(1 for r in truth_rows if r["class"] == kind) for kind in VARIANT_CLASSES},
    }
    from pyjaspar import jaspardb

    db = jaspardb(release="JASPAR2022")
    truth = {
        "cells": {c: list(DRIVERS[c]) for c in cells},
        "ubiquitous": list(UBIQUITOUS),
        "decoys": list(DECOYS),
        "motif_ids": dict(MOTIF_IDS),
        "jaspar_names": {m: db.fetch_motif_by_id(i).name for m, i in MOTIF_IDS.items()},
        "jaspar_release": "JASPAR2022",
        "parameters": {"seed": seed, "size": size, "strength": strength, **preset,
                       "cell_factor": _CELL_FACTOR, "gc_mean": _GC_MEAN, "gc_sd": _GC_SD,
                       "cpg_loss": _CPG_LOSS, "site_spacing": _SITE_SPACING, "core_half_width": _CORE,
                       "decoy_every_bp": _DECOY_EVERY},
        "chromosomes": dict(zip(names, lengths)),
        "counts": counts,
        "files": {"genome": "genome.fa", "rdhs": "rdhs.bed", "label_matrix": "label_matrix.tsv",
                  "blacklist": "blacklist.bed", "open": {c: f"open/{c}.bed" for c in cells},
                  "variants": VARIANTS_VCF, "variants_truth": VARIANTS_TRUTH},
    }
    with atomic_path(paths.truth) as tmp:
        tmp.write_text(json.dumps(truth, indent=2) + "\n")
    return paths


def _truth_snvs(seed: int, genome: dict[str, np.ndarray], sites: list[tuple[str, int]], site_rows: list[tuple],
                ids: dict[tuple[str, int], str], driver_spots: list[tuple[int, str, str, int]],
                placements: dict[str, list[tuple[str, int, bool]]], instances: dict[str, np.ndarray],
                planted: dict[str, np.ndarray], forbidden: dict[str, list[tuple[int, int]]],
                motifs: dict[str, np.ndarray]) -> list[dict]:
    """The SNVs of ``variants.vcf.gz`` (:mod:`.synthetic_variants`) from the planted sites.

    ``sites`` and ``site_rows`` are in drawing order (centre; chrom, start, end, open_in);
    ``driver_spots`` name the driver instances of the single-line positives."""
    from .synthetic_variants import DriverInstance, TruthSite, draw_truth_snvs

    drivers: dict[int, list[DriverInstance]] = {}
    for site_index, _, m, j in driver_spots:
        chrom, s, reverse = placements[m][j]
        drivers.setdefault(site_index, []).append(DriverInstance(m, chrom, s, instances[m][j], reverse))
    truth_sites = []
    for i, ((chrom, centre), (_, start, end, open_in)) in enumerate(zip(sites, site_rows)):
        if len(open_in) == 1:
            truth_sites.append(TruthSite(ids[(chrom, start)], chrom, start, end, centre - _CORE, centre + _CORE,
                                         open_in[0], drivers.get(i, [])))
    centres: dict[str, list[int]] = {}
    for chrom, centre in sites:
        centres.setdefault(chrom, []).append(centre)
    n_background = max(10, len(truth_sites) // len(CELL_LINES))
    return draw_truth_snvs(seed, genome, truth_sites, planted, forbidden,
                           {c: np.sort(np.asarray(v, dtype=np.int64)) for c, v in centres.items()}, motifs,
                           MOTIF_IDS, _SITE_SPACING, n_background, shared=shared_driver_lines())


def _site_positions(rng: np.random.Generator, names: list[str], lengths: list[int],
                    forbidden: dict[str, list[tuple[int, int]]], n: int) -> list[tuple[str, int]]:
    """``n`` site centres, at least :data:`_SITE_SPACING` apart and 1 kb from gaps / satellites,
    spread over chromosomes in proportion to their length."""
    total = sum(lengths)
    out: list[tuple[str, int]] = []
    share = np.floor(np.asarray(lengths) / total * n).astype(int)
    share[: n - share.sum()] += 1
    for name, size_bp, k in zip(names, lengths, share):
        free = np.ones(size_bp, dtype=bool)
        for a, b in forbidden[name]:
            free[max(a - 1000, 0):b + 1000] = False
        candidates = np.sort(rng.integers(1000, size_bp - 1000, size=k * 20))
        candidates = candidates[free[candidates]]
        chosen: list[int] = []
        for c in rng.permutation(candidates):
            if len(chosen) == k:
                break
            c = int(c)
            i = bisect.bisect_left(chosen, c)
            if (i > 0 and c - chosen[i - 1] < _SITE_SPACING) or (i < len(chosen) and chosen[i] - c < _SITE_SPACING):
                continue
            chosen.insert(i, c)
        if len(chosen) < k:
            raise RuntimeError(f"{name}: room for only {len(chosen)} of {k} sites; use a larger genome size")
        out += [(name, c) for c in chosen]
    return out


def _write_fasta(path: Path, names: list[str], genome: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        for name in names:
            text = DECODE_TABLE[genome[name]]
            n_full = text.size // _LINE
            body = np.full((n_full, _LINE + 1), 10, dtype=np.uint8)
            body[:, :_LINE] = text[:n_full * _LINE].reshape(n_full, _LINE)
            handle.write(f">{name}\n".encode())
            handle.write(body.tobytes())
            tail = text[n_full * _LINE:]
            if tail.size:
                handle.write(tail.tobytes() + b"\n")
