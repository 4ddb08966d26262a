"""Shared steps of ``prepare pretrain`` and ``prepare finetune``: window statistics, background
tiles, and writing a table of labelled windows into a dataset store.

The row table that both builders hand to :func:`write_window_store` has the columns
``chrom`` (the genome's spelling), ``start``, ``end`` (the window, ``end - start == length``),
``name``, ``label`` (class index) and ``label_name`` (the original label). Rows are written sorted by
chromosome (genome order) and start, so that each chromosome is read from the genome once.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..artifacts import check_output_dir, file_sha256
from ..encoding import N_CODE
from ..errors import InputError
from ..genome import Genome
from ..interval_sets import IntervalSet
from ..intervals import read_regions, tile_chromosome
from .splits import assign_folds, assign_split, parse_chrom_list
from .store import STORE_KIND, StoreWriter

log = logging.getLogger("chromtransfer.datasets")

#: Rows fetched and written per block (bounds memory: 65,536 x 600 bp = 39 MB of codes).
CHUNK_ROWS = 65536
GC_CODES = (1, 2)


def as_path_list(value) -> list:
    """``None`` -> ``[]``; one path -> ``[path]``; any other iterable -> a list of it."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [value]
    return list(value)


def describe_inputs(**groups: Any) -> dict[str, Any]:
    """``{role: [{"path", "sha256"}]}`` for input files (``None`` and empty roles are left out)."""
    out: dict[str, Any] = {}
    for role, paths in groups.items():
        if paths is None:
            continue
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        files = []
        for p in paths:
            p = Path(p)
            if p.is_dir():
                files.extend({"path": str(f), "sha256": file_sha256(f)} for f in sorted(p.iterdir()) if f.is_file())
            else:
                files.append({"path": str(p), "sha256": file_sha256(p)})
        if files:
            out[role] = files
    return out


def read_many(paths: Iterable[str | os.PathLike] | None, genome: Genome, *, on_missing: str = "error",
              on_off_end: str = "error", dropped: dict[str, int] | None = None, prefix: str = "") -> pd.DataFrame:
    """Read and concatenate region files; duplicates across files are removed and counted."""
    tables = []
    for path in paths or []:
        t = read_regions(path, genome, on_missing=on_missing, on_off_end=on_off_end)
        if dropped is not None:
            for key, value in t.attrs.get("dropped", {}).items():
                dropped[prefix + key] = dropped.get(prefix + key, 0) + value
        t = t.assign(source=str(path))
        tables.append(t)
    if not tables:
        return pd.DataFrame({"chrom": pd.Series([], dtype=object), "start": np.zeros(0, np.int64),
                             "end": np.zeros(0, np.int64), "name": pd.Series([], dtype=object),
                             "line": np.zeros(0, np.int64), "source": pd.Series([], dtype=object)})
    table = pd.concat(tables, ignore_index=True)
    if len(tables) > 1:
        dup = table.duplicated(["chrom", "start", "end"]).to_numpy()
        if dup.any() and dropped is not None:
            dropped[prefix + "duplicates"] = dropped.get(prefix + "duplicates", 0) + int(dup.sum())
        table = table.loc[~dup].reset_index(drop=True)
    return table


def resolve_chroms(genome: Genome, names: Sequence[str] | str) -> list[str]:
    """Genome spellings of chromosome names (names the genome lacks are ignored)."""
    if names == "all":
        return list(genome.names)
    return [r for r in (genome.try_resolve(n) for n in names) if r is not None]


def check_chrom_option(genome: Genome, value: str | Sequence[str] | None, option: str) -> None:
    """Raise :class:`InputError` naming ``option`` when a chromosome it lists is not in the genome
    (after the alias rules of :meth:`Genome.try_resolve`: ``chr2`` == ``2``); ``all`` passes."""
    names = parse_chrom_list(value)
    if names == "all":
        return
    missing = [n for n in names if genome.try_resolve(n) is None]
    if missing:
        listing = ", ".join(genome.names[:12]) + (f", ... ({len(genome.names)} in all)" if len(genome.names) > 12
                                                  else "")
        raise InputError(option, f"{', '.join(missing)}: not a chromosome of the genome {genome.path}",
                         fix=f"use the genome's names: {listing}")


