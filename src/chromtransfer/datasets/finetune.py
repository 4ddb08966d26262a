"""The fine-tuning sets: one binary set per cell line, or one multi-class set for all of them.

Inputs (exactly one):

* **published label files** (``labels_csv``): labels are used as given: ``<CELL>`` -> 1, every
  other label (``<CELL>_NEG``, ``Negative``) -> 0. Duplicated windows are removed and counted.
* **label matrix** / **cell table** / **signal matrix** (``label_matrix`` / ``cell_table`` /
  ``signal_matrix``, see :mod:`.labels`; a cell table is read as the label matrix of its label
  names): for the chosen line C among the lines considered (``cells``, default all
  columns), positives are the regions open in C and in no other line; negatives are drawn at random
  (seed and cell name) from the positives of the other lines together with the regions open in
  none, ``round(neg_ratio * positives)`` of them separately for the training and test chromosomes;
  regions open in several lines are used in no set. ``background`` genomic windows (default: a
  tenth of the set's rDHS rows, at most 1000) are added with label 0 and label_name ``Negative``
  (the published name of this class): non-overlapping tiles without N, off the blacklist and at
  least ``min_distance`` bp from every region of the input, taken from the start of one random
  order of the tiles drawn with the seed alone, so the cell lines of one seed share their
  background windows (a smaller set is a subset of a larger one).
  label_name is ``C`` for positives, ``C_NEG`` for negatives.

``gc_match`` (an addition to the paper, a control that a model learns more than GC content): the
negatives drawn from the rDHS pool and the background windows are drawn so that their GC
distribution follows the set's positives (per split; bins of 2 %, :func:`.build.gc_matched_sample`),
the background from every candidate tile. Published label files are used as given, so there it
applies to the ``background`` windows added to them only. The manifest records it under
``parameters.gc_match``; ``chromtransfer info dataset`` shows GC and CpG per class.

``task="multiclass"`` builds the 7-class set from the same inputs, class = the line a window is a
positive of, else ``background`` (the last class); label_name is the line's name for positives,
``Negative`` for genomic background windows and ``rDHS`` for negative rDHS windows. Which rows it
holds (``multiclass_set``):

* ``"authors"`` (default; the authors' ``Train_Multiclass.ipynb``, which reads the concatenated
  per-line files and keeps only the labels ``<CELL>`` and ``Negative``): every line's positives
  plus the genomic background windows as the 7th class, each background window once per line (the
  lines share them, so the concatenated files hold each one once per line: ~5,000 training rows in
  the published sets); negative rDHS rows (``<CELL>_NEG``) are not used.
* ``"union"``: the union of the binary sets of every considered line, each window once, negative
  rDHSs included in the background class.
"""
from __future__ import annotations

import logging
import os
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..genome import Genome, open_genome
from ..interval_sets import IntervalSet
from ..intervals import centred_windows, region_names, validate_regions
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
    window_stats,
    write_window_store,
)
from .labels import (
    NEGATIVE_LABEL,
    canonical_cell,
    exclusive_positives,
    find_label_files,
    match_cell,
    read_cell_table,
    read_label_matrix,
    read_published_labels,
    read_signal_matrix,
)
from .splits import assign_split, parse_chrom_list
from .store import TEST, TRAIN

log = logging.getLogger("chromtransfer.datasets")

BINARY_CLASSES = ("negative", "positive")
BACKGROUND_CLASS = "background"
RDHS_LABEL = "rDHS"
TASKS = ("binary", "multiclass")
#: Rows of the multi-class set (module docstring).
MULTICLASS_SETS = ("authors", "union")

PathLike = str | os.PathLike


def _cell_rng(seed: int, cell: str) -> np.random.Generator:
    """The random stream of one cell line: the same for a binary set and its multi-class union."""
    return np.random.default_rng([int(seed), zlib.crc32(cell.lower().encode())])


def _background_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), 0xB6])


