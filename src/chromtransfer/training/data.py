"""Batches of uint8 code rows read from a dataset store, for one process or many (DDP).

Memory stays bounded for stores of millions of rows: the only arrays held are the row indices of
the training and validation subsets (8 bytes a row) and one epoch's permutation of them. A batch
is read from the store's ``sequences.npy`` with one positioned read (``os.preadv``) per run of
consecutive rows, shape ``(B, L)`` uint8, plus the labels ``(B,)`` int64; one-hot encoding happens
on the device, in the training module.

The rows are read, not memory-mapped. The pages of a mapping that reads touch stay counted in the
process's resident memory until the mapping goes (one epoch over a 7-million-row store through a
memory map shows up as 4.2 GB of resident memory; benchmarks/bench_scale.py), while positioned
reads leave the caching to the kernel's page cache, which is shared and reclaimable. Dropping and
re-making the mapping every few hundred MB bounds it too, but costs more (a page fault per row
instead of a system call) and the bound depends on the kernel's fault-around and folio sizes.

Shuffling is a pure function of ``(seed, epoch)``: :class:`EpochBatchSampler` draws epoch ``e``'s
order from ``numpy.random.default_rng([seed, e])``, so a run resumed at epoch ``e`` sees exactly
the batches an uninterrupted run would.

Several processes (DDP): every process draws the same *global* batches and
:class:`RankBatchSampler` hands process ``r`` of ``W`` its contiguous share
``numpy.array_split(batch, W)[r]`` of each one, together with the global batch's size. The
preset's batch size therefore stays the global batch size (``B / W`` rows per process), every
process runs the same number of steps, the shares of one epoch are disjoint and together they are
exactly the single-process batches.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..datasets.store import Store
from ..errors import ArtifactError
from .presets import RANDOM_VALIDATION_FRACTION


class EpochBatchSampler:
    """Yields the global batches of row indices (``numpy.int64`` arrays), reshuffled per epoch by seed.

    Args:
        indices: ``(n,)`` store rows to draw from.
        batch_size: rows per (global) batch.
        shuffle: draw a new permutation every epoch (``rng([seed, epoch])``); otherwise in order.
        seed: shuffling seed.
        world_size: number of processes the batches will be split across (only changes how a
            short last batch is handled).

    A last batch of fewer than ``2 * world_size`` rows is merged into the one before it, so every
    process gets at least 2 rows of it (BatchNorm cannot normalise a batch of one row in training
    mode); with one process that is a last batch of a single row. No row is dropped. Rows inside
    a batch are sorted, which makes the reads sequential-ish without changing what the batch holds.
    """

    def __init__(self, indices: np.ndarray, batch_size: int, shuffle: bool, seed: int,
                 world_size: int = 1):
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.world_size = int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before every epoch (also after a resume)."""
        self.epoch = int(epoch)

    def _bounds(self) -> list[tuple[int, int]]:
        n, b = len(self.indices), self.batch_size
        starts = list(range(0, n, b))
        bounds = [(s, min(s + b, n)) for s in starts]
        if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < 2 * self.world_size:
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


class RankBatchSampler:
    """This process's share of every global batch: yields ``(rows, global_batch_rows)``.

    Args:
        batches: the global batches (their ``world_size`` is the number of shares).
        rank: this process's rank; ``None`` asks the running process group when iteration starts
            (so the sampler can be built before Lightning starts or spawns the processes).

    Rank ``r`` of ``W`` gets ``numpy.array_split(batch, W)[r]`` (contiguous, sizes differ by at
    most one). With ``W = 1`` the share is the whole batch. ``global_batch_rows`` lets the
    training module weight its share's loss as part of the global batch.
    """

    def __init__(self, batches: EpochBatchSampler, rank: int | None = None):
        self.batches = batches
        self.rank = rank

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.batches)

    def _rank(self) -> int:
        from .distributed import rank_and_world

        world = self.batches.world_size
        if self.rank is not None:
            rank = self.rank
        else:
            rank, running = rank_and_world()
            if world > 1 and running != world:
                raise RuntimeError(f"the batches are split for {world} processes but the process group "
                                   f"has {running}")
        if not 0 <= rank < world:
            raise RuntimeError(f"rank {rank} outside 0..{world - 1}")
        return rank

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        rank, world = self._rank(), self.batches.world_size
        for batch in self.batches:
            share = batch if world == 1 else np.array_split(batch, world)[rank]
            yield share, len(batch)


