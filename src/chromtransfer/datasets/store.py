"""The dataset store: the on-disk training set that ``prepare`` writes and ``train`` reads.

A store is a directory::

    STORE/
      sequences.npy    uint8 codes, shape (N, L), A=0 C=1 G=2 T=3 other=4 (memory-mapped on read)
      labels.npy       int32, shape (N,): 0/1 for binary tasks, class index for multi-class
      split.npy        uint8, shape (N,): 0 = train (incl. validation folds), 1 = test
      fold.npy         int8,  shape (N,): validation fold 0..K-1 for train rows, -1 for test rows
      regions.tsv.gz   one row per window: name, chrom, start, end, strand, label_name
                       (0-based half-open coordinates; chrom is empty for sequences without one)
      manifest.json    written last: format version, rows, length, task, classes, counts,
                       folds, seed, inputs and provenance

The manifest is written only after every other file is complete, so a directory without
``manifest.json`` is an incomplete store and is refused. Rows keep the order they were written in.
A training row of fold ``k`` is a validation row when training fold ``k``; cross-validation model
``k`` trains on the other folds.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..artifacts import (
    OUTPUT_KINDS,
    claim_output_dir,
    make_staging,
    provenance,
    publish_staged,
    read_document,
    release_output_dir,
    write_json,
)
from ..errors import ArtifactError

FORMAT = "chromtransfer-store"
FORMAT_VERSION = 1
TRAIN, TEST = 0, 1
SPLIT_NAMES = {TRAIN: "train", TEST: "test"}
REGION_COLUMNS = ["name", "chrom", "start", "end", "strand", "label_name"]
STORE_KIND = "store"
#: The files of a store, the manifest last.
STORE_FILES = OUTPUT_KINDS[STORE_KIND].files


@dataclass
class Store:
    """A read-only view of a dataset store. Arrays are memory-mapped, not loaded."""

    path: Path
    manifest: dict[str, Any]
    sequences: np.ndarray  # (N, L) uint8, memory-mapped
    labels: np.ndarray  # (N,) int32
    split: np.ndarray  # (N,) uint8
    fold: np.ndarray  # (N,) int8
    _regions: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def n_rows(self) -> int:
        return int(self.sequences.shape[0])

    @property
    def length(self) -> int:
        return int(self.sequences.shape[1])

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def n_folds(self) -> int:
        return int(self.manifest.get("folds", 0))

    @property
    def regions(self) -> pd.DataFrame:
        """The per-row table (``REGION_COLUMNS``), read on first use."""
        if self._regions is None:
            self._regions = read_store_regions(self.path / "regions.tsv.gz")
        return self._regions

    def indices(self, split: str, fold: int | None = None) -> np.ndarray:
        """Row indices of a subset.

        ``split`` is ``"train"`` (training rows, excluding validation fold ``fold`` when given),
        ``"valid"`` (training rows of fold ``fold``), ``"test"``, or ``"all"``.
        """
        if split == "all":
            return np.arange(self.n_rows)
        if split == "test":
            return np.flatnonzero(self.split == TEST)
        train = self.split == TRAIN
        if split == "train":
            if fold is None:
                return np.flatnonzero(train)
            return np.flatnonzero(train & (self.fold != fold))
        if split in ("valid", "validation"):
            if fold is None:
                raise ValueError("the validation subset needs a fold")
            return np.flatnonzero(train & (self.fold == fold))
        raise ValueError(f"unknown split {split!r}: use train, valid, test or all")


def open_store(path: str | os.PathLike) -> Store:
    """Open a complete store, memory-mapping its arrays.

    Raises ``ArtifactError`` (one line, with the fix) for a missing, incomplete or inconsistent store.
    """
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not path.is_dir():
        raise ArtifactError(f"{path}: no such dataset store (build one with 'chromtransfer prepare')")
    manifest = read_document(manifest_path, FORMAT, what="chromtransfer dataset store manifest",
                             fix="rebuild the store", version=FORMAT_VERSION,
                             missing=f"{path}: incomplete dataset store, manifest.json is missing "
                                     "(the build was interrupted; run 'chromtransfer prepare' again)")
    arrays = {}
    for name in ("sequences", "labels", "split", "fold"):
        file = path / f"{name}.npy"
        try:
            arrays[name] = np.load(file, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{file}: missing or unreadable ({exc}); rebuild the store") from exc
    n = manifest["rows"]
    for name, array in arrays.items():
        if array.shape[0] != n:
            raise ArtifactError(
                f"{path / (name + '.npy')}: {array.shape[0]} rows but the manifest says {n}; rebuild the store"
            )
    if arrays["sequences"].ndim != 2 or arrays["sequences"].shape[1] != manifest["length"]:
        raise ArtifactError(f"{path / 'sequences.npy'}: shape {arrays['sequences'].shape} does not match the manifest")
    return Store(path=path, manifest=manifest, **arrays)


def read_store_regions(path: str | os.PathLike) -> pd.DataFrame:
    """A store's ``regions.tsv.gz`` as written (names, coordinates, strand and labels as text)."""
    return pd.read_csv(
        path, sep="\t", dtype={"name": str, "chrom": str, "strand": str, "label_name": str},
        keep_default_na=False,
    )


