"""Where a variant is scored: the window of model input around it, and its two allele sequences.

Windows:

* centred (default): ``[pos - L // 2, pos - L // 2 + L)`` with ``pos`` the variant's first REF
  base and ``L`` the model length; the variant sits at offset ``L // 2``. Bases beyond a
  chromosome end are N.
* element (``--regions BED``): the element that contains the whole REF allele; where several do,
  the one whose centre is nearest the variant (then the first in the file). A variant inside no
  element gets the status ``outside_regions``. Windows are the elements as given (any lengths).

Alleles (length-preserving, left-anchored; the convention of ChromBPNet's and Enformer's variant
scorers): the REF window is the genome. The ALT window keeps every base left of the variant in
place, puts the ALT allele at the variant, and continues with the genome right of the REF allele,
cut or extended on the right so that it is exactly as long as the REF window: an insertion pushes
the right flank out of the window (its last ``len(ALT) - len(REF)`` bases are dropped), a deletion
pulls in ``len(REF) - len(ALT)`` bases from beyond the window's right end.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..encoding import encode

__all__ = ["Elements", "alt_window"]


@dataclass
class Elements:
    """Element windows from a region file, searchable by chromosome and position.

    Attributes:
        chrom, start, end: ``(m,)`` element coordinates (the genome's chromosome spelling), file order.
        name: ``(m,)`` element names.
    """

    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray
    name: np.ndarray

    @classmethod
    def read(cls, path: str | os.PathLike, genome) -> "Elements":
        """Read a BED/narrowPeak/TSV region file (chromosome aliases resolved, bad lines stop)."""
        from ..errors import InputError
        from ..intervals import read_regions

        table = read_regions(path, genome)
        if not len(table):
            raise InputError(path, "no regions found", fix="give a BED file with chrom, start, end columns")
        return cls(table["chrom"].to_numpy(dtype=object), table["start"].to_numpy(np.int64),
                   table["end"].to_numpy(np.int64), table["name"].to_numpy(dtype=object))

    def __post_init__(self) -> None:
        self._by_chrom: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in dict.fromkeys(self.chrom.tolist()):
            rows = np.flatnonzero(self.chrom == name)
            rows = rows[np.argsort(self.start[rows], kind="stable")]
            self._by_chrom[name] = (rows, self.start[rows])
        self.max_length = int((self.end - self.start).max()) if self.start.size else 0

    def __len__(self) -> int:
        return int(self.start.shape[0])

    def find(self, chrom: str, start: int, end: int) -> int:
        """Index of the element holding ``[start, end)`` (nearest centre, then file order), or -1."""
        entry = self._by_chrom.get(chrom)
        if entry is None:
            return -1
        rows, starts = entry
        lo = np.searchsorted(starts, end - self.max_length, side="left")
        hi = np.searchsorted(starts, start, side="right")
        candidates = rows[lo:hi]
        candidates = candidates[self.end[candidates] >= end]
        if candidates.size == 0:
            return -1
        distance = np.abs((self.start[candidates] + self.end[candidates]) - (2 * start + (end - start)))
        best = candidates[distance == distance.min()]
        return int(best.min())

    @property
    def total_bp(self) -> int:
        return int((self.end - self.start).sum())


def alt_window(genome, chrom: str, window_start: int, window_length: int, ref_codes: np.ndarray,
               pos: int, ref: str, alt: str) -> np.ndarray:
    """The ALT allele's window ``(window_length,)`` uint8 (see the module docstring).

    ``ref_codes`` is the REF window ``genome[window_start, window_start + window_length)``; the
    variant's REF allele starts at genome position ``pos`` inside it.
    """
    offset = pos - window_start
    extra = max(0, len(ref) - len(alt))
    right = genome.fetch_codes(chrom, pos + len(ref), window_start + window_length + extra, pad=True) \
        if pos + len(ref) < window_start + window_length + extra else np.empty(0, np.uint8)
    out = np.concatenate([ref_codes[:offset], encode(alt), right])
    return np.ascontiguousarray(out[:window_length])
