"""Reading query sequences from FASTA files, strictly validated, as uint8 codes.

This reader is for *query* sequences (``chromtransfer predict --fasta``): many short records whose
mistakes should be caught early with the file name and line number. Genomes, which need random
access, are read by :mod:`chromtransfer.genome` through pyfaidx instead; pyfaidx does not report
the line and character of a bad base, which is why this small parser exists.

The contract:

* A record is a ``>`` header line followed by one or more sequence lines; its name is the header's
  first white-space separated word. Plain or gzip-compressed files; ``\\r\\n`` line endings and
  blank lines are accepted.
* Sequence characters: IUPAC nucleotide codes (``ACGTUNRYSWKMBDHV``), gaps (``-``, ``.``) and
  ``*``, in either case (:data:`~chromtransfer.encoding.VALID_FASTA_CHARACTERS`). Lower case
  (soft-masked) reads as upper case; anything but A, C, G, T becomes code 4 (an all-zero one-hot
  column), as in the published pipeline.
* Errors (:class:`~chromtransfer.errors.InputError`, naming the file and the line): any other
  character, a sequence line before the first header, a header without a name, a record without
  sequence, a name used twice, a file without records.
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .compressed import open_input
from .encoding import VALID_FASTA_CHARACTERS, encode
from .errors import InputError

__all__ = ["FastaRecord", "iter_fasta", "read_fasta"]

_VALID = np.zeros(256, dtype=bool)
for _c in VALID_FASTA_CHARACTERS:
    _VALID[ord(_c)] = True
_FIX = ("sequence lines may hold only IUPAC nucleotide codes (ACGTUNRYSWKMBDHV, either case), "
        "'-', '.' or '*'; replace other characters with N")


@dataclass
class FastaRecord:
    """One FASTA record: ``name`` (first word of the header), ``codes`` ``(L,)`` uint8, and the
    1-based ``line`` of its header."""

    name: str
    codes: np.ndarray
    line: int

    def __len__(self) -> int:
        return int(self.codes.shape[0])


def _describe(byte: int) -> str:
    if 32 < byte < 127:
        return repr(chr(byte))
    if byte == 32:
        return "a space"
    if byte == 9:
        return "a tab"
    return f"byte 0x{byte:02X}"


def iter_fasta(path: str | os.PathLike) -> Iterator[FastaRecord]:
    """Yield the records of a FASTA file in order, validating as it reads (see module docstring).

    Raises:
        InputError: naming ``path`` and the offending line (see the module docstring).
    """
    path = Path(path)
    seen: dict[str, int] = {}
    name: str | None = None
    header_line = 0
    chunks: list[np.ndarray] = []
    count = 0
    handle = open_input(path)
    try:
        with handle:
            lineno = 0
            for lineno, raw in enumerate(handle, 1):
                line = raw.rstrip(b"\r\n")
                if not line.strip():
                    continue
                if line[:1] == b">":
                    if name is not None:
                        yield _finish(path, name, header_line, chunks)
                        count += 1
                    words = line[1:].split()
                    if not words:
                        raise InputError(path, "header line without a name", line=lineno,
                                         fix="write a name right after '>', e.g. '>seq1'")
                    name = words[0].decode("utf-8", errors="replace")
                    if name in seen:
                        raise InputError(path, f"sequence name {name!r} is used twice (first on line {seen[name]})",
                                         line=lineno, fix="give every record a unique name")
                    seen[name] = lineno
                    header_line = lineno
                    chunks = []
                    continue
                if name is None:
                    raise InputError(path, "sequence line before the first '>' header", line=lineno,
                                     fix="start every record with a header line such as '>seq1'")
                line = line.rstrip()
                data = np.frombuffer(line, dtype=np.uint8)
                bad = ~_VALID[data]
                if bad.any():
                    col = int(np.flatnonzero(bad)[0])
                    raise InputError(path, f"unexpected character {_describe(int(data[col]))} at column {col + 1} "
                                           f"in the sequence of {name!r}", line=lineno, fix=_FIX)
                chunks.append(encode(bytes(line)))
            if name is not None:
                yield _finish(path, name, header_line, chunks)
                count += 1
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(path, f"cannot read the file ({exc})",
                         fix="the file may be truncated or not a (gzip) FASTA file; check it") from exc
    if count == 0:
        raise InputError(path, "no FASTA records found", fix="give a FASTA file with '>name' header lines")


def _finish(path: Path, name: str, header_line: int, chunks: list[np.ndarray]) -> FastaRecord:
    if not chunks:
        raise InputError(path, f"record {name!r} has no sequence", line=header_line,
                         fix="remove the empty record or add its sequence")
    codes = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
    return FastaRecord(name, codes, header_line)


def read_fasta(path: str | os.PathLike) -> list[FastaRecord]:
    """All records of a FASTA file (see :func:`iter_fasta`)."""
    return list(iter_fasta(path))