def prepare_finetune(
    genome: PathLike | Genome,
    out: PathLike,
    *,
    cell: str | None = None,
    labels_csv: PathLike | Sequence[PathLike] | None = None,
    label_matrix: PathLike | None = None,
    signal_matrix: PathLike | None = None,
    cell_table: PathLike | None = None,
    cells: str | Sequence[str] | None = None,
    task: str = "binary",
    neg_ratio: float = 3.0,
    background: int | None = None,
    blacklist: PathLike | Sequence[PathLike] | None = None,
    length: int = 600,
    min_distance: int = 300,
    test_chroms: str | Sequence[str] = "chr2,chr3",
    folds: int = 3,
    seed: int = 0,
    max_n_fraction: float = 0.1,
    fold_scheme: str = "rows",
    exclude_chroms: str | Sequence[str] | None = None,
    threshold: float = 1.64,
    pseudocount: float = 0.0,
    overwrite: bool = False,
    multiclass_set: str = "authors",
    gc_match: bool = False,
) -> Path:
    """Build a fine-tuning store (see the module docstring).

    Args:
        genome: FASTA / 2bit path or an open :class:`~chromtransfer.genome.Genome`.
        out: store directory.
        cell: the cell line of a binary set (case-insensitive; not used for multiclass).
        labels_csv: folder of published ``<CELL>.csv`` files, or the files.
        label_matrix: TSV of regions x cell lines (1/0).
        signal_matrix: TSV of regions x replicate signal columns.
        cell_table: TSV of regions x cell lines holding the published label names
            (:func:`.labels.read_cell_table`).
        cells: cell lines considered (list or comma-separated; default: all in the input).
        task: ``"binary"`` or ``"multiclass"``.
        neg_ratio: negatives per positive for matrix inputs (the paper: 2.5 to 3.5).
        background: genomic background windows to add (default for matrix inputs: a tenth of
            the rDHS rows of the set, at most 1000; 0 for published files, which carry their own
            ``Negative`` windows).
        blacklist: regions background windows must not overlap.
        length: window length (bp), centred on each region's midpoint.
        min_distance: background windows lie at least this far from every input region.
        test_chroms, folds, seed, fold_scheme: split and folds (:mod:`.splits`).
        max_n_fraction: windows with a larger share of N are dropped.
        exclude_chroms: chromosomes left out entirely.
        threshold, pseudocount: the signal-matrix rule (:func:`.labels.open_from_signal`).
        multiclass_set: the rows of a multi-class set, ``"authors"`` or ``"union"`` (module
            docstring).
        gc_match: draw negatives and background with the positives' GC distribution (module
            docstring).
        overwrite: replace a complete store at ``out`` (only the store's own files).

    Returns:
        The store path.
    """
    sources = [x for x in (labels_csv, label_matrix, signal_matrix, cell_table) if x is not None and x != []]
    if len(sources) != 1:
        raise InputError("prepare finetune", "give exactly one of --labels-csv, --label-matrix, --cell-table, "
                         "--signal-matrix", fix="choose the label input you have")
    if gc_match and labels_csv is not None and not background:
        raise InputError("--gc-match", "published label files are used as given, so GC matching needs --background",
                         fix="add --background N (genomic windows drawn GC-matched), or use --cell-table")
    if task not in TASKS:
        raise InputError("--task", f"unknown task {task!r}", fix="use binary or multiclass")
    if task == "binary" and not cell:
        raise InputError("--cell", "a binary fine-tuning set needs the cell line", fix="add --cell, e.g. --cell HepG2")
    if multiclass_set not in MULTICLASS_SETS:
        raise InputError("--multiclass-set", f"unknown set {multiclass_set!r}", fix="use authors or union")
    if neg_ratio <= 0:
        raise InputError("--neg-ratio", f"must be positive, not {neg_ratio}", fix="the paper used 2.5 to 3.5")
    cell_list = parse_chrom_list(cells) if isinstance(cells, str) else (list(cells) if cells else None)
    if cell_list == "all" or cell_list == []:
        cell_list = None
    check_output_store(out, overwrite)
    g = open_genome(genome)
    check_chrom_option(g, test_chroms, "--test-chroms")
    check_chrom_option(g, exclude_chroms, "--exclude-chroms")
    dropped: dict[str, int] = {}
    skip = resolve_chroms(g, parse_chrom_list(exclude_chroms) if exclude_chroms else [])
    parameters = {"kind": "finetune", "task": task, "cell": cell, "cells": cell_list, "neg_ratio": neg_ratio,
                  "min_distance": min_distance, "exclude_chroms": skip, "gc_match": gc_match}
    if gc_match:
        parameters["gc_bins"] = GC_BINS
    if task == "multiclass":
        parameters["multiclass_set"] = multiclass_set
    if labels_csv is not None:
        files = find_label_files(labels_csv, cell_list)
        rows, classes, considered = _from_published(g, files, cell, task, length, dropped, multiclass_set)
        inputs = describe_inputs(genome=g.path, labels_csv=list(files.values()), blacklist=as_path_list(blacklist))
    else:
        matrix_key = next(k for k, v in (("label_matrix", label_matrix), ("cell_table", cell_table),
                                         ("signal_matrix", signal_matrix)) if v is not None)
        matrix_path = {"label_matrix": label_matrix, "cell_table": cell_table, "signal_matrix": signal_matrix}[matrix_key]
        if label_matrix is not None:
            regions, opened, names = read_label_matrix(matrix_path, g, cell_list)
            parameters["labels_from"] = "label matrix"
        elif cell_table is not None:
            regions, opened, names = read_cell_table(matrix_path, g, cell_list)
            parameters["labels_from"] = "cell table"
        else:
            regions, opened, names, stats = read_signal_matrix(matrix_path, g, cell_list, threshold, pseudocount)
            parameters["labels_from"] = "signal matrix"
            parameters["signal"] = stats
        dropped.update({f"regions_{k}": v for k, v in regions.attrs.get("dropped", {}).items()})
        rows, classes, considered = _from_matrix(g, regions, opened, names, cell, task, neg_ratio, length,
                                                 test_chroms, seed, dropped, gc_match=gc_match)
        inputs = describe_inputs(genome=g.path, **{matrix_key: matrix_path}, blacklist=as_path_list(blacklist))
    parameters["cells_considered"] = considered
    if background is None:
        # published files carry their own background; for matrices, as in the published sets, a
        # small share: a tenth of the rDHS rows, at most 1000 (the paper's sets hold 994)
        n_background = 0 if labels_csv is not None else min(1000, int(round(0.1 * len(rows))))
    else:
        n_background = int(background)
    authors_set = task == "multiclass" and multiclass_set == "authors"
    background_rows = None
    if n_background > 0:
        background_rows = _background_rows(g, rows, n_background, length, blacklist, min_distance, skip, seed,
                                           label=len(classes) - 1 if task == "multiclass" else 0, dropped=dropped,
                                           gc_match=gc_match, test_chroms=test_chroms,
                                           background_class=len(classes) - 1 if task == "multiclass" else 0)
    if authors_set:
        if labels_csv is None:  # published files: done while reading them
            rdhs = (rows["label_name"] == RDHS_LABEL).to_numpy()
            dropped["multiclass_negative_rdhs_not_used"] = int(rdhs.sum())
            rows = rows.loc[~rdhs].reset_index(drop=True)
        if background_rows is not None:  # once per line, as in the concatenated per-line sets
            background_rows = pd.concat([background_rows] * len(considered), ignore_index=True)
    if background_rows is not None:
        rows = pd.concat([rows, background_rows], ignore_index=True)
    parameters["background"] = n_background
    if skip:
        off = rows["chrom"].isin(skip).to_numpy()
        dropped["excluded_chromosome"] = int(off.sum())
        rows = rows.loc[~off].reset_index(drop=True)
    rows = rows.drop(columns=[c for c in rows.columns if c not in
                              ("chrom", "start", "end", "name", "label", "label_name")])
    log.info("fine-tuning set (%s): %d rows", task, len(rows))
    return write_window_store(out, g, rows, length=length, task=task, classes=classes, test_chroms=test_chroms,
                              folds=folds, seed=seed, fold_scheme=fold_scheme, max_n_fraction=max_n_fraction,
                              inputs=inputs, parameters=parameters, dropped=dropped,
                              extra={"cell": canonical_cell(cell) if cell and task == "binary" else None},
                              overwrite=overwrite)


