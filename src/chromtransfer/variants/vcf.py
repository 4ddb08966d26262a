"""Reading variants from VCF/BCF (cyvcf2): multi-allelic records split, alleles checked against the
genome, duplicates found, every variant given a status.

The contract:

* One :class:`Variant` per (record, ALT allele): a record with ALTs ``A,T`` gives two variants
  (``alt_index`` 0 and 1), in file order. Coordinates are 0-based: ``pos`` is the first REF base
  (VCF ``POS - 1``). Alleles are upper case.
* Kinds: ``snv`` (one base each), ``mnv`` (REF and ALT of equal length > 1), ``insertion`` and
  ``deletion`` (lengths differ; VCF's shared anchor base is kept as written). Symbolic or missing
  ALTs (``<DEL>``, ``*``, ``.``) and alleles with letters other than A, C, G, T get the status
  ``unsupported_allele`` and are not scored.
* Chromosome names go through the genome's aliases (``chr20`` = ``20``); a chromosome the genome
  lacks stops the run with the VCF line (bad input).
* REF check (``on_ref_mismatch``): the REF allele must equal the genome at ``pos``. ``error``
  stops at the first mismatch with its line; ``skip`` gives the status ``ref_mismatch`` (not
  scored); ``flip`` swaps REF and ALT when the ALT allele is what the genome holds there (status
  ``flipped``: the scores then describe the change from the genome's allele to the VCF's REF),
  and gives ``ref_mismatch`` when neither allele matches.
* Duplicates: a variant equal to an earlier one (same chromosome, position and, after any flip,
  the same alleles) gets the status ``duplicate`` and ``duplicate_of`` (the index of the first);
  it is scored once, under the first.

:func:`plan_variants` makes one pass over the file and returns a compact :class:`VariantPlan`
(per-variant status arrays and counts), so that bad input stops the run before any model runs and
a resumed run can check that nothing changed; :func:`iter_variants` yields the variants again, in
the same order, for scoring.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError

__all__ = ["STATUSES", "Variant", "VariantPlan", "iter_variants", "open_vcf", "plan_variants"]

#: Statuses of a variant; ``scored`` and ``flipped`` are scored.
STATUSES = ("scored", "flipped", "duplicate", "ref_mismatch", "unsupported_allele", "outside_regions")
SCORED = ("scored", "flipped")
_STATUS_CODE = {s: i for i, s in enumerate(STATUSES)}
_ACGT = re.compile(r"^[ACGT]+$")


@dataclass
class Variant:
    """One ALT allele of a VCF record (0-based ``pos`` of the first REF base)."""

    index: int  # running number over all variants of the file
    record: int  # 0-based record number
    line: int  # 1-based line of the record in the (decompressed) VCF text
    alt_index: int
    chrom: str  # as written in the VCF
    genome_chrom: str  # the genome's spelling
    pos: int
    vcf_id: str
    ref: str
    alt: str
    status: str = "scored"

    @property
    def kind(self) -> str:
        if len(self.ref) == len(self.alt):
            return "snv" if len(self.ref) == 1 else "mnv"
        return "insertion" if len(self.alt) > len(self.ref) else "deletion"

    @property
    def key(self) -> str:
        """``chrom:POS:REF:ALT`` with the VCF's chromosome spelling and 1-based POS."""
        return f"{self.chrom}:{self.pos + 1}:{self.ref}:{self.alt}"


@dataclass
class VariantPlan:
    """The outcome of the checking pass: one entry per variant, in file order.

    Attributes:
        status: ``(n,)`` int8 codes into :data:`STATUSES` (``outside_regions`` is set later, when
            windows are assigned).
        duplicate_of: ``(n,)`` int64 index of the first copy, -1 when not a duplicate.
        records: number of VCF records; counts: variants per status.
        header_lines: lines before the first record (for line numbers).
        chrom_index, pos: ``(n,)`` chromosome (into ``chroms``, the genome's spelling) and 0-based
            position of every variant (to draw null variants near them).
    """

    status: np.ndarray
    duplicate_of: np.ndarray
    records: int
    header_lines: int
    chrom_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    pos: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    chroms: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.status.shape[0])

    def status_name(self, index: int) -> str:
        return STATUSES[int(self.status[index])]

    def recount(self) -> None:
        values = np.bincount(self.status, minlength=len(STATUSES))
        self.counts = {s: int(values[i]) for i, s in enumerate(STATUSES)}


