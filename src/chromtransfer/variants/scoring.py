"""Model probabilities of the REF and ALT windows of variants: cell-line models, fold ensembles,
reverse-complement averaging, and the shared-reference path for substitutions.

A *cell model* (:class:`CellModel`) is one ``--model`` argument: a model directory, or a training
run trained with ``--fold all`` (a folder with ``folds.json`` and ``fold<k>/`` model folders)
whose fold models form an ensemble. Probabilities are averaged over the ensemble's members and,
with ``rc_average``, over both strands (the reverse-complement window has the variant at the
mirrored position and the complementary alleles); the log-odds are taken of the averages.

:func:`score_windows` computes every variant's ``p_ref`` and ``p_alt`` per cell model:

* every distinct REF window is run once;
* windows holding two or more single-base substitutions use
  :func:`~chromtransfer.variants.fastsnv.snv_probabilities` (one reference pass, then only the
  receptive field of each changed base); a window with a single substitution is cheaper as a second
  full pass, which is what it gets;
* insertions, deletions and multi-base substitutions run their ALT window through the whole network.

:func:`score_windows_naive` runs two full forward passes per variant (REF window, ALT window) with
no sharing: the reference the fast path is tested and benchmarked against.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..devices import resolve_device
from ..encoding import encode, reverse_complement_codes
from ..errors import ArtifactError, ChromTransferError
from ..inference import predict_codes
from .fastsnv import snv_probabilities

__all__ = ["CellModel", "WindowBatch", "load_cell_models", "score_windows", "score_windows_naive"]

DEFAULT_LENGTH = 600
#: A window gets the shared-reference path from this many substitutions on.
MIN_SHARED_SNVS = 2


@dataclass
class CellModel:
    """One cell line's model: ``members`` (one model, or the folds of a ``--fold all`` run)."""

    name: str
    path: Path
    members: list = field(repr=False)
    member_paths: list[Path] = field(default_factory=list)
    length: int = DEFAULT_LENGTH


