"""Per-base attribution scores of genomic windows as genome-browser tracks (bedGraph, bigWig).

Input: one row per window, with ``chrom``, ``start``, ``end`` (0-based half-open, ``end - start``
equal to the score length L), an optional ``strand`` and the ``(N, L)`` scores. Rows without
coordinates (empty chromosome or negative start) are left out.

* Strand: the scores of a ``-`` strand window were computed on the reverse complement, so they are
  reversed before being placed on the genome (the score of the window's first base lands on its
  last genomic position).
* Overlapping windows: a base covered by several windows gets the **mean** of their scores at
  that base (every window counts once; no window is preferred).
* Adjacent bases with identical values are merged into one bedGraph line; bases covered by no
  window have no line.

:func:`merge_tracks` computes the merged intervals (chromosomes sorted by name, positions
ascending, as ``bedGraphToBigWig`` wants them), :func:`write_bedgraph` writes them,
:func:`write_bigwig` writes a bigWig through pybigtools when it is installed (an optional
dependency; without it the bigWig is skipped and the function returns ``False``).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..artifacts import atomic_path

log = logging.getLogger(__name__)


@dataclass
class TrackBlock:
    """Merged intervals of one chromosome: ``starts``, ``ends`` (int64) and ``values`` (float32)."""

    chrom: str
    starts: np.ndarray
    ends: np.ndarray
    values: np.ndarray


def _run_length(values: np.ndarray, origin: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal adjacent values of a per-base array starting at genomic ``origin``."""
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(values)]])
    return starts + origin, ends + origin, values[starts]


def merge_tracks(chrom: Sequence[str], start: Sequence[int], end: Sequence[int], scores: np.ndarray,
                 strand: Sequence[str] | None = None) -> Iterator[TrackBlock]:
    """Place window scores on the genome and merge overlaps (mean), one block per chromosome.

    Args:
        chrom, start, end: ``(N,)`` window coordinates; rows with an empty ``chrom`` or a negative
            ``start`` are skipped.
        scores: ``(N, L)`` per-base scores; ``end - start`` must equal L for every placed row.
        strand: optional ``(N,)`` of ``+``/``-``; ``-`` rows are reversed.

    Yields:
        :class:`TrackBlock` per chromosome, chromosomes in sorted order.
    """
    scores = np.asarray(scores, dtype=np.float64)
    chrom = np.asarray(chrom, dtype=object)
    start = np.asarray(start, dtype=np.int64)
    end = np.asarray(end, dtype=np.int64)
    n, length = scores.shape if scores.ndim == 2 else (0, 0)
    placed = np.array([isinstance(c, str) and c != "" for c in chrom], dtype=bool) & (start >= 0)
    if placed.any() and (end[placed] - start[placed] != length).any():
        bad = np.flatnonzero(placed & (end - start != length))[0]
        raise ValueError(f"window {chrom[bad]}:{start[bad]}-{end[bad]} is not {length} bp long like its scores")
    minus = np.zeros(n, dtype=bool) if strand is None else np.asarray(strand, dtype=object) == "-"
    for name in sorted({str(c) for c in chrom[placed]}):
        rows = np.flatnonzero(placed & (chrom == name))
        rows = rows[np.argsort(start[rows], kind="stable")]
        starts_c, ends_c, values_c = [], [], []
        # clusters of overlapping windows, each summed into one dense array
        cluster_begin = 0
        cluster_end = end[rows[0]]
        for k in range(1, len(rows) + 1):
            if k < len(rows) and start[rows[k]] < cluster_end:
                cluster_end = max(cluster_end, end[rows[k]])
                continue
            members = rows[cluster_begin:k]
            origin = start[members[0]]
            total = np.zeros(cluster_end - origin)
            count = np.zeros(cluster_end - origin)
            for row in members:
                offset = start[row] - origin
                total[offset:offset + length] += scores[row, ::-1] if minus[row] else scores[row]
                count[offset:offset + length] += 1
            s, e, v = _run_length((total / count).astype(np.float32), origin)
            starts_c.append(s)
            ends_c.append(e)
            values_c.append(v)
            if k < len(rows):
                cluster_begin, cluster_end = k, end[rows[k]]
        yield TrackBlock(name, np.concatenate(starts_c), np.concatenate(ends_c), np.concatenate(values_c))


def write_bedgraph(path: str | os.PathLike, blocks: Iterable[TrackBlock], *, name: str = "attribution",
                   description: str = "") -> int:
    """Write merged blocks as a bedGraph file (atomically); returns the number of data lines."""
    lines = 0
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        header = f'track type=bedGraph name="{name}"'
        if description:
            header += f' description="{description}"'
        handle.write(header + "\n")
        for block in blocks:
            if not len(block.values):
                continue
            text = [f"{block.chrom}\t{s}\t{e}\t{v:.6g}\n"
                    for s, e, v in zip(block.starts.tolist(), block.ends.tolist(), block.values.tolist())]
            handle.writelines(text)
            lines += len(text)
    return lines


def bigwig_available() -> bool:
    """Whether the optional bigWig writer (pybigtools) can be imported."""
    import importlib.util

    return importlib.util.find_spec("pybigtools") is not None


def write_bigwig(path: str | os.PathLike, blocks: Iterable[TrackBlock], chrom_sizes: Mapping[str, int]) -> bool:
    """Write merged blocks as a bigWig through pybigtools; ``False`` (nothing written) without it.

    ``chrom_sizes`` must cover every chromosome of ``blocks`` (and be at least their last end). A
    list of blocks puts only its own chromosomes in the header; any other iterable (a generator,
    consumed once while the file is written, so blocks need not all be in memory) puts every
    chromosome of ``chrom_sizes``; blocks come in genome order either way.
    """
    try:
        import pybigtools
    except ImportError:
        log.info("pybigtools is not installed: bigWig output skipped (pip install pybigtools)")
        return False
    if isinstance(blocks, Sequence):
        blocks = [b for b in blocks if len(b.values)]
        sizes = {b.chrom: int(chrom_sizes.get(b.chrom, 0)) for b in blocks}
        for block in blocks:  # checked before anything is written
            if sizes[block.chrom] < int(block.ends[-1]):
                raise ValueError(f"chromosome size of {block.chrom} ({sizes[block.chrom]}) is below its last "
                                 f"track end {block.ends[-1]}")
    else:
        sizes = {chrom: int(size) for chrom, size in chrom_sizes.items()}

    def entries():
        for block in blocks:
            if not len(block.values):
                continue
            if sizes.get(block.chrom, 0) < int(block.ends[-1]):
                raise ValueError(f"chromosome size of {block.chrom} ({sizes.get(block.chrom, 0)}) is below its "
                                 f"last track end {block.ends[-1]}")
            for s, e, v in zip(block.starts.tolist(), block.ends.tolist(), block.values.tolist()):
                yield block.chrom, s, e, v

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")  # pybigtools wants the extension
    try:
        pybigtools.open(str(tmp), "w").write(sizes, entries())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return True