def open_vcf(path: str | os.PathLike):
    """Open a VCF/BCF (plain, bgzip or gzip) with cyvcf2; bad files raise ``InputError``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "VCF file not found", fix="give the path of a .vcf, .vcf.gz or .bcf file")
    try:
        import cyvcf2
    except ImportError:  # pragma: no cover - an optional dependency
        from ..errors import ChromTransferError

        raise ChromTransferError("reading VCF needs cyvcf2 (pip install 'chromtransfer[variants]')") from None
    _quiet_htslib()
    try:
        reader = cyvcf2.VCF(str(path), lazy=True, threads=1)
    except Exception as exc:  # cyvcf2 raises OSError or plain exceptions for unreadable files
        raise InputError(path, f"cannot read the VCF ({exc})",
                         fix="give a VCF/BCF file with a '##fileformat=VCF' header") from exc
    return reader


def _quiet_htslib() -> None:
    """Only errors from htslib on stderr: its warnings (a contig or INFO key missing from the
    header, common and harmless here) would otherwise repeat on every pass over the file."""
    import ctypes

    try:
        import cyvcf2.cyvcf2 as binding

        ctypes.CDLL(binding.__file__).hts_set_log_level(1)  # HTS_LOG_ERROR
    except (OSError, AttributeError, ImportError):  # pragma: no cover - another htslib build
        pass


def _open_text(path: Path):
    """The VCF as binary lines (gzip or plain), or ``None`` for BCF."""
    import gzip

    with open(path, "rb") as handle:
        compressed = handle.read(2) == b"\x1f\x8b"
    handle = gzip.open(path, "rb") if compressed else open(path, "rb")
    if handle.read(3) == b"BCF":
        handle.close()
        return None
    handle.seek(0)
    return handle


def _header_lines(path: Path) -> int:
    """Lines before the first record of a text VCF (plain or gzip); 0 for BCF (no lines)."""
    handle = _open_text(path)
    if handle is None:
        return 0
    count = 0
    with handle:
        for line in handle:
            if not line.startswith(b"#"):
                break
            count += 1
    return count


def check_record_lines(path: str | os.PathLike) -> None:
    """Check the fixed columns of every record line of a text VCF before htslib parses it.

    htslib reports a malformed record on stderr and hands back a broken record (reading it can
    crash the process), so records are checked here first: at least 8 tab-separated columns and
    a positive integer POS. BCF files are binary and left to htslib.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "VCF file not found", fix="give the path of a .vcf, .vcf.gz or .bcf file")
    handle = _open_text(path)
    if handle is None:
        return
    with handle:
        for number, line in enumerate(handle, start=1):
            if line.startswith(b"#"):
                continue
            fields = line.rstrip(b"\r\n").split(b"\t", 8)
            if len(fields) < 8:
                raise InputError(path, f"the record has {len(fields)} tab-separated columns, VCF needs at least 8",
                                 line=number, fix="separate CHROM POS ID REF ALT QUAL FILTER INFO by tabs")
            if not fields[1].isdigit() or int(fields[1]) < 1:
                raise InputError(path, f"POS {fields[1].decode(errors='replace')!r} is not a positive integer",
                                 line=number, fix="give 1-based positions in the second column")


def _records(path: Path) -> Iterator[tuple[int, int, object]]:
    """(record number, line, record) over the file; malformed records raise ``InputError``.

    ``line`` is the record's line in the (decompressed) text; for BCF it is the record number.
    """
    reader = open_vcf(path)
    header = _header_lines(path)
    number = -1
    try:
        iterator = iter(reader)
        while True:
            try:
                record = next(iterator)
            except StopIteration:
                break
            except Exception as exc:  # cyvcf2 reports parse failures as generic exceptions
                raise InputError(path, f"malformed record ({exc})", line=header + number + 2,
                                 fix="check the record's tab-separated columns") from exc
            number += 1
            yield number, header + number + 1, record
    finally:
        reader.close()


def _alleles(record) -> tuple[str, list[str]]:
    ref = (record.REF or "").upper()
    alts = [a.upper() for a in (record.ALT or [])] or ["."]
    return ref, alts