def _fold_dirs(run: Path) -> list[Path] | None:
    folds = run / "folds.json"
    if not folds.is_file():
        return None
    try:
        document = json.loads(folds.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{folds}: not valid JSON ({exc.msg}); train the folds again with --resume") from exc
    names = document.get("folds") or sorted(p.name for p in run.glob("fold*") if (p / "model.json").is_file())
    if document.get("status") not in (None, "complete"):
        raise ArtifactError(f"{run}: the fold runs are not complete (finish them with 'chromtransfer train --resume')")
    return [run / n for n in names]


def _model_length(document: dict) -> int | None:
    store = (document.get("training") or {}).get("store") or {}
    length = store.get("length")
    return int(length) if length else None


def load_cell_models(paths: Sequence[str | os.PathLike | Sequence[str | os.PathLike]], device: torch.device, *, names: Sequence[str] | None = None,
                     length: int | None = None) -> list[CellModel]:
    """Load every ``--model`` (fold runs as ensembles) on ``device``; binary models only.

    An entry of ``paths`` may also be a list of model folders (the fold models of one cell line,
    averaged like a ``--fold all`` run). Names are the folder names (``parent/name`` when they
    repeat; the first folder's for a list). ``length`` overrides the window length, which is
    otherwise the length of the data the model was trained on (600 bp when unknown).
    """
    from ..evaluation.evaluate import model_names
    from ..modelio import load_model

    groups = [[Path(p) for p in entry] if isinstance(entry, (list, tuple)) else None for entry in paths]
    firsts = [group[0] if group else Path(entry) for group, entry in zip(groups, paths)]
    labels = list(names) if names else model_names(firsts)
    if len(labels) != len(firsts):
        raise ChromTransferError(f"{len(labels)} model names for {len(firsts)} models")
    cells = []
    for label, path, group in zip(labels, firsts, groups):
        members_dirs = group or _fold_dirs(path) or [path]
        members = [load_model(d, device=device) for d in members_dirs]
        for d, model in zip(members_dirs, members):
            if model.multiclass or int(model.config.n_outputs) != 1:
                raise ChromTransferError(
                    f"{d}: variant effects need binary (one cell line) models, this one is multi-class "
                    "(give the fine-tuned model of each cell line)")
        lengths = {_model_length(m.document) for m in members} - {None}
        cell_length = length or (max(lengths) if lengths else DEFAULT_LENGTH)
        cells.append(CellModel(label, path, members, members_dirs, int(cell_length)))
    return cells


@dataclass
class WindowBatch:
    """Variants of one chunk placed in windows (all arrays ``(n,)`` over variants unless noted).

    Attributes:
        windows: list of ``(L_w,)`` uint8 REF window codes (distinct windows).
        row: the window of each variant.
        offset: position of the variant's first REF base in its window.
        snv_alt: ALT base code for single-base substitutions, -1 for other variants.
        alt_codes: the ALT window of each non-SNV variant (``None`` for SNVs).
    """

    windows: list[np.ndarray]
    row: np.ndarray
    offset: np.ndarray
    snv_alt: np.ndarray
    alt_codes: list


def _strand(codes: np.ndarray, reverse: bool) -> np.ndarray:
    return np.ascontiguousarray(reverse_complement_codes(codes)) if reverse else codes


def _predict(members: list, codes: np.ndarray, batch_size: int, device, precision: str | None = None) -> np.ndarray:
    """Mean probability over ensemble members of ``(N, L)`` codes, ``(N,)`` float64."""
    total = np.zeros(codes.shape[0], dtype=np.float64)
    for model in members:
        total += predict_codes(model, codes, batch_size=batch_size, device=device, precision=precision)[:, 0]
    return total / len(members)


def _by_length(items: list[np.ndarray]) -> dict[int, np.ndarray]:
    groups: dict[int, list[int]] = {}
    for i, codes in enumerate(items):
        groups.setdefault(int(codes.shape[0]), []).append(i)
    return {length: np.asarray(rows, dtype=np.int64) for length, rows in groups.items()}


def score_windows(cells: Sequence[CellModel], batch: WindowBatch, *, rc_average: bool = False,
                  batch_size: int = 256, device: str | torch.device = "cpu",
                  shared_reference: bool = True, precision: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(p_ref, p_alt)``, each ``(n_variants, n_cells)`` float64 (see the module docstring).

    ``shared_reference=False`` runs every substitution's ALT window through the whole network
    (the REF windows are still run once each). ``precision``: ``float32`` (default) or ``bf16``
    (:mod:`chromtransfer.precision`; the shared-reference SNV path under bf16 autocast).
    """
    from ..precision import autocast

    dev = resolve_device(device)
    n = batch.row.shape[0]
    p_ref = np.zeros((n, len(cells)), dtype=np.float64)
    p_alt = np.zeros((n, len(cells)), dtype=np.float64)
    if n == 0:
        return p_ref, p_alt
    strands = (False, True) if rc_average else (False,)
    is_snv = batch.snv_alt >= 0
    snvs_per_window = np.bincount(batch.row[is_snv], minlength=len(batch.windows))
    shared = (snvs_per_window >= MIN_SHARED_SNVS) if shared_reference else np.zeros(len(batch.windows), bool)
    for length, wrows in _by_length(batch.windows).items():
        stack = np.stack([batch.windows[w] for w in wrows])
        local = np.full(len(batch.windows), -1, dtype=np.int64)
        local[wrows] = np.arange(wrows.size)
        members_of = local[batch.row] >= 0
        fast_w = shared[wrows]
        fast_var = members_of & is_snv & shared[batch.row]
        plain_snv = members_of & is_snv & ~shared[batch.row]
        other = members_of & ~is_snv
        for reverse in strands:
            ref_stack = _strand(stack, reverse)
            off = batch.offset.copy()
            alt_base = batch.snv_alt.copy()
            if reverse:
                off = length - 1 - off
                alt_base = np.where(alt_base >= 0, 3 - alt_base, alt_base)
            # plain path: windows without shared substitutions, mutated copies for lone SNVs
            mutated = ref_stack[local[batch.row[plain_snv]]].copy()
            mutated[np.arange(mutated.shape[0]), off[plain_snv]] = alt_base[plain_snv]
            others = np.stack([_strand(batch.alt_codes[i], reverse) for i in np.flatnonzero(other)]) \
                if other.any() else np.zeros((0, length), np.uint8)
            for c, cell in enumerate(cells):
                window_p = np.zeros(wrows.size, dtype=np.float64)
                if (~fast_w).any():
                    window_p[~fast_w] = _predict(cell.members, ref_stack[~fast_w], batch_size, dev, precision)
                if fast_var.any():
                    sub_rows = local[batch.row[fast_var]]
                    fast_rows = np.flatnonzero(fast_w)
                    remap = np.full(wrows.size, -1, dtype=np.int64)
                    remap[fast_rows] = np.arange(fast_rows.size)
                    pw = np.zeros(fast_rows.size)
                    ps = np.zeros(int(fast_var.sum()))
                    for model in cell.members:
                        with autocast(dev, precision):
                            a, b = snv_probabilities(model, ref_stack[fast_rows], remap[sub_rows], off[fast_var],
                                                     alt_base[fast_var], batch_size=batch_size, device=dev)
                        pw += a
                        ps += b
                    window_p[fast_rows] = pw / len(cell.members)
                    p_alt[fast_var, c] += ps / len(cell.members)
                if plain_snv.any():
                    p_alt[plain_snv, c] += _predict(cell.members, mutated, batch_size, dev, precision)
                if other.any():
                    p_alt[other, c] += _predict(cell.members, others, batch_size, dev, precision)
                p_ref[members_of, c] += window_p[local[batch.row[members_of]]]
    return p_ref / len(strands), p_alt / len(strands)


def score_windows_naive(cells: Sequence[CellModel], batch: WindowBatch, *, rc_average: bool = False,
                        batch_size: int = 256, device: str | torch.device = "cpu",
                        precision: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two full forward passes per variant (its REF window and its ALT window), nothing shared."""
    dev = resolve_device(device)
    n = batch.row.shape[0]
    p_ref = np.zeros((n, len(cells)), dtype=np.float64)
    p_alt = np.zeros((n, len(cells)), dtype=np.float64)
    refs = [batch.windows[r] for r in batch.row]
    alts = []
    for i in range(n):
        if batch.snv_alt[i] >= 0:
            codes = refs[i].copy()
            codes[batch.offset[i]] = batch.snv_alt[i]
            alts.append(codes)
        else:
            alts.append(batch.alt_codes[i])
    strands = (False, True) if rc_average else (False,)
    for rows in _by_length(refs).values():
        ref_stack = np.stack([refs[i] for i in rows])
        alt_stack = np.stack([alts[i] for i in rows])
        for reverse in strands:
            for c, cell in enumerate(cells):
                p_ref[rows, c] += _predict(cell.members, _strand(ref_stack, reverse), batch_size, dev, precision)
                p_alt[rows, c] += _predict(cell.members, _strand(alt_stack, reverse), batch_size, dev, precision)
    return p_ref / len(strands), p_alt / len(strands)


def snv_code(base: str) -> int:
    """Code of a single base (A0 C1 G2 T3)."""
    return int(encode(base)[0])
