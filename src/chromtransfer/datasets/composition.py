"""Base composition of windows: GC content and CpG density, per window and per class of a store.

A model can separate classes that differ in composition without learning any motif: on the real
GRCh37 development set the cell-type positives are GC- and CpG-rich against genomic background
(docs/real_data.md). :func:`store_composition` shows the difference for every store
(``chromtransfer info dataset``), so that it is visible before training; ``--gc-match`` in
``prepare`` removes the GC part of it (:func:`chromtransfer.datasets.build.gc_matched_sample`).

Both measures count only the A/C/G/T bases of a window (N and other codes are left out).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..encoding import N_CODE
from .store import SPLIT_NAMES, Store

__all__ = ["BALANCE_THRESHOLD", "balance_warnings", "cpg_per_100bp", "gc_fraction", "store_composition"]

#: Codes of C and G (A=0 C=1 G=2 T=3).
_C, _G = 1, 2
#: Rows read at once from a memory-mapped store.
_CHUNK = 8192
#: A binary store with a smaller share of either class than this is flagged (:func:`balance_warnings`).
BALANCE_THRESHOLD = 0.2


def gc_fraction(codes: np.ndarray) -> np.ndarray:
    """GC fraction of each row of a ``(N, L)`` code matrix among its A/C/G/T bases, ``(N,)``
    float64 (0 for a row without any)."""
    codes = np.asarray(codes)
    called = (codes < N_CODE).sum(axis=1)
    gc = ((codes == _C) | (codes == _G)).sum(axis=1)
    return np.divide(gc, called, out=np.zeros(codes.shape[0]), where=called > 0)


def cpg_per_100bp(codes: np.ndarray) -> np.ndarray:
    """CpG dinucleotides (C followed by G on the same strand) per 100 A/C/G/T bases of each row of a
    ``(N, L)`` code matrix, ``(N,)`` float64."""
    codes = np.asarray(codes)
    called = (codes < N_CODE).sum(axis=1)
    cpg = ((codes[:, :-1] == _C) & (codes[:, 1:] == _G)).sum(axis=1)
    return np.divide(100.0 * cpg, called, out=np.zeros(codes.shape[0]), where=called > 0)


def _describe(gc: np.ndarray, cpg: np.ndarray) -> dict[str, Any]:
    if not gc.size:
        return {"n": 0, "gc_mean": None, "gc_sd": None, "cpg_per_100bp": None}
    return {"n": int(gc.size), "gc_mean": round(float(gc.mean()), 4), "gc_sd": round(float(gc.std()), 4),
            "cpg_per_100bp": round(float(cpg.mean()), 3)}


def store_composition(store: Store) -> dict[str, dict[str, dict[str, Any]]]:
    """GC and CpG per class, over all rows and per split.

    Returns:
        ``{"all" | "train" | "test": {class: {"n", "gc_mean", "gc_sd", "cpg_per_100bp"}}}``;
        the statistics are ``None`` for a class without rows in that part.
    """
    gc = np.empty(store.n_rows)
    cpg = np.empty(store.n_rows)
    for lo in range(0, store.n_rows, _CHUNK):
        block = np.asarray(store.sequences[lo:lo + _CHUNK])
        gc[lo:lo + block.shape[0]] = gc_fraction(block)
        cpg[lo:lo + block.shape[0]] = cpg_per_100bp(block)
    labels = np.asarray(store.labels)
    split = np.asarray(store.split)
    parts = {"all": np.ones(store.n_rows, dtype=bool)}
    parts.update({name: split == code for code, name in SPLIT_NAMES.items()})
    return {part: {c: _describe(gc[rows & (labels == i)], cpg[rows & (labels == i)])
                   for i, c in enumerate(store.classes)}
            for part, rows in parts.items()}


def balance_warnings(summary: dict[str, Any], threshold: float = BALANCE_THRESHOLD) -> list[str]:
    """One message per class of a binary store (a
    :func:`~chromtransfer.datasets.summary.store_summary`) that holds under ``threshold`` of the
    rows, overall or in a split: a model trained on it sees too few rows of that class (the
    published CSVs of one line can be so uneven on a small genome)."""
    if summary["task"] != "binary":
        return []
    parts = {"all rows": {c: sum(by[c] for by in summary["by_split_class"].values()) for c in summary["classes"]}}
    parts.update({f"{split}": by for split, by in summary["by_split_class"].items()})
    parameters = summary.get("manifest", {}).get("parameters", {})
    if parameters.get("kind") == "pretrain":
        fix = "the paper's pre-training set keeps every background tile (--neg-ratio R draws R per positive)"
    elif parameters.get("labels_from"):  # the paper's rule already: its ratios set the balance
        fix = "--neg-ratio and --background set the share of negatives"
    else:
        fix = "build a balanced set: prepare finetune --cell-table or --label-matrix"
    messages = []
    for cls in summary["classes"]:
        low = []
        for part, by_class in parts.items():
            total = sum(by_class.values())
            if total and by_class[cls] / total < threshold:
                low.append(f"{part} {by_class[cls]} of {total} ({100 * by_class[cls] / total:.1f} %)")
        if low:
            messages.append(f"{cls} rows under {100 * threshold:.0f} %: {', '.join(low)}; {fix}")
    return messages
