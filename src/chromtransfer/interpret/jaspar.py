"""Motif collections: JASPAR from pyjaspar's bundled database (offline), MEME and JASPAR files.

One dispatcher, :func:`load_motifs`, returns a list of :class:`~chromtransfer.interpret.pwm.Motif`:

* no file: the JASPAR release bundled with pyjaspar (default JASPAR 2022, CORE collection,
  vertebrates, latest version of every matrix: 841 motifs, the "non-redundant" set the JASPAR web
  site distributes). Nothing is downloaded; pyjaspar ships SQLite files of every release.
* ``.meme`` / ``.txt`` files in MEME minimal motif format (``MOTIF id name`` then a
  ``letter-probability matrix:`` block; ``nsites=`` is kept for FIMO's pseudocount; the file's
  ``Background letter frequencies`` are available through :func:`read_meme_background`).
* ``.jaspar`` files (``>ID name`` then ``A [ counts ]`` rows) and ``.pfm`` files (``>ID name``
  then four rows of counts A, C, G, T; or a headerless single matrix).

Malformed files raise :class:`~chromtransfer.errors.InputError` naming the file, the line and the fix.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..encoding import ALPHABET
from ..errors import InputError
from .pwm import Motif

__all__ = ["DEFAULT_COLLECTION", "DEFAULT_RELEASE", "DEFAULT_TAX_GROUP", "load_jaspar", "load_motifs",
           "read_jaspar_file", "read_meme_background", "read_meme_file", "read_motif_file"]

DEFAULT_RELEASE = "JASPAR2022"
DEFAULT_COLLECTION = "CORE"
DEFAULT_TAX_GROUP = "vertebrates"


def load_jaspar(release: str = DEFAULT_RELEASE, collection: str = DEFAULT_COLLECTION,
                tax_group: str | list[str] | None = DEFAULT_TAX_GROUP, all_versions: bool = False) -> list[Motif]:
    """Motifs of a JASPAR release from pyjaspar's bundled SQLite database (no network).

    Args:
        release: e.g. ``JASPAR2022`` (pyjaspar bundles 2014 to its latest release).
        collection: JASPAR collection (``CORE``, ``UNVALIDATED``, ...).
        tax_group: taxonomic group(s) (``vertebrates``, ``insects``, ...); ``None`` for all.
        all_versions: every version of each matrix instead of the latest one.

    Returns:
        Motifs in the database's order, built from the stored count matrices, each with JASPAR's
        TF family annotation (:attr:`Motif.families`).
    """
    from ..errors import ChromTransferError

    try:
        import pyjaspar
        from pyjaspar import jaspardb
    except ImportError as exc:  # pragma: no cover - pyjaspar is a dependency
        raise ChromTransferError(f"pyjaspar is not installed ({exc}); pip install pyjaspar") from None
    releases = getattr(pyjaspar, "jaspar_releases", {})
    if releases and release not in releases:
        raise ChromTransferError(f"JASPAR release {release!r} is not bundled with pyjaspar "
                                 f"(available: {', '.join(sorted(releases))})")
    db = jaspardb(release=release)
    groups = [tax_group] if isinstance(tax_group, str) else tax_group
    records = db.fetch_motifs(collection=collection, tax_group=groups, all_versions=all_versions)
    motifs = []
    for rec in records:
        counts = np.array([rec.counts[b] for b in ALPHABET], dtype=np.float64).T
        families = tuple(dict.fromkeys(str(f) for f in (getattr(rec, "tf_family", None) or []) if f))
        motifs.append(Motif.from_counts(rec.matrix_id, rec.name, counts, source=release, families=families))
    if not motifs:
        raise ChromTransferError(f"no motifs in {release} for collection={collection!r} tax_group={tax_group!r}")
    return motifs


def load_motifs(path: str | os.PathLike | None = None, release: str = DEFAULT_RELEASE,
                collection: str = DEFAULT_COLLECTION, tax_group: str | list[str] | None = DEFAULT_TAX_GROUP) -> list[Motif]:
    """Motifs from a file (MEME or JASPAR format) or, with ``path=None``, from pyjaspar."""
    if path is None:
        return load_jaspar(release, collection, tax_group)
    return read_motif_file(path)


def read_motif_file(path: str | os.PathLike) -> list[Motif]:
    """Read a MEME (``MEME version`` header) or JASPAR/PFM motif file; the format is sniffed."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "motif file not found", fix="check the path")
    text = path.read_text(errors="replace")
    head = text.lstrip()[:2000]
    if head.startswith("MEME version") or re.search(r"^MOTIF\s", text, flags=re.M):
        return read_meme_file(path, text)
    return read_jaspar_file(path, text)


