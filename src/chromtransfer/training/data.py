"""Batches of uint8 code rows read straight from a memory-mapped dataset store.

Memory stays bounded for stores of millions of rows: the only arrays held are the row indices of
the training and validation subsets (8 bytes a row) and one epoch's permutation of them. A batch
is a fancy-indexed read of the store's ``sequences.npy`` memmap, shape ``(B, L)`` uint8, plus the
labels ``(B,)`` int64; one-hot encoding happens on the device, in the training module.

Shuffling is a pure function of ``(seed, epoch)``: :class:`EpochBatchSampler` draws epoch ``e``'s
order from ``numpy.random.default_rng([seed, e])``, so a run resumed at epoch ``e`` sees exactly
the batches an uninterrupted run would.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..datasets.store import Store
from ..errors import ArtifactError
from .presets import RANDOM_VALIDATION_FRACTION


class EpochBatchSampler:
    """Yields batches of row indices (``numpy.int64`` arrays), reshuffled per epoch by seed.

    Args:
        indices: ``(n,)`` store rows to draw from.
        batch_size: rows per batch.
        shuffle: draw a new permutation every epoch (``rng([seed, epoch])``); otherwise in order.
        seed: shuffling seed.

    A last batch of a single row is merged into the one before it (BatchNorm cannot normalise a
    batch of one row in training mode); no row is dropped. Rows inside a batch are sorted, which
    makes the memmap read sequential-ish without changing what the batch contains.
    """

    def __init__(self, indices: np.ndarray, batch_size: int, shuffle: bool, seed: int):
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before every epoch (also after a resume)."""
        self.epoch = int(epoch)

    def _bounds(self) -> list[tuple[int, int]]:
        n, b = len(self.indices), self.batch_size
        starts = list(range(0, n, b))
        bounds = [(s, min(s + b, n)) for s in starts]
        if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
            bounds[-2:] = [(bounds[-2][0], n)]
        return bounds

    def __len__(self) -> int:
        return len(self._bounds())

    def __iter__(self) -> Iterator[np.ndarray]:
        order = self.indices
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            order = self.indices[rng.permutation(len(self.indices))]
        for start, end in self._bounds():
            yield np.sort(order[start:end])


class CodeBatches(Dataset):
    """Map a batch of store rows to ``(codes (B, L) uint8, labels (B,) int64)`` tensors.

    Holds only the store path; each process (and DataLoader worker) memory-maps the arrays on
    first use, so pickling the dataset never copies the sequences.
    """

    def __init__(self, store_path: str | Path):
        self.store_path = Path(store_path)
        self._sequences: np.ndarray | None = None
        self._labels: np.ndarray | None = None

    def _open(self) -> None:
        self._sequences = np.load(self.store_path / "sequences.npy", mmap_mode="r")
        self._labels = np.load(self.store_path / "labels.npy", mmap_mode="r")

    def __getstate__(self) -> dict:
        return {"store_path": self.store_path, "_sequences": None, "_labels": None}

    def __getitem__(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if self._sequences is None:
            self._open()
        codes = torch.from_numpy(np.ascontiguousarray(self._sequences[rows]))
        labels = torch.from_numpy(np.asarray(self._labels[rows], dtype=np.int64))
        return codes, labels


def make_loader(store: Store, indices: np.ndarray, batch_size: int, *, shuffle: bool, seed: int,
                num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader of ``(codes, labels)`` batches over ``indices`` of ``store``.

    The loader carries its own ``torch.Generator`` so creating its iterator never draws from the
    global torch RNG (which the training module reseeds for dropout).
    """
    sampler = EpochBatchSampler(indices, batch_size, shuffle, seed)
    return DataLoader(
        CodeBatches(store.path), batch_size=None, sampler=sampler, num_workers=num_workers,
        pin_memory=pin_memory, persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(int(seed)),
    )


def split_rows(store: Store, fold: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows of ``store``, both sorted ``int64`` arrays.

    With ``fold`` k: validation = training rows whose fold is k, training = the other training
    rows. With ``fold=None``: a random :data:`RANDOM_VALIDATION_FRACTION` of the training rows
    (drawn with ``numpy.random.default_rng(seed)``) is the validation set. Test rows are never used.
    """
    if fold is not None:
        train, valid = store.indices("train", fold), store.indices("valid", fold)
    else:
        rows = store.indices("train")
        rng = np.random.default_rng(int(seed))
        n_valid = int(round(RANDOM_VALIDATION_FRACTION * len(rows)))
        picked = rng.permutation(len(rows))
        valid, train = np.sort(rows[picked[:n_valid]]), np.sort(rows[picked[n_valid:]])
    if len(train) < 2:
        raise ArtifactError(f"{store.path}: only {len(train)} training rows for this fold; "
                            "a store needs at least 2 training rows")
    if len(valid) < 1:
        raise ArtifactError(f"{store.path}: no validation rows for fold {fold}; "
                            "choose another --fold or rebuild the store with folds")
    return train.astype(np.int64), valid.astype(np.int64)


def subsample_rows(rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A random share of ``rows`` (sorted), drawn without replacement by ``default_rng(seed)``.

    Keeps ``round(fraction * n)`` rows, at least 2; ``fraction`` 1 returns ``rows`` unchanged.
    """
    if fraction >= 1:
        return rows
    keep = max(2, int(round(fraction * len(rows))))
    picked = np.random.default_rng(int(seed)).choice(len(rows), size=min(keep, len(rows)), replace=False)
    return np.sort(rows[picked])


def balanced_class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's ``balanced`` class weights, ``n / (n_classes_present * count_c)``, ``(C,)``.

    Classes absent from ``labels`` get weight 1 (they never occur, so their weight is unused).
    """
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.asarray(labels)
    present = np.unique(labels)
    weights = np.ones(n_classes, dtype=np.float64)
    weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    return weights
