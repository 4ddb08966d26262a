"""Genomic intervals: reading and validating region files, centred windows and tiling.

Reading (:func:`read_regions`) returns a :class:`pandas.DataFrame` with columns

    chrom   chromosome (the genome's own spelling when a genome is given, else as in the file)
    start   0-based start (int64)
    end     0-based half-open end (int64)
    name    the region's name (4th BED column, a ``name`` TSV column, else ``chrom:start-end`` as
            written in the file)
    summit  absolute 0-based summit position, or -1 (narrowPeak only)
    line    1-based line number in the file (for error messages further down the pipeline)

plus, for TSV input with ``extra_columns=True``, the table's other columns as strings. Its
``attrs`` hold ``source`` (the path) and ``dropped`` (counts of removed rows by reason).

Accepted formats (``kind``):

* ``bed``: tab- (or white-space-) separated, at least 3 columns, no header; 4th column = name.
* ``narrowpeak``: ENCODE narrowPeak (10 columns); column 10 is the summit offset from start
  (-1 = not called).
* ``tsv``: a table with a header naming the columns (``chrom``/``chr``/``chromosome``,
  ``start``/``chromStart``, ``end``/``chromEnd``/``stop``, optional ``name``); the header may start
  with ``#``. Instead of three coordinate columns a ``region`` column of ``chr:start-end`` works.
* ``auto``: ``narrowpeak`` when the file name says so, ``tsv`` when the first line (or the ``#``
  line above it) names a chromosome or region column, else ``bed``.

Blank lines, ``#`` comments and ``track`` / ``browser`` lines are skipped. Validation errors
(missing columns, non-integer or negative coordinates, ``start >= end``, chromosomes absent from
the genome, regions past the chromosome end) raise :class:`~chromtransfer.errors.InputError` naming
the file and line. Exact duplicates (same chromosome, start and end) are removed and counted.

Overlap and distance tests: :mod:`chromtransfer.interval_sets`.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
import pandas as pd

from .compressed import open_input, open_text  # noqa: F401  (open_text: the readers' opener)
from .encoding import N_CODE
from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from .genome import Genome

__all__ = [
    "centred_windows",
    "read_region_table",
    "validate_regions",
    "n_fraction",
    "parse_region_strings",
    "read_regions",
    "tile_chromosome",
    "tile_genome",
]

log = logging.getLogger("chromtransfer.intervals")

REGION_KINDS = ("auto", "bed", "narrowpeak", "tsv")
_CHROM_NAMES = ("chrom", "chr", "chromosome", "seqnames", "seqname", "seqid", "contig")
_START_NAMES = ("start", "chromstart", "chrom_start", "begin")
_END_NAMES = ("end", "chromend", "chrom_end", "stop")
_NAME_NAMES = ("name", "id", "region_id", "peak")
_REGION_NAMES = ("region", "regions", "coordinates", "locus", "interval")
_REGION_STRING = re.compile(r"^\s*([^:\s]+):(-?\d+)-(-?\d+)\s*$")
_SHOWN = 3  # lines listed in a log message about dropped rows



def _is_skipped(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#") or stripped.startswith(("track ", "track\t", "browser ", "browser\t")) \
        or stripped in ("track", "browser")


def _split(line: str) -> list[str]:
    line = line.rstrip("\r\n")
    return line.split("\t") if "\t" in line else line.split()


def _is_int(text: str) -> bool:
    try:
        int(text)
        return True
    except ValueError:
        return False


def _find_column(header: list[str], candidates: Sequence[str]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for cand in candidates:
        if cand in lowered:
            return lowered.index(cand)
    return None


def _detect_kind(path: Path, first_fields: list[str] | None, hash_header: list[str] | None) -> str:
    name = path.name.lower()
    if "narrowpeak" in name:
        return "narrowpeak"
    if hash_header is not None and _find_column(hash_header, _CHROM_NAMES) is not None:
        return "tsv"
    if first_fields is None:
        return "bed"
    if len(first_fields) >= 3 and _is_int(first_fields[1]) and _is_int(first_fields[2]):
        return "bed"
    # a header row names its columns; anything else is (possibly malformed) BED
    if _find_column(first_fields, _CHROM_NAMES + _REGION_NAMES) is not None:
        return "tsv"
    return "bed"


def read_regions(
    path: str | os.PathLike,
    genome: "Genome | None" = None,
    kind: str = "auto",
    *,
    on_missing: str = "error",
    on_off_end: str = "error",
    dedupe: bool = True,
    extra_columns: bool = False,
) -> pd.DataFrame:
    """Read and validate a region file (see the module docstring for formats and columns).

    Args:
        path: BED / narrowPeak / TSV file, plain or gzip-compressed.
        genome: a :class:`~chromtransfer.genome.Genome` or a genome path; when given, chromosome
            names are resolved to the genome's spelling (aliases:
            ``chr20`` <-> ``20``, ``chrM`` <-> ``MT``) and coordinates are checked against its lengths.
        kind: ``auto``, ``bed``, ``narrowpeak`` or ``tsv``.
        on_missing: ``"error"`` (default) or ``"drop"`` (count) rows on chromosomes the genome lacks.
        on_off_end: ``"error"``, ``"drop"`` or ``"clip"`` for regions ending past the chromosome end.
        dedupe: remove exact duplicates (same chrom, start, end), keeping the first.
        extra_columns: keep a TSV's other columns (as strings).

    Returns:
        DataFrame with ``chrom, start, end, name, [summit,] line`` (+ extras), in file order.
    """
    path = Path(path)
    if kind not in REGION_KINDS:
        raise ValueError(f"kind must be one of {REGION_KINDS}, not {kind!r}")
    for value, allowed, what in ((on_missing, ("error", "drop"), "on_missing"),
                                 (on_off_end, ("error", "drop", "clip"), "on_off_end")):
        if value not in allowed:
            raise ValueError(f"{what} must be one of {allowed}, not {value!r}")
    if genome is not None and not hasattr(genome, "try_resolve"):
        from .genome import open_genome

        genome = open_genome(genome)
    table = _parse(path, kind, extra_columns)
    dropped: dict[str, int] = {}
    table = validate_regions(path, table, genome, on_missing, on_off_end, dropped)
    if dedupe and len(table):
        dup = table.duplicated(["chrom", "start", "end"], keep="first").to_numpy()
        if dup.any():
            dropped["duplicates"] = int(dup.sum())
            log.info("%s: removed %d duplicate regions (first at line %d)", path, int(dup.sum()),
                     int(table["line"].to_numpy()[dup][0]))
            table = table.loc[~dup]
    table = table.reset_index(drop=True)
    table.attrs["source"] = str(path)
    table.attrs["dropped"] = dropped
    return table


def _parse(path: Path, kind: str, extra_columns: bool) -> pd.DataFrame:
    chroms: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    names: list[str | None] = []
    summits: list[int] = []
    lines: list[int] = []
    extras: dict[str, list[str]] = {}
    header: list[str] | None = None
    hash_header: list[str] | None = None
    cols = None  # (chrom, start, end, name, region) indices for TSV
    extra_idx: list[int] = []
    interned: dict[str, str] = {}
    with open_text(path) as handle:
        for lineno, line in enumerate(handle, 1):
            if _is_skipped(line):
                stripped = line.strip()
                if stripped.startswith("#") and kind in ("auto", "tsv") and header is None and not chroms:
                    hash_header = _split(stripped.lstrip("#").strip())
                continue
            fields = _split(line)
            if kind == "auto":
                kind = _detect_kind(path, fields, hash_header)
            if kind == "tsv" and cols is None:
                if hash_header is not None and _find_column(hash_header, _CHROM_NAMES + _REGION_NAMES) is not None:
                    header = hash_header
                else:
                    header = fields
                cols = _tsv_columns(path, header, lineno)
                if extra_columns:
                    used = {c for c in cols if c is not None}
                    extra_idx = [i for i in range(len(header)) if i not in used]
                    extras = {header[i]: [] for i in extra_idx}
                if header is fields:
                    continue
            try:
                if kind == "tsv":
                    ci, si, ei, ni, ri = cols
                    if len(fields) < len(header):
                        fields = fields + [""] * (len(header) - len(fields))
                    if ri is not None and ci is None:
                        match = _REGION_STRING.match(fields[ri])
                        if not match:
                            raise InputError(path, f"region {fields[ri]!r} is not of the form chr:start-end",
                                             line=lineno, fix="write regions as chrN:start-end")
                        chrom, start, end = match.group(1), int(match.group(2)), int(match.group(3))
                    else:
                        chrom, start, end = fields[ci], _int(path, fields[si], lineno, "start"), \
                            _int(path, fields[ei], lineno, "end")
                    name = fields[ni] if ni is not None else None
                    for key, i in zip(extras, extra_idx):
                        extras[key].append(fields[i])
                else:
                    if len(fields) < 3:
                        raise InputError(path, f"expected at least 3 columns (chrom, start, end), found {len(fields)}",
                                         line=lineno, fix="use tab-separated BED: chrom<TAB>start<TAB>end")
                    chrom = fields[0]
                    start = _int(path, fields[1], lineno, "start")
                    end = _int(path, fields[2], lineno, "end")
                    name = fields[3] if len(fields) > 3 else None
                    if kind == "narrowpeak":
                        if len(fields) < 10:
                            raise InputError(path, f"narrowPeak needs 10 columns, found {len(fields)}", line=lineno,
                                             fix="give a narrowPeak file, or read it as plain BED (kind='bed')")
                        offset = _int(path, fields[9], lineno, "summit offset")
                        summits.append(start + offset if offset >= 0 else -1)
            except IndexError as exc:
                raise InputError(path, "too few columns", line=lineno, fix="every row needs the header's columns") from exc
            chroms.append(interned.setdefault(chrom, chrom))
            starts.append(start)
            ends.append(end)
            names.append(name if name not in ("", ".") else None)
            lines.append(lineno)
    if kind == "tsv" and cols is None and hash_header is not None:
        cols = _tsv_columns(path, hash_header, 1)
    table = pd.DataFrame({
        "chrom": pd.Series(chroms, dtype=object),
        "start": np.asarray(starts, dtype=np.int64),
        "end": np.asarray(ends, dtype=np.int64),
        "name": pd.Series(names, dtype=object),
    })
    missing = table["name"].isna().to_numpy()
    if missing.any():  # unnamed regions are named chrom:start-end, as written in the file
        table.loc[missing, "name"] = region_names(table.loc[missing])
    if kind == "narrowpeak":
        table["summit"] = np.asarray(summits, dtype=np.int64)
    table["line"] = np.asarray(lines, dtype=np.int64)
    for key, values in extras.items():
        table[key] = pd.Series(values, dtype=object)
    table.attrs["kind"] = kind
    return table


def _tsv_columns(path: Path, header: list[str], lineno: int):
    ci, si, ei = (_find_column(header, names) for names in (_CHROM_NAMES, _START_NAMES, _END_NAMES))
    ni = _find_column(header, _NAME_NAMES)
    ri = _find_column(header, _REGION_NAMES)
    if None in (ci, si, ei):
        if ri is None and ni is not None:
            ri = ni  # a name column holding chr:start-end
        if ri is None:
            raise InputError(path, f"the header {header[:6]} names no chrom/start/end (or region) columns",
                             line=lineno, fix="add a header line such as 'chrom<TAB>start<TAB>end<TAB>name'")
        return None, None, None, ni, ri
    return ci, si, ei, ni, None


def _int(path: Path, text: str, lineno: int, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(path, f"{what} {text!r} is not an integer", line=lineno,
                         fix="coordinates must be whole numbers (0-based BED)") from None


def _first_line(table: pd.DataFrame, mask: np.ndarray) -> int:
    return int(table["line"].to_numpy()[mask][0])


def validate_regions(path, table: pd.DataFrame, genome, on_missing: str = "error", on_off_end: str = "error",
                     dropped: dict[str, int] | None = None) -> pd.DataFrame:
    """Check a ``chrom, start, end, line`` table; resolve chromosomes to the genome's names.

    Raises ``InputError`` (file and line) for negative starts, ``start >= end``, chromosomes absent
    from the genome (unless ``on_missing="drop"``) and regions past the chromosome end (unless
    ``on_off_end`` is ``"drop"`` or ``"clip"``); counts of dropped rows go into ``dropped``.
    """
    dropped = {} if dropped is None else dropped
    if not len(table):
        return table
    starts, ends = table["start"].to_numpy(), table["end"].to_numpy()
    bad = starts < 0
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise InputError(path, f"negative start {starts[i]} ({int(bad.sum())} such rows)",
                         line=_first_line(table, bad), fix="coordinates are 0-based and must be >= 0")
    bad = starts >= ends
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise InputError(path, f"start {starts[i]} is not below end {ends[i]} ({int(bad.sum())} such rows)",
                         line=_first_line(table, bad), fix="BED intervals are half-open: start < end")
    if genome is None:
        return table
    mapping = {c: genome.try_resolve(c) for c in table["chrom"].unique()}
    missing = [c for c, r in mapping.items() if r is None]
    if missing:
        miss = table["chrom"].isin(missing).to_numpy()
        if on_missing == "error":
            shown = ", ".join(genome.names[:10]) + (", ..." if len(genome.names) > 10 else "")
            raise InputError(path, f"chromosome {table['chrom'].to_numpy()[miss][0]!r} is not in the genome "
                                   f"{genome.path.name} ({int(miss.sum())} rows on {len(missing)} such chromosomes)",
                             line=_first_line(table, miss),
                             fix=f"the genome has {shown}; remove those rows or use the matching genome")
        dropped["missing_chromosome"] = int(miss.sum())
        log.info("%s: dropped %d regions on chromosomes absent from the genome (%s)", path, int(miss.sum()),
                 ", ".join(missing[:5]))
        table = table.loc[~miss]
    table = table.copy()
    table["chrom"] = table["chrom"].map(mapping)
    lengths = table["chrom"].map(genome.lengths).to_numpy(dtype=np.int64)
    off = table["end"].to_numpy() > lengths
    if off.any():
        if on_off_end == "error":
            i = np.flatnonzero(off)[0]
            row = table.iloc[i]
            raise InputError(path, f"region {row['chrom']}:{row['start']}-{row['end']} ends past the chromosome "
                                   f"end ({lengths[i]}; {int(off.sum())} such rows)",
                             line=int(row["line"]),
                             fix="check that the file and the genome use the same assembly")
        if on_off_end == "clip":
            table["end"] = np.minimum(table["end"].to_numpy(), lengths)
            keep = table["start"].to_numpy() < table["end"].to_numpy()
            if not keep.all():
                dropped["off_end"] = int((~keep).sum())
            table = table.loc[keep]
            dropped["clipped"] = int((off & keep).sum())
        else:
            dropped["off_end"] = int(off.sum())
            log.info("%s: dropped %d regions past the chromosome end (lines %s)", path, int(off.sum()),
                     ", ".join(str(x) for x in table["line"].to_numpy()[off][:_SHOWN]))
            table = table.loc[~off]
    return table


def read_region_table(path: str | os.PathLike, genome: "Genome | None" = None, *, on_missing: str = "error",
                      on_off_end: str = "error", dedupe: bool = True) -> pd.DataFrame:
    """Read a large TSV table of regions with a header (label or signal matrices) with pandas' C
    parser.

    The header (optionally ``#``-prefixed, after any comment lines) names the region columns as for
    ``kind="tsv"`` in :func:`read_regions`; every other column is kept, with the type pandas
    infers (numbers stay numbers, so a 2.2 M x 20 signal matrix is not held as Python strings).
    Returns ``chrom, start, end, name, line`` plus those columns, validated like
    :func:`read_regions` (errors name the file and line).
    """
    path = Path(path)
    if genome is not None and not hasattr(genome, "try_resolve"):
        from .genome import open_genome

        genome = open_genome(genome)
    skip, header = 0, None
    with open_text(path) as handle:
        for line in handle:
            fields = _split(line.strip().lstrip("#").strip()) if line.strip() else []
            if fields and _find_column(fields, _CHROM_NAMES + _REGION_NAMES) is not None:
                header = fields
                break
            if line.strip() and not _is_skipped(line):
                raise InputError(path, "no header line naming the region columns", line=skip + 1,
                                 fix="start the table with a header such as 'chrom<TAB>start<TAB>end<TAB>A549 ...'")
            skip += 1
    if header is None:
        raise InputError(path, "no header line naming the region columns", fix="add a header line")
    ci, si, ei, ni, ri = _tsv_columns(path, header, skip + 1)
    text_cols = {header[i] for i in (ci, si, ei, ni, ri) if i is not None}
    try:
        with open_input(path) as handle:
            table = pd.read_csv(handle, sep="\t", skiprows=skip + 1, header=None, names=header, index_col=False,
                                dtype={c: str for c in text_cols}, keep_default_na=False,
                                na_values={c: [""] for c in header if c not in text_cols}, skip_blank_lines=False,
                                comment=None, engine="c")
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(path, f"cannot parse the table ({str(exc).splitlines()[0]})",
                         fix="every row needs the header's number of tab-separated columns") from exc
    table.insert(0, "line", np.arange(len(table), dtype=np.int64) + skip + 2)
    blank = (table[list(text_cols)] == "").all(axis=1).to_numpy()
    table = table.loc[~blank]
    if ri is not None:
        parsed = parse_region_strings(table[header[ri]].tolist(), path, table["line"].tolist())
        chrom, start, end = parsed["chrom"].to_numpy(dtype=object), parsed["start"].to_numpy(), parsed["end"].to_numpy()
    else:
        chrom = table[header[ci]].to_numpy(dtype=object)
        numbers = []
        for idx, what in ((si, "start"), (ei, "end")):
            values = pd.to_numeric(table[header[idx]], errors="coerce")
            bad = values.isna().to_numpy() | (values.to_numpy() % 1 != 0)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InputError(path, f"{what} {table[header[idx]].iloc[i]!r} is not an integer",
                                 line=int(table["line"].iloc[i]), fix="coordinates must be whole numbers (0-based)")
            numbers.append(values.to_numpy().astype(np.int64))
        start, end = numbers
    out = pd.DataFrame({"chrom": chrom, "start": start, "end": end,
                        "name": table[header[ni]].to_numpy(dtype=object) if ni is not None else None,
                        "line": table["line"].to_numpy()})
    rest = [c for c in header if c not in text_cols]
    out = pd.concat([out, table[rest].reset_index(drop=True)], axis=1)
    missing = out["name"].isna().to_numpy() | (out["name"].astype(str) == "").to_numpy()
    if missing.any():
        out.loc[missing, "name"] = region_names(out.loc[missing].assign(name=None))
    dropped: dict[str, int] = {}
    out = validate_regions(path, out, genome, on_missing, on_off_end, dropped)
    if dedupe and len(out):
        dup = out.duplicated(["chrom", "start", "end"], keep="first").to_numpy()
        if dup.any():
            dropped["duplicates"] = int(dup.sum())
            log.info("%s: removed %d duplicate regions", path, int(dup.sum()))
            out = out.loc[~dup]
    out = out.reset_index(drop=True)
    out.attrs["source"] = str(path)
    out.attrs["dropped"] = dropped
    out.attrs["kind"] = "tsv"
    return out


def region_names(table: pd.DataFrame) -> pd.Series:
    """The ``name`` column with missing names filled as ``chrom:start-end``."""
    fallback = table["chrom"].astype(str) + ":" + table["start"].astype(str) + "-" + table["end"].astype(str)
    if "name" not in table:
        return fallback
    return table["name"].where(table["name"].notna(), fallback)


def parse_region_strings(values: Sequence[str], path: str | os.PathLike = "<regions>",
                         lines: Sequence[int] | None = None) -> pd.DataFrame:
    """Parse ``chr:start-end`` strings into ``chrom, start, end`` (vectorised).

    Raises ``InputError`` naming ``path`` and the line of the first malformed string.
    """
    series = pd.Series(list(values), dtype=object)
    parts = series.str.extract(r"^\s*([^:\s]+):(\d+)-(\d+)\s*$")
    bad = parts[0].isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(path, f"region {series.iloc[i]!r} is not of the form chr:start-end",
                         line=int(lines[i]) if lines is not None else i + 1,
                         fix="write regions as chrN:start-end with 0-based start")
    return pd.DataFrame({"chrom": parts[0].to_numpy(dtype=object),
                         "start": parts[1].astype(np.int64).to_numpy(),
                         "end": parts[2].astype(np.int64).to_numpy()})


# --------------------------------------------------------------------------- windows
def centred_windows(
    regions: pd.DataFrame,
    length: int,
    genome: "Genome | None" = None,
    use_summit: bool = False,
    on_off_end: str = "drop",
    dropped: dict[str, int] | None = None,
) -> pd.DataFrame:
    """Fixed-length windows centred on each region's midpoint (or summit).

    The centre is ``(start + end) // 2`` (or ``summit`` when ``use_summit`` and the summit is
    known); the window is ``[centre - length // 2, centre - length // 2 + length)``.

    Args:
        regions: table from :func:`read_regions` (``chrom`` in the genome's spelling).
        length: window length in bp.
        genome: when given, windows starting before 0 or ending past the chromosome end are
            dropped (``on_off_end="drop"``, counted in ``dropped["off_end"]`` and logged with their
            line numbers) or raise ``InputError`` (``"error"``).
        use_summit: centre narrowPeak windows on the summit.

    Returns:
        A copy of ``regions`` with ``start``/``end`` replaced by the window and the original
        coordinates kept as ``region_start``/``region_end``.
    """
    if length <= 0:
        raise ValueError("window length must be positive")
    out = regions.copy()
    start, end = out["start"].to_numpy(np.int64), out["end"].to_numpy(np.int64)
    centre = (start + end) // 2
    if use_summit and "summit" in out:
        summit = out["summit"].to_numpy(np.int64)
        centre = np.where(summit >= 0, summit, centre)
    if "name" in out:
        out["name"] = region_names(out)
    out["region_start"], out["region_end"] = start, end
    out["start"] = centre - length // 2
    out["end"] = out["start"] + length
    if genome is not None and len(out):
        lengths = out["chrom"].map(genome.lengths).to_numpy(dtype=np.int64)
        off = (out["start"].to_numpy() < 0) | (out["end"].to_numpy() > lengths)
        if off.any():
            source = regions.attrs.get("source", "<regions>")
            where = ", ".join(str(x) for x in out["line"].to_numpy()[off][:_SHOWN]) if "line" in out else "?"
            if on_off_end == "error":
                raise InputError(source, f"the {length} bp window around the region runs off the chromosome end",
                                 line=int(out["line"].to_numpy()[off][0]) if "line" in out else None,
                                 fix="drop regions within half a window of a chromosome end")
            log.info("%s: dropped %d windows that run off a chromosome end (lines %s%s)", source, int(off.sum()),
                     where, ", ..." if off.sum() > _SHOWN else "")
            if dropped is not None:
                dropped["off_end"] = dropped.get("off_end", 0) + int(off.sum())
            out = out.loc[~off].reset_index(drop=True)
    out.attrs = dict(regions.attrs)
    return out


def n_fraction(codes: np.ndarray) -> np.ndarray:
    """Fraction of N (code 4) per row of a ``(N, L)`` code matrix, shape ``(N,)`` float64."""
    codes = np.asarray(codes)
    if codes.shape[0] == 0:
        return np.zeros(0)
    return (codes == N_CODE).mean(axis=1)


def tile_chromosome(size: int, length: int, step: int | None = None) -> np.ndarray:
    """Starts of non-overlapping (or ``step``-spaced) windows of ``length`` bp that fit in ``size``."""
    step = step or length
    if size < length:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, size - length + 1, step, dtype=np.int64)


def tile_genome(genome: "Genome", length: int, chroms: Iterable[str] | None = None) -> pd.DataFrame:
    """Non-overlapping windows over the genome: ``chrom, start, end`` (genome order)."""
    names = [genome.resolve(c) for c in chroms] if chroms is not None else genome.names
    parts = []
    for name in names:
        starts = tile_chromosome(genome.lengths[name], length)
        parts.append(pd.DataFrame({"chrom": np.full(starts.size, name, dtype=object), "start": starts,
                                   "end": starts + length}))
    if not parts:
        return pd.DataFrame({"chrom": pd.Series([], dtype=object), "start": np.zeros(0, np.int64),
                             "end": np.zeros(0, np.int64)})
    return pd.concat(parts, ignore_index=True)


def named_windows(path: str | os.PathLike, genome, window: int | None = None) -> tuple[list[str], pd.DataFrame]:
    """The regions of a BED (or region TSV) file on ``genome``, in file order, for scoring.

    Returns ``(names, regions)``: ``names`` are ``chrom:start-end`` with the file's own chromosome
    spelling and coordinates; ``regions`` (``chrom`` in the genome's spelling, ``start``, ``end``)
    are the regions as given, or the ``window`` bp centred on each. Chromosome aliases are resolved
    by the genome; an empty file, a chromosome the genome lacks or a window off its end stops with
    one error naming the file (and line).
    """
    as_written = read_regions(path, dedupe=False)
    regions = read_regions(path, genome, dedupe=False)
    if not len(regions):
        raise InputError(path, "no regions found", fix="give a BED file with chrom, start, end columns")
    names = (as_written["chrom"].astype(str) + ":" + as_written["start"].astype(str) + "-"
             + as_written["end"].astype(str)).tolist()
    if window is not None:
        regions = centred_windows(regions, window, genome, on_off_end="error")
    return names, regions