class CodeBatches(Dataset):
    """Map a batch of store rows to ``(codes (B, L) uint8 tensor, labels (B,) int64 tensor, total)``.

    The index is an array of rows, or ``(rows, total)`` where ``total`` is the size of the global
    batch the rows are a share of (:class:`RankBatchSampler`); ``total`` defaults to ``len(rows)``
    and stays a Python ``int`` (reading it never waits for the device).

    Holds only the store path. Each process (and DataLoader worker) opens ``sequences.npy`` on
    first use and reads rows with ``os.preadv`` (see the module docstring), so neither pickling the
    dataset nor reading an epoch keeps sequences in the process's memory. Positioned reads share
    no file offset, so worker processes forked with an open descriptor read safely.
    """

    def __init__(self, store_path: str | Path):
        self.store_path = Path(store_path)
        self._fd: int | None = None
        self._offset = 0
        self._length = 0
        self._labels: np.ndarray | None = None

    def _open(self) -> None:
        path = self.store_path / "sequences.npy"
        try:  # the header only (shape, dtype, offset of the data); no page of data is touched
            header = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{path}: missing or unreadable ({exc}); rebuild the store") from exc
        shape, dtype, offset = header.shape, header.dtype, int(header.offset)
        c_order = bool(header.flags.c_contiguous)
        del header
        if dtype != np.uint8 or len(shape) != 2 or not c_order:
            raise ArtifactError(f"{path}: expected a C-ordered (N, L) uint8 array, found {dtype} {shape}; "
                                "rebuild the store")
        self._offset, self._length = offset, int(shape[1])
        self._labels = np.load(self.store_path / "labels.npy", mmap_mode="r")
        self._fd = os.open(path, os.O_RDONLY)

    def __getstate__(self) -> dict:
        return {"store_path": self.store_path, "_fd": None, "_offset": 0, "_length": 0, "_labels": None}

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """``(len(rows), L)`` uint8 codes of the store ``rows`` (any order; sorted rows read faster)."""
        if self._fd is None:
            self._open()
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self._length), dtype=np.uint8)
        if len(rows) == 0:
            return out
        # runs of consecutive rows: positions [starts[k], ends[k]) of `rows`
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        starts = np.concatenate(([0], breaks)).tolist()
        ends = np.concatenate((breaks, [len(rows)])).tolist()
        view = memoryview(out).cast("B")
        width, fd = self._length, self._fd
        for start, end in zip(starts, ends):
            wanted = (end - start) * width
            position = self._offset + int(rows[start]) * width
            target = view[start * width:end * width]
            done = 0
            while done < wanted:  # a positioned read may return less than asked
                got = os.preadv(fd, [target[done:]], position + done)
                if got <= 0:
                    raise ArtifactError(f"{self.store_path / 'sequences.npy'}: truncated (row "
                                        f"{int(rows[start])} is past the end); rebuild the store")
                done += got
        return out

    def __getitem__(self, index: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
        rows, total = index if isinstance(index, tuple) else (index, len(index))
        codes = torch.from_numpy(self.read_rows(rows))
        labels = torch.from_numpy(np.asarray(self._labels[rows], dtype=np.int64))
        return codes, labels, int(total)


class SeededLoader(DataLoader):
    """A DataLoader with its own seeded ``torch.Generator`` that pickles without it.

    The generator keeps iterator creation from drawing on the global torch RNG. Pickled (for
    ``ddp_spawn``) it is replaced by a fresh generator with the same seed: a generator pickles as
    a temporary state tensor, and temporary tensors shared through file descriptors break
    ``multiprocessing``'s spawn (``bad value(s) in fds_to_keep``).
    """

    def __init__(self, *args: Any, seed: int = 0, **kwargs: Any):
        self._seed = int(seed)
        super().__init__(*args, generator=torch.Generator().manual_seed(self._seed), **kwargs)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["generator"] = None
        state["_iterator"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.generator = torch.Generator().manual_seed(self._seed)


def make_loader(store: Store, indices: np.ndarray, batch_size: int, *, shuffle: bool, seed: int,
                num_workers: int = 0, pin_memory: bool = False, world_size: int = 1,
                rank: int | None = None) -> DataLoader:
    """A DataLoader of ``(codes, labels, total)`` batches over ``indices`` of ``store``.

    ``batch_size`` is the global batch size; with ``world_size`` > 1 each process gets its share
    of every global batch (``rank`` ``None``: the process group's rank, read when an epoch starts).
    The loader carries its own ``torch.Generator`` (:class:`SeededLoader`) so creating its
    iterator never draws from the global torch RNG (which the training module reseeds for dropout).
    """
    sampler = RankBatchSampler(EpochBatchSampler(indices, batch_size, shuffle, seed, world_size), rank)
    return SeededLoader(
        CodeBatches(store.path), batch_size=None, sampler=sampler, num_workers=num_workers,
        pin_memory=pin_memory, persistent_workers=num_workers > 0, seed=seed,
    )


def split_rows(store: Store, fold: int | None, seed: int,
               validation: str = "fold") -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows of ``store``, both sorted ``int64`` arrays.

    With ``fold`` k: validation = training rows whose fold is k, training = the other training
    rows. With ``fold=None``: a random :data:`RANDOM_VALIDATION_FRACTION` of the training rows
    (drawn with ``numpy.random.default_rng(seed)``) is the validation set. Test rows are never used
    for training; with ``validation="test"`` every training row trains and the test rows are the
    validation set (a curve to look at, nothing chosen by it: the authors' multi-class protocol).
    """
    if validation == "test":
        train, valid = store.indices("train"), store.indices("test")
    elif fold is not None:
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
        raise ArtifactError(f"{store.path}: no validation rows for fold {fold} ({validation}); "
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


def stratified_subsample(rows: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A label-stratified random share of ``rows`` (sorted): ``round(fraction * n_c)`` rows of
    each label ``c`` (at least 1 of a label that has rows), drawn without replacement by
    ``default_rng(seed)``; ``fraction`` 1 returns ``rows`` unchanged.

    ``labels`` holds the label of each of ``rows``. Rounding per label is what the paper's
    bootstrap sizes follow: HepG2's 74,673 training rows (25,669 positive) give 257 + 490 = 747
    at 1 % and 1,283 + 2,450 = 3,733 at 5 % (rounding the total would give 3,734).
    """
    rows, labels = np.asarray(rows), np.asarray(labels)
    if rows.shape != labels.shape:
        raise ValueError(f"{rows.size} rows but {labels.size} labels")
    if fraction >= 1:
        return rows
    rng = np.random.default_rng(int(seed))
    picked = []
    for label in np.unique(labels):
        members = rows[labels == label]
        keep = min(members.size, max(1, int(round(fraction * members.size))))
        picked.append(rng.choice(members, size=keep, replace=False))
    return np.sort(np.concatenate(picked)) if picked else rows[:0]


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
