"""Train / test split by chromosome and validation folds over the training rows.

* **Test set**: every row on a chromosome named in ``test_chroms`` (matched through the genome's
  aliases, so ``chr2`` also selects a chromosome spelled ``2``). ``test_chroms="all"`` puts every
  row in the test set (a store for external evaluation only; it has no folds).
* **Folds** (``scheme="rows"``, the default, as the paper's 3-fold cross-validation over the
  training rows): training rows are grouped by ``strata`` (the original label, e.g. ``HEPG2`` /
  ``HEPG2_NEG`` / ``Negative``); inside each group, taken in sorted order of the group names, a
  ``numpy.random.default_rng(seed)`` permutation orders the rows and row ``j`` of that order goes
  to fold ``j % k``. Every fold therefore holds the same share of each label (to within one row)
  and the same seed on the same rows gives the same folds.
  ``scheme="chromosomes"`` instead keeps whole chromosomes together (no neighbouring windows shared
  between training and validation): chromosomes are shuffled by the seed, ordered by row count
  (largest first, stable) and each goes to the fold with the fewest rows so far.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..genome import chromosome_key
from .store import TEST, TRAIN

__all__ = ["assign_folds", "assign_split", "parse_chrom_list"]

FOLD_SCHEMES = ("rows", "chromosomes")


def parse_chrom_list(value: str | Iterable[str] | None) -> list[str] | str:
    """``"chr2,chr3"`` -> ``["chr2", "chr3"]``; ``"all"`` -> ``"all"``; ``None``/``""``/``"none"`` -> ``[]``."""
    if value is None:
        return []
    if isinstance(value, str):
        if value.strip().lower() == "all":
            return "all"
        if value.strip().lower() == "none":
            return []
        return [v.strip() for v in value.split(",") if v.strip()]
    items = [str(v).strip() for v in value if str(v).strip()]
    if len(items) == 1 and items[0].lower() == "all":
        return "all"
    return items


def assign_split(chroms: Sequence[str] | np.ndarray, test_chroms: str | Iterable[str] | None) -> np.ndarray:
    """``(N,)`` uint8 split codes (0 = train, 1 = test) from the rows' chromosomes.

    ``test_chroms`` is a list of names (aliases match: ``chr2`` == ``2``), a comma-separated
    string, or ``"all"``.
    """
    chroms = np.asarray(chroms, dtype=object)
    wanted = parse_chrom_list(test_chroms)
    if wanted == "all":
        return np.full(chroms.shape[0], TEST, dtype=np.uint8)
    keys = {chromosome_key(c) for c in wanted}
    if not keys or chroms.size == 0:
        return np.full(chroms.shape[0], TRAIN, dtype=np.uint8)
    uniques, inverse = np.unique(chroms.astype(str), return_inverse=True)
    is_test = np.array([chromosome_key(u) in keys for u in uniques], dtype=bool)
    return np.where(is_test[inverse], TEST, TRAIN).astype(np.uint8)


def assign_folds(
    split: np.ndarray,
    n_folds: int,
    seed: int,
    strata: Sequence[str] | np.ndarray | None = None,
    chroms: Sequence[str] | np.ndarray | None = None,
    scheme: str = "rows",
) -> np.ndarray:
    """``(N,)`` int8 validation folds: ``0..n_folds-1`` for training rows, -1 for test rows.

    Args:
        split: ``(N,)`` split codes from :func:`assign_split`.
        n_folds: number of folds (0 or 1: every training row gets fold 0 and no validation
            subset is meant).
        seed: random seed of the assignment.
        strata: ``(N,)`` group labels for stratification (``scheme="rows"``).
        chroms: ``(N,)`` chromosomes (needed for ``scheme="chromosomes"``).
        scheme: ``"rows"`` or ``"chromosomes"`` (see the module docstring).
    """
    split = np.asarray(split)
    n = split.shape[0]
    fold = np.full(n, -1, dtype=np.int8)
    train = np.flatnonzero(split == TRAIN)
    if scheme not in FOLD_SCHEMES:
        raise ValueError(f"fold scheme must be one of {FOLD_SCHEMES}, not {scheme!r}")
    if n_folds < 0 or n_folds > 127:
        raise ValueError("the number of folds must be between 0 and 127")
    if n_folds <= 1 or train.size == 0:
        fold[train] = 0
        return fold
    rng = np.random.default_rng(seed)
    if scheme == "rows":
        groups = np.asarray(strata, dtype=object)[train] if strata is not None else np.zeros(train.size, dtype=object)
        codes, names = pd.factorize(pd.Series(groups).astype(str), sort=True)
        for g in range(len(names)):
            members = train[codes == g]
            order = rng.permutation(members.size)
            fold[members[order]] = np.arange(members.size) % n_folds
        return fold
    if chroms is None:
        raise ValueError("scheme='chromosomes' needs the rows' chromosomes")
    train_chroms = np.asarray(chroms, dtype=object)[train].astype(str)
    names, counts = np.unique(train_chroms, return_counts=True)
    if names.size < n_folds:
        raise InputError("--folds", f"{n_folds} chromosome folds need at least {n_folds} training chromosomes, "
                                    f"found {names.size}", fix="lower --folds or use --fold-scheme rows")
    shuffled = rng.permutation(names.size)
    order = shuffled[np.argsort(-counts[shuffled], kind="stable")]
    load = np.zeros(n_folds, dtype=np.int64)
    chrom_fold = {}
    for i in order:
        k = int(np.argmin(load))
        chrom_fold[names[i]] = k
        load[k] += counts[i]
    fold[train] = np.array([chrom_fold[c] for c in train_chroms], dtype=np.int8)
    return fold
