"""A tiny workspace for the Python API's examples (docs/api.md, notebooks/quickstart.ipynb).

:func:`make_workspace` writes, into one folder, the files the examples name: ``run/`` (a model
folder), ``folds/`` (a ``--fold all`` run of two fold models), ``genome.fa``, ``regions.bed``,
``peaks.fa`` (600 bp sequences carrying AP-1 and GATA sites) and ``store/`` (a binary dataset
store). The networks are narrow (width 0.25) and untrained: the examples show calls and shapes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MOTIFS = ("TGACTCA", "GATAAGGC")
LENGTH = 600


def _sequences(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    from chromtransfer.encoding import encode

    codes = rng.integers(0, 4, size=(n, length), dtype=np.uint8)
    for i in range(n):
        for motif in MOTIFS:
            for _ in range(3):
                start = int(rng.integers(0, length - len(motif)))
                codes[i, start:start + len(motif)] = encode(motif)
    return codes


def _write_fasta(path: Path, names, codes) -> None:
    from chromtransfer.encoding import decode

    with open(path, "w") as handle:
        for name, row in zip(names, codes):
            handle.write(f">{name}\n{decode(row)}\n")


def make_workspace(root: str | Path, seed: int = 0) -> Path:
    """Write the example files into ``root`` (created); returns ``root``."""
    import torch

    from chromtransfer.datasets.store import write_store
    from chromtransfer.modelio import save_model
    from chromtransfer.models import build_model

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    save_model(build_model("finetune", width=0.25).eval(), root / "run")
    for k in range(2):
        save_model(build_model("finetune", width=0.25).eval(), root / "folds" / f"fold{k}")
    (root / "folds" / "folds.json").write_text(json.dumps(
        {"format": "chromtransfer-folds", "status": "complete", "folds": ["fold0", "fold1"]}))

    chroms = {"chr1": _sequences(rng, 1, 4000)[0], "chr2": _sequences(rng, 1, 3000)[0]}
    _write_fasta(root / "genome.fa", chroms, chroms.values())
    (root / "regions.bed").write_text("".join(
        f"{c}\t{s}\t{s + w}\n" for c, s, w in
        [("chr1", 100, 600), ("chr1", 1500, 650), ("chr1", 3000, 600), ("chr2", 200, 600), ("chr2", 2000, 500)]))
    peaks = _sequences(rng, 8, LENGTH)
    _write_fasta(root / "peaks.fa", [f"peak{i}" for i in range(len(peaks))], peaks)

    n = 48
    codes = _sequences(rng, n, LENGTH)
    labels = np.tile([0, 1], n // 2)
    split = np.where(np.arange(n) % 4 == 0, 1, 0).astype(np.uint8)
    fold = np.where(split == 1, -1, np.arange(n) % 2)
    write_store(root / "store", codes, labels, split, fold, task="binary", classes=["negative", "positive"],
                seed=seed)
    return root
