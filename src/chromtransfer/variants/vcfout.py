"""The annotated VCF: every input record as written, with the scores added as INFO fields.

For each cell-line model ``CELL`` (its name with characters outside ``[0-9A-Za-z_.]`` replaced by
``_``), one value per ALT allele (``Number=A``; ``.`` where the allele was not scored):

    CT_<CELL>_PREF, CT_<CELL>_PALT    probability of the REF and ALT windows
    CT_<CELL>_DP                      p_alt - p_ref
    CT_<CELL>_DLOGIT                  logit(p_alt) - logit(p_ref), natural log
    CT_<CELL>_SPEC                    DLOGIT minus the mean DLOGIT of the other cells (2+ models)
    CT_<CELL>_Z, CT_<CELL>_P          null z-score and empirical two-sided p (with --null)

and for the allele itself ``CT_STATUS`` (see :data:`chromtransfer.variants.vcf.STATUSES`),
``CT_MOTIFS_LOST`` and ``CT_MOTIFS_GAINED`` (``TF:MOTIF_ID:SCORE`` entries joined with ``|``).
The file is BGZF-compressed (readable by cyvcf2, pysam, bcftools and tabix when sorted).
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..artifacts import atomic_path

__all__ = ["info_key", "write_annotated_vcf"]

_FLOAT_FIELDS = [("PREF", "probability of the REF window"), ("PALT", "probability of the ALT window"),
                 ("DP", "p_alt - p_ref"),
                 ("DLOGIT", "log-odds ratio logit(p_alt) - logit(p_ref), natural log; > 0: ALT raises accessibility"),
                 ("SPEC", "DLOGIT minus the mean DLOGIT of the other cell lines"),
                 ("Z", "z-score of DLOGIT against the null SNVs"),
                 ("P", "empirical two-sided p of DLOGIT against the null SNVs")]
_COLUMN = {"PREF": "p_ref", "PALT": "p_alt", "DP": "delta_p", "DLOGIT": "delta_logit",
           "SPEC": "specificity", "Z": "null_z", "P": "null_p"}


def info_key(cell: str, field: str) -> str:
    return f"CT_{re.sub(r'[^0-9A-Za-z_.]', '_', cell)}_{field}"


def _text(value: str) -> str:
    return re.sub(r"[\s,;=]", "_", value) if value else "."


def _number(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "."
    return f"{float(value):.6g}"


def write_annotated_vcf(path: Path, vcf_path: Path, cells: Sequence[str], fields: Sequence[str],
                        next_alleles: Callable[[int], dict]) -> Path:
    """Copy ``vcf_path`` to ``path`` (BGZF) with INFO fields added.

    Args:
        cells: cell-line model names; fields: the float fields present (keys of the table's
            columns, e.g. ``["PREF", "PALT", "DP", "DLOGIT"]``).
        next_alleles: called once per record, in file order, with the record's number of ALT
            alleles ``k``; returns ``{"status": [k], "lost": [k], "gained": [k],
            (cell, field): [k values]}`` for those alleles.
    """
    from Bio import bgzf

    from .vcf import open_vcf

    reader = open_vcf(vcf_path)
    header = reader.raw_header.rstrip("\n").split("\n")
    added = [f'##INFO=<ID={info_key(c, f)},Number=A,Type=Float,Description="{c}: {d}">'
             for c in cells for f, d in _FLOAT_FIELDS if f in fields]
    added += ['##INFO=<ID=CT_STATUS,Number=A,Type=String,Description="chromtransfer variants: status of the allele">',
              '##INFO=<ID=CT_MOTIFS_LOST,Number=A,Type=String,Description="motif sites lost (TF:MOTIF_ID:SCORE, |-joined)">',
              '##INFO=<ID=CT_MOTIFS_GAINED,Number=A,Type=String,Description="motif sites gained (TF:MOTIF_ID:SCORE, |-joined)">']
    with atomic_path(path) as tmp:
        handle = bgzf.BgzfWriter(str(tmp), "wb")
        try:
            handle.write(("\n".join(header[:-1] + added + header[-1:]) + "\n").encode())
            for record in reader:
                values = next_alleles(max(1, len(record.ALT or [])))
                columns = str(record).rstrip("\n").split("\t")
                extra = []
                for c in cells:
                    for f in fields:
                        extra.append(f"{info_key(c, f)}=" + ",".join(_number(v) for v in values[(c, f)]))
                extra.append("CT_STATUS=" + ",".join(_text(s) for s in values["status"]))
                extra.append("CT_MOTIFS_LOST=" + ",".join(_text(s) for s in values["lost"]))
                extra.append("CT_MOTIFS_GAINED=" + ",".join(_text(s) for s in values["gained"]))
                info = columns[7]
                columns[7] = ";".join(([] if info in (".", "") else [info]) + extra)
                handle.write(("\t".join(columns) + "\n").encode())
        finally:
            handle.close()
            reader.close()
    return path


def float_fields(columns: Iterable[str]) -> list[str]:
    """The INFO float fields whose table columns are present, in the fixed order."""
    present = set(columns)
    return [f for f, _ in _FLOAT_FIELDS if _COLUMN[f] in present]


def column_of(field: str) -> str:
    return _COLUMN[field]

