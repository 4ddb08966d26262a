"""Motif sites a variant breaks or makes: JASPAR sites crossing the scan threshold in one allele
and not in the other.

For each variant the two local sequences ``flank + allele + flank`` (genome bases on both sides)
are scanned with the project's motif scanner (:class:`~chromtransfer.interpret.motifs.MotifScanner`:
FIMO's scores and exact p-values, both strands, default threshold p < 1e-5). Motifs are scanned
in bands of similar width (:class:`MotifBands`), each band with ``flank`` = its widest motif's
width minus one, so short motifs are not run over the flanks only long ones need (2.5x faster
for JASPAR 2022 than one scan with the widest flank; the sites are the same). A site *touches* the variant when it overlaps the allele's
bases (for an insertion or deletion also the junction right of it). A motif is

* **lost** when a site of it touches the REF allele and none touches the ALT allele;
* **gained** when a site touches the ALT allele and none touches the REF allele.

Each entry is written ``TF:MOTIF_ID:SCORE`` with the best touching site's score (log2-odds bits)
in the allele where the site exists; entries are sorted by score, best first, and joined with
``|`` (an empty string for none).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..encoding import N_CODE, encode

__all__ = ["MotifBands", "motif_changes"]


class MotifBands:
    """One :class:`~chromtransfer.interpret.motifs.MotifScanner` per band of motif widths.

    Attributes:
        motifs: every motif, in the given order (site indices refer to it).
        bands: ``(motif indices, scanner)`` per non-empty band.
    """

    #: Upper width of each band but the last (widths above the last bound form the last band).
    BOUNDS = (10, 14, 20)

    def __init__(self, motifs: Sequence, **options):
        from ..interpret.motifs import MotifScanner

        self.motifs = list(motifs)
        widths = np.array([m.width for m in self.motifs])
        band = np.searchsorted(np.asarray(self.BOUNDS), widths, side="left")
        self.bands = []
        for b in np.unique(band):
            index = np.flatnonzero(band == b)
            self.bands.append((index, MotifScanner([self.motifs[i] for i in index], **options)))

    @property
    def max_width(self) -> int:
        return max(m.width for m in self.motifs)


def _stack(sequences: list[np.ndarray]) -> np.ndarray:
    width = max(s.shape[0] for s in sequences)
    out = np.full((len(sequences), width), N_CODE, dtype=np.uint8)
    for i, s in enumerate(sequences):
        out[i, :s.shape[0]] = s
    return out


def _touching(sites, widths: np.ndarray, span_end: np.ndarray, flank: int) -> dict[tuple[int, int], float]:
    """``(row, motif) -> best score`` of sites overlapping ``[flank, span_end[row])``."""
    best: dict[tuple[int, int], float] = {}
    end = sites.start + widths[sites.motif]
    hit = (sites.start < span_end[sites.row]) & (end > flank)
    for row, motif, score in zip(sites.row[hit].tolist(), sites.motif[hit].tolist(), sites.score[hit].tolist()):
        key = (row, motif)
        if score > best.get(key, -np.inf):
            best[key] = score
    return best


def _format(entries: list[tuple[float, int]], motifs) -> str:
    entries.sort(key=lambda e: -e[0])
    return "|".join(f"{motifs[m].name.replace(' ', '_')}:{motifs[m].motif_id}:{score:.2f}" for score, m in entries)


def motif_changes(bands: MotifBands, genome, chroms: Sequence[str], positions: Sequence[int],
                  refs: Sequence[str], alts: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(motifs_lost, motifs_gained)``, one string per variant (see the module docstring)."""
    n = len(positions)
    if n == 0:
        return [], []
    widest = bands.max_width - 1
    lefts, rights = [], []
    for chrom, pos, ref in zip(chroms, positions, refs):
        pos = int(pos)
        lefts.append(genome.fetch_codes(chrom, pos - widest, pos, pad=True))
        rights.append(genome.fetch_codes(chrom, pos + len(ref), pos + len(ref) + widest, pad=True))
    ref_codes = [encode(r) for r in refs]
    alt_codes = [encode(a) for a in alts]
    indel = np.array([len(r) != len(a) for r, a in zip(refs, alts)])
    in_ref: dict[tuple[int, int], float] = {}
    in_alt: dict[tuple[int, int], float] = {}
    for index, scanner in bands.bands:
        flank = scanner.max_width - 1
        widths = np.array([m.width for m in scanner.motifs], dtype=np.int64)
        for alleles, found in ((ref_codes, in_ref), (alt_codes, in_alt)):
            local = [np.concatenate([left[widest - flank:], allele, right[:flank]])
                     for left, allele, right in zip(lefts, alleles, rights)]
            span_end = flank + np.array([len(a) for a in alleles]) + indel
            for (row, motif), score in _touching(scanner.scan(_stack(local)), widths, span_end, flank).items():
                found[(row, int(index[motif]))] = score
    lost: list[list] = [[] for _ in range(n)]
    gained: list[list] = [[] for _ in range(n)]
    for (row, motif), score in in_ref.items():
        if (row, motif) not in in_alt:
            lost[row].append((score, motif))
    for (row, motif), score in in_alt.items():
        if (row, motif) not in in_ref:
            gained[row].append((score, motif))
    return ([_format(e, bands.motifs) for e in lost], [_format(e, bands.motifs) for e in gained])
