"""Cell-type label inputs for fine-tuning: the published label files, binary label matrices and
signal matrices.

Three inputs, one result (which rDHS is open in which cell line):

* **Published format** (:func:`read_published_labels`): one file per cell line, lines
  ``chrN:start-end,LABEL`` without header, LABEL one of ``<CELL>`` (positive), ``<CELL>_NEG``
  (negative rDHS) or ``Negative`` (genomic background). Labels are used as given.
* **Label matrix** (:func:`read_label_matrix`): a TSV with a header, region columns (``chrom``,
  ``start``, ``end`` [``name``] or one ``region`` column of ``chr:start-end``) and one column per
  cell line holding 1/0 (also ``true``/``false``, ``yes``/``no``, ``open``/``closed``).
* **Cell table** (:func:`read_cell_table`): a TSV with a header, region columns and one column per
  cell line holding that line's published label for the window: the line's name (positive: open
  only in that line), ``<CELL>_NEG`` (a negative rDHS), ``Negative`` (genomic background) or empty
  (the window is not in that line's set), as ``labels/chromtransfer_cells_GRCh37.tsv.gz`` of the
  real development data. It is read as a label matrix (open in a line = labelled with its name),
  so the paper's rule for fine-tuning sets applies to it; windows labelled only ``Negative`` are
  background, not rDHSs, and are left out (counted).
* **Signal matrix** (:func:`read_signal_matrix`): the same region columns plus one column per
  replicate, named ``<CELL>`` or ``<CELL><sep><replicate>`` with ``sep`` one of ``_ . - :`` (e.g.
  ``HepG2_rep1``, ``HepG2_rep2``). :func:`open_from_signal` applies the paper's rule: log10 of
  every value, one global z-score over every finite value of the matrix (all replicates of all cell
  lines in the file), open where z > 1.64 in any replicate of the line. Zero signal has no
  logarithm: it is closed and left out of the mean and standard deviation (``pseudocount`` adds a
  constant before the logarithm instead).

Cell-line names are matched case-insensitively (``HEPG2`` finds a ``HepG2`` column); the six lines
of the paper keep the paper's spelling (:data:`CELL_LINES`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..intervals import open_text, parse_region_strings, read_region_table

__all__ = [
    "CELL_LINES",
    "canonical_cell",
    "exclusive_positives",
    "find_label_files",
    "match_cell",
    "open_from_signal",
    "read_cell_table",
    "read_label_matrix",
    "read_published_labels",
    "read_signal_matrix",
]

#: The six cell lines of the paper, in the paper's spelling (alphabetical, as its result tables).
CELL_LINES = ("A549", "GM12878", "HCT116", "HepG2", "K562", "MCF7")
NEGATIVE_LABEL = "Negative"
_TRUE = {"1", "true", "yes", "open", "t", "y"}
_FALSE = {"0", "false", "no", "closed", "f", "n", ""}
_SEPARATORS = "_.-:"


def canonical_cell(name: str) -> str:
    """The paper's spelling of a known cell line (``HEPG2`` -> ``HepG2``), else ``name`` unchanged."""
    for cell in CELL_LINES:
        if cell.lower() == name.strip().lower():
            return cell
    return name.strip()


def match_cell(name: str, available: Sequence[str], what: str = "--cell") -> str:
    """The entry of ``available`` equal to ``name`` ignoring case; ``InputError`` when absent."""
    for cand in available:
        if cand.lower() == name.strip().lower():
            return cand
    raise InputError(what, f"cell line {name!r} is not among {', '.join(available)}",
                     fix="choose one of those (case does not matter)")