# --------------------------------------------------------------------------- published files
def _read_published(genome: Genome, path: Path, cell_key: str, dropped: dict[str, int]) -> pd.DataFrame:
    table = read_published_labels(path)
    table = validate_regions(path, table, genome, on_missing="error", on_off_end="error", dropped=dropped)
    labels = table["label"].astype(str)
    is_pos = labels.str.lower() == cell_key.lower()
    known = is_pos | labels.str.upper().str.endswith("_NEG") | (labels.str.lower() == NEGATIVE_LABEL.lower())
    if not known.all():
        i = int(np.flatnonzero(~known.to_numpy())[0])
        raise InputError(path, f"label {labels.iloc[i]!r} is none of {cell_key}, <CELL>_NEG, Negative",
                         line=int(table["line"].iloc[i]),
                         fix=f"the file of {cell_key} holds {cell_key} (positive), *_NEG or Negative labels; "
                             "name the file after its cell line")
    table["positive"] = is_pos.to_numpy()
    dup = table.duplicated(["chrom", "start", "end"]).to_numpy()
    if dup.any():
        conflicts = table.loc[dup | table.duplicated(["chrom", "start", "end"], keep=False).to_numpy()]
        n_conflict = int((conflicts.groupby(["chrom", "start", "end"])["label"].nunique() > 1).sum())
        dropped[f"{cell_key}_duplicates"] = int(dup.sum())
        if n_conflict:
            dropped[f"{cell_key}_conflicting_duplicates"] = n_conflict
            log.warning("%s: %d windows appear with different labels; the first label is kept", path, n_conflict)
        table = table.loc[~dup].reset_index(drop=True)
    return table