# ----------------------------------------------------------------------------- MEME
_KEYVAL = re.compile(r"(\w+)\s*=\s*([^\s]+)")


def read_meme_file(path: str | os.PathLike, text: str | None = None) -> list[Motif]:
    """Motifs of a MEME minimal-format file (DNA alphabet only).

    Each ``MOTIF <id> [<name>]`` is followed by ``letter-probability matrix: alength= 4 w= W
    nsites= N ...`` and W rows of four probabilities (A C G T). ``log-odds matrix`` blocks and
    ``URL`` lines are skipped.
    """
    path = Path(path)
    lines = (text if text is not None else path.read_text(errors="replace")).splitlines()
    motifs: list[Motif] = []
    current: tuple[str, str, int] | None = None
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("ALPHABET"):
            letters = line.split("=", 1)[1].strip() if "=" in line else line.split(None, 1)[-1]
            if "=" in line and letters.upper() != ALPHABET:
                raise InputError(path, f"alphabet {letters!r} is not DNA", line=i + 1,
                                 fix="scan DNA motifs (ALPHABET= ACGT)")
            if "=" not in line and "DNA" not in line.upper():
                raise InputError(path, f"alphabet {line!r} is not DNA", line=i + 1, fix="scan DNA motifs")
        elif line.startswith("MOTIF"):
            parts = line.split()
            if len(parts) < 2:
                raise InputError(path, "MOTIF line without an identifier", line=i + 1,
                                 fix="write 'MOTIF <id> [<name>]'")
            current = (parts[1], parts[2] if len(parts) > 2 else parts[1], i + 1)
        elif line.startswith("letter-probability matrix"):
            if current is None:
                raise InputError(path, "letter-probability matrix before any MOTIF line", line=i + 1,
                                 fix="start each motif with 'MOTIF <id> [<name>]'")
            fields = dict((k.lower(), v) for k, v in _KEYVAL.findall(line.split(":", 1)[-1]))
            alength = int(float(fields.get("alength", 4)))
            if alength != 4:
                raise InputError(path, f"alength= {alength} (only DNA, alength= 4, is supported)", line=i + 1)
            width = int(float(fields["w"])) if "w" in fields else None
            nsites = float(fields["nsites"]) if "nsites" in fields else None
            rows = []
            j = i + 1
            while j < len(lines):
                row = lines[j].strip()
                if not row:
                    if rows and width is None:
                        break
                    j += 1
                    continue
                if not _is_number_row(row):
                    break
                values = row.split()
                if len(values) != 4:
                    raise InputError(path, f"matrix row has {len(values)} values, expected 4 (A C G T)",
                                     line=j + 1, fix="write one row of four probabilities per position")
                rows.append([float(v) for v in values])
                j += 1
                if width is not None and len(rows) == width:
                    break
            if not rows or (width is not None and len(rows) != width):
                raise InputError(path, f"motif {current[0]}: expected {width} matrix rows, found {len(rows)}",
                                 line=i + 1, fix="give w= rows of four probabilities")
            try:
                motifs.append(Motif.from_frequencies(current[0], current[1], np.array(rows), nsites,
                                                     source=str(path)))
            except ValueError as exc:
                raise InputError(path, str(exc), line=i + 1) from None
            current = None
            i = j
            continue
        i += 1
    if not motifs:
        raise InputError(path, "no 'letter-probability matrix' motifs found",
                         fix="give a MEME-format file (MOTIF lines with letter-probability matrices)")
    return motifs


