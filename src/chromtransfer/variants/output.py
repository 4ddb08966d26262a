"""The variants output folder: its marker, manifest, chunk files, and the final tables.

Layout of ``DIR``::

    .chromtransfer.json       marker written first: the folder belongs to ``chromtransfer variants``
    manifest.json             inputs' fingerprint, options, chunk plan and which chunks are done
    chunks/chunk-NNNNNN.tsv.gz   one per chunk of variants, written atomically (removed at the end)
    null.tsv.gz               the null SNVs' scores (with --null)
    variants.tsv.gz           every chunk's rows, in file order (one row per variant and model)
    variants.vcf.gz           the input records with per-cell-line INFO fields (bgzip)
    top_variants.png          the largest effects; explain/ holds the --explain attribution figures

A folder that exists and is not empty must carry the marker (it is an earlier run of this
command), otherwise the run stops: nothing is written into, or deleted from, a folder of other
files. A run whose inputs or options differ from the manifest's stops too, instead of mixing
chunks of two different runs.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd

from ..artifacts import atomic_path
from .vcf import SCORED

MANIFEST = "manifest.json"
CHUNK_DIR = "chunks"
TABLE = "variants.tsv.gz"
VCF = "variants.vcf.gz"
NULL = "null.tsv.gz"


def _claim_output_folder(out: Path) -> bool:
    """Claim ``out`` as a variants folder (:func:`~chromtransfer.artifacts.claim_output_dir`).

    Returns whether it held an earlier run of this command. Raises when ``out`` is a file, holds
    another kind of result, or holds files this command did not write.
    """
    from ..artifacts import claim_output_dir, inspect_output_dir

    existed = out.is_dir() and inspect_output_dir(out).kind == "variants"
    claim_output_dir(out, "variants", resume=True)
    return existed


def chunk_path(out: Path, k: int) -> Path:
    return out / CHUNK_DIR / f"chunk-{k:06d}.tsv.gz"


def write_chunk(out: Path, k: int, table: pd.DataFrame) -> Path:
    """One chunk's rows as gzip TSV with a header, written atomically."""
    path = chunk_path(out, k)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with gzip.open(tmp, "wt", compresslevel=4, newline="") as handle:
            table.to_csv(handle, sep="\t", index=False, na_rep="NA", float_format="%.7g", lineterminator="\n")
    return path


def read_chunk(out: Path, k: int) -> pd.DataFrame:
    return pd.read_csv(chunk_path(out, k), sep="\t", keep_default_na=False, na_values=["NA"],
                       dtype={"id": str, "motifs_lost": str, "motifs_gained": str, "element": str,
                              "chrom": str, "window_chrom": str})


def assemble_table(out: Path, n_chunks: int) -> Path:
    """``variants.tsv.gz``: the chunks' rows in order, one header (gzip members concatenated)."""
    with atomic_path(out / TABLE) as tmp, open(tmp, "wb") as target:
        for k in range(n_chunks):
            with gzip.open(chunk_path(out, k), "rb") as source:
                if k:
                    source.readline()  # the header, kept from the first chunk only
                data = source.read()
            target.write(gzip.compress(data, compresslevel=6))
    return out / TABLE


def remove_chunks(out: Path, n_chunks: int) -> None:
    """Delete the chunk files this command wrote (and their folder when it is then empty)."""
    for k in range(n_chunks):
        path = chunk_path(out, k)
        if path.exists():
            path.unlink()
    folder = out / CHUNK_DIR
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def write_table(path: Path, table: pd.DataFrame, float_format: str = "%.7g") -> Path:
    """A gzip TSV, atomically (``%.17g`` keeps float64 values exactly)."""
    with atomic_path(path) as tmp:
        with gzip.open(tmp, "wt", newline="") as handle:
            table.to_csv(handle, sep="\t", index=False, na_rep="NA", float_format=float_format, lineterminator="\n")
    return path


__all__ = ["MANIFEST", "TABLE", "VCF", "NULL", "assemble_table", "chunk_path", "read_chunk", "remove_chunks",
           "top_variants", "write_chunk", "write_table"]


def top_variants(out: Path, n_chunks: int, n: int) -> pd.DataFrame:
    """Rows of the ``n`` scored variants with the largest |delta_logit| in any model."""
    best = None
    for k in range(n_chunks):
        table = read_chunk(out, k)
        table = table[table["status"].isin(SCORED)]
        if not len(table):
            continue
        strength = table.assign(effect=table["delta_logit"].abs()).groupby("variant")["effect"].max()
        keep = strength.nlargest(n).index
        part = table[table["variant"].isin(keep)].assign(effect=table["variant"].map(strength))
        best = part if best is None else pd.concat([best, part])
        ranked = best.groupby("variant")["effect"].max().nlargest(n).index
        best = best[best["variant"].isin(ranked)]
    if best is None:
        return pd.DataFrame()
    return best.sort_values(["effect", "variant"], ascending=[False, True]).reset_index(drop=True)
