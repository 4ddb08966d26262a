"""Prediction tracks: a model's probability along the genome, as bigWig (or bedGraph) for a browser.

Windows of the model's length are tiled along the given regions (or whole chromosomes) with their
centres ``step`` bp apart; each window's probability is the value of the ``step``-bp bin at its
centre (``[c - step // 2, c - step // 2 + step)``, the convention of Basenji/gReLU prediction
tracks), so bins never overlap and every base of a region lies in exactly one bin. Bins are cut at
the region and chromosome ends; window bases beyond a chromosome end are N. Overlapping or touching
regions are merged first. Bins are predicted and written :data:`BLOCK_BINS` at a time, one
model after the other, so memory stays bounded whatever the regions' size.

One track per cell-line model (:class:`~chromtransfer.variants.scoring.CellModel`: a model, or the
fold models of a ``--fold all`` run, averaged; ``rc_average`` averages both strands). With one
model the track is written to ``out`` itself; with several, to ``<out stem>.<model name><suffix>``.
bigWig needs pybigtools (the ``bigwig`` extra); without it a bedGraph is written instead
(``.bedGraph`` suffix), as :mod:`chromtransfer.interpret.tracks` does for attribution tracks.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .errors import ChromTransferError

__all__ = ["BLOCK_BINS", "tile_bins", "track"]

#: Bins predicted and written at a time: a track of any size is written in bounded memory (each
#: model's bins stream to its file block by block, in genome order).
BLOCK_BINS = 8192


def _merge(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    running = np.maximum.accumulate(ends)
    new = np.ones(starts.size, dtype=bool)
    new[1:] = starts[1:] > running[:-1]
    first = np.flatnonzero(new)
    return starts[first], np.maximum.reduceat(ends, first)


def tile_bins(start: int, end: int, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bins of one region: ``(bin starts, bin ends, window centres)``, int64, ``step`` bp apart.

    Bin ``k`` is ``[start + k * step, start + (k + 1) * step)`` cut at ``end``; its window centre
    is ``bin start + step // 2``.
    """
    starts = np.arange(start, end, step, dtype=np.int64)
    return starts, np.minimum(starts + step, end), starts + step // 2


def _track_paths(out: Path, names: Sequence[str], bigwig: bool) -> list[Path]:
    suffix = ".bw" if bigwig else ".bedGraph"
    stem = out.name[: -len(out.suffix)] if out.suffix.lower() in (".bw", ".bigwig", ".bedgraph", ".bg") else out.name
    if len(names) == 1:
        return [out.with_name(stem + suffix)]
    return [out.with_name(f"{stem}.{re.sub(r'[^0-9A-Za-z_.-]', '_', n)}{suffix}") for n in names]


def track(models: Sequence[str | os.PathLike], genome, out: str | os.PathLike, *,
          regions: str | os.PathLike | None = None, chroms: Sequence[str] | None = None, step: int = 50,
          length: int | None = None, rc_average: bool = False, batch_size: int = 256, device: str = "auto",
          overwrite: bool = False) -> list[Path]:
    """Write one prediction track per model (see the module docstring); returns the files written.

    Args:
        models: model or ``--fold all`` run directories.
        genome: genome path or :class:`~chromtransfer.genome.Genome`.
        out: the track file (``.bw``; ``.bedGraph`` when pybigtools is missing).
        regions: BED of regions to cover; ``None``: whole chromosomes (``chroms``, default all).
        step: bin size and window spacing in bp.
        length: window length (default: the models' training length, 600 bp when unknown).
        overwrite: replace existing track files (otherwise they stop the run).
    """
    from .devices import resolve_device
    from .genome import open_genome
    from .interpret.tracks import bigwig_available, write_bedgraph, write_bigwig
    from .variants.scoring import load_cell_models

    if step < 1:
        raise ChromTransferError("--step must be at least 1 bp")
    genome = open_genome(genome)
    dev = resolve_device(device)
    cells = load_cell_models(list(models), dev, length=length)
    if len({c.length for c in cells}) > 1:
        raise ChromTransferError("the models were trained on windows of different lengths; give --length")
    window = cells[0].length
    bigwig = bigwig_available()
    paths = _track_paths(Path(out), [c.name for c in cells], bigwig)
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise ChromTransferError(f"{existing[0]}: the track file exists (give another --out, or --overwrite)")
    if regions is not None:
        from .intervals import read_regions

        table = read_regions(regions, genome, on_off_end="clip")
        spans = {c: _merge(g["start"].to_numpy(np.int64), g["end"].to_numpy(np.int64))
                 for c, g in table.groupby("chrom", sort=True)}
    else:
        names = [genome.resolve(c) for c in chroms] if chroms else genome.names
        spans = {c: (np.array([0], np.int64), np.array([genome.lengths[c]], np.int64)) for c in sorted(names)}
    sizes = {c: genome.lengths[c] for c in spans}
    for cell, path in zip(cells, paths):
        blocks = _blocks(cell, genome, spans, step, window, rc_average, batch_size, dev)
        if bigwig:
            write_bigwig(path, blocks, sizes)
        else:
            write_bedgraph(path, blocks, name=cell.name, description=f"chromtransfer prediction, {cell.name}")
    return paths


def _blocks(cell, genome, spans: dict[str, tuple[np.ndarray, np.ndarray]], step: int, window: int,
            rc_average: bool, batch_size: int, dev) -> Iterator:
    """One model's bins, predicted and handed on :data:`BLOCK_BINS` at a time, in genome order."""
    from .interpret.tracks import TrackBlock

    for chrom, (starts, ends) in spans.items():
        for start, end in zip(starts.tolist(), ends.tolist()):
            for lo in range(start, end, BLOCK_BINS * step):
                bin_starts, bin_ends, centres = tile_bins(lo, min(lo + BLOCK_BINS * step, end), step)
                values = _predict_windows([cell], genome, chrom, centres - window // 2, window, rc_average,
                                          batch_size, dev)
                yield TrackBlock(chrom, bin_starts, bin_ends, values[:, 0].astype(np.float32))


def _predict_windows(cells, genome, chrom: str, starts: np.ndarray, window: int, rc_average: bool,
                     batch_size: int, dev, chunk: int = 8192) -> np.ndarray:
    """``(n, n_cells)`` probabilities of the windows ``[start, start + window)`` (N beyond the ends)."""
    from .encoding import reverse_complement_codes
    from .inference import predict_codes

    out = np.zeros((starts.size, len(cells)), dtype=np.float64)
    for lo in range(0, starts.size, chunk):
        codes = genome.fetch_many(np.full(min(chunk, starts.size - lo), chrom, dtype=object),
                                  starts[lo:lo + chunk], length=window, pad=True)
        strands = [codes] + ([np.ascontiguousarray(reverse_complement_codes(codes))] if rc_average else [])
        for c, cell in enumerate(cells):
            total = np.zeros(codes.shape[0])
            for member in cell.members:
                for strand in strands:
                    total += predict_codes(member, strand, batch_size=batch_size, device=dev)[:, 0]
            out[lo:lo + chunk, c] = total / (len(cell.members) * len(strands))
    return out
