"""Writing artifacts safely: one owner for output folders, atomic files, provenance.

Output folders (:func:`claim_output_dir`)
-----------------------------------------
Every command that writes a folder claims it first. The claim writes a small hidden marker,
``.chromtransfer.json`` (kind, package version, creation time), *before* any other file, so a
folder left half-written by a killed run is still recognisably "ours, of kind K"; the kind's
completion file (a store's ``manifest.json``, an evaluation's ``metrics.json``, a run's
``run.json`` ...; see :data:`OUTPUT_KINDS`) is written last and marks the result complete.

==========================================  ================================================
``--out`` is ...                            the claim
==========================================  ================================================
missing, or an empty folder                 claimed (created, marker written)
a folder of the same kind, unfinished       claimed again (nothing complete is lost)
(marker, no completion file)
a folder of the same kind, complete         refused, unless ``overwrite`` (replaces only the
                                            files of that kind; any other file stays) or
                                            ``resume`` (a training run, a study, a bootstrap
                                            analysis continue where they stopped)
a folder of another kind (a model run, a    always refused: one line naming what is there
store, a study, attributions ...)
a non-empty folder with files chromtransfer always refused
did not write
a file                                      refused
==========================================  ================================================

A refusal is a :class:`~chromtransfer.errors.ArtifactError` whose one line names the folder,
what it holds and the fix, e.g. ``runs/m: holds a training run (run.json, checkpoints,
learning_curve.csv, model.json, ...), not attributions; choose another --out``. With
``overwrite`` the claim removes the old completion file first, so an overwrite killed midway
leaves a folder that reads as unfinished, never a mix that looks complete; writers that stage
their files (stores, attributions: :func:`publish_staged`) keep the old result whole until the
new one replaces it. Nothing here removes a user's folder: only the staging folders and
temporaries this module names (``.staging-PID``, ``.NAME.tmp-PID``) are deleted.

Files (:func:`atomic_path`)
---------------------------
Files are written under a temporary sibling name ``.NAME.tmp-PID`` and renamed into place, so a
killed process never leaves a half-written file that looks complete. Temporaries of processes
that are no longer alive are removed by the next write of the same file and by every claim of
the folder. Renamed files get the permissions of the user's umask (0644 for the usual 022), even
where the writing library created its file private (``safetensors``, ``tempfile``).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import ArtifactError

#: The hidden marker a claim writes first into every output folder.
MARKER_FILE = ".chromtransfer.json"
MARKER_FORMAT = "chromtransfer-output"

#: Names of temporary files and staging folders (``.NAME.tmp-PID``, ``.NAME.tmp-PIDSUFFIX``,
#: ``.staging-PID``): the PID is group 1.
_TEMP_NAME = re.compile(r"^\..+\.tmp-(\d+)(\.[A-Za-z0-9]+)?$")
_STAGING_NAME = re.compile(r"^\.staging-(\d+)$")


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chromtransfer")
    except PackageNotFoundError:  # running from a source tree without installation
        return "0+unknown"


def provenance(**extra: Any) -> dict[str, Any]:
    """What made an artifact: package version, Python, host, UTC time, plus ``extra``."""
    info = {
        "chromtransfer_version": package_version(),
        "python": platform.python_version(),
        "host": platform.node(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    info.update(extra)
    return info


# ---------------------------------------------------------------------------------------------
# Kinds of output folders
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutputKind:
    """What one kind of output folder holds.

    Attributes:
        name: the kind's key (``"store"``), recorded in the marker.
        label: how messages name it (``"a dataset store"``).
        complete: the file written last, whose presence marks a complete result.
        files: glob patterns of every file or sub-folder this kind writes (an overwrite replaces
            or removes these and nothing else).
        recognise: for folders written before markers existed: whether ``folder`` holds this
            kind (checked only when there is no marker).
    """

    name: str
    label: str
    complete: str
    files: tuple[str, ...]
    recognise: Callable[[Path], bool]


def _json_format(folder: Path, name: str) -> str | None:
    try:
        document = json.loads((folder / name).read_text())
    except (OSError, ValueError):
        return None
    return document.get("format") if isinstance(document, dict) else None


OUTPUT_KINDS: dict[str, OutputKind] = {kind.name: kind for kind in (
    OutputKind("store", "a dataset store", "manifest.json",
               ("sequences.npy", "labels.npy", "split.npy", "fold.npy", "regions.tsv.gz", "manifest.json"),
               lambda f: _json_format(f, "manifest.json") == "chromtransfer-store"),
    OutputKind("run", "a training run", "run.json",
               ("run.json", "folds.json", "learning_curve.csv", "checkpoints", "model.json", "model.safetensors",
                "fold[0-9]*"),
               lambda f: (f / "run.json").is_file() or (f / "folds.json").is_file()),
    OutputKind("model", "a model", "model.json", ("model.json", "model.safetensors"),
               lambda f: _json_format(f, "model.json") == "chromtransfer-model"),
    OutputKind("evaluation", "an evaluation", "metrics.json",
               ("predictions.tsv", "metrics.tsv", "metrics.json", "roc.tsv", "pr.tsv", "calibration.tsv",
                "roc.png", "pr.png", "calibration.png"),
               lambda f: (f / "metrics.json").is_file() and (f / "metrics.tsv").is_file()),
    OutputKind("attributions", "attributions", "manifest.json",
               ("attributions.npz", "attributions.bedGraph", "attributions.bw", "manifest.json"),
               lambda f: _json_format(f, "manifest.json") == "chromtransfer-attributions"),
    OutputKind("enrichment", "a TF enrichment", "enrichment.json",
               ("enrichment.json", "enrichment.tsv", "enrichment_b.tsv", "comparison.tsv", "site_scores.tsv.gz",
                "d_ranking.png", "d_ranking_b.png", "d_ranking_difference.png", "d_scatter.png", "ecdf_top.png",
                "logo_*.png"),
               lambda f: (f / "enrichment.json").is_file()),
    OutputKind("motifs", "de novo motifs", "manifest.json",
               ("manifest.json", "patterns.tsv", "matches.tsv", "patterns.meme", "patterns.npz", "patterns_b.tsv",
                "matches_b.tsv", "patterns_b.meme", "patterns_b.npz", "comparison.tsv", "logos"),
               lambda f: _json_format(f, "manifest.json") == "chromtransfer-motifs"),
    OutputKind("synthetic", "a synthetic data set", "truth.json",
               ("genome.fa", "genome.fa.fai", "rdhs.bed", "label_matrix.tsv", "blacklist.bed", "open", "variants.vcf.gz",
                "variants_truth.tsv", "truth.json"),
               lambda f: (f / "truth.json").is_file() and (f / "genome.fa").is_file()),
    OutputKind("bootstrap", "a bootstrap analysis", "bootstrap_table.tsv",
               ("f[0-9]*", "bootstrap_replicates.tsv", "bootstrap_table.tsv", "bootstrap_f1.png"),
               lambda f: (f / "bootstrap_table.tsv").is_file() or any(f.glob("f[0-9]*/rep[0-9]*"))),
    OutputKind("variants", "variant scores", "variants.vcf.gz",
               ("manifest.json", "chunks", "null.tsv.gz", "variants.tsv.gz", "variants.vcf.gz", "top_variants.png",
                "explain"),
               lambda f: _json_format(f, "manifest.json") == "chromtransfer-variants"),
    OutputKind("study", "a study", "summary.json",
               ("inputs", "data", "models", "evaluation", "bootstrap", "interpret", "variants", "stages", "summary.json",
                "report.html", "figures"),
               lambda f: (f / "stages").is_dir()),
)}


@dataclass(frozen=True)
class FolderContents:
    """What :func:`inspect_output_dir` found: the kind (``None``: none recognised), whether its
    completion file is there, and the visible entries (sorted names)."""

    kind: str | None
    complete: bool
    entries: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.entries and self.kind is None


def _is_own_temporary(name: str) -> bool:
    return bool(_TEMP_NAME.match(name) or _STAGING_NAME.match(name)) or name == MARKER_FILE


def inspect_output_dir(path: str | os.PathLike) -> FolderContents:
    """The kind of output held by the existing folder ``path`` (marker first, then the files)."""
    folder = Path(path)
    entries = tuple(sorted(p.name for p in folder.iterdir() if not _is_own_temporary(p.name)))
    kind = None
    marker = folder / MARKER_FILE
    if marker.is_file():
        try:
            kind = json.loads(marker.read_text()).get("kind")
        except (OSError, ValueError, AttributeError):
            kind = None
    if kind not in OUTPUT_KINDS:
        kind = next((k.name for k in OUTPUT_KINDS.values() if entries and k.recognise(folder)), None)
    complete = kind is not None and (folder / OUTPUT_KINDS[kind].complete).exists()
    return FolderContents(kind, complete, entries)


def _listing(found: FolderContents, limit: int = 4) -> str:
    """Up to ``limit`` names of the folder, those that show its kind first (completion file first)."""
    def rank(name: str) -> int:
        if found.kind is None:
            return 2
        spec = OUTPUT_KINDS[found.kind]
        if name == spec.complete:
            return 0
        return 1 if any(Path(name).match(pattern) for pattern in spec.files) else 2

    entries = sorted(found.entries, key=lambda name: (rank(name), name))
    return ", ".join(entries[:limit]) + (", ..." if len(entries) > limit else "")


def check_output_dir(path: str | os.PathLike, kind: str, *, overwrite: bool = False,
                     resume: bool = False) -> FolderContents | None:
    """Raise :class:`ArtifactError` unless ``path`` may become an output folder of ``kind`` (see
    the module docstring); write nothing. Returns what the folder holds (``None``: missing).

    Commands call this before their long work, and :func:`claim_output_dir` right before writing.
    """
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    folder = Path(path)
    wanted = OUTPUT_KINDS[kind]
    if not folder.exists():
        if folder.is_symlink():
            raise ArtifactError(f"{folder}: a broken symbolic link; choose another --out")
        return None
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: is a file, not a folder; choose another --out")
    found = inspect_output_dir(folder)
    if found.empty:
        return found
    if found.kind is None:
        raise ArtifactError(f"{folder}: not empty and not written by chromtransfer ({_listing(found)}); "
                            "choose another --out (nothing in it is replaced)")
    if found.kind != kind:
        raise ArtifactError(f"{folder}: holds {OUTPUT_KINDS[found.kind].label} ({_listing(found)}), "
                            f"not {wanted.label}; choose another --out")
    if found.complete and not (overwrite or resume):
        raise ArtifactError(f"{folder}: already holds {wanted.label} (complete: {wanted.complete}); add "
                            f"--overwrite to replace it (only its own files), or choose another --out")
    return found


def claim_output_dir(path: str | os.PathLike, kind: str, *, overwrite: bool = False,
                     resume: bool = False, staged: bool = False) -> Path:
    """Claim ``path`` as an output folder of ``kind`` and return it (see the module docstring).

    Creates the folder, writes the marker first, removes temporaries and staging folders that
    processes no longer alive left behind, and with ``overwrite`` (and not ``resume``) removes
    the old completion file, so that the folder reads as unfinished until the new result is
    complete. ``staged`` writers (:func:`publish_staged`) keep the old result whole until they
    publish the new one, so for them the completion file stays. Raises :class:`ArtifactError`
    where :func:`check_output_dir` does.
    """
    folder = Path(path)
    found = check_output_dir(folder, kind, overwrite=overwrite, resume=resume)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / MARKER_FILE
    if found is None or found.kind is None or not marker.is_file():
        write_json(marker, {"format": MARKER_FORMAT, "kind": kind,
                            "chromtransfer_version": package_version(),
                            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    remove_stale_temporaries(folder)
    if found is not None and found.complete and overwrite and not (resume or staged):
        (folder / OUTPUT_KINDS[kind].complete).unlink(missing_ok=True)
    return folder


def release_output_dir(path: str | os.PathLike) -> None:
    """Undo the claim of a folder that received nothing: remove it when it holds only the marker
    (and temporaries of dead processes); any other content keeps it."""
    folder = Path(path)
    remove_stale_temporaries(folder)
    if folder.is_dir() and [p.name for p in folder.iterdir()] == [MARKER_FILE]:
        (folder / MARKER_FILE).unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()


def check_output_file(path: str | os.PathLike, *, overwrite: bool = False, what: str = "--out",
                      sidecar_format: str | None = None) -> Path:
    """Refuse to replace an existing file ``path`` unless ``overwrite``; refuse a folder.

    A plain output file (``predict --out``) cannot be recognised as ours, so an existing one is
    replaced only when asked. With ``sidecar_format``, the file's manifest ``PATH.json`` must
    carry that format (``motifs scan``): any other existing file is never replaced.
    """
    path = Path(path)
    if path.is_dir():
        raise ArtifactError(f"{path}: is a folder, not a file; give a file name to {what}")
    if not path.exists():
        return path
    if sidecar_format is not None and _json_format(path.parent, path.name + ".json") != sidecar_format:
        raise ArtifactError(f"{path}: exists and was not written by this command (no {path.name}.json of "
                            f"format {sidecar_format}); choose another {what}")
    if not overwrite:
        raise ArtifactError(f"{path}: already exists; add --overwrite to replace it, or choose another {what}")
    return path


# ---------------------------------------------------------------------------------------------
# Staged folders and atomic files
# ---------------------------------------------------------------------------------------------
def publish_staged(staging: str | os.PathLike, folder: str | os.PathLike, kind: str, written: list[str]) -> None:
    """Move the files ``written`` from ``staging`` into the claimed ``folder``, completion file last.

    Files of ``kind`` that this result does not include (e.g. a bigWig of an earlier run) are
    removed first, together with the old completion file; files of other names stay. ``staging``
    (created by the caller inside ``folder``, named ``.staging-PID``) is removed when empty.
    """
    staging, folder = Path(staging), Path(folder)
    spec = OUTPUT_KINDS[kind]
    (folder / spec.complete).unlink(missing_ok=True)
    keep = set(written)
    for pattern in spec.files:
        for old in folder.glob(pattern):
            if old.name not in keep and old.is_file():
                old.unlink()
    for name in sorted(keep - {spec.complete}) + ([spec.complete] if spec.complete in keep else []):
        os.replace(staging / name, folder / name)
    with contextlib.suppress(OSError):
        staging.rmdir()


def make_staging(folder: str | os.PathLike) -> Path:
    """A fresh staging folder ``folder/.staging-PID`` (an earlier one of this PID is cleared)."""
    staging = Path(folder) / f".staging-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove temporary files (``.NAME.tmp-PID``) and staging folders (``.staging-PID``) in
    ``folder`` whose process is no longer alive on this host; only those of ``name`` if given.
    Returns what was removed."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TEMP_NAME.match(entry.name) or _STAGING_NAME.match(entry.name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        if name is not None and not entry.name.startswith(f".{name}.tmp-") \
                and not entry.name.startswith(f".{Path(name).stem}.tmp-"):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)  # our own staging folder, never a user's
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def file_mode() -> int:
    """The permission bits a new file gets under the process's umask (0o644 for umask 022)."""
    umask = os.umask(0o022)  # reading the umask means setting it; restored at once
    os.umask(umask)
    return 0o666 & ~umask