def _from_published(genome: Genome, files: dict[str, Path], cell: str | None, task: str, length: int,
                    dropped: dict[str, int], multiclass_set: str = "authors"
                    ) -> tuple[pd.DataFrame, list[str], list[str]]:
    if task == "binary":
        key = match_cell(cell, list(files), what="--cell")
        table = _read_published(genome, files[key], key, dropped)
        windows = centred_windows(table, length, genome, dropped=dropped)
        rows = pd.DataFrame({"chrom": windows["chrom"].to_numpy(dtype=object), "start": windows["start"].to_numpy(),
                             "end": windows["end"].to_numpy(), "name": windows["name"].to_numpy(dtype=object),
                             "label": windows["positive"].astype(np.int32).to_numpy(),
                             "label_name": windows["label"].to_numpy(dtype=object)})
        return rows, list(BINARY_CLASSES), [key]
    keys = list(files)
    classes = [canonical_cell(k) for k in keys] + [BACKGROUND_CLASS]
    parts = []
    for index, key in enumerate(keys):
        table = _read_published(genome, files[key], key, dropped)
        table["class"] = np.where(table["positive"].to_numpy(), index, len(keys))
        parts.append(table)
    union = pd.concat(parts, ignore_index=True)
    is_negative = union["label"].str.lower() == NEGATIVE_LABEL.lower()
    union["label_name"] = np.where(union["positive"], union["label"],
                                   np.where(is_negative, NEGATIVE_LABEL, RDHS_LABEL))
    # one row per window: a positive label wins over negative ones (positives are exclusive)
    union = union.sort_values(["chrom", "start", "end", "class"], kind="stable")
    multi = union.loc[union["positive"]].groupby(["chrom", "start", "end"])["class"].nunique()
    if (multi > 1).any():
        dropped["multiclass_positive_conflicts"] = int((multi > 1).sum())
        log.warning("%d windows are positives of more than one cell line; the first is kept", int((multi > 1).sum()))
    before = len(union)
    if multiclass_set == "authors":
        # positives once each; the shared Negative windows once per file that holds them
        dropped["multiclass_negative_rdhs_not_used"] = int((~union["positive"] & ~is_negative).sum())
        positives = union.loc[union["positive"]].drop_duplicates(["chrom", "start", "end"], keep="first")
        background = union.loc[~union["positive"] & is_negative.loc[union.index]]
        union = pd.concat([positives, background]).sort_values(["chrom", "start", "end", "class"], kind="stable")
        union = union.reset_index(drop=True)
    else:
        union = union.drop_duplicates(["chrom", "start", "end"], keep="first").reset_index(drop=True)
    dropped["multiclass_merged"] = before - len(union)
    windows = centred_windows(union, length, genome, dropped=dropped)
    rows = pd.DataFrame({"chrom": windows["chrom"].to_numpy(dtype=object), "start": windows["start"].to_numpy(),
                         "end": windows["end"].to_numpy(), "name": windows["name"].to_numpy(dtype=object),
                         "label": windows["class"].astype(np.int32).to_numpy(),
                         "label_name": windows["label_name"].to_numpy(dtype=object)})
    return rows, classes, keys


