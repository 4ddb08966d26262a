"""Inputs and outputs of motif scanning: sequence sources in chunks, the site table on disk.

Sources (each yields :class:`~chromtransfer.interpret.motifs.SequenceChunk` blocks, so any number
of sequences is scanned in bounded memory):

* :func:`chunks_from_store`: a dataset store (all rows or one split); region names and genomic
  windows come from the store's ``regions.tsv.gz``.
* :func:`chunks_from_fasta`: a FASTA file read by :mod:`chromtransfer.fasta`. A record named
  ``chrom:start-end`` whose span equals its length (0-based half-open, as ``bedtools getfasta``
  writes it; a 1-based inclusive span is recognised too) gets genomic coordinates.
* :func:`chunks_from_regions`: a BED/TSV region file cut from a genome (:mod:`chromtransfer.intervals`,
  :mod:`chromtransfer.genome`), optionally re-centred to fixed windows.

Output (:func:`write_sites`): a tab-separated table with the columns
:data:`~chromtransfer.interpret.motifs.SITE_COLUMNS`, written under a temporary name and renamed
when complete, plus a JSON manifest ``<out>.json`` (parameters, counts, provenance).
:func:`read_sites` reads and validates such a table.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from ..artifacts import atomic_path, check_output_file, provenance, write_json
from ..encoding import N_CODE
from ..errors import InputError
from .motifs import SITE_COLUMNS, MotifScanner, SequenceChunk, sites_frame

__all__ = ["DEFAULT_CHUNK_ROWS", "chunks_from_arrays", "chunks_from_fasta", "chunks_from_regions",
           "chunks_from_store", "read_sites", "write_sites"]

DEFAULT_CHUNK_ROWS = 4096
_SPAN = re.compile(r"^(?P<chrom>[^:\s]+):(?P<start>\d[\d,]*)-(?P<end>\d[\d,]*)(?:\((?P<strand>[+-])\))?$")


def _meta(names, index, chrom, start, end, strand, length) -> pd.DataFrame:
    return pd.DataFrame({
        "region": pd.Series(names, dtype=object).to_numpy(),
        "region_index": np.asarray(index, dtype=np.int64),
        "chrom": pd.Series(chrom, dtype=object).fillna("").to_numpy(),
        "start": np.asarray(start, dtype=np.int64),
        "end": np.asarray(end, dtype=np.int64),
        "strand": pd.Series(strand, dtype=object).fillna("+").replace("", "+").to_numpy(),
        "length": np.asarray(length, dtype=np.int64),
    })


def chunks_from_arrays(codes: np.ndarray, names=None, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[SequenceChunk]:
    """Chunks of a ``(N, L)`` code array without genomic coordinates."""
    codes = np.asarray(codes, dtype=np.uint8)
    n, length = codes.shape
    names = list(names) if names is not None else [f"seq{i}" for i in range(n)]
    for lo in range(0, n, chunk_rows):
        hi = min(n, lo + chunk_rows)
        yield SequenceChunk(codes[lo:hi], _meta(names[lo:hi], np.arange(lo, hi), [""] * (hi - lo),
                                                np.full(hi - lo, -1), np.full(hi - lo, -1), ["+"] * (hi - lo),
                                                np.full(hi - lo, length)))


def chunks_from_store(path: str | os.PathLike, split: str | None = None,
                      chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[SequenceChunk]:
    """Chunks of a dataset store's rows (``split``: train, test, valid needs a fold, or all)."""
    from ..datasets.store import open_store

    store = open_store(path)
    try:
        rows = store.indices(split or "all")
    except ValueError as exc:
        raise InputError(path, str(exc), fix="use --split train, test or all") from None
    regions = store.regions
    length = store.length
    for lo in range(0, len(rows), chunk_rows):
        idx = rows[lo:lo + chunk_rows]
        table = regions.iloc[idx]
        chrom = table["chrom"].astype(str).to_numpy(object)
        known = chrom != ""
        start = np.where(known, pd.to_numeric(table["start"], errors="coerce").fillna(-1), -1)
        end = np.where(known, pd.to_numeric(table["end"], errors="coerce").fillna(-1), -1)
        yield SequenceChunk(np.asarray(store.sequences[idx], dtype=np.uint8),
                            _meta(table["name"].astype(str).to_numpy(object), idx, chrom, start, end,
                                  table["strand"].astype(str).to_numpy(object), np.full(len(idx), length)))


def _span_from_name(name: str, length: int) -> tuple[str, int, int, str]:
    match = _SPAN.match(name)
    if match:
        start = int(match["start"].replace(",", ""))
        end = int(match["end"].replace(",", ""))
        strand = match["strand"] or "+"
        if end - start == length:
            return match["chrom"], start, end, strand
        if end - start + 1 == length and start >= 1:
            return match["chrom"], start - 1, end, strand
    return "", -1, -1, "+"


def _pad(arrays: list[np.ndarray]) -> np.ndarray:
    width = max((a.shape[0] for a in arrays), default=0)
    out = np.full((len(arrays), width), N_CODE, dtype=np.uint8)
    for i, a in enumerate(arrays):
        out[i, :a.shape[0]] = a
    return out