class StoreWriter:
    """Write a store row block by row block, with bounded memory.

    Usage::

        with StoreWriter(out, n_rows, length) as writer:
            writer.sequences[i:j] = codes_block      # (j - i, L) uint8
            ...
            writer.finish(labels, split, fold, regions, task="binary", classes=["negative", "positive"])

    ``out`` is claimed as a store folder (:func:`~chromtransfer.artifacts.claim_output_dir`:
    a folder holding anything else is refused; a complete store is replaced only with
    ``overwrite``). Files are written into a staging folder inside ``out``; ``finish`` writes the
    arrays, then moves them into place with the manifest last. An exception before ``finish``
    leaves no manifest, so the half-built store is never mistaken for a complete one; files in
    ``out`` that a store does not hold are never touched.
    """

    def __init__(self, path: str | os.PathLike, n_rows: int, length: int, *, overwrite: bool = False):
        self.path = claim_output_dir(path, STORE_KIND, overwrite=overwrite, staged=True)
        self.n_rows = int(n_rows)
        self.length = int(length)
        self._staging = make_staging(self.path)
        self.sequences = np.lib.format.open_memmap(
            self._staging / "sequences.npy", mode="w+", dtype=np.uint8, shape=(self.n_rows, self.length)
        )
        self._finished = False

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._finished:
            self.abort()

    def abort(self) -> None:
        self.sequences = None
        shutil.rmtree(self._staging, ignore_errors=True)  # this process's own staging folder
        release_output_dir(self.path)

    def finish(
        self,
        labels: Sequence[int],
        split: Sequence[int],
        fold: Sequence[int],
        regions: pd.DataFrame,
        *,
        task: str,
        classes: Sequence[str],
        seed: int | None = None,
        inputs: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        labels = np.asarray(labels, dtype=np.int32)
        split = np.asarray(split, dtype=np.uint8)
        fold = np.asarray(fold, dtype=np.int8)
        for name, array in (("labels", labels), ("split", split), ("fold", fold)):
            if array.shape != (self.n_rows,):
                raise ValueError(f"{name} has shape {array.shape}, expected ({self.n_rows},)")
        if task not in ("binary", "multiclass"):
            raise ValueError(f"task must be 'binary' or 'multiclass', not {task!r}")
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(f"labels must lie in 0..{len(classes) - 1}")
        regions = _normalise_regions(regions, self.n_rows)
        self.sequences.flush()
        self.sequences = None
        np.save(self._staging / "labels.npy", labels)
        np.save(self._staging / "split.npy", split)
        np.save(self._staging / "fold.npy", fold)
        regions.to_csv(self._staging / "regions.tsv.gz", sep="\t", index=False)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "rows": self.n_rows,
            "length": self.length,
            "task": task,
            "classes": list(classes),
            "folds": int(fold.max()) + 1 if (fold >= 0).any() else 0,
            "counts": _counts(labels, split, fold, classes, regions),
            "seed": seed,
            "inputs": inputs or {},
            **(extra or {}),
            "provenance": provenance(),
        }
        write_json(self._staging / "manifest.json", manifest)
        publish_staged(self._staging, self.path, STORE_KIND, list(STORE_FILES))
        self._finished = True
        return self.path


def write_store(
    path: str | os.PathLike,
    sequences: np.ndarray,
    labels: Sequence[int],
    split: Sequence[int],
    fold: Sequence[int],
    regions: pd.DataFrame | None = None,
    *,
    task: str = "binary",
    classes: Sequence[str] = ("negative", "positive"),
    overwrite: bool = False,
    **kwargs: Any,
) -> Path:
    """Write a whole store from in-memory arrays (small data sets and tests).

    Args:
        sequences: ``(N, L)`` uint8 codes.
        labels, split, fold: ``(N,)`` arrays (see the module docstring).
        regions: optional table with ``REGION_COLUMNS``; names ``seq0..`` are made when absent.
        overwrite: replace a complete store at ``path`` (see :class:`StoreWriter`).
    """
    sequences = np.asarray(sequences, dtype=np.uint8)
    if regions is None:
        regions = pd.DataFrame({"name": [f"seq{i}" for i in range(len(sequences))]})
    with StoreWriter(path, sequences.shape[0], sequences.shape[1], overwrite=overwrite) as writer:
        writer.sequences[:] = sequences
        return writer.finish(labels, split, fold, regions, task=task, classes=classes, **kwargs)


def _normalise_regions(regions: pd.DataFrame, n_rows: int) -> pd.DataFrame:
    regions = regions.copy()
    if len(regions) != n_rows:
        raise ValueError(f"regions has {len(regions)} rows, expected {n_rows}")
    defaults = {"name": None, "chrom": "", "start": -1, "end": -1, "strand": "+", "label_name": ""}
    for column, default in defaults.items():
        if column not in regions:
            if column == "name":
                regions[column] = [f"seq{i}" for i in range(n_rows)]
            else:
                regions[column] = default
    return regions[REGION_COLUMNS].reset_index(drop=True)


def _counts(labels, split, fold, classes, regions) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    for split_code, split_name in SPLIT_NAMES.items():
        mask = split == split_code
        counts[split_name] = {
            "rows": int(mask.sum()),
            "by_class": {c: int(((labels == i) & mask).sum()) for i, c in enumerate(classes)},
        }
    train = split == TRAIN
    counts["folds"] = {
        str(k): int((train & (fold == k)).sum()) for k in sorted(set(fold[train].tolist())) if k >= 0
    }
    counts["label_names"] = {str(k): int(v) for k, v in regions["label_name"].value_counts().items()}
    return counts