# --------------------------------------------------------------------------- matrices
def _sample_negatives(rng: np.random.Generator, pool: np.ndarray, split: np.ndarray, positives: np.ndarray,
                      neg_ratio: float, cell: str, gc: np.ndarray | None = None) -> np.ndarray:
    """Negatives of one line per split, uniformly or (``gc``: every window's GC fraction) GC-matched."""
    chosen = []
    for code in (TRAIN, TEST):
        candidates = pool[split[pool] == code]
        want = int(round(neg_ratio * int((split[positives] == code).sum())))
        if want > candidates.size:
            log.warning("%s: only %d negatives available for %d wanted (%s split)", cell, candidates.size, want,
                        "train" if code == TRAIN else "test")
        if gc is None:
            chosen.append(candidates[weighted_sample(rng, candidates.size, want)])
        else:
            target = positives[split[positives] == code]
            chosen.append(candidates[gc_matched_sample(rng, gc[target], gc[candidates], want)])
    return np.sort(np.concatenate(chosen))


def _from_matrix(genome: Genome, regions: pd.DataFrame, opened: np.ndarray, names: list[str], cell: str | None,
                 task: str, neg_ratio: float, length: int, test_chroms, seed: int, dropped: dict[str, int],
                 gc_match: bool = False) -> tuple[pd.DataFrame, list[str], list[str]]:
    windows = centred_windows(regions, length, genome, on_off_end="drop")
    if len(windows) != len(regions):
        # keep the matrix rows aligned with the windows that remain
        keep = np.isin(regions["line"].to_numpy(), windows["line"].to_numpy())
        dropped["off_end"] = int((~keep).sum())
        opened = opened[keep]
    exclusive = exclusive_positives(opened)
    dropped["regions_open_in_several"] = int((exclusive == -2).sum())
    split = assign_split(windows["chrom"].to_numpy(dtype=object), test_chroms)
    gc = None
    if gc_match:
        gc = window_stats(genome, windows["chrom"].to_numpy(dtype=object), windows["start"].to_numpy(), length)[1]
    names_out = [canonical_cell(n) for n in names]
    targets = [match_cell(cell, names)] if task == "binary" else list(names)
    label_name = np.full(len(windows), RDHS_LABEL, dtype=object)
    selected = np.zeros(len(windows), dtype=bool)
    label = np.zeros(len(windows), dtype=np.int32)
    for target in targets:
        c = names.index(target)
        positives = np.flatnonzero(exclusive == c)
        pool = np.flatnonzero((exclusive == -1) | ((exclusive >= 0) & (exclusive != c)))
        negatives = _sample_negatives(_cell_rng(seed, target), pool, split, positives, neg_ratio, target, gc)
        if not positives.size:
            raise InputError(regions.attrs.get("source", "matrix"), f"no region is open only in {target}",
                             fix="check the cell columns and --cells")
        if task == "binary":
            label[positives] = 1
            label_name[positives] = target
            label_name[negatives] = f"{target}_NEG"
        selected[positives] = True
        selected[negatives] = True
    if task == "multiclass":
        label[:] = len(names)
        own = exclusive >= 0
        label[own] = exclusive[own]
        label_name[own] = np.asarray(names, dtype=object)[exclusive[own]]
        classes = names_out + [BACKGROUND_CLASS]
    else:
        classes = list(BINARY_CLASSES)
    keep = np.flatnonzero(selected)
    rows = pd.DataFrame({"chrom": windows["chrom"].to_numpy(dtype=object)[keep],
                         "start": windows["start"].to_numpy()[keep], "end": windows["end"].to_numpy()[keep],
                         "name": windows["name"].to_numpy(dtype=object)[keep], "label": label[keep],
                         "label_name": label_name[keep],
                         "region_start": windows["region_start"].to_numpy()[keep],
                         "region_end": windows["region_end"].to_numpy()[keep]})
    rows.attrs["all_regions"] = windows  # every region of the matrix, for the background distance rule
    return rows, classes, list(names)


