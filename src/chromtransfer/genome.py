"""Reference genome access: FASTA (plain, gzip, bgzip) and UCSC 2bit, as uint8 base codes.

The contract:

* :class:`Genome` opens a genome file once and hands out sequence as ``uint8`` codes (A=0, C=1,
  G=2, T=3, any other character = 4, see :mod:`chromtransfer.encoding`). Lower-case (soft-masked)
  bases read as upper case. Coordinates are 0-based half-open.
* Chromosome names are matched through aliases: ``chr20`` and ``20`` are the same chromosome, and so
  are ``chrM``, ``M``, ``MT`` and ``chrMT`` (UCSC and Ensembl spellings). :meth:`Genome.resolve`
  returns the name the file itself uses, or raises :class:`~chromtransfer.errors.InputError` that
  lists the names the genome has.
* Formats: pyfaidx builds and reads the ``.fai`` (and, for bgzip, ``.gzi``) indexes; the bases
  themselves are read here from those index records: plain FASTA through a memory map, bgzip FASTA
  by inflating the BGZF blocks the ``.gzi`` names with :mod:`zlib` (pyfaidx 0.9's BGZF seek fails
  for a window that starts exactly on a block boundary, and its whole-chromosome reads run at a few
  MB/s against ~70 MB/s here). A plain-gzip FASTA (no random access possible) is decompressed once
  into the cache directory; ``.2bit`` files are read directly with NumPy (no extra dependency).
* Indexes are built next to the FASTA when missing. When the FASTA's folder is read-only they go to
  a cache directory (``$CHROMTRANSFER_CACHE``, else ``$XDG_CACHE_HOME/chromtransfer``, else
  ``~/.cache/chromtransfer``), keyed by the file's path, size and modification time.

Bulk reads (:meth:`Genome.fetch_many`, :meth:`Genome.chromosome_codes`) load one chromosome at a
time as codes (one byte per base: 250 MB for human chr1) and cut windows from it with a strided
view; only the most recently used chromosome is kept in memory.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import struct
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .encoding import ENCODE_TABLE, N_CODE, encode
from .errors import InputError
from .genome_formats import BgzfReader, TwoBitReader, has_bgzf_eof

__all__ = ["Genome", "chromosome_key", "default_cache_dir", "open_genome"]

_CHR_PREFIX = re.compile(r"^chr", re.IGNORECASE)
#: Bulk fetches load the whole chromosome when the windows cover at least this fraction of it.
_WHOLE_CHROMOSOME_FRACTION = 0.02


def chromosome_key(name: str) -> str:
    """The alias key of a chromosome name: ``chr20``/``20`` -> ``20``; ``chrM``/``MT`` -> ``m``.

    Lower case, without a ``chr`` prefix, with the mitochondrion spelled ``m``.
    """
    core = _CHR_PREFIX.sub("", name.strip()).lower()
    if core in ("m", "mt"):
        return "m"
    return core


def default_cache_dir() -> Path:
    """Where indexes and decompressed genomes go when the genome's folder is read-only."""
    env = os.environ.get("CHROMTRANSFER_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "chromtransfer"


def _sniff(path: Path) -> str:
    """'2bit', 'bgzf', 'gzip' or 'fasta' from the first bytes of the file."""
    with open(path, "rb") as handle:
        head = handle.read(18)
    if len(head) >= 4 and struct.unpack("<I", head[:4])[0] in (0x1A412743, 0x4327411A):
        return "2bit"
    if head[:2] == b"\x1f\x8b":
        # BGZF: a gzip member with FEXTRA and an extra subfield 'BC'.
        if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC":
            return "bgzf"
        return "gzip"
    return "fasta"


def _file_key(path: Path) -> str:
    stat = path.stat()
    text = f"{path.resolve()}|{stat.st_size}|{int(stat.st_mtime)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _writable_dir(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


class Genome:
    """A reference genome read as uint8 codes.

    Args:
        path: FASTA (``.fa``, ``.fa.gz`` bgzip or gzip) or ``.2bit`` file.
        cache_dir: where indexes / decompressed copies go when ``path``'s folder is read-only
            (default :func:`default_cache_dir`).

    Attributes:
        path: the genome file.
        format: ``"fasta"``, ``"bgzf"``, ``"gzip"`` or ``"2bit"``.
        names: sequence names in file order.
        lengths: ``{name: length in bp}`` in file order.
    """

    def __init__(self, path: str | os.PathLike, cache_dir: str | os.PathLike | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(self.path, "genome file not found", fix="give the path of a FASTA or .2bit file")
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.format = _sniff(self.path)
        self._fasta = None
        self._twobit: TwoBitReader | None = None
        self._plain: Path | None = None  # uncompressed FASTA used for memory-mapped reads
        self._memmap: np.ndarray | None = None
        self._bgzf: BgzfReader | None = None
        self._cached_name: str | None = None
        self._cached_codes: np.ndarray | None = None
        self._gap_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if self.format == "2bit":
            self._twobit = TwoBitReader(self.path)
            self.names = list(self._twobit.offsets)
            self.lengths = {n: self._twobit.length(n) for n in self.names}
        else:
            self._open_fasta()
        self._aliases = self._build_aliases(self.names)

    # ------------------------------------------------------------------ opening
    def _index_paths(self, fasta: Path) -> tuple[Path, Path, bool]:
        """(fai path, gzi path, may rebuild) for ``fasta``: next to it, or in the cache."""
        fai, gzi = Path(f"{fasta}.fai"), Path(f"{fasta}.gzi")
        need_gzi = self.format == "bgzf"
        if _writable_dir(fasta.parent):
            return fai, gzi, True
        if fai.exists() and (gzi.exists() or not need_gzi):
            return fai, gzi, False
        folder = self.cache_dir / "index"
        folder.mkdir(parents=True, exist_ok=True)
        key = _file_key(fasta)
        return folder / f"{key}-{fasta.name}.fai", folder / f"{key}-{fasta.name}.gzi", True

    def _decompressed_copy(self) -> Path:
        """A plain copy of a gzip (not bgzip) FASTA in the cache, made once."""
        folder = self.cache_dir / "genomes"
        folder.mkdir(parents=True, exist_ok=True)
        name = self.path.name[:-3] if self.path.name.endswith(".gz") else self.path.name + ".fa"
        target = folder / f"{_file_key(self.path)}-{name}"
        if not target.exists():
            from .artifacts import remove_stale_temporaries

            remove_stale_temporaries(folder, target.name)  # copies a killed process left half-made
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            try:
                with gzip.open(self.path, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
                os.replace(tmp, target)
            except (OSError, EOFError, zlib.error) as exc:
                raise InputError(self.path, f"cannot decompress the gzip genome ({exc})",
                                 fix="check the file, or recompress it with 'bgzip'") from exc
            finally:
                if tmp.exists():
                    tmp.unlink()
        return target

    def _open_fasta(self) -> None:
        import pyfaidx

        fasta = self.path
        if self.format == "gzip":
            fasta = self._decompressed_copy()
            self._plain = fasta
        elif self.format == "fasta":
            self._plain = fasta
        fai, gzi, rebuild = self._index_paths(fasta)
        if self.format == "bgzf" and not has_bgzf_eof(fasta):
            from .compressed import damaged

            raise damaged(self.path, "no BGZF end-of-file block: the file was cut short")
        try:
            self._fasta = pyfaidx.Faidx(
                str(fasta), indexname=str(fai), gzi_indexname=str(gzi) if self.format == "bgzf" else None,
                as_raw=True, strict_bounds=True, rebuild=rebuild, read_long_names=False,
                duplicate_action="stop",
            )
        except Exception as exc:  # pyfaidx raises several types (FastaIndexingError, ValueError, ...)
            raise InputError(
                self.path, f"cannot index the genome FASTA ({type(exc).__name__}: {str(exc).strip()})",
                fix="give a FASTA file with '>name' header lines and equal-length sequence lines, "
                    "or a .2bit file (re-wrap it with 'samtools faidx' or 'seqkit seq -w 60' if needed)",
            ) from exc
        if not self._fasta.index:
            raise InputError(self.path, "no sequences found in the genome file",
                             fix="give a FASTA file with '>name' header lines")
        self.names = list(self._fasta.index)
        self.lengths = {n: int(r.rlen) for n, r in self._fasta.index.items()}
        for n, r in self._fasta.index.items():
            if r.rlen > 0 and r.lenc <= 0:
                raise InputError(self.path, f"sequence {n} has an empty line layout in its index",
                                 fix="delete the .fai index so that it is rebuilt")
        if self.format == "bgzf":
            blocks = self._fasta.gzi_index
            self._bgzf = BgzfReader(self.path, [b.cstart for b in blocks], [b.ustart for b in blocks])

    @staticmethod
    def _build_aliases(names: Sequence[str]) -> dict[str, str]:
        aliases: dict[str, str] = {}
        for name in names:
            aliases.setdefault(chromosome_key(name), name)
        return aliases

    # ------------------------------------------------------------------ names
    def resolve(self, name: str) -> str:
        """The genome's own name for chromosome ``name`` (``chr20`` <-> ``20``, ``chrM`` <-> ``MT``).

        Raises ``InputError`` naming the genome file and the names it has.
        """
        found = self.try_resolve(name)
        if found is None:
            shown = ", ".join(self.names[:25]) + (", ..." if len(self.names) > 25 else "")
            raise InputError(self.path, f"chromosome {name!r} is not in the genome",
                             fix=f"the genome has: {shown}; use a genome that contains it or drop those rows")
        return found

    def try_resolve(self, name: str) -> str | None:
        """Like :meth:`resolve`, but ``None`` when the chromosome is absent."""
        if name in self.lengths:
            return name
        return self._aliases.get(chromosome_key(name))

    def __contains__(self, name: str) -> bool:
        return self.try_resolve(name) is not None

    def length(self, name: str) -> int:
        """Length in bp of chromosome ``name`` (aliases allowed)."""
        return self.lengths[self.resolve(name)]

    # ------------------------------------------------------------------ sequence
    def fetch_codes(self, chrom: str, start: int, end: int, pad: bool = False) -> np.ndarray:
        """Codes of ``chrom[start:end]`` (0-based half-open), shape ``(end - start,)`` uint8.

        A range reaching outside the chromosome raises ``InputError`` unless ``pad`` is true,
        in which case the outside positions are code 4 (N).
        """
        name = self.resolve(chrom)
        start, end = int(start), int(end)
        if end < start:
            raise InputError(self.path, f"empty or reversed range {chrom}:{start}-{end}",
                             fix="give start < end")
        size = self.lengths[name]
        if start < 0 or end > size:
            if not pad:
                raise InputError(self.path, f"range {chrom}:{start}-{end} lies outside {name} (length {size})",
                                 fix="drop or shorten windows that run off the chromosome")
            out = np.full(end - start, N_CODE, dtype=np.uint8)
            lo, hi = max(start, 0), min(end, size)
            if hi > lo:
                out[lo - start:hi - start] = self._read(name, lo, hi)
            return out
        return self._read(name, start, end)

    def _read(self, name: str, start: int, end: int) -> np.ndarray:
        if end <= start:
            return np.empty(0, dtype=np.uint8)
        if self._cached_name == name:
            return self._cached_codes[start:end].copy()
        if self._twobit is not None:
            return self._twobit.fetch(name, start, end)
        record = self._fasta.index[name]
        lenc, lenb = int(record.lenc), int(record.lenb)
        first = int(record.offset) + (start // lenc) * lenb + start % lenc
        last = int(record.offset) + ((end - 1) // lenc) * lenb + (end - 1) % lenc + 1
        raw = self._raw_bytes(first, last - first)
        if lenb > lenc:  # strip line ends
            raw = raw[(raw != 10) & (raw != 13)]
        codes = encode(raw.tobytes())
        if codes.shape[0] != end - start:
            raise InputError(self.path, f"read {codes.shape[0]} bases of {name}:{start}-{end} instead of {end - start}",
                             fix="the FASTA lines are not of equal length; re-wrap the file and delete its .fai")
        return codes

    def _raw_bytes(self, offset: int, nbytes: int) -> np.ndarray:
        """``nbytes`` bytes of the (uncompressed) FASTA text from ``offset``, as uint8."""
        if self._plain is not None:
            if self._memmap is None:
                self._memmap = np.memmap(self._plain, dtype=np.uint8, mode="r")
            return np.asarray(self._memmap[offset:offset + nbytes])
        return np.frombuffer(self._bgzf.read(offset, nbytes), dtype=np.uint8)

    def chromosome_codes(self, chrom: str) -> np.ndarray:
        """The whole chromosome as codes, shape ``(length,)`` uint8 (read-only, kept until another
        chromosome is loaded)."""
        name = self.resolve(chrom)
        if self._cached_name != name:
            self._cached_codes = None  # free the previous chromosome first
            codes = self._load_chromosome(name)
            codes.flags.writeable = False
            self._cached_name, self._cached_codes = name, codes
        return self._cached_codes

    def release(self) -> None:
        """Drop the chromosome held in memory."""
        self._cached_name, self._cached_codes = None, None

    def _load_chromosome(self, name: str) -> np.ndarray:
        size = self.lengths[name]
        if self._twobit is not None:
            return self._twobit.fetch(name, 0, size)
        record = self._fasta.index[name]
        offset, nbytes = int(record.offset), int(record.bend - record.offset)
        # Decode piece by piece into one array: memory stays near one byte per base.
        codes = np.empty(size, dtype=np.uint8)
        pos = 0
        for piece in self._iter_raw(offset, nbytes):
            piece = piece[(piece != 10) & (piece != 13)]
            if pos + piece.size > size:
                pos += piece.size
                break
            codes[pos:pos + piece.size] = ENCODE_TABLE[piece]
            pos += piece.size
        if pos != size:
            raise InputError(self.path, f"sequence {name} has {pos} bases but its index says {size}",
                             fix="delete the stale .fai/.gzi index so that it is rebuilt")
        return codes

    def _iter_raw(self, offset: int, nbytes: int, chunk: int = 1 << 24):
        """The FASTA text ``[offset, offset + nbytes)`` as uint8 pieces of about ``chunk`` bytes."""
        if self._plain is not None:
            if self._memmap is None:
                self._memmap = np.memmap(self._plain, dtype=np.uint8, mode="r")
            for lo in range(offset, offset + nbytes, chunk):
                yield np.asarray(self._memmap[lo:min(lo + chunk, offset + nbytes)])
        else:
            for piece in self._bgzf.iter_span(offset, nbytes):
                yield np.frombuffer(piece, dtype=np.uint8)

    def fetch_many(
        self,
        chroms: Sequence[str] | np.ndarray,
        starts: Sequence[int] | np.ndarray,
        ends: Sequence[int] | np.ndarray | None = None,
        length: int | None = None,
        pad: bool = False,
    ) -> np.ndarray:
        """Codes of many equal-length windows, shape ``(N, length)`` uint8, in input order.

        Args:
            chroms: ``(N,)`` chromosome names (aliases allowed).
            starts: ``(N,)`` 0-based window starts.
            ends: ``(N,)`` window ends; every ``end - start`` must equal ``length``.
            length: window length; taken from ``ends - starts`` when omitted.
            pad: pad windows that reach past a chromosome end with code 4 instead of raising.

        Windows are grouped by chromosome; where they cover a noticeable part of a chromosome it is
        loaded whole and windows are cut with a strided view, otherwise they are read one by one.
        """
        chroms = np.asarray(chroms, dtype=object)
        starts = np.asarray(starts, dtype=np.int64)
        if ends is not None:
            ends = np.asarray(ends, dtype=np.int64)
            widths = np.unique(ends - starts)
            if length is None:
                if widths.size > 1:
                    raise ValueError("fetch_many needs equal-length windows; give length= to re-centre first")
                length = int(widths[0]) if widths.size else 0
            elif widths.size and (widths.size > 1 or widths[0] != length):
                raise ValueError(f"windows are not all {length} bp long")
        if length is None:
            raise ValueError("give ends or length")
        n = starts.shape[0]
        out = np.empty((n, length), dtype=np.uint8)
        if n == 0:
            return out
        resolved = np.array([self.resolve(c) for c in _unique_in_order(chroms)], dtype=object)
        lookup = dict(zip(_unique_in_order(chroms), resolved))
        names = np.array([lookup[c] for c in chroms], dtype=object) if len(lookup) > 1 else \
            np.full(n, resolved[0], dtype=object)
        for name in _unique_in_order(names):
            rows = np.flatnonzero(names == name)
            self._fill(out, rows, name, starts[rows], length, pad)
        return out

    def _fill(self, out: np.ndarray, rows: np.ndarray, name: str, starts: np.ndarray, length: int,
              pad: bool) -> None:
        size = self.lengths[name]
        inside = (starts >= 0) & (starts + length <= size)
        if not inside.all() and not pad:
            bad = starts[~inside][0]
            raise InputError(self.path, f"window {name}:{bad}-{bad + length} lies outside {name} (length {size})",
                             fix="drop windows that run off the chromosome, or pad them")
        whole = self._cached_name == name or rows.size * length >= _WHOLE_CHROMOSOME_FRACTION * size
        if whole and size >= length:
            codes = self.chromosome_codes(name)
            view = np.lib.stride_tricks.sliding_window_view(codes, length)
            ok_rows, ok_starts = rows[inside], starts[inside]
            for lo in range(0, ok_rows.size, 65536):  # bounded temporary memory
                out[ok_rows[lo:lo + 65536]] = view[ok_starts[lo:lo + 65536]]
            for r, s in zip(rows[~inside], starts[~inside]):
                out[r] = self.fetch_codes(name, int(s), int(s) + length, pad=True)
        else:
            for r, s in zip(rows, starts):
                out[r] = self.fetch_codes(name, int(s), int(s) + length, pad=pad)

    # ------------------------------------------------------------------ gaps
    def gaps(self, chrom: str, min_length: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Runs of N (code 4) on ``chrom``: ``(starts, ends)`` int64 arrays, 0-based half-open,
        sorted, runs shorter than ``min_length`` left out."""
        name = self.resolve(chrom)
        if name not in self._gap_cache:
            codes = self.chromosome_codes(name)
            self._gap_cache[name] = n_runs(codes)
        starts, ends = self._gap_cache[name]
        keep = (ends - starts) >= min_length
        return starts[keep], ends[keep]

    def __reduce__(self):
        # open file handles do not travel to other processes: a copy reopens the file
        return (Genome, (str(self.path), str(self.cache_dir)))

    def describe(self) -> dict:
        """A small JSON-able description (path, format, sequences, total length)."""
        return {"path": str(self.path), "format": self.format, "sequences": len(self.names),
                "total_length": int(sum(self.lengths.values()))}

    def __repr__(self) -> str:
        return f"Genome({str(self.path)!r}, format={self.format!r}, sequences={len(self.names)})"


def n_runs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of code 4 in a ``(L,)`` code vector: ``(starts, ends)`` int64, half-open."""
    is_n = np.concatenate([[False], np.asarray(codes) == N_CODE, [False]])
    edges = np.flatnonzero(is_n[1:] != is_n[:-1])
    return edges[0::2].astype(np.int64), edges[1::2].astype(np.int64)


def _unique_in_order(values: Iterable) -> list:
    seen: dict = {}
    for v in values:
        if v not in seen:
            seen[v] = None
    return list(seen)


def open_genome(path: str | os.PathLike | Genome, cache_dir: str | os.PathLike | None = None) -> Genome:
    """A :class:`Genome` from a path (or the same object when one is given)."""
    return path if isinstance(path, Genome) else Genome(path, cache_dir=cache_dir)