def apply_umask(path: str | os.PathLike) -> None:
    """Give the file ``path`` the umask's permissions (libraries that write private 0600 files)."""
    with contextlib.suppress(OSError):
        os.chmod(path, file_mode())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto ``path`` only if the block succeeds.

    Stale temporaries of the same file left by dead processes are removed first; the file gets
    the umask's permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        if tmp.is_file():
            apply_umask(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_document(path: str | os.PathLike, fmt: str, *, what: str, fix: str, version: int = 1,
                  missing: str | None = None) -> dict[str, Any]:
    """Read a chromtransfer JSON document (run.json, a store's or a model's description...).

    The one reader of the versioned documents: the file must parse as a JSON object whose
    ``format`` is ``fmt`` and whose ``format_version`` (1 when absent) is at most ``version``.

    Args:
        what: what the document is, for the message (``"chromtransfer model description"``).
        fix: what to do about a damaged file, appended to the message.
        missing: the message when the file does not exist (default: one naming the file).

    Raises:
        ArtifactError: one line naming the file: unreadable, not JSON, another format, or a
            newer format version than this chromtransfer reads.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(missing or f"{path}: no such file ({what})")
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise ArtifactError(f"{path}: unreadable ({exc.strerror or exc}); {fix}") from exc
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); {fix}") from exc
    found = document.get("format") if isinstance(document, dict) else None
    if found != fmt:
        raise ArtifactError(f"{path}: not a {what} (format is {found!r}, expected {fmt!r})")
    found_version = document.get("format_version", 1)
    if not isinstance(found_version, int) or found_version > version:
        raise ArtifactError(f"{path}: format_version {found_version!r} is newer than this chromtransfer reads "
                            f"({version}); upgrade chromtransfer")
    return document


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _json_default(obj: Any):
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