def _background_rows(genome: Genome, rows: pd.DataFrame, n: int, length: int, blacklist, min_distance: int,
                     skip: list[str], seed: int, label: int, dropped: dict[str, int], gc_match: bool = False,
                     test_chroms=None, background_class: int = 0) -> pd.DataFrame:
    """``n`` genomic background windows (label_name ``Negative``), shared by every cell line of a seed;
    with ``gc_match``, drawn per split (in the tiles' proportions) with the GC distribution of
    the rows not of ``background_class``."""
    black = read_many(as_path_list(blacklist), genome, on_missing="drop", on_off_end="clip")
    reference = rows.attrs.get("all_regions", rows)
    avoid = [reference[["chrom", "start", "end"]]]
    if "region_start" in reference:
        avoid.append(pd.DataFrame({"chrom": reference["chrom"], "start": reference["region_start"],
                                   "end": reference["region_end"]}))
    exclude = []
    if len(black):
        exclude.append((IntervalSet.from_frame(black), 0))
    exclude.append((IntervalSet.concat(avoid), min_distance))
    chroms = [c for c in genome.names if c not in skip]
    counts: dict[str, int] = {}
    tiles = candidate_tiles(genome, length, chroms, exclude=exclude, dropped=counts, with_gc=gc_match)
    if gc_match:
        pick = _gc_matched_background(genome, rows, tiles, n, length, test_chroms, seed, background_class)
    else:
        pick = np.sort(_background_rng(seed).permutation(len(tiles))[:n])
    if pick.size < n:
        log.warning("only %d background windows available for %d wanted", pick.size, n)
        dropped["background_short"] = int(n - pick.size)
    tiles = tiles.iloc[pick].reset_index(drop=True)
    return pd.DataFrame({"chrom": tiles["chrom"].to_numpy(dtype=object), "start": tiles["start"].to_numpy(),
                         "end": tiles["end"].to_numpy(), "name": region_names(tiles).to_numpy(dtype=object),
                         "label": label, "label_name": NEGATIVE_LABEL})


def _gc_matched_background(genome: Genome, rows: pd.DataFrame, tiles: pd.DataFrame, n: int, length: int,
                           test_chroms, seed: int, background_class: int) -> np.ndarray:
    """Indices of ``n`` tiles (sorted): per split, the split's share of the tiles, GC-matched to
    that split's positive rows (every class but ``background_class``)."""
    positive = rows["label"].to_numpy() != background_class
    pos_gc = window_stats(genome, rows["chrom"].to_numpy(dtype=object)[positive], rows["start"].to_numpy()[positive],
                          length)[1]
    pos_split = assign_split(rows["chrom"].to_numpy(dtype=object)[positive], test_chroms)
    tile_split = assign_split(tiles["chrom"].to_numpy(dtype=object), test_chroms)
    rng = _background_rng(seed)
    chosen = []
    for code in (TRAIN, TEST):
        pool = np.flatnonzero(tile_split == code)
        want = int(round(n * pool.size / max(len(tiles), 1)))
        target = pos_gc[pos_split == code]
        if not target.size:
            target = pos_gc
        chosen.append(pool[gc_matched_sample(rng, target, tiles["gc"].to_numpy()[pool], want)])
    return np.sort(np.concatenate(chosen))