# --------------------------------------------------------------------------- published format
def read_published_labels(path: str | os.PathLike) -> pd.DataFrame:
    """Read one published label file (``chrN:start-end,LABEL`` lines).

    Returns:
        DataFrame ``chrom, start, end, name, label, line`` (``name`` is the ``chrN:start-end``
        text, ``label`` the label as written, ``line`` the 1-based line number).
    """
    path = Path(path)
    regions, labels, lines = [], [], []
    with open_text(path) as handle:
        for lineno, line in enumerate(handle, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = [p.strip() for p in text.split(",")]
            if len(parts) != 2 or not parts[1]:
                raise InputError(path, f"expected 'chrN:start-end,LABEL', found {text[:60]!r}", line=lineno,
                                 fix="one region and one label per line, separated by a comma")
            regions.append(parts[0])
            labels.append(parts[1])
            lines.append(lineno)
    if not regions:
        raise InputError(path, "no labelled regions found", fix="give a file of 'chrN:start-end,LABEL' lines")
    table = parse_region_strings(regions, path, lines)
    bad = table["start"].to_numpy() >= table["end"].to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(path, f"region {regions[i]!r} has start >= end", line=lines[i],
                         fix="regions are 0-based half-open: start < end")
    table["name"] = pd.Series(regions, dtype=object)
    table["label"] = pd.Series(labels, dtype=object)
    table["line"] = np.asarray(lines, dtype=np.int64)
    table.attrs["source"] = str(path)
    return table


def find_label_files(sources: str | os.PathLike | Sequence[str | os.PathLike],
                     cells: Sequence[str] | None = None) -> dict[str, Path]:
    """Map cell line -> published label file.

    ``sources`` is a directory (every ``*.csv`` / ``*.csv.gz`` in it) or a list of files and
    directories; the cell line is the file name without extension (``HEPG2.csv`` -> ``HEPG2``).
    With ``cells``, only those lines (case-insensitive) are returned, in that order; a missing one
    is an ``InputError``.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    files: dict[str, Path] = {}
    for source in sources:
        source = Path(source)
        if source.is_dir():
            found = sorted(list(source.glob("*.csv")) + list(source.glob("*.csv.gz")), key=lambda p: p.name.lower())
            if not found:
                raise InputError(source, "no *.csv label files in this folder",
                                 fix="give the folder of the published <CELL>.csv files or the files themselves")
            for f in found:
                files[_stem(f)] = f
        elif source.is_file():
            files[_stem(source)] = source
        else:
            raise InputError(source, "label file or folder not found", fix="check the path")
    if cells is None:
        return dict(sorted(files.items(), key=lambda kv: kv[0].lower()))
    out = {}
    for cell in cells:
        key = match_cell(cell, list(files), what="--cells")
        out[key] = files[key]
    return out


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".csv.gz", ".csv", ".tsv.gz", ".tsv", ".txt"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


# --------------------------------------------------------------------------- matrices
def _cell_columns(path: Path, table: pd.DataFrame, cells: Sequence[str] | None, signal: bool
                  ) -> tuple[list[str], dict[str, list[str]]]:
    """The cell lines and, for each, its value columns."""
    skip = {"chrom", "start", "end", "name", "line", "region_start", "region_end", "summit"}
    candidates = [c for c in table.columns if c not in skip]
    if not candidates:
        raise InputError(path, "no cell-line columns after the region columns",
                         fix="add one column per cell line (label matrix) or per replicate (signal matrix)")
    groups: dict[str, list[str]] = {}
    if cells:
        for cell in cells:
            cols = [c for c in candidates if c.lower() == cell.lower() or
                    (signal and len(c) > len(cell) and c.lower().startswith(cell.lower()) and c[len(cell)] in _SEPARATORS)]
            if not cols:
                raise InputError(path, f"no column for cell line {cell!r} (columns: {', '.join(candidates[:12])})",
                                 fix="name columns after the cell lines, e.g. HepG2 or HepG2_rep1")
            groups[cell] = cols
    else:
        for c in candidates:
            cell = re.split(f"[{re.escape(_SEPARATORS)}]", c, maxsplit=1)[0] if signal else c
            groups.setdefault(cell, []).append(c)
    names = list(groups)
    return names, groups


def read_label_matrix(path: str | os.PathLike, genome=None, cells: Sequence[str] | None = None
                      ) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Read a binary label matrix (regions x cell lines).

    Returns:
        ``(regions, open, cells)``: ``regions`` from :func:`~chromtransfer.intervals.read_regions`
        (duplicates removed), ``open`` a ``(n_regions, n_cells)`` bool matrix, ``cells`` the
        column names in ``open``'s column order.
    """
    path = Path(path)
    table = read_region_table(path, genome)
    names, groups = _cell_columns(path, table, cells, signal=False)
    matrix = np.zeros((len(table), len(names)), dtype=bool)
    for j, cell in enumerate(names):
        if len(groups[cell]) != 1:
            raise InputError(path, f"{len(groups[cell])} columns for cell line {cell!r}",
                             fix="a label matrix has exactly one 0/1 column per cell line")
        column = table[groups[cell][0]]
        if pd.api.types.is_numeric_dtype(column):
            numbers = column.to_numpy(dtype=np.float64)
            is_true, is_false = numbers == 1, numbers == 0
        else:
            values = column.astype(str).str.strip().str.lower()
            is_true, is_false = values.isin(_TRUE).to_numpy(), values.isin(_FALSE).to_numpy()
        bad = ~(is_true | is_false)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(path, f"column {groups[cell][0]!r} holds {table[groups[cell][0]].iloc[i]!r}, not 0/1",
                             line=int(table["line"].iloc[i]),
                             fix="label matrices hold 1 (open) or 0 (closed); for signal values use --signal-matrix")
        matrix[:, j] = is_true
    regions = table[[c for c in ("chrom", "start", "end", "name", "line") if c in table]].copy()
    regions.attrs = dict(table.attrs)
    return regions, matrix, names


def read_cell_table(path: str | os.PathLike, genome=None, cells: Sequence[str] | None = None
                    ) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Read a per-window cell table (published label names per cell line) as a label matrix.

    The cell columns are the columns after the region columns that hold text (numeric columns,
    such as other coordinates, are kept out). Every value of column ``C`` must be ``C`` (open in
    C), ``C_NEG``, ``Negative`` or empty, ignoring case. Windows open in no line and labelled only
    ``Negative`` (genomic background) or nothing are dropped and counted in
    ``regions.attrs["dropped"]`` (``cell_table_background``, ``cell_table_unlabelled``).

    Returns:
        ``(regions, open, cells)`` as :func:`read_label_matrix`: ``open`` is ``(n_regions,
        n_cells)`` bool, True where the window carries the line's own name.
    """
    path = Path(path)
    table = read_region_table(path, genome)
    skip = {"chrom", "start", "end", "name", "line"}
    text_columns = [c for c in table.columns if c not in skip and not pd.api.types.is_numeric_dtype(table[c])]
    if not text_columns:
        raise InputError(path, "no cell-line columns holding label names after the region columns",
                         fix="one column per cell line holding CELL, CELL_NEG, Negative or nothing")
    region_columns = table[["chrom", "start", "end", "line", *text_columns]]
    every_line, _ = _cell_columns(path, region_columns, None, signal=False)
    names, groups = _cell_columns(path, region_columns, cells, signal=False)
    opened = np.zeros((len(table), len(names)), dtype=bool)
    labelled = np.zeros(len(table), dtype=bool)  # an rDHS of any line's set, considered or not
    background = np.zeros(len(table), dtype=bool)
    for column in every_line:
        value = table[column].fillna("").astype(str).str.strip()
        lower = value.str.lower()
        is_pos = (lower == column.lower()).to_numpy()
        is_neg = (lower == f"{column.lower()}_neg").to_numpy()
        is_background = (lower == NEGATIVE_LABEL.lower()).to_numpy()
        bad = ~(is_pos | is_neg | is_background | (lower == "").to_numpy())
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(path, f"column {column!r} holds {value.iloc[i]!r}", line=int(table["line"].iloc[i]),
                             fix=f"a cell table's {column} column holds {column} (positive), {column}_NEG, "
                                 f"{NEGATIVE_LABEL} or nothing")
        for j, cell in enumerate(names):
            if groups[cell][0] == column:
                opened[:, j] = is_pos
        labelled |= is_pos | is_neg
        background |= is_background
    keep = labelled
    dropped = dict(table.attrs.get("dropped", {}))
    dropped["cell_table_background"] = int((~labelled & background).sum())
    dropped["cell_table_unlabelled"] = int((~labelled & ~background).sum())
    if not keep.any():
        raise InputError(path, "no window is labelled with a cell line or <CELL>_NEG",
                         fix="check the cell columns (CELL, CELL_NEG, Negative or empty)")
    regions = table.loc[keep, [c for c in ("chrom", "start", "end", "name", "line") if c in table]].reset_index(drop=True)
    regions.attrs = {**table.attrs, "dropped": dropped}
    return regions, opened[keep], names


def open_from_signal(values: np.ndarray, replicate_cell: np.ndarray, n_cells: int, threshold: float = 1.64,
                     pseudocount: float = 0.0) -> tuple[np.ndarray, dict]:
    """The paper's openness rule on a signal matrix.

    Args:
        values: ``(n_regions, n_replicates)`` non-negative aggregated signal.
        replicate_cell: ``(n_replicates,)`` cell index of each replicate column.
        n_cells: number of cell lines.
        threshold: z-score above which a replicate calls the region open (1.64).
        pseudocount: added before log10 (0: zeros are closed and ignored by the z-score).

    Returns:
        ``(open, stats)``: ``(n_regions, n_cells)`` bool, open in any replicate of the line;
        ``stats`` holds the global mean and sd of log10 signal.
    """
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logged = np.log10(values + pseudocount)
    finite = np.isfinite(logged)
    if not finite.any():
        raise ValueError("no positive signal value to z-score")
    mean = float(logged[finite].mean())
    sd = float(logged[finite].std())
    if sd == 0:
        raise ValueError("all log10 signal values are equal: the z-score is undefined")
    z = np.where(finite, (logged - mean) / sd, -np.inf)
    called = z > threshold
    out = np.zeros((values.shape[0], n_cells), dtype=bool)
    replicate_cell = np.asarray(replicate_cell)
    for c in range(n_cells):
        cols = replicate_cell == c
        if cols.any():
            out[:, c] = called[:, cols].any(axis=1)
    return out, {"log10_mean": mean, "log10_sd": sd, "threshold": threshold, "pseudocount": pseudocount}


def read_signal_matrix(path: str | os.PathLike, genome=None, cells: Sequence[str] | None = None,
                       threshold: float = 1.64, pseudocount: float = 0.0
                       ) -> tuple[pd.DataFrame, np.ndarray, list[str], dict]:
    """Read a signal matrix (regions x replicate columns) and call open regions per cell line.

    The z-score is global over every replicate column of the file, also those of cell lines
    not in ``cells``. Returns ``(regions, open, cells, stats)`` (see :func:`read_label_matrix`,
    :func:`open_from_signal`); ``stats["replicates"]`` maps each line to its columns.
    """
    path = Path(path)
    table = read_region_table(path, genome)
    all_names, all_groups = _cell_columns(path, table, None, signal=True)
    names, groups = _cell_columns(path, table, cells, signal=True) if cells else (all_names, all_groups)
    columns = [c for cols in all_groups.values() for c in cols]
    numbers = np.empty((len(table), len(columns)), dtype=np.float64)
    for j, col in enumerate(columns):
        column = table[col]
        if not pd.api.types.is_numeric_dtype(column):
            column = pd.to_numeric(column.astype(str).str.strip(), errors="coerce")
        parsed = column.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(parsed) | (parsed < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(path, f"column {col!r} holds {table[col].iloc[i]!r}, not a non-negative number",
                             line=int(table["line"].iloc[i]),
                             fix="signal matrices hold aggregated signal >= 0 in every replicate column")
        numbers[:, j] = parsed
    index_of = {n: i for i, n in enumerate(names)}
    replicate_cell = np.full(len(columns), -1)
    for cell in names:
        for col in groups[cell]:
            replicate_cell[columns.index(col)] = index_of[cell]
    try:
        opened, stats = open_from_signal(numbers, replicate_cell, len(names), threshold, pseudocount)
    except ValueError as exc:
        raise InputError(path, str(exc), fix="check the signal columns") from exc
    stats["replicates"] = {cell: list(groups[cell]) for cell in names}
    regions = table[[c for c in ("chrom", "start", "end", "name", "line") if c in table]].copy()
    regions.attrs = dict(table.attrs)
    return regions, opened, names, stats


def exclusive_positives(opened: np.ndarray) -> np.ndarray:
    """``(n_regions,)`` int: the index of the only cell line a region is open in, -1 for regions
    open in none, -2 for regions open in several."""
    opened = np.asarray(opened, dtype=bool)
    count = opened.sum(axis=1)
    out = np.where(count == 0, -1, -2)
    one = count == 1
    out[one] = opened[one].argmax(axis=1)
    return out
