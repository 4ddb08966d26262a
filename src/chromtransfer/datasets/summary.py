"""Counts that describe a dataset store (``chromtransfer info dataset``)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .composition import balance_warnings, store_composition
from .store import SPLIT_NAMES, TRAIN, Store


def store_summary(store: Store) -> dict[str, Any]:
    """Rows, positives/negatives, per-split, per-fold and per-label counts, GC and CpG per class
    (:func:`.composition.store_composition`), warnings about uneven classes, plus the manifest.

    For a multi-class store, ``positives`` counts rows of every class but the background
    (the last class) and ``negatives`` the background rows.
    """
    labels = np.asarray(store.labels)
    split = np.asarray(store.split)
    fold = np.asarray(store.fold)
    classes = store.classes
    negative_class = 0 if store.task == "binary" else len(classes) - 1
    by_split_class = {
        SPLIT_NAMES[code]: {c: int(((labels == i) & (split == code)).sum()) for i, c in enumerate(classes)}
        for code in SPLIT_NAMES
    }
    train = split == TRAIN
    summary = {
        "path": str(store.path),
        "task": store.task,
        "classes": classes,
        "rows": store.n_rows,
        "length": store.length,
        "positives": int((labels != negative_class).sum()),
        "negatives": int((labels == negative_class).sum()),
        "splits": {SPLIT_NAMES[code]: int((split == code).sum()) for code in SPLIT_NAMES},
        "by_split_class": by_split_class,
        "folds": {str(k): int((train & (fold == k)).sum()) for k in range(store.n_folds)},
        "labels": dict(store.manifest.get("counts", {}).get("label_names", {})),
        "composition": store_composition(store),
        "manifest": store.manifest,
    }
    summary["warnings"] = balance_warnings(summary)
    return summary
