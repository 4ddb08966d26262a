"""Every form of DNA input the Python API accepts, converted to one: uint8 codes with names.

One check and one converter per input type, and one dispatcher, :func:`as_sequences`:

==========================  ======================================  ==========================
input                       check                                   names / coordinates
==========================  ======================================  ==========================
``list`` of DNA strings     :func:`is_strings`                      none (in-memory input)
FASTA path (``str``/Path)   :func:`is_fasta_path`                   record names
BED path + ``genome=``      :func:`is_bed_path`                     ``chrom:start-end`` as
                                                                    written, and coordinates
uint8 codes ``(N, L)``      :func:`is_codes`                        none
one-hot ``(N, 4, L)``       :func:`is_one_hot`                      none
==========================  ======================================  ==========================

Codes follow :mod:`chromtransfer.encoding` (A0 C1 G2 T3, anything else 4); one-hot is channels
first, channel order A, C, G, T, an all-zero column meaning N. Arrays may be NumPy or torch. A
path is a FASTA file when its name ends in ``.fa``/``.fasta``/``.fna`` (optionally ``.gz``) and
a region file when it ends in ``.bed``/``.narrowPeak``/``.tsv`` (optionally ``.gz``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .encoding import N_CODE, codes_from_one_hot, encode
from .errors import ChromTransferError, InputError

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas")
REGION_SUFFIXES = (".bed", ".narrowpeak", ".broadpeak", ".tsv")


@dataclass
class SequenceSet:
    """Sequences as codes, with names and coordinates where the input had them.

    Attributes:
        codes: ``(N, L)`` uint8 when every sequence has one length, else a list of ``(L_i,)``
            uint8 vectors.
        names: ``(N,)`` names, or ``None`` for in-memory input (arrays, strings).
        chrom, start, end: ``(N,)`` genomic coordinates of region input (0-based, half-open), else
            ``None``.
        source: a short description of the input (``"strings"``, ``"fasta"``, ...).
    """

    codes: np.ndarray | list[np.ndarray]
    names: list[str] | None = None
    chrom: np.ndarray | None = None
    start: np.ndarray | None = None
    end: np.ndarray | None = None
    source: str = "codes"

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def equal_length(self) -> bool:
        """Whether :attr:`codes` is one ``(N, L)`` array."""
        return isinstance(self.codes, np.ndarray) and self.codes.ndim == 2

    def matrix(self, what: str = "this method") -> np.ndarray:
        """The codes as one ``(N, L)`` array; ``ChromTransferError`` when lengths differ."""
        if not self.equal_length:
            lengths = sorted({len(c) for c in self.codes})
            raise ChromTransferError(f"{what} needs sequences of one length, got lengths "
                                     f"{', '.join(map(str, lengths[:4]))} (give windows of one size, "
                                     "e.g. window=600 for BED input)")
        return self.codes

    def display_names(self) -> list[str]:
        """:attr:`names`, or ``seq0, seq1, ...`` for in-memory input."""
        return list(self.names) if self.names is not None else [f"seq{i}" for i in range(len(self))]


def _stack(vectors: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    if vectors and len({len(v) for v in vectors}) == 1:
        return np.stack(vectors).astype(np.uint8, copy=False)
    return vectors


def _numpy(x: Any) -> np.ndarray | None:
    """``x`` as a NumPy array when it is a NumPy array or a torch tensor, else ``None``."""
    if isinstance(x, np.ndarray):
        return x
    if type(x).__module__.startswith("torch") and hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return None


# ------------------------------------------------------------------------------------ strings
def is_strings(x: Any) -> bool:
    """A DNA string or a list/tuple of DNA strings."""
    return isinstance(x, str) and not _looks_like_path(x) or (
        isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(s, str) for s in x))


def strings_to_set(x: str | Sequence[str]) -> SequenceSet:
    """Encode DNA strings (any lengths, any case; IUPAC/other letters become N)."""
    strings = [x] if isinstance(x, str) else list(x)
    for i, s in enumerate(strings):
        if not s:
            raise ChromTransferError(f"sequence {i} is an empty string")
    return SequenceSet(_stack([encode(s) for s in strings]), source="strings")


# ------------------------------------------------------------------------------------ files
def _suffix(path: str | os.PathLike) -> str:
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return Path(name).suffix


def _looks_like_path(x: str) -> bool:
    return _suffix(x) in FASTA_SUFFIXES + REGION_SUFFIXES or os.sep in x


def is_fasta_path(x: Any) -> bool:
    """A path (``str`` or ``PathLike``) whose name says FASTA."""
    return isinstance(x, (str, os.PathLike)) and _suffix(x) in FASTA_SUFFIXES


def fasta_to_set(path: str | os.PathLike) -> SequenceSet:
    """Every record of a FASTA file (plain or gzip), named by its header's first word."""
    from .fasta import read_fasta

    records = read_fasta(path)
    if not records:
        raise InputError(path, "no FASTA records found", fix="give a FASTA file with '>name' lines")
    return SequenceSet(_stack([r.codes for r in records]), names=[r.name for r in records], source="fasta")


def is_bed_path(x: Any) -> bool:
    """A path (``str`` or ``PathLike``) whose name says BED, narrowPeak or region TSV."""
    return isinstance(x, (str, os.PathLike)) and _suffix(x) in REGION_SUFFIXES


