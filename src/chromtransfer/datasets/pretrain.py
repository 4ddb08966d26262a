"""The pre-training set: open chromatin (rDHS) windows against genomic background windows.

Recipe (the paper's, docs/method.md section 2):

1. Positives: the regions of ``positives`` (BED / narrowPeak / TSV files; duplicates across files
   removed), minus every region overlapping ``exclude_positives`` (the cell-type sets, so that
   fine-tuning sees regions the pre-trained model has not seen), each turned into a ``length`` bp
   window centred on its midpoint (or narrowPeak summit). Windows off a chromosome end and windows
   with more than ``max_n_fraction`` N are dropped and counted.
2. Negatives: the genome tiled in non-overlapping ``length`` bp windows, minus tiles that contain an
   N (assembly gaps), overlap a ``blacklist`` region, or lie less than ``min_distance`` bp from any
   positive region (also those removed in step 1: they are open chromatin too). The distance is
   from the region itself, as the paper ("within 300 bp of an rDHS"); ``distance_from="window"``
   measures it from the region's ``length`` bp window instead (fewer, easier negatives). With the
   paper's 300 bp and 600 bp windows no negative tile overlaps a positive window either way.
3. All candidate negatives are kept by default; with ``neg_ratio`` R, ``round(R * positives)``
   are drawn at random (seeded) separately for the training and the test chromosomes, so both
   splits keep the ratio. With ``gc_match`` (an addition to the paper) the draw is weighted so
   that the negatives' GC distribution follows the positives' of the same split: GC fractions are
   binned in 50 bins of 2 % on [0, 1] and a tile's weight is (positives' share of its bin) / (tiles' share
   of its bin); weighted sampling without replacement uses Efraimidis-Spirakis keys.
4. Split by chromosome (``test_chroms``) and validation folds (:mod:`.splits`).

Labels: class 0 ``negative`` (label_name ``background``), class 1 ``positive`` (label_name ``rDHS``).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..genome import Genome, open_genome
from ..interval_sets import IntervalSet
from ..intervals import centred_windows, region_names
from .build import (
    GC_BINS,
    as_path_list,
    candidate_tiles,
    check_chrom_option,
    check_output_store,
    describe_inputs,
    gc_matched_sample,
    read_many,
    resolve_chroms,
    weighted_sample,
    write_window_store,
)
from .splits import assign_split, parse_chrom_list
from .store import TEST, TRAIN

#: What ``min_distance`` is measured from (module docstring, step 2).
DISTANCE_FROM = ("region", "window")

log = logging.getLogger("chromtransfer.datasets")

BINARY_CLASSES = ("negative", "positive")
POSITIVE_LABEL = "rDHS"
BACKGROUND_LABEL = "background"

PathLike = str | os.PathLike


def prepare_pretrain(
    genome: PathLike | Genome,
    positives: PathLike | Sequence[PathLike],
    out: PathLike,
    *,
    exclude_positives: PathLike | Sequence[PathLike] | None = None,
    blacklist: PathLike | Sequence[PathLike] | None = None,
    length: int = 600,
    min_distance: int = 300,
    neg_ratio: float | None = None,
    gc_match: bool = False,
    test_chroms: str | Sequence[str] = "chr2,chr3",
    folds: int = 3,
    seed: int = 0,
    max_n_fraction: float = 0.1,
    use_summit: bool = False,
    exclude_chroms: str | Sequence[str] | None = None,
    fold_scheme: str = "rows",
    drop_missing_chroms: bool = False,
    overwrite: bool = False,
    distance_from: str = "region",
) -> Path:
    """Build the pre-training store (see the module docstring for the recipe).

    Args:
        genome: FASTA / 2bit path or an open :class:`~chromtransfer.genome.Genome`.
        positives: region file(s) of open chromatin (e.g. the rDHS BED).
        out: store directory (claimed: a folder holding anything else is refused).
        exclude_positives: region file(s) whose overlapping positives are removed.
        blacklist: region file(s) that negatives must not overlap (chromosomes the genome lacks
            are ignored; regions past a chromosome end are clipped).
        length: window length in bp.
        min_distance: negatives lie at least this many bp from every positive.
        distance_from: ``"region"`` (the paper: from the rDHS itself) or ``"window"`` (from its
            ``length`` bp window).
        neg_ratio: negatives per positive (``None``: every candidate tile).
        gc_match: draw negatives with the positives' GC distribution (needs ``neg_ratio``).
        test_chroms: chromosomes of the test set (``"all"``: test-only store).
        folds, seed, fold_scheme: validation folds (see :mod:`chromtransfer.datasets.splits`).
        max_n_fraction: windows with a larger share of N bases are dropped.
        use_summit: centre narrowPeak windows on the summit.
        exclude_chroms: chromosomes left out entirely (e.g. ``chrX,chrY,chrM`` for autosomes only).
        drop_missing_chroms: drop (and count) positives on chromosomes the genome lacks instead
            of stopping with an error.
        overwrite: replace a complete store at ``out`` (only the store's own files).

    Returns:
        The store path.
    """
    if gc_match and neg_ratio is None:
        raise InputError("--gc-match", "GC matching samples negatives, so it needs --neg-ratio",
                         fix="add --neg-ratio, e.g. --neg-ratio 1")
    if neg_ratio is not None and neg_ratio <= 0:
        raise InputError("--neg-ratio", f"must be positive, not {neg_ratio}", fix="give e.g. --neg-ratio 1")
    check_output_store(out, overwrite)
    g = open_genome(genome)
    check_chrom_option(g, test_chroms, "--test-chroms")
    check_chrom_option(g, exclude_chroms, "--exclude-chroms")
    positive_files = as_path_list(positives)
    if not positive_files:
        raise InputError("--positives", "no positive region file given", fix="give at least one BED file")
    dropped: dict[str, int] = {}
    pos = read_many(positive_files, g, on_missing="drop" if drop_missing_chroms else "error",
                    dropped=dropped, prefix="positives_")
    excl = read_many(as_path_list(exclude_positives), g, on_missing="drop", on_off_end="clip")
    black = read_many(as_path_list(blacklist), g, on_missing="drop", on_off_end="clip")
    all_regions = [pos[["chrom", "start", "end"]], excl[["chrom", "start", "end"]]]
    if len(excl) and len(pos):
        hit = IntervalSet.from_frame(excl).overlaps_frame(pos)
        dropped["excluded_positives"] = int(hit.sum())
        pos = pos.loc[~hit].reset_index(drop=True)
    skip = resolve_chroms(g, parse_chrom_list(exclude_chroms) if exclude_chroms else [])
    if skip:
        off = pos["chrom"].isin(skip).to_numpy()
        dropped["excluded_chromosome"] = int(off.sum())
        pos = pos.loc[~off].reset_index(drop=True)
    windows = centred_windows(pos, length, g, use_summit=use_summit, dropped=dropped)
    dup = windows.duplicated(["chrom", "start"]).to_numpy()
    if dup.any():
        dropped["duplicate_windows"] = int(dup.sum())
        windows = windows.loc[~dup].reset_index(drop=True)
    # Candidate negatives: tiles without N, off the blacklist, away from all open chromatin
    # (every positive region and window, also those dropped below for N content). The positives'
    # N and GC fractions are measured in the same pass over the genome.
    if distance_from not in DISTANCE_FROM:
        raise InputError("--distance-from", f"unknown value {distance_from!r}", fix="use region or window")
    near = all_regions + ([windows[["chrom", "start", "end"]]] if distance_from == "window" else [])
    open_set = IntervalSet.concat(near)
    exclude = []
    if len(black):
        exclude.append((IntervalSet.from_frame(black), 0))
    exclude.append((open_set, min_distance))
    chroms = [c for c in g.names if c not in skip]
    tile_counts: dict[str, int] = {}
    tiles, n_frac, gc = candidate_tiles(g, length, chroms, exclude=exclude, dropped=tile_counts, with_gc=gc_match,
                                        measure=(windows["chrom"].to_numpy(dtype=object), windows["start"].to_numpy()))
    dropped["tiles_total"] = tile_counts.get("tiles_total", 0)
    dropped["tiles_gap"] = tile_counts.get("tiles_gap", 0)
    if len(black):
        dropped["tiles_blacklist"] = tile_counts.get("tiles_excluded_0", 0)
        dropped["tiles_near_positive"] = tile_counts.get("tiles_excluded_1", 0)
    else:
        dropped["tiles_near_positive"] = tile_counts.get("tiles_excluded_0", 0)
    too_many_n = n_frac > max_n_fraction
    if too_many_n.any():
        dropped["n_fraction"] = int(too_many_n.sum())
        log.info("dropped %d positive windows with more than %.0f%% N", int(too_many_n.sum()), 100 * max_n_fraction)
    windows = windows.loc[~too_many_n].reset_index(drop=True)
    n_frac, gc = n_frac[~too_many_n], gc[~too_many_n]
    if not len(windows):
        raise InputError(positive_files[0], "no positive windows left after filtering",
                         fix="check chromosome names, --exclude-positives and --max-n-fraction")

    sampling = {"neg_ratio": neg_ratio, "gc_match": gc_match, "candidates": int(len(tiles))}
    if gc_match:
        sampling["gc_bins"] = GC_BINS
    if neg_ratio is not None:
        rng = np.random.default_rng(seed)
        pos_split = assign_split(windows["chrom"].to_numpy(dtype=object), test_chroms)
        tile_split = assign_split(tiles["chrom"].to_numpy(dtype=object), test_chroms)
        chosen = []
        for code in (TRAIN, TEST):
            pool = np.flatnonzero(tile_split == code)
            want = int(round(neg_ratio * int((pos_split == code).sum())))
            if want > pool.size:
                log.warning("only %d candidate negatives for %d wanted (%s split)", pool.size, want,
                            "train" if code == TRAIN else "test")
                sampling[f"short_{'train' if code == TRAIN else 'test'}"] = int(want - pool.size)
            if gc_match:
                chosen.append(pool[gc_matched_sample(rng, gc[pos_split == code], tiles["gc"].to_numpy()[pool], want)])
            else:
                chosen.append(pool[weighted_sample(rng, pool.size, want)])
        tiles = tiles.iloc[np.sort(np.concatenate(chosen))].reset_index(drop=True)

    rows = pd.concat([
        pd.DataFrame({"chrom": windows["chrom"].to_numpy(dtype=object), "start": windows["start"].to_numpy(),
                      "end": windows["end"].to_numpy(), "name": windows["name"].to_numpy(dtype=object),
                      "label": 1, "label_name": POSITIVE_LABEL, "n_fraction": n_frac}),
        pd.DataFrame({"chrom": tiles["chrom"].to_numpy(dtype=object), "start": tiles["start"].to_numpy(),
                      "end": tiles["end"].to_numpy(), "name": region_names(tiles).to_numpy(dtype=object),
                      "label": 0, "label_name": BACKGROUND_LABEL, "n_fraction": 0.0}),
    ], ignore_index=True)
    log.info("pre-training set: %d positives, %d negatives", len(windows), len(tiles))
    inputs = describe_inputs(genome=g.path, positives=positive_files, exclude_positives=as_path_list(exclude_positives),
                             blacklist=as_path_list(blacklist))
    parameters = {"kind": "pretrain", "min_distance": min_distance, "distance_from": distance_from,
                  "neg_ratio": neg_ratio, "gc_match": gc_match, "gc_bins": GC_BINS if gc_match else None,
                  "use_summit": use_summit, "exclude_chroms": skip, "drop_missing_chroms": drop_missing_chroms}
    return write_window_store(out, g, rows, length=length, task="binary", classes=BINARY_CLASSES,
                              test_chroms=test_chroms, folds=folds, seed=seed, fold_scheme=fold_scheme,
                              max_n_fraction=max_n_fraction, inputs=inputs, parameters=parameters,
                              dropped=dropped, extra={"sampling": sampling}, overwrite=overwrite)