def check_output_store(out: str | os.PathLike, overwrite: bool) -> None:
    """Refuse early (before any long work) an ``--out`` that may not become a store."""
    check_output_dir(out, STORE_KIND, overwrite=overwrite)


def window_stats(genome: Genome, chroms: np.ndarray, starts: np.ndarray, length: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """N fraction and GC fraction (of the non-N bases) of windows, each ``(N,)`` float64.

    Windows are read chromosome by chromosome, in blocks of :data:`CHUNK_ROWS`.
    """
    chroms = np.asarray(chroms, dtype=object)
    starts = np.asarray(starts, dtype=np.int64)
    n_frac = np.zeros(starts.size)
    gc = np.zeros(starts.size)
    for name in pd.unique(chroms):
        rows = np.flatnonzero(chroms == name)
        for lo in range(0, rows.size, CHUNK_ROWS):
            block = rows[lo:lo + CHUNK_ROWS]
            codes = genome.fetch_many(np.full(block.size, name, dtype=object), starts[block], length=length)
            n_count = (codes == N_CODE).sum(axis=1)
            gc_count = np.isin(codes, GC_CODES).sum(axis=1)
            n_frac[block] = n_count / length
            gc[block] = np.divide(gc_count, length - n_count, out=np.zeros(block.size), where=length > n_count)
    return n_frac, gc


def candidate_tiles(genome: Genome, length: int, chroms: Sequence[str], *, exclude: Sequence[tuple[IntervalSet, int]] = (),
                    dropped: dict[str, int] | None = None, with_gc: bool = False,
                    measure: tuple[np.ndarray, np.ndarray] | None = None):
    """Non-overlapping ``length`` bp tiles of ``chroms`` that contain no N and do not come near the
    excluded sets.

    Args:
        exclude: ``(IntervalSet, distance)`` pairs: a tile is removed when it overlaps a set
            interval or lies less than ``distance`` bp from one.
        dropped: counts added under ``tiles_gap`` and ``tiles_excluded_<i>``.
        with_gc: add a ``gc`` column (GC fraction of the tile).
        measure: ``(chroms, starts)`` of other ``length`` bp windows whose N and GC fractions are
            measured in the same pass (each chromosome is then read once for both).

    Returns:
        DataFrame ``chrom, start, end`` (+ ``gc``), genome order; with ``measure``, the tuple
        ``(tiles, n_fraction, gc)`` where the last two are ``(M,)`` arrays for the measured windows
        (as :func:`window_stats`).
    """
    parts = []
    counts = {"tiles_total": 0, "tiles_gap": 0}
    if measure is not None:
        m_chroms = np.asarray(measure[0], dtype=object)
        m_starts = np.asarray(measure[1], dtype=np.int64)
        m_nfrac = np.full(m_starts.size, np.nan)
        m_gc = np.full(m_starts.size, np.nan)
    for name in chroms:
        size = genome.lengths[name]
        starts = tile_chromosome(size, length)
        counts["tiles_total"] += int(starts.size)
        if not starts.size:
            continue
        codes = genome.chromosome_codes(name)
        if measure is not None:
            rows = np.flatnonzero(m_chroms == name)
            view = np.lib.stride_tricks.sliding_window_view(codes, length)
            for lo in range(0, rows.size, CHUNK_ROWS):
                block = rows[lo:lo + CHUNK_ROWS]
                windows = view[m_starts[block]]
                n_count = (windows == N_CODE).sum(axis=1)
                m_nfrac[block] = n_count / length
                m_gc[block] = np.divide(np.isin(windows, GC_CODES).sum(axis=1), length - n_count,
                                        out=np.zeros(block.size), where=length > n_count)
        keep = np.ones(starts.size, dtype=bool)
        gc = np.zeros(starts.size) if with_gc else None
        for lo in range(0, starts.size, CHUNK_ROWS):
            hi = min(lo + CHUNK_ROWS, starts.size)
            block = codes[lo * length:hi * length].reshape(hi - lo, length)
            has_n = (block == N_CODE).any(axis=1)
            keep[lo:hi] = ~has_n
            if with_gc:
                gc[lo:hi] = np.isin(block, GC_CODES).mean(axis=1)
        counts["tiles_gap"] += int((~keep).sum())
        tiles = pd.DataFrame({"chrom": np.full(int(keep.sum()), name, dtype=object), "start": starts[keep],
                              "end": starts[keep] + length})
        if with_gc:
            tiles["gc"] = gc[keep]
        parts.append(tiles)
    genome.release()
    if parts:
        tiles = pd.concat(parts, ignore_index=True)
    else:
        tiles = pd.DataFrame({"chrom": pd.Series([], dtype=object), "start": np.zeros(0, np.int64),
                              "end": np.zeros(0, np.int64)})
        if with_gc:
            tiles["gc"] = np.zeros(0)
    for i, (intervals, distance) in enumerate(exclude):
        if not len(tiles):
            break
        near = intervals.overlaps_frame(tiles, distance)
        counts[f"tiles_excluded_{i}"] = int(near.sum())
        tiles = tiles.loc[~near].reset_index(drop=True)
    if dropped is not None:
        for key, value in counts.items():
            dropped[key] = dropped.get(key, 0) + value
    if measure is not None:
        missing = np.flatnonzero(np.isnan(m_nfrac))  # windows on chromosomes that were not tiled
        if missing.size:
            m_nfrac[missing], m_gc[missing] = window_stats(genome, m_chroms[missing], m_starts[missing], length)
        return tiles, m_nfrac, m_gc
    return tiles


def weighted_sample(rng: np.random.Generator, n_items: int, k: int, weights: np.ndarray | None = None) -> np.ndarray:
    """``k`` distinct indices of ``range(n_items)``, sorted; uniform, or with probability
    proportional to ``weights`` (Efraimidis-Spirakis keys ``log(u) / w``, one vectorised pass)."""
    k = min(int(k), n_items)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k == n_items:
        return np.arange(n_items)
    if weights is None:
        return np.sort(rng.choice(n_items, size=k, replace=False))
    weights = np.asarray(weights, dtype=np.float64)
    u = rng.random(n_items)
    with np.errstate(divide="ignore"):
        keys = np.where(weights > 0, np.log(u) / np.where(weights > 0, weights, 1), -np.inf)
    return np.sort(np.argpartition(-keys, k - 1)[:k])


#: GC-matching bins: 50 equal bins of 2 % GC on [0, 1].
GC_BINS = 50


def gc_matched_weights(target_gc: np.ndarray, pool_gc: np.ndarray, bins: int = GC_BINS) -> np.ndarray:
    """Sampling weights that give the pool the GC distribution of the target.

    GC fractions are binned in ``bins`` equal bins on [0, 1]; a pool item's weight is the target's
    share of its bin divided by the pool's share of that bin (0 where the target has none).
    """
    edges = np.linspace(0, 1, bins + 1)
    t_bin = np.clip(np.digitize(target_gc, edges) - 1, 0, bins - 1)
    p_bin = np.clip(np.digitize(pool_gc, edges) - 1, 0, bins - 1)
    t_share = np.bincount(t_bin, minlength=bins) / max(len(target_gc), 1)
    p_share = np.bincount(p_bin, minlength=bins) / max(len(pool_gc), 1)
    ratio = np.divide(t_share, p_share, out=np.zeros(bins), where=p_share > 0)
    return ratio[p_bin]


def gc_matched_sample(rng: np.random.Generator, target_gc: np.ndarray, pool_gc: np.ndarray, k: int) -> np.ndarray:
    """``k`` distinct indices into the pool (sorted) drawn so that their GC distribution follows
    the target's (:func:`gc_matched_weights`, Efraimidis-Spirakis keys). Where fewer than ``k``
    pool items share a bin with the target, the rest is filled from the other bins at random.
    """
    weights = gc_matched_weights(np.asarray(target_gc, dtype=np.float64), np.asarray(pool_gc, dtype=np.float64))
    if (weights > 0).sum() < min(int(k), weights.size):
        weights = np.where(weights > 0, weights, 1e-6)
    return weighted_sample(rng, weights.size, k, weights)


def write_window_store(
    out: str | os.PathLike,
    genome: Genome,
    rows: pd.DataFrame,
    *,
    length: int,
    task: str,
    classes: Sequence[str],
    test_chroms: str | Sequence[str],
    folds: int,
    seed: int,
    fold_scheme: str = "rows",
    max_n_fraction: float = 0.1,
    inputs: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    dropped: dict[str, int] | None = None,
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Drop windows with too many N, assign split and folds, fetch the sequences and write the store.

    Args:
        rows: ``chrom, start, end, name, label, label_name`` (see the module docstring), and
            optionally ``n_fraction`` (already known N fractions; NaN where unknown).
        max_n_fraction: windows whose share of N (non-ACGT) bases exceeds this are dropped
            (counted as ``n_fraction`` in the manifest's ``dropped``).

    Returns the store path. The manifest records ``inputs``, ``parameters``, ``seed``, ``dropped``.
    ``overwrite`` replaces a complete store at ``out`` (:class:`~.store.StoreWriter`).
    """
    dropped = dict(dropped or {})
    if not len(rows):
        raise InputError(out, "no windows left to write",
                         fix="check the inputs and the filters (chromosomes, blacklist, N fraction)")
    order_of = {name: i for i, name in enumerate(genome.names)}
    rows = rows.assign(_order=rows["chrom"].map(order_of).to_numpy())
    rows = rows.sort_values(["_order", "start", "label"], kind="stable").reset_index(drop=True)
    # Rows may carry an ``n_fraction`` column computed earlier (NaN = unknown); the rest are read.
    n_frac = rows["n_fraction"].to_numpy(dtype=np.float64) if "n_fraction" in rows else np.full(len(rows), np.nan)
    unknown = np.flatnonzero(np.isnan(n_frac))
    if unknown.size:
        n_frac[unknown], _ = window_stats(genome, rows["chrom"].to_numpy(dtype=object)[unknown],
                                          rows["start"].to_numpy()[unknown], length)
    too_many_n = n_frac > max_n_fraction
    if too_many_n.any():
        dropped["n_fraction"] = dropped.get("n_fraction", 0) + int(too_many_n.sum())
        log.info("dropped %d windows with more than %.0f%% N", int(too_many_n.sum()), 100 * max_n_fraction)
        rows = rows.loc[~too_many_n].reset_index(drop=True)
    if not len(rows):
        raise InputError(out, "every window was dropped for N content", fix="raise --max-n-fraction or check the genome")
    chroms = rows["chrom"].to_numpy(dtype=object)
    split = assign_split(chroms, test_chroms)
    wanted = parse_chrom_list(test_chroms)
    if wanted != "all" and wanted and not split.any():
        raise InputError("--test-chroms", f"no window lies on {','.join(wanted)}: the test split would be empty",
                         fix="choose --test-chroms with windows, or 'all' for a test-only store")
    fold = assign_folds(split, folds, seed, strata=rows["label_name"].to_numpy(dtype=object), chroms=chroms,
                        scheme=fold_scheme)
    starts = rows["start"].to_numpy()
    with StoreWriter(out, len(rows), length, overwrite=overwrite) as writer:
        for name in pd.unique(chroms):
            idx = np.flatnonzero(chroms == name)
            for lo in range(0, idx.size, CHUNK_ROWS):
                block = idx[lo:lo + CHUNK_ROWS]
                # rows are sorted by chromosome, so a block is a contiguous slice of the store
                writer.sequences[block[0]:block[-1] + 1] = genome.fetch_many(
                    np.full(block.size, name, dtype=object), starts[block], length=length)
        genome.release()
        regions = pd.DataFrame({"name": rows["name"].astype(str).to_numpy(), "chrom": chroms,
                                "start": rows["start"].to_numpy(), "end": rows["end"].to_numpy(),
                                "strand": "+", "label_name": rows["label_name"].astype(str).to_numpy()})
        test_list = parse_chrom_list(test_chroms)
        manifest_extra = {
            "genome": genome.describe(),
            "parameters": {**(parameters or {}), "length": length, "test_chroms": test_list, "folds": folds,
                           "fold_scheme": fold_scheme, "max_n_fraction": max_n_fraction},
            "dropped": dropped,
            "fold_assignment": (
                "training rows stratified by label_name; within each label (sorted names) a "
                "numpy default_rng(seed) permutation, row j of it -> fold j % folds"
                if fold_scheme == "rows" else
                "whole training chromosomes, shuffled by numpy default_rng(seed), largest first, "
                "each to the fold with the fewest rows"),
            **(extra or {}),
        }
        return writer.finish(rows["label"].to_numpy(), split, fold, regions, task=task, classes=list(classes),
                             seed=seed, inputs=inputs or {}, extra=manifest_extra)