def read_meme_background(path: str | os.PathLike) -> np.ndarray | None:
    """The ``Background letter frequencies`` of a MEME file as ``(4,)`` A,C,G,T, or ``None``."""
    path = Path(path)
    lines = path.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("Background letter frequencies"):
            values: dict[str, float] = {}
            for follow in lines[i + 1:i + 4]:
                tokens = follow.split()
                for letter, value in zip(tokens[0::2], tokens[1::2]):
                    try:
                        values[letter.upper()] = float(value)
                    except ValueError:
                        raise InputError(path, f"bad background frequency {value!r}", line=i + 2) from None
                if all(b in values for b in ALPHABET):
                    return np.array([values[b] for b in ALPHABET], dtype=np.float64)
            raise InputError(path, "incomplete background letter frequencies", line=i + 1,
                             fix="give 'A p C p G p T p' on the next line")
    return None


def _is_number_row(row: str) -> bool:
    try:
        [float(v) for v in row.split()]
        return True
    except ValueError:
        return False


# ----------------------------------------------------------------------------- JASPAR / PFM
_JASPAR_ROW = re.compile(r"^\s*([ACGTacgt])\s*\[?\s*([^\]]*?)\s*\]?\s*$")


def read_jaspar_file(path: str | os.PathLike, text: str | None = None) -> list[Motif]:
    """Count matrices in JASPAR format (``A [ 1 2 ... ]`` rows) or plain PFM (four numeric rows).

    Each matrix starts with ``>ID [name]``; a file with a single headerless PFM is named after the
    file. Rows are A, C, G, T (in the order given by their letters in JASPAR format).
    """
    path = Path(path)
    lines = (text if text is not None else path.read_text(errors="replace")).splitlines()
    motifs: list[Motif] = []
    header: tuple[str, str, int] | None = None
    rows: list[tuple[str | None, list[float], int]] = []

    def flush() -> None:
        if header is None and not rows:
            return
        motif_id, name, line_no = header if header is not None else (path.stem, path.stem, 1)
        if len(rows) != 4:
            raise InputError(path, f"matrix {motif_id} has {len(rows)} rows, expected 4 (A, C, G, T)",
                             line=line_no, fix="give one row of counts per base")
        letters = [r[0] for r in rows]
        if all(letter is not None for letter in letters):
            if sorted(letters) != ["A", "C", "G", "T"]:
                raise InputError(path, f"matrix {motif_id} rows are labelled {letters}", line=line_no,
                                 fix="label the rows A, C, G and T")
            ordered = [dict((r[0], r[1]) for r in rows)[b] for b in ALPHABET]
        else:
            ordered = [r[1] for r in rows]
        widths = {len(r) for r in ordered}
        if len(widths) != 1:
            raise InputError(path, f"matrix {motif_id} rows have different lengths {sorted(widths)}",
                             line=line_no, fix="give the same number of counts for every base")
        try:
            motifs.append(Motif.from_counts(motif_id, name, np.array(ordered).T, source=str(path)))
        except ValueError as exc:
            raise InputError(path, str(exc), line=line_no) from None

    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(">"):
            flush()
            parts = line[1:].split()
            if not parts:
                raise InputError(path, "header without an identifier", line=i + 1, fix="write '>ID name'")
            header = (parts[0], " ".join(parts[1:2]) or parts[0], i + 1)
            rows = []
            continue
        match = _JASPAR_ROW.match(line)
        letter = None
        body = line
        if match and not _is_number_row(line):
            letter, body = match.group(1).upper(), match.group(2)
        try:
            values = [float(v) for v in body.replace(",", " ").split()]
        except ValueError:
            raise InputError(path, f"cannot read counts from {line[:60]!r}", line=i + 1,
                             fix="write 'A [ counts ]' rows (JASPAR) or four rows of numbers (PFM)") from None
        if not values:
            raise InputError(path, "empty matrix row", line=i + 1)
        if len(rows) == 4:
            raise InputError(path, "more than four rows in a matrix", line=i + 1,
                             fix="start each matrix with a '>ID name' header")
        rows.append((letter, values, i + 1))
    flush()
    if not motifs:
        raise InputError(path, "no motif matrices found", fix="give a JASPAR (.jaspar) or PFM (.pfm) file")
    return motifs
