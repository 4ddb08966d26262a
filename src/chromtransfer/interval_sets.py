"""Vectorised overlap and distance filters of genomic intervals.

:class:`IntervalSet` puts every chromosome on one number line (chromosome index times 2**40
plus position), merges the reference intervals once, and answers queries with :func:`numpy.searchsorted`: O((n + m) log n) for m queries against n intervals, so
2.2 M rDHSs against 5 M genome tiles take seconds.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["IntervalSet"]

#: Space between chromosomes on the common number line of :class:`IntervalSet`.
_CHROM_STRIDE = np.int64(1) << np.int64(40)


class IntervalSet:
    """A set of genomic intervals, merged, for fast vectorised overlap and distance queries.

    Args:
        chroms: ``(n,)`` chromosome names; starts, ends: ``(n,)`` 0-based half-open coordinates.

    All chromosomes share one number line (index * 2**40 + position); overlapping or touching
    intervals are merged, so the merged starts and ends are both sorted and a query needs one
    :func:`numpy.searchsorted`.
    """

    def __init__(self, chroms: Sequence[str] | np.ndarray, starts, ends):
        chroms = pd.Series(np.asarray(chroms, dtype=object))
        codes, uniques = pd.factorize(chroms, sort=False)
        self._index = pd.Index(uniques)
        starts = np.asarray(starts, dtype=np.int64)
        ends = np.asarray(ends, dtype=np.int64)
        offset = codes.astype(np.int64) * _CHROM_STRIDE
        s, e = starts + offset, ends + offset
        order = np.argsort(s, kind="stable")
        s, e = s[order], e[order]
        if s.size:
            # Merge: a new block starts where the start exceeds every previous end.
            running = np.maximum.accumulate(e)
            new = np.ones(s.size, dtype=bool)
            new[1:] = s[1:] > running[:-1]
            self._starts = s[new]
            self._ends = np.maximum.reduceat(e, np.flatnonzero(new))
        else:
            self._starts = np.zeros(0, np.int64)
            self._ends = np.zeros(0, np.int64)

    @classmethod
    def from_frame(cls, table: pd.DataFrame) -> "IntervalSet":
        """From a table with ``chrom, start, end`` columns."""
        return cls(table["chrom"].to_numpy(dtype=object), table["start"].to_numpy(), table["end"].to_numpy())

    @classmethod
    def concat(cls, tables: Sequence[pd.DataFrame]) -> "IntervalSet":
        tables = [t[["chrom", "start", "end"]] for t in tables if t is not None and len(t)]
        if not tables:
            return cls([], [], [])
        return cls.from_frame(pd.concat(tables, ignore_index=True))

    def __len__(self) -> int:
        """Number of merged intervals."""
        return int(self._starts.size)

    @property
    def total_bp(self) -> int:
        """Bases covered."""
        return int((self._ends - self._starts).sum())

    def _encode(self, chroms, starts, ends):
        chroms = np.asarray(chroms, dtype=object)
        codes = self._index.get_indexer(pd.Index(chroms)) if chroms.size else np.zeros(0, np.int64)
        known = codes >= 0
        offset = codes.astype(np.int64) * _CHROM_STRIDE
        return (np.asarray(starts, dtype=np.int64) + offset, np.asarray(ends, dtype=np.int64) + offset, known)

    def near(self, chroms, starts, ends, distance: int = 0) -> np.ndarray:
        """``(m,)`` bool: the query interval overlaps a set interval or lies less than ``distance``
        bp from one (gap between half-open intervals ``< distance``)."""
        qs, qe, known = self._encode(chroms, starts, ends)
        if not self._starts.size or not qs.size:
            return np.zeros(qs.size, dtype=bool)
        qs, qe = qs - distance, qe + distance
        # The first merged interval whose end is beyond the query start is the only candidate.
        i = np.searchsorted(self._ends, qs, side="right")
        inside = i < self._starts.size
        hit = np.zeros(qs.size, dtype=bool)
        hit[inside] = self._starts[i[inside]] < qe[inside]
        return hit & known

    def overlaps(self, chroms, starts, ends) -> np.ndarray:
        """``(m,)`` bool: the query interval shares at least one base with the set."""
        return self.near(chroms, starts, ends, 0)

    def overlaps_frame(self, table: pd.DataFrame, distance: int = 0) -> np.ndarray:
        return self.near(table["chrom"].to_numpy(dtype=object), table["start"].to_numpy(),
                         table["end"].to_numpy(), distance)