def iter_variants(path: str | os.PathLike, genome, *, on_ref_mismatch: str = "error",
                  plan: VariantPlan | None = None) -> Iterator[Variant]:
    """The file's variants in order, with alleles checked (see the module docstring).

    With ``plan`` (from :func:`plan_variants` on the same file) each variant's status is the
    plan's, including ``duplicate`` and ``outside_regions``; alleles are flipped as planned.
    """
    if on_ref_mismatch not in ("error", "skip", "flip"):
        raise ValueError(f"on_ref_mismatch must be error, skip or flip, not {on_ref_mismatch!r}")
    path = Path(path)
    index = 0
    resolved: dict[str, str] = {}
    for number, line, record in _records(path):
        chrom = str(record.CHROM)
        name = resolved.get(chrom)
        if name is None:
            name = genome.try_resolve(chrom)
            if name is None:
                shown = ", ".join(genome.names[:10]) + (", ..." if len(genome.names) > 10 else "")
                raise InputError(path, f"chromosome {chrom!r} is not in the genome {genome.path}", line=line,
                                 fix=f"the genome has: {shown}; give the genome the VCF was called on "
                                     "or drop those records")
            resolved[chrom] = name
        pos = int(record.POS) - 1
        ref, alts = _alleles(record)
        vcf_id = record.ID or "."
        for alt_index, alt in enumerate(alts):
            variant = Variant(index, number, line, alt_index, chrom, name, pos, vcf_id, ref, alt)
            if not (_ACGT.match(ref) and _ACGT.match(alt)) or ref == alt:
                variant.status = "unsupported_allele"
            else:
                size = genome.lengths[name]
                if pos < 0 or pos + len(ref) > size:
                    raise InputError(path, f"{chrom}:{pos + 1} {ref}>{alt} lies outside {name} (length {size})",
                                     line=line, fix="give the genome the VCF was called on")
                variant.status = _check_ref(path, genome, variant, on_ref_mismatch)
            if plan is not None:
                variant.status = plan.status_name(index)
            index += 1
            yield variant


def _check_ref(path: Path, genome, variant: Variant, mode: str) -> str:
    from ..encoding import decode

    found = decode(genome.fetch_codes(variant.genome_chrom, variant.pos, variant.pos + len(variant.ref)))
    if found == variant.ref:
        return "scored"
    if mode == "error":
        raise InputError(path, f"REF {variant.ref} of {variant.chrom}:{variant.pos + 1} does not match the "
                               f"genome ({found})", line=variant.line,
                         fix="give the genome the VCF was called on, or --on-ref-mismatch skip|flip")
    if mode == "flip":
        held = decode(genome.fetch_codes(variant.genome_chrom, variant.pos,
                                         min(variant.pos + len(variant.alt), genome.lengths[variant.genome_chrom])))
        if held == variant.alt:
            variant.ref, variant.alt = variant.alt, variant.ref
            return "flipped"
    return "ref_mismatch"


def plan_variants(path: str | os.PathLike, genome, *, on_ref_mismatch: str = "error",
                  elements=None) -> VariantPlan:
    """Check every variant of the file once (see the module docstring); returns the plan.

    With ``elements`` (:class:`~chromtransfer.variants.windows.Elements`), a variant whose REF
    allele lies in no element gets the status ``outside_regions``.

    Raises ``InputError`` (file and line) for an unreadable file, an unknown chromosome, a variant
    past the chromosome end, or (``on_ref_mismatch="error"``) a REF that differs from the genome.
    """
    check_record_lines(path)
    statuses: list[int] = []
    duplicate_of: list[int] = []
    first: dict[int, int] = {}
    chroms: dict[str, int] = {}
    chrom_index: list[int] = []
    positions: list[int] = []
    records = -1
    header = 0
    for variant in iter_variants(path, genome, on_ref_mismatch=on_ref_mismatch):
        records = variant.record
        header = variant.line - variant.record - 1
        status = variant.status
        dup = -1
        if status in SCORED and elements is not None and \
                elements.find(variant.genome_chrom, variant.pos, variant.pos + len(variant.ref)) < 0:
            status = "outside_regions"
        if status in SCORED:
            key = hash((variant.genome_chrom, variant.pos, variant.ref, variant.alt))
            seen = first.get(key)
            if seen is None:
                first[key] = variant.index
            else:
                status, dup = "duplicate", seen
        statuses.append(_STATUS_CODE[status])
        duplicate_of.append(dup)
        chrom_index.append(chroms.setdefault(variant.genome_chrom, len(chroms)))
        positions.append(variant.pos)
    if records < 0:
        raise InputError(path, "the VCF has no records", fix="give a VCF with at least one variant")
    plan = VariantPlan(np.asarray(statuses, dtype=np.int8), np.asarray(duplicate_of, dtype=np.int64),
                       records + 1, header, np.asarray(chrom_index, dtype=np.int32),
                       np.asarray(positions, dtype=np.int64), list(chroms))
    plan.recount()
    return plan