def bed_to_set(path: str | os.PathLike, genome, window: int | None = None) -> SequenceSet:
    """The regions of a BED/region file read from ``genome`` (a path or
    :class:`~chromtransfer.genome.Genome`), as given or as the ``window`` bp centred on each.

    Rows keep the file's order; names are ``chrom:start-end`` with the file's own chromosome
    spelling and coordinates (as ``chromtransfer predict --bed`` names them); ``chrom``/``start``/
    ``end`` are those of the sequences read (the windows when ``window`` is given).
    """
    from .genome import Genome
    from .intervals import named_windows

    if genome is None:
        raise InputError(path, "region input needs a genome", fix="pass genome=PATH (FASTA or .2bit)")
    genome = genome if isinstance(genome, Genome) else Genome(genome)
    names, regions = named_windows(path, genome, window)
    chroms = regions["chrom"].to_numpy(dtype=object)
    starts = regions["start"].to_numpy(np.int64)
    ends = regions["end"].to_numpy(np.int64)
    lengths = ends - starts
    vectors: list[np.ndarray] = [np.empty(0, np.uint8)] * len(regions)
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        block = genome.fetch_many(chroms[rows], starts[rows], ends[rows])
        for row, codes in zip(rows, block):
            vectors[row] = codes
    spelling = np.array([name.rsplit(":", 1)[0] for name in names], dtype=object).astype(str)
    return SequenceSet(_stack(vectors), names=names, chrom=spelling, start=starts, end=ends, source="bed")


# ------------------------------------------------------------------------------------ arrays
def is_codes(x: Any) -> bool:
    """An integer array (NumPy or torch) of shape ``(N, L)`` or ``(L,)``."""
    array = _numpy(x)
    return array is not None and array.ndim in (1, 2) and np.issubdtype(array.dtype, np.integer)


def codes_to_set(x: Any) -> SequenceSet:
    """Integer codes ``(N, L)`` (or one sequence ``(L,)``); values above 4 count as N."""
    array = _numpy(x)
    if array.ndim == 1:
        array = array[None, :]
    if array.size and (array.min() < 0):
        raise ChromTransferError("codes must be non-negative (A0 C1 G2 T3, N 4)")
    return SequenceSet(np.minimum(array, N_CODE).astype(np.uint8), source="codes")


def is_one_hot(x: Any) -> bool:
    """A floating (or bool) array (NumPy or torch) of shape ``(N, 4, L)`` or ``(4, L)``."""
    array = _numpy(x)
    return (array is not None and array.ndim in (2, 3) and array.shape[-2] == 4
            and not np.issubdtype(array.dtype, np.integer))


def one_hot_to_set(x: Any) -> SequenceSet:
    """One-hot ``(N, 4, L)`` (channels A, C, G, T; an all-zero column is N) to codes.

    Each column must hold one 1 (or be all zero); soft values (e.g. averaged or PWM-like
    inputs) are refused, since the models score sequences, not profiles.
    """
    array = np.asarray(_numpy(x), dtype=np.float32)
    if array.ndim == 2:
        array = array[None]
    column_sum = array.sum(axis=1)
    if not (np.isin(array, (0.0, 1.0)).all() and np.isin(column_sum, (0.0, 1.0)).all()):
        raise ChromTransferError("one-hot input must hold 0/1 values with at most one 1 per position "
                                 "(shape (N, 4, L), channels A, C, G, T)")
    return SequenceSet(codes_from_one_hot(array, channels_last=False), source="one-hot")


# ------------------------------------------------------------------------------------ dispatch
def as_sequences(x: Any, *, genome=None, window: int | None = None) -> SequenceSet:
    """Convert any supported input (module docstring) to a :class:`SequenceSet`.

    Args:
        x: DNA strings, a FASTA path, a BED path, codes ``(N, L)`` or one-hot ``(N, 4, L)``, or a
            :class:`SequenceSet` (returned as is).
        genome: the genome (path or :class:`~chromtransfer.genome.Genome`) of a BED input.
        window: for BED input, score the ``window`` bp centred on each region.

    Raises:
        ChromTransferError: input of no supported type, or ``genome``/``window`` given for an
        input that takes none.
    """
    if isinstance(x, SequenceSet):
        return x
    if is_bed_path(x):
        return bed_to_set(x, genome, window)
    if genome is not None or window is not None:
        raise ChromTransferError("genome= and window= apply to BED (region file) input only")
    if is_fasta_path(x):
        return fasta_to_set(x)
    if is_strings(x):
        return strings_to_set(x)
    if is_codes(x):
        return codes_to_set(x)
    if is_one_hot(x):
        return one_hot_to_set(x)
    if isinstance(x, (str, os.PathLike)):
        raise InputError(x, "unknown input file type", fix="name FASTA files *.fa/*.fasta and region files *.bed")
    shape = getattr(x, "shape", None)
    raise ChromTransferError(
        f"cannot read sequences from {type(x).__name__}{'' if shape is None else f' of shape {tuple(shape)}'}: "
        "give DNA strings, a FASTA or BED path, uint8 codes (N, L) or one-hot (N, 4, L)")
