"""The CPU motif-scanning kernel: K-mer look-up tables behind a pre-filter run across motifs.

A window's scaled FIMO score is the sum of ``w`` integer matrix entries, one per column. The
kernel reads ``K`` columns at once (``K`` = 5): the sequence is encoded once as the index of the
``K``-mer starting at each position, each motif's columns are cut into blocks of ``K`` (the last
one shorter), and each block gets a table of its score for every one of the ``4**K`` words
(letters beyond the motif's end do not count). A window's score is then ``ceil(w/K)`` look-ups,
each an exact integer sum of matrix entries: FIMO's scaled score, bit for bit.

Most windows are never summed. Each filter (motif strand) has a pre-filter over ``2K``
consecutive columns, the ones whose best score stands furthest above the background's mean: a
window can reach the filter's smallest significant score only if those columns score at least
that score less the best the other columns could add. Filters whose pre-filter columns start at
the same offset form a group of up to 32. For each group the answer "does any filter of the group
pass" is precomputed for all ``4**(2K)`` (about a million) ``2K``-mers as a bitmap of 128 KiB,
which stays in the L2 cache while the group runs over a chunk of sequences: at p < 1e-5 about
three bits in ten thousand are set, so nearly every position of nearly every group is ruled out
by one bit test. Where the bit is set, the group's filters are checked side by side (two table
rows, contiguous across the group: vector instructions), and the few that pass get their full
score. The pre-filter is a bound, never an approximation: every window whose full score reaches
the threshold passes it. (Profile, 500 real 600 bp windows x 841 JASPAR motifs, one thread: the
bitmap took the kernel from 1.6 s to 0.7 s; what remains is ~25 % bit tests, ~15 % group checks
and ~55 % full scores of the ~1,500 windows per sequence that pass the pre-filter.)

Windows that contain a non-ACGT code are recognised from a running count of such codes and never
reported. Sequences are split into chunks that run on a thread pool (the compiled kernel releases
the GIL). Compiled with numba on first use and cached on disk where the package is writable.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["KMER", "KmerTables", "build_tables", "default_threads", "encode_kmers", "scan_codes"]

#: Letters per look-up: 4**5 = 1024 entries of int32, 4 KiB per block, which stay in the L1 cache.
KMER = 5
_N_CODE = 4
#: Filters side by side in one pre-filter group (float32 lanes; a group's two tables take 256 KiB).
_LANES = 32
#: Filters checked together before looking at them one by one.
_SUB = 32
#: Pre-filter minimum of an unused lane: never reached.
_NEVER = 1e9


@dataclass
class KmerTables:
    """The look-up tables of a set of scaled score matrices (one filter per motif strand).

    Exact scores: ``table`` ``(B, 4**K)`` int32, one row per block of ``K`` columns, the blocks of
    filter ``f`` at rows ``first[f]:first[f+1]`` in column order (block ``j`` starts at column
    ``j*K``); ``width`` ``(F,)`` and ``kmin`` ``(F,)`` (smallest reported scaled score) per filter.

    Pre-filter: the filters in groups of ``_LANES`` sharing one ``offset``: the ``2K`` columns from
    ``offset`` are read as two ``K``-mers, their scores ``pre0``/``pre1`` ``(groups, 4**K, lanes)``
    float32 (exact integers) side by side for all filters of the group; a window can reach
    ``kmin`` only when their sum is at least ``pre_min`` ``(groups, lanes)`` float32 (``kmin`` less
    the best score of the other columns). ``pre_filter`` ``(groups, lanes)`` int32 names the filter of each lane (unused lanes
    can never pass); ``pre_minw`` ``(groups,)`` the narrowest width in the group. ``pre_bits``
    ``(groups, 4**(2K) // 8)`` uint8: bit ``a * 4**K + b`` of a group is set when some lane passes
    for the ``2K``-mer ``(a, b)`` (:func:`_group_bits`), so most positions are ruled out by one bit.
    """

    table: np.ndarray
    first: np.ndarray
    width: np.ndarray
    kmin: np.ndarray
    pre0: np.ndarray
    pre1: np.ndarray
    pre_min: np.ndarray
    pre_filter: np.ndarray
    pre_offset: np.ndarray
    pre_minw: np.ndarray
    pre_bits: np.ndarray
    k: int = KMER

    @property
    def max_width(self) -> int:
        return int(self.width.max()) if self.width.size else 0


def _block_scores(part: np.ndarray, letters: np.ndarray) -> np.ndarray:
    """Score of every K-mer for the columns ``part`` ``(<=K, 4)`` (later letters do not count)."""
    score = np.zeros(letters.shape[1], dtype=np.int64)
    for t in range(part.shape[0]):
        score += part[t, letters[t]]
    return score


def build_tables(matrices, kmins, background, k: int = KMER) -> KmerTables:
    """Tables for integer matrices ``(w, 4)`` with smallest reported scores ``kmins``.

    Each filter's pre-filter columns are the ``2K`` consecutive columns with the largest gap
    between their best score and their mean score under ``background`` ``(4,)``: the ones most
    likely to rule a window out.
    """
    background = np.asarray(background, dtype=np.float64)
    words = np.arange(4 ** k)
    letters = np.stack([(words >> (2 * (k - 1 - t))) & 3 for t in range(k)])  # (K, 4**K)
    rows, first, widths, chosen = [], [0], [], []
    for f, matrix in enumerate(matrices):
        matrix = np.asarray(matrix, dtype=np.int64)
        w = matrix.shape[0]
        for lo in range(0, w, k):
            rows.append(_block_scores(matrix[lo:lo + k], letters))
        first.append(first[-1] + -(-w // k))
        widths.append(w)
        gap = matrix.max(axis=1) - matrix @ background
        span = min(2 * k, w)
        sums = np.convolve(gap, np.ones(span), mode="valid")
        offset = int(np.argmax(sums))
        outside = matrix.max(axis=1).sum() - matrix[offset:offset + span].max(axis=1).sum()
        chosen.append((offset, w, f, int(kmins[f]) - int(outside)))
    chosen.sort()
    groups: list[list[tuple[int, int, int, int]]] = []
    for entry in chosen:
        if groups and groups[-1][0][0] == entry[0] and len(groups[-1]) < _LANES:
            groups[-1].append(entry)
        else:
            groups.append([entry])
    n_groups = len(groups)
    pre0 = np.zeros((n_groups, 4 ** k, _LANES), dtype=np.float32)
    pre1 = np.zeros((n_groups, 4 ** k, _LANES), dtype=np.float32)
    pre_min = np.full((n_groups, _LANES), _NEVER, dtype=np.float32)
    pre_filter = np.zeros((n_groups, _LANES), dtype=np.int32)
    pre_offset = np.zeros(n_groups, dtype=np.int64)
    pre_minw = np.zeros(n_groups, dtype=np.int64)
    for g, members in enumerate(groups):
        pre_offset[g] = members[0][0]
        pre_minw[g] = min(m[1] for m in members)
        for lane, (offset, w, f, floor) in enumerate(members):
            matrix = np.asarray(matrices[f], dtype=np.int64)
            pre0[g, :, lane] = _block_scores(matrix[offset:offset + k], letters)
            pre1[g, :, lane] = _block_scores(matrix[offset + k:offset + 2 * k], letters)
            pre_min[g, lane] = floor
            pre_filter[g, lane] = f
    pre_bits = np.zeros((n_groups, 4 ** (2 * k) // 8), dtype=np.uint8)
    for g in range(n_groups):
        _group_bits(pre0[g], pre1[g], pre_min[g], pre_bits[g])
    table = np.stack(rows).astype(np.int32) if rows else np.zeros((0, 4 ** k), np.int32)
    return KmerTables(table=np.ascontiguousarray(table), first=np.asarray(first, dtype=np.int64),
                      width=np.asarray(widths, dtype=np.int64), kmin=np.asarray(kmins, dtype=np.int64),
                      pre0=pre0, pre1=pre1, pre_min=pre_min, pre_filter=pre_filter, pre_offset=pre_offset,
                      pre_minw=pre_minw, pre_bits=pre_bits, k=k)


@numba.njit(nogil=True, cache=True)
def _group_bits(t0, t1, floor, bits):  # pragma: no cover - compiled
    """Set bit ``a * 4**K + b`` of ``bits`` for every pair with ``t0[a, f] + t1[b, f] >= floor[f]``
    for some lane ``f``.

    Output-sensitive: each lane's second-half scores are sorted once, and for every first half
    ``a`` only the ``b`` that pass are visited (about one pair in a thousand at p < 1e-5).
    """
    words, lanes = t0.shape
    for f in range(lanes):
        if floor[f] >= _NEVER:
            continue
        order = np.argsort(-t1[:, f])
        for a in range(words):
            need = floor[f] - t0[a, f]
            for i in range(words):
                b = order[i]
                if t1[b, f] < need:
                    break
                index = a * words + b
                bits[index >> 3] |= np.uint8(1 << (index & 7))


def encode_kmers(codes: np.ndarray, k: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """K-mer indices and running N counts of ``(n, L)`` codes.

    Returns ``kmers`` ``(n, L + pad)`` int32 (the index of the K-mer starting at each position;
    non-ACGT codes and positions past the end read as ``A``, windows holding them are rejected
    through the counts) and ``n_before`` ``(n, L + 1)`` int32, the number of non-ACGT codes before
    each position.
    """
    codes = np.asarray(codes)
    n, length = codes.shape
    bad = codes >= _N_CODE
    n_before = np.zeros((n, length + 1), dtype=np.int32)
    np.cumsum(bad, axis=1, out=n_before[:, 1:])
    letters = np.zeros((n, length + pad + k), dtype=np.int32)
    letters[:, :length] = np.where(bad, 0, codes)
    kmers = np.zeros((n, length + pad), dtype=np.int32)
    for t in range(k):
        kmers <<= 2
        kmers |= letters[:, t:t + length + pad]
    return kmers, n_before


@numba.njit(nogil=True, cache=True, fastmath=True)
def _scan_chunk(kmers, n_before, length, k, pre0, pre1, pre_min, pre_filter, pre_offset, pre_minw,
                pre_bits, table, first, width, kmin):  # pragma: no cover - compiled
    """Hits ``(row, filter, start, score)`` of one chunk of sequences (all of them ``length`` long)."""
    n = kmers.shape[0]
    groups, _, lanes = pre0.shape
    cap = 1024
    out_row = np.empty(cap, np.int64)
    out_filter = np.empty(cap, np.int32)
    out_start = np.empty(cap, np.int64)
    out_score = np.empty(cap, np.int32)
    count = 0
    passed = np.empty(lanes, np.int32)
    words = pre0.shape[1]
    for g in range(groups):
        bits = pre_bits[g]
        t0 = pre0[g]
        t1 = pre1[g]
        floor = pre_min[g]
        ids = pre_filter[g]
        o = pre_offset[g]
        for r in range(n):
            seq = kmers[r]
            nb = n_before[r]
            for p in range(length - pre_minw[g] + 1):
                a = seq[p + o]
                b = seq[p + o + k]
                index = a * words + b
                if (bits[index >> 3] >> (index & 7)) & 1 == 0:
                    continue
                for f in range(lanes):
                    passed[f] = np.int32(t0[a, f] + t1[b, f] >= floor[f])
                for s0 in range(0, lanes, _SUB):
                    count_passed = 0
                    for f in range(s0, s0 + _SUB):
                        count_passed += passed[f]
                    if count_passed == 0:
                        continue
                    for f in range(s0, s0 + _SUB):
                        if passed[f] == 0:
                            continue
                        m = ids[f]
                        w = width[m]
                        if p + w > length or nb[p + w] != nb[p]:
                            continue
                        s = 0
                        lo = first[m]
                        for j in range(lo, first[m + 1]):
                            s += table[j, seq[p + (j - lo) * k]]
                        if s < kmin[m]:
                            continue
                        if count == cap:
                            cap *= 2
                            out_row = _grow64(out_row, cap)
                            out_filter = _grow32(out_filter, cap)
                            out_start = _grow64(out_start, cap)
                            out_score = _grow32(out_score, cap)
                        out_row[count] = r
                        out_filter[count] = m
                        out_start[count] = p
                        out_score[count] = s
                        count += 1
    return out_row[:count], out_filter[:count], out_start[:count], out_score[:count]


@numba.njit(nogil=True, cache=True)
def _grow64(a, cap):  # pragma: no cover - compiled
    out = np.empty(cap, np.int64)
    out[:a.shape[0]] = a
    return out


@numba.njit(nogil=True, cache=True)
def _grow32(a, cap):  # pragma: no cover - compiled
    out = np.empty(cap, np.int32)
    out[:a.shape[0]] = a
    return out


def scan_codes(tables: KmerTables, codes: np.ndarray, threads: int = 1, chunk: int = 64):
    """All windows of ``codes`` ``(n, L)`` uint8 whose scaled score reaches their filter's ``kmin``.

    Windows lie entirely inside the sequence and hold only A/C/G/T. Returns ``(row, filter,
    start, score)`` arrays (int64, int32, int64, int32), ordered by chunk, filter, row, start.
    """
    codes = np.asarray(codes)
    n, length = codes.shape
    empty = (np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.int32))
    if n == 0 or length == 0 or tables.width.size == 0:
        return empty
    pad = tables.max_width + tables.k
    spans = [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]

    def run(span):
        lo, hi = span
        kmers, n_before = encode_kmers(codes[lo:hi], tables.k, pad)
        row, filt, start, score = _scan_chunk(kmers, n_before, length, tables.k, tables.pre0, tables.pre1,
                                              tables.pre_min, tables.pre_filter, tables.pre_offset,
                                              tables.pre_minw, tables.pre_bits, tables.table, tables.first, tables.width,
                                              tables.kmin)
        return row + lo, filt, start, score

    threads = max(1, min(int(threads), len(spans)))
    if threads == 1:
        parts = [run(s) for s in spans]
    else:
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(run, spans))
    if not parts:
        return empty
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))


def default_threads() -> int:
    """CPU threads for scanning: torch's setting (the commands' ``--threads``), else the core count."""
    try:
        import torch

        return max(1, int(torch.get_num_threads()))
    except ImportError:  # pragma: no cover - torch is a dependency
        return max(1, os.cpu_count() or 1)