def chunks_from_fasta(path: str | os.PathLike, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[SequenceChunk]:
    """Chunks of a FASTA file's records (shorter records padded with code 4, never a site)."""
    from ..fasta import iter_fasta

    batch = []
    index = 0
    for record in iter_fasta(path):
        batch.append(record)
        if len(batch) == chunk_rows:
            yield _fasta_chunk(batch, index)
            index += len(batch)
            batch = []
    if batch:
        yield _fasta_chunk(batch, index)


def _fasta_chunk(records, first: int) -> SequenceChunk:
    spans = [_span_from_name(r.name, len(r)) for r in records]
    return SequenceChunk(_pad([r.codes for r in records]),
                         _meta([r.name for r in records], np.arange(first, first + len(records)),
                               [s[0] for s in spans], [s[1] for s in spans], [s[2] for s in spans],
                               [s[3] for s in spans], [len(r) for r in records]))


def chunks_from_regions(path: str | os.PathLike, genome, window: int | None = None,
                        chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[SequenceChunk]:
    """Chunks of genome sequence for the regions of a BED/TSV file.

    Args:
        path: region file (see :func:`chromtransfer.intervals.read_regions`).
        genome: a :class:`~chromtransfer.genome.Genome` or a path to one.
        window: re-centre every region to a window of this many bp (windows off a chromosome end
            are dropped, as :func:`~chromtransfer.intervals.centred_windows` does); ``None`` scans
            the regions as given.
    """
    from ..genome import open_genome
    from ..intervals import centred_windows, read_regions

    genome = open_genome(genome)
    regions = read_regions(path, genome)
    if window is not None:
        regions = centred_windows(regions, int(window), genome)
    if len(regions) == 0:
        raise InputError(path, "no regions to scan", fix="check the file and the genome's chromosome names")
    for lo in range(0, len(regions), chunk_rows):
        table = regions.iloc[lo:lo + chunk_rows]
        chrom = table["chrom"].to_numpy(object)
        start = table["start"].to_numpy(np.int64)
        end = table["end"].to_numpy(np.int64)
        lengths = end - start
        if np.all(lengths == lengths[0]):
            codes = genome.fetch_many(chrom, start, end)
        else:
            codes = _pad([genome.fetch_codes(c, s, e) for c, s, e in zip(chrom, start, end)])
        yield SequenceChunk(codes, _meta(table["name"].astype(str).to_numpy(object),
                                         np.arange(lo, lo + len(table)), chrom, start, end,
                                         ["+"] * len(table), lengths))


SITES_FORMAT = "chromtransfer-motif-sites"


def write_sites(scanner: MotifScanner, chunks: Iterable[SequenceChunk], out: str | os.PathLike,
                inputs: dict | None = None, progress=None, overwrite: bool = False) -> dict:
    """Scan ``chunks`` and write the site table to ``out`` (TSV) and its manifest ``out + '.json'``.

    Args:
        scanner: the configured scanner.
        chunks: sequence chunks (see the ``chunks_from_*`` functions).
        out: output path; written atomically (temporary name, then rename). An existing site
            table (with its manifest) is replaced only with ``overwrite``; any other existing
            file is refused (:func:`~chromtransfer.artifacts.check_output_file`).
        inputs: description of the inputs for the manifest.
        progress: optional callable ``progress(n)`` after each chunk of ``n`` sequences.

    Returns:
        The manifest dictionary (counts, parameters, provenance).
    """
    out = check_output_file(out, overwrite=overwrite, sidecar_format=SITES_FORMAT)
    if out.exists():  # an earlier table of ours: its manifest goes first, the table is replaced
        Path(f"{out}.json").unlink()
    n_seq = n_sites = 0
    per_tf: dict[str, int] = {}
    with atomic_path(out) as tmp:
        with open(tmp, "w", newline="") as handle:
            handle.write("\t".join(SITE_COLUMNS) + "\n")
            for chunk in chunks:
                sites = scanner.scan(chunk.codes)
                table = sites_frame(sites, chunk, scanner.motifs)
                n_seq += len(chunk.meta)
                n_sites += len(table)
                for tf, count in table["tf"].value_counts().items():
                    per_tf[tf] = per_tf.get(tf, 0) + int(count)
                table.to_csv(handle, sep="\t", header=False, index=False, float_format="%.10g")
                if progress is not None:
                    progress(len(chunk.meta))
    manifest = {
        "format": SITES_FORMAT,
        "version": 1,
        "sites": n_sites,
        "sequences": n_seq,
        "scanner": scanner.describe(),
        "weak_motifs": scanner.weak_motifs,
        "motif_sources": sorted({m.source for m in scanner.motifs}),
        "sites_per_tf": dict(sorted(per_tf.items(), key=lambda kv: -kv[1])),
        "inputs": inputs or {},
        "provenance": provenance(),
    }
    write_json(out.with_name(out.name + ".json"), manifest)
    return manifest


_SITE_DTYPES = {"region": str, "chrom": str, "strand": str, "motif_id": str, "tf": str, "sequence": str}


def read_sites(path: str | os.PathLike) -> pd.DataFrame:
    """Read a site table written by :func:`write_sites`, validating columns and values."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "site table not found", fix="run 'chromtransfer motifs scan' first")
    try:
        table = pd.read_csv(path, sep="\t", dtype=_SITE_DTYPES, keep_default_na=False,
                            na_values={"start": [""], "end": [""]})
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(path, f"not a readable site table ({exc})", fix="re-run 'chromtransfer motifs scan'") from None
    missing = [c for c in ("region", "site_start", "site_end", "motif_id", "tf") if c not in table.columns]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}", line=1,
                         fix="give the TSV written by 'chromtransfer motifs scan'")
    for column in ("site_start", "site_end"):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna().to_numpy()
        if bad.any():
            raise InputError(path, f"non-integer {column}", line=int(np.flatnonzero(bad)[0]) + 2)
        table[column] = values.astype(np.int64)
    bad = (table["site_start"] < 0) | (table["site_end"] <= table["site_start"])
    if bad.any():
        raise InputError(path, "site_end must be greater than site_start >= 0",
                         line=int(np.flatnonzero(bad.to_numpy())[0]) + 2)
    return table
