"""Readers of the binary genome formats behind :class:`~chromtransfer.genome.Genome`: UCSC
``.2bit`` (decoded with NumPy) and bgzip FASTA blocks (inflated with :mod:`zlib` from the offsets of
the ``.gzi`` index). Both hand out ``uint8`` base codes or raw FASTA bytes of a span.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from .encoding import N_CODE
from .errors import InputError

__all__ = ["BgzfReader", "TwoBitReader", "has_bgzf_eof"]


# 2bit packs T, C, A, G as 0..3 -> codes 3, 1, 0, 2; row b of the table is the 4 codes of byte b.
_TWOBIT_BASE = np.array([3, 1, 0, 2], dtype=np.uint8)
_TWOBIT_TABLE = np.stack([_TWOBIT_BASE[(np.arange(256) >> shift) & 3] for shift in (6, 4, 2, 0)], axis=1)


class TwoBitReader:
    """A minimal reader of UCSC .2bit files (versions 0 and 1), memory-mapped.

    Packed bases (T=00, C=01, A=10, G=11, four per byte, first base in the high bits) are turned
    into codes with a 256 x 4 lookup table; N blocks become code 4; the soft mask is ignored.
    """

    _TABLE = _TWOBIT_TABLE

    def __init__(self, path: Path):
        self.path = path
        self._data = np.memmap(path, dtype=np.uint8, mode="r")
        raw = self._data[:16].tobytes()
        sig = struct.unpack("<I", raw[:4])[0]
        self._endian = "<" if sig == 0x1A412743 else ">"
        version, count = struct.unpack(self._endian + "II", raw[4:12])
        if version not in (0, 1):
            raise InputError(path, f"unsupported 2bit version {version}", fix="convert it to FASTA")
        offset_size = 8 if version == 1 else 4
        pos = 16
        self.offsets: dict[str, int] = {}
        for _ in range(count):
            name_len = int(self._data[pos])
            name = self._data[pos + 1:pos + 1 + name_len].tobytes().decode()
            pos += 1 + name_len
            fmt = self._endian + ("Q" if offset_size == 8 else "I")
            (off,) = struct.unpack(fmt, self._data[pos:pos + offset_size].tobytes())
            pos += offset_size
            self.offsets[name] = int(off)
        self.lengths: dict[str, int] = {}
        self._records: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}

    def _u32(self, pos: int, count: int = 1) -> np.ndarray:
        return np.frombuffer(self._data[pos:pos + 4 * count].tobytes(), dtype=self._endian + "u4").astype(np.int64)

    def record(self, name: str) -> tuple[int, np.ndarray, np.ndarray]:
        """(offset of packed DNA, N-block starts, N-block ends) of a sequence."""
        if name not in self._records:
            pos = self.offsets[name]
            size = int(self._u32(pos)[0])
            n_blocks = int(self._u32(pos + 4)[0])
            n_starts = self._u32(pos + 8, n_blocks)
            n_sizes = self._u32(pos + 8 + 4 * n_blocks, n_blocks)
            pos += 8 + 8 * n_blocks
            mask_blocks = int(self._u32(pos)[0])
            pos += 4 + 8 * mask_blocks + 4  # mask starts and sizes, then a reserved word
            self.lengths[name] = size
            self._records[name] = (pos, n_starts, n_starts + n_sizes)
        return self._records[name]

    def length(self, name: str) -> int:
        self.record(name)
        return self.lengths[name]

    def fetch(self, name: str, start: int, end: int) -> np.ndarray:
        dna, n_starts, n_ends = self.record(name)
        if end <= start:
            return np.empty(0, dtype=np.uint8)
        first, last = start // 4, (end - 1) // 4
        packed = np.asarray(self._data[dna + first:dna + last + 1])
        codes = self._TABLE[packed].reshape(-1)[start - 4 * first:end - 4 * first].copy()
        hit = (n_starts < end) & (n_ends > start)
        for s, e in zip(n_starts[hit], n_ends[hit]):
            codes[max(s, start) - start:min(e, end) - start] = N_CODE
        return codes


class BgzfReader:
    """Random access to a BGZF file from its block table (the ``.gzi`` index).

    Each BGZF block is a complete gzip member of at most 64 KiB of text; blocks are inflated with
    :mod:`zlib` and the most recent ones are kept, so neighbouring windows cost one inflation.
    """

    def __init__(self, path: Path, cstarts: Sequence[int], ustarts: Sequence[int], keep: int = 64):
        self.path = path
        self.cstarts = np.asarray(cstarts, dtype=np.int64)
        self.ustarts = np.asarray(ustarts, dtype=np.int64)
        self.size = path.stat().st_size
        self.keep = keep
        self._cache: dict[int, bytes] = {}
        self._handle = None
        self._pid = os.getpid()

    def _block(self, i: int) -> bytes:
        data = self._cache.get(i)
        if data is None:
            if self._handle is None or self._pid != os.getpid():  # a forked worker opens its own
                self._handle = open(self.path, "rb")
                self._pid = os.getpid()
            end = int(self.cstarts[i + 1]) if i + 1 < self.cstarts.size else self.size
            self._handle.seek(int(self.cstarts[i]))
            raw = self._handle.read(end - int(self.cstarts[i]))
            data = _inflate_members(raw)
            if len(self._cache) >= self.keep:
                self._cache.pop(next(iter(self._cache)))
            self._cache[i] = data
        return data

    def read(self, offset: int, nbytes: int) -> bytes:
        """``nbytes`` uncompressed bytes from uncompressed ``offset``."""
        if nbytes > (1 << 22):  # long reads: inflate the whole span in one go, no caching
            return self._read_span(offset, nbytes)
        i = int(np.searchsorted(self.ustarts, offset, side="right")) - 1
        out = bytearray()
        pos = offset - int(self.ustarts[i])
        while len(out) < nbytes and i < self.cstarts.size:
            block = self._block(i)
            out += block[pos:pos + nbytes - len(out)]
            i, pos = i + 1, 0
        return bytes(out)

    def _read_span(self, offset: int, nbytes: int) -> bytes:
        return b"".join(self.iter_span(offset, nbytes))

    def iter_span(self, offset: int, nbytes: int, blocks_per_chunk: int = 256):
        """Yield the uncompressed bytes ``[offset, offset + nbytes)`` in pieces of at most
        ``blocks_per_chunk`` BGZF blocks (16 MiB), reading the file sequentially."""
        first = int(np.searchsorted(self.ustarts, offset, side="right")) - 1
        last = int(np.searchsorted(self.ustarts, offset + nbytes, side="left"))
        cbounds = np.append(self.cstarts, self.size)
        skip, left = offset - int(self.ustarts[first]), nbytes
        with open(self.path, "rb") as handle:
            handle.seek(int(cbounds[first]))
            for lo in range(first, last, blocks_per_chunk):
                hi = min(lo + blocks_per_chunk, last)
                raw = memoryview(handle.read(int(cbounds[hi] - cbounds[lo])))
                bounds = cbounds[lo:hi + 1] - cbounds[lo]
                data = b"".join(_inflate_members(raw[int(a):int(b)]) for a, b in zip(bounds[:-1], bounds[1:]))
                piece = data[skip:skip + left]
                skip = 0
                left -= len(piece)
                yield piece
                if left <= 0:
                    return


def _inflate_members(raw: bytes | memoryview) -> bytes:
    """Contents of one gzip member (a BGZF block), plus any members that follow it."""
    parts = []
    while len(raw):
        inflater = zlib.decompressobj(31)
        parts.append(inflater.decompress(raw))
        if not inflater.eof:
            break
        raw = inflater.unused_data
    return b"".join(parts)


#: The empty BGZF block every complete bgzip file ends with (SAM/BAM specification, 4.1.2).
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def has_bgzf_eof(path: Path) -> bool:
    """Whether the bgzip file ``path`` ends with the BGZF end-of-file block (a cut file does not)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() < len(_BGZF_EOF):
            return False
        handle.seek(-len(_BGZF_EOF), os.SEEK_END)
        return handle.read() == _BGZF_EOF
