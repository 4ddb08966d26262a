"""Motif sites a variant breaks or makes: JASPAR sites crossing the scan threshold in one allele
and not in the other.

For each variant the two local sequences ``flank + allele + flank`` (``flank`` = the widest
motif's width minus one, genome bases on both sides) are scanned with the project's motif scanner
(:class:`~chromtransfer.interpret.motifs.MotifScanner`: FIMO's scores and exact p-values, both
strands, default threshold p < 1e-5). A site *touches* the variant when it overlaps the allele's
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

__all__ = ["motif_changes"]


def _local(genome, chrom: str, pos: int, ref: str, alt: str, flank: int) -> tuple[np.ndarray, np.ndarray]:
    left = genome.fetch_codes(chrom, pos - flank, pos, pad=True)
    right = genome.fetch_codes(chrom, pos + len(ref), pos + len(ref) + flank, pad=True)
    return (np.concatenate([left, encode(ref), right]), np.concatenate([left, encode(alt), right]))


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


def motif_changes(scanner, genome, chroms: Sequence[str], positions: Sequence[int], refs: Sequence[str],
                  alts: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(motifs_lost, motifs_gained)``, one string per variant (see the module docstring)."""
    n = len(positions)
    if n == 0:
        return [], []
    flank = scanner.max_width - 1
    ref_seqs, alt_seqs = [], []
    for chrom, pos, ref, alt in zip(chroms, positions, refs, alts):
        r, a = _local(genome, chrom, int(pos), ref, alt, flank)
        ref_seqs.append(r)
        alt_seqs.append(a)
    indel = np.array([len(r) != len(a) for r, a in zip(refs, alts)])
    ref_end = flank + np.array([len(r) for r in refs]) + indel
    alt_end = flank + np.array([len(a) for a in alts]) + indel
    widths = np.array([m.width for m in scanner.motifs], dtype=np.int64)
    in_ref = _touching(scanner.scan(_stack(ref_seqs)), widths, ref_end, flank)
    in_alt = _touching(scanner.scan(_stack(alt_seqs)), widths, alt_end, flank)
    lost: list[list] = [[] for _ in range(n)]
    gained: list[list] = [[] for _ in range(n)]
    for (row, motif), score in in_ref.items():
        if (row, motif) not in in_alt:
            lost[row].append((score, motif))
    for (row, motif), score in in_alt.items():
        if (row, motif) not in in_ref:
            gained[row].append((score, motif))
    return ([_format(e, scanner.motifs) for e in lost], [_format(e, scanner.motifs) for e in gained])
