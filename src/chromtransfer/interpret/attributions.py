"""Per-base attributions: one class, one directory format, one reader and one writer.

:class:`Attributions` holds what ``chromtransfer attribute``, the workflow and ``ct.attribute``
compute, and what enrichment reads. :meth:`Attributions.save` writes a directory and
:func:`load_attributions` reads it back::

    attributions.npz        np.savez_compressed; arrays
                              scores      (N, L) float32  gradient x input, the ISM per-base
                                                          delta score (the largest change), or the
                                                          DeepLIFT/SHAP (projected) contribution
                              ism         (N, L, 4) float32, method "ism" only (A, C, G, T;
                                          reference base 0)
                              hypothetical (N, L, 4) float32 hypothetical contributions (A, C,
                                          G, T: the score each base would get at that position;
                                          ``scores`` is their value at the present base), where
                                          the method gives them (gradients for grad_x_input,
                                          DeepLIFT/SHAP's hypothetical contributions); read by
                                          motif discovery
                              convergence_delta (N,) float32, method "deeplift_shap": sum of
                                          the contributions minus (f(x) - mean f(references))
                              codes       (N, L) uint8
                              names       (N,) str
                              chrom       (N,) str   ("" without coordinates)
                              start, end  (N,) int64 (-1 without coordinates)
                              strand      (N,) str
                              prediction  (N,) float32 probability of the attributed output unit
                              n_fraction  (N,) float32 share of N bases of each sequence
                              method, target  0-d str arrays
    attributions.bedGraph   per-base scores on the genome (rows with coordinates only; a base in
                            several windows gets the mean, see :mod:`.tracks`)
    attributions.bw         the same as bigWig, when pybigtools is installed
    manifest.json           written last: model, method, target, class, selection, counts, inputs,
                            files, provenance

The files are assembled in a staging folder inside the claimed output folder and moved into
place at the end, the manifest last, so an interrupted run never leaves a directory that looks
complete; only the files listed above are replaced (:mod:`chromtransfer.artifacts`).

Folders written before the manifest existed (only ``attributions.npz``, with at least
``scores``, ``names`` and ``method``) still load; so does the path of an ``.npz`` file itself.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import (
    apply_umask,
    claim_output_dir,
    make_staging,
    provenance,
    publish_staged,
    read_document,
    release_output_dir,
    write_json,
)
from ..errors import ArtifactError

__all__ = ["ATTRIBUTIONS_KIND", "Attributions", "METHODS", "NPZ_FILE", "load_attributions"]

METHODS = ("grad_x_input", "ism", "deeplift_shap")
NPZ_FILE = "attributions.npz"
BEDGRAPH_FILE = "attributions.bedGraph"
BIGWIG_FILE = "attributions.bw"
MANIFEST_FILE = "manifest.json"
FORMAT = "chromtransfer-attributions"
FORMAT_VERSION = 1
#: Manifest entries that :meth:`Attributions.save` writes itself.
_WRITTEN_KEYS = ("format", "format_version", "tracks", "files", "counts", "provenance")
#: The output-folder kind of :mod:`chromtransfer.artifacts`.
ATTRIBUTIONS_KIND = "attributions"


@dataclass
class Attributions:
    """Per-base attribution scores of ``N`` equal-length sequences of ``L`` bases.

    Attributes:
        scores: ``(N, L)`` float32 per-base scores (gradient x input, the ISM per-base summary, or
            the DeepLIFT/SHAP contribution of the present base).
        names: ``(N,)`` str region or record names (unique where enrichment reads them).
        method: ``grad_x_input``, ``ism`` or ``deeplift_shap``.
        codes: ``(N, L)`` uint8 base codes (:mod:`chromtransfer.encoding`), where known.
        ism: ``(N, L, 4)`` float32 ISM deltas (A, C, G, T; reference base 0), method ``ism`` only.
        hypothetical: ``(N, L, 4)`` float32 hypothetical contributions (A, C, G, T), where the
            method gives them; ``scores`` equals their value at the present base.
        convergence_delta: ``(N,)`` float32 DeepLIFT/SHAP convergence delta per sequence
            (:mod:`.deeplift`), method ``deeplift_shap`` only.
        target: ``probability`` or ``logit``.
        chrom, start, end, strand: ``(N,)`` genomic coordinates of each sequence (``""`` / -1 for
            rows without coordinates; ``None`` when no row has any).
        prediction: ``(N,)`` float32 probability of the attributed output unit, where computed.
        n_fraction: ``(N,)`` float32 share of N bases of each sequence, where computed.
        model: path of the model attributed, where known.
        path: the directory read from (``None`` for attributions computed in memory).
        n_candidates: how many sequences the selection started from (``None``: ``N``).
        chrom_sizes: chromosome -> length, where a genome was at hand (for the bigWig track).
        manifest: the ``manifest.json`` read with the arrays (empty for in-memory results).
    """

    scores: np.ndarray
    names: np.ndarray
    method: str
    codes: np.ndarray | None = None
    ism: np.ndarray | None = None
    hypothetical: np.ndarray | None = None
    convergence_delta: np.ndarray | None = None
    target: str = "probability"
    chrom: np.ndarray | None = None
    start: np.ndarray | None = None
    end: np.ndarray | None = None
    strand: np.ndarray | None = None
    prediction: np.ndarray | None = None
    n_fraction: np.ndarray | None = None
    model: str | None = None
    path: Path | None = None
    n_candidates: int | None = None
    chrom_sizes: dict[str, int] | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def default_aggregate(self) -> str:
        """How a motif site's score summarises its bases: ``min`` for ISM, ``max`` otherwise."""
        return "min" if self.method == "ism" else "max"

    def row_of(self) -> dict[str, int]:
        """Region name -> row."""
        return {name: i for i, name in enumerate(self.names)}

    @property
    def has_coordinates(self) -> bool:
        """Whether at least one row has genomic coordinates."""
        if self.chrom is None or self.start is None or not len(self):
            return False
        return bool(((np.asarray(self.chrom) != "") & (np.asarray(self.start) >= 0)).any())

    def regions(self):
        """A DataFrame ``name, chrom, start, end, strand`` (``""`` / -1 where unknown)."""
        import pandas as pd

        arrays = self.arrays()
        return pd.DataFrame({key: arrays[key] for key in ("names", "chrom", "start", "end", "strand")}).rename(
            columns={"names": "name"})

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays of ``attributions.npz`` (missing coordinates filled with ``""`` / -1)."""
        n = len(self)
        empty = np.full(n, "", dtype="<U1")
        arrays: dict[str, np.ndarray] = {
            "scores": np.asarray(self.scores, dtype=np.float32),
            "codes": None if self.codes is None else np.asarray(self.codes, dtype=np.uint8),
            "names": np.asarray(self.names).astype(str),
            "chrom": empty if self.chrom is None else np.asarray(self.chrom).astype(str),
            "start": np.full(n, -1, np.int64) if self.start is None else np.asarray(self.start, dtype=np.int64),
            "end": np.full(n, -1, np.int64) if self.end is None else np.asarray(self.end, dtype=np.int64),
            "strand": empty if self.strand is None else np.asarray(self.strand).astype(str),
            "prediction": None if self.prediction is None else np.asarray(self.prediction, dtype=np.float32),
            "n_fraction": None if self.n_fraction is None else np.asarray(self.n_fraction, dtype=np.float32),
            "convergence_delta": (None if self.convergence_delta is None
                                  else np.asarray(self.convergence_delta, dtype=np.float32)),
            "method": np.array(self.method),
            "target": np.array(self.target),
        }
        for key in ("ism", "hypothetical"):
            if getattr(self, key) is not None:
                arrays[key] = np.asarray(getattr(self, key), dtype=np.float32)
        return {key: value for key, value in arrays.items() if value is not None}

    def save(self, out_dir: str | os.PathLike, manifest: dict[str, Any] | None = None, *, bigwig: bool = True,
             overwrite: bool = False) -> dict[str, Any]:
        """Write the directory described in the module docstring; returns the manifest written.

        ``out_dir`` is claimed as an attribution folder (:func:`~chromtransfer.artifacts.claim_output_dir`;
        complete attributions are replaced only with ``overwrite``, a folder holding anything else
        is refused). ``manifest`` adds to (default: ``model``, ``method``, ``target``) the
        manifest; ``format``, ``tracks``, ``files``, ``counts`` and ``provenance`` are filled in.
        """
        from .tracks import merge_tracks, write_bedgraph, write_bigwig

        if manifest is None:
            kept = {key: value for key, value in self.manifest.items() if key not in _WRITTEN_KEYS}
            manifest = {"model": self.model, "method": self.method, "target": self.target, **kept}
        out_dir = claim_output_dir(out_dir, ATTRIBUTIONS_KIND, overwrite=overwrite, staged=True)
        staging = make_staging(out_dir)
        try:
            arrays = self.arrays()
            with open(staging / NPZ_FILE, "wb") as handle:
                np.savez_compressed(handle, **arrays)
            files = [NPZ_FILE]
            tracks: dict[str, Any] = {"bedgraph": None, "bigwig": None, "overlaps": "mean"}
            if self.has_coordinates:
                blocks = list(merge_tracks(arrays["chrom"], arrays["start"], arrays["end"], arrays["scores"],
                                           arrays["strand"]))
                lines = write_bedgraph(staging / BEDGRAPH_FILE, blocks, name=f"{manifest.get('method', '')}",
                                       description=f"{manifest.get('method', '')} {manifest.get('target', '')}")
                files.append(BEDGRAPH_FILE)
                tracks["bedgraph"] = {"file": BEDGRAPH_FILE, "lines": lines}
                if bigwig:
                    sizes = dict(self.chrom_sizes or {})
                    for block in blocks:
                        if len(block.ends) and block.chrom not in sizes:
                            sizes[block.chrom] = int(block.ends[-1])  # unknown: the last covered base
                    if write_bigwig(staging / BIGWIG_FILE, blocks, sizes):
                        files.append(BIGWIG_FILE)
                        tracks["bigwig"] = {"file": BIGWIG_FILE, "writer": "pybigtools",
                                            "chrom_sizes": "genome" if self.chrom_sizes else "last covered base"}
                    else:
                        tracks["bigwig"] = "skipped: pybigtools not installed"
            n_candidates = len(self) if self.n_candidates is None else self.n_candidates
            manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest, "tracks": tracks,
                        "files": files, "counts": {"input": n_candidates, "selected": len(self)},
                        "provenance": provenance()}
            write_json(staging / MANIFEST_FILE, manifest)
            for name in files:
                apply_umask(staging / name)
            publish_staged(staging, out_dir, ATTRIBUTIONS_KIND, files + [MANIFEST_FILE])
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)  # this process's own staging folder
            release_output_dir(out_dir)  # a claim that received nothing
        return manifest


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST_FILE
    if not path.exists():
        return {}
    return read_document(path, FORMAT, what="chromtransfer attribution manifest",
                         fix="run 'chromtransfer attribute' again", version=FORMAT_VERSION)


def _optional(arrays: dict[str, np.ndarray], key: str, dtype=None) -> np.ndarray | None:
    if key not in arrays:
        return None
    return np.asarray(arrays[key], dtype=dtype) if dtype is not None else np.asarray(arrays[key]).astype(str)


def load_attributions(directory: str | os.PathLike) -> Attributions:
    """Read an attribution directory (or its ``attributions.npz``) written by :meth:`Attributions.save`.

    Raises :class:`~chromtransfer.errors.ArtifactError` for a missing, unreadable or inconsistent
    file (scores not ``(N, L)`` or not finite, a name twice, an unknown method, codes or ISM of
    another shape).
    """
    directory = Path(directory)
    path = directory / NPZ_FILE if directory.is_dir() or not directory.suffix else directory
    if not path.exists():
        raise ArtifactError(f"{path}: no attributions (run 'chromtransfer attribute' first)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # zip/format errors of a truncated file
        raise ArtifactError(f"{path}: unreadable attribution file ({exc}); run 'chromtransfer attribute' again") from None
    for key in ("scores", "names", "method"):
        if key not in arrays:
            raise ArtifactError(f"{path}: array {key!r} is missing; run 'chromtransfer attribute' again")
    scores = np.asarray(arrays["scores"], dtype=np.float32)
    names = np.asarray(arrays["names"]).astype(str)

    def text(key: str) -> str:
        value = np.asarray(arrays.get(key, ""))
        return str(value.reshape(-1)[0]) if value.size else ""

    method = text("method")
    if method not in METHODS:
        raise ArtifactError(f"{path}: method {method!r} is not one of {', '.join(METHODS)}")
    if scores.ndim != 2:
        raise ArtifactError(f"{path}: scores must be (N, L), got shape {scores.shape}")
    if names.shape != (scores.shape[0],):
        raise ArtifactError(f"{path}: {names.shape[0]} names for {scores.shape[0]} score rows")
    unique, counts = np.unique(names, return_counts=True)
    if np.any(counts > 1):
        raise ArtifactError(f"{path}: region name {unique[counts > 1][0]!r} appears {counts.max()} times; "
                            "names must identify regions")
    if not np.all(np.isfinite(scores)):
        raise ArtifactError(f"{path}: scores contain NaN or infinite values")
    codes = _optional(arrays, "codes", np.uint8)
    if codes is not None and codes.shape != scores.shape:
        raise ArtifactError(f"{path}: codes shape {codes.shape} differs from scores {scores.shape}")
    ism = _optional(arrays, "ism", np.float32)
    hypothetical = _optional(arrays, "hypothetical", np.float32)
    for key, value in (("ism", ism), ("hypothetical", hypothetical)):
        if value is not None and value.shape != (*scores.shape, 4):
            raise ArtifactError(f"{path}: {key} shape {value.shape} is not scores {scores.shape} x 4")
    convergence_delta = _optional(arrays, "convergence_delta", np.float32)
    if convergence_delta is not None and convergence_delta.shape != (scores.shape[0],):
        raise ArtifactError(f"{path}: convergence_delta shape {convergence_delta.shape} is not ({scores.shape[0]},)")
    manifest = _read_manifest(path.parent)
    counts_doc = manifest.get("counts") or {}
    return Attributions(
        scores, names, method, codes=codes, ism=ism, hypothetical=hypothetical, convergence_delta=convergence_delta,
        target=text("target") or "probability",
        chrom=_optional(arrays, "chrom"), start=_optional(arrays, "start", np.int64),
        end=_optional(arrays, "end", np.int64), strand=_optional(arrays, "strand"),
        prediction=_optional(arrays, "prediction", np.float32), n_fraction=_optional(arrays, "n_fraction", np.float32),
        model=manifest.get("model"), path=path.parent, n_candidates=counts_doc.get("input"), manifest=manifest)
