"""Motif scanning: every motif over every sequence, both strands, FIMO-faithful p-values.

The contract:

* Input: sequences as uint8 codes (A=0 C=1 G=2 T=3, other=4), a ``(N, L)`` array or chunks of it.
  Motifs: :class:`~chromtransfer.interpret.pwm.Motif` objects (JASPAR from pyjaspar, MEME or
  JASPAR files; see :mod:`chromtransfer.interpret.jaspar`).
* Scores and p-values are FIMO's (see :mod:`chromtransfer.interpret.pwm`): pseudocount 0.1,
  log2-odds scaled to integers, p-value = exact P(score >= s) of the scaled score under the
  0-order background. A site is reported when ``p < threshold`` (default 1e-5, the paper's
  ``P < 1e-5``; the FIMO program keeps ``p <= threshold``, which differs only for a p-value exactly
  equal to the threshold).
* Sites lie entirely inside the sequence (no partial sites at the ends), and a window that contains
  a base other than A/C/G/T (code 4: N, IUPAC codes, padding) is never a site. (FIMO likewise skips
  windows with letters outside the alphabet.)
* Both strands are scanned: the reverse-complement motif is scored on the forward sequence. A
  motif matching at the same position on both strands is reported once, on the better strand:
  smaller p-value, then higher score, then ``+`` (FIMO's ``--max-strand`` keeps the higher score and
  breaks ties at random; this rule is deterministic and identical whenever the background is
  strand-symmetric).
* A motif whose best possible p-value is not below the threshold cannot produce a site and is
  skipped (counted in :attr:`MotifScanner.weak_motifs`).

Speed: each window's score is a sum of ``w`` integer table entries. On the CPU
(:mod:`chromtransfer.interpret.scan_kernel`) the sequence is read as 5-mers, each motif's columns
are looked up five at a time, and a pre-filter over ten columns, run for a group of motifs side by
side, rules out almost every window before its full score is summed; the sums are integers, the
same as FIMO's. On a GPU the scores of all motifs are one 1D convolution of the one-hot sequence
with integer-valued filters: every intermediate value is an integer below 2**24, so float32
arithmetic is exact and the scores equal the integer sums bit for bit (TF32 is switched off for
the call). Windows holding a non-ACGT code are recognised from a running count of such codes and
dropped. Sequences are processed in chunks, so memory stays bounded for any number of sequences.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from ..encoding import COMPLEMENT_CODE, DECODE_TABLE, N_CODE
from .pwm import (
    DEFAULT_PSEUDOCOUNT,
    DEFAULT_RANGE,
    Motif,
    ScaledPWM,
    build_pwm_pair,
    resolve_background,
    round_significant,
)
from .scan_kernel import KmerTables, build_tables, default_threads, scan_codes

__all__ = ["DEFAULT_THRESHOLD", "SITE_COLUMNS", "MotifScanner", "SequenceChunk", "Sites",
           "dedupe_strands", "site_sequences", "sites_frame"]

DEFAULT_THRESHOLD = 1e-5
SITE_COLUMNS = ["region", "region_index", "chrom", "start", "end", "site_start", "site_end", "strand",
                "motif_id", "tf", "score", "pvalue", "sequence"]
#: Scores are sums of at most w * range integers; below 2**24 float32 sums are exact.
_MAX_EXACT = float(2 ** 24)
#: Rows per task of the CPU kernel's thread pool: a task walks every filter group over its rows,
#: so larger tasks reload each group's tables (~0.8 MB) less often; 128 measured 1.3-1.5x faster
#: than 32 on one thread (2,000 real windows x 841 motifs).
_CPU_CHUNK = 128


@dataclass
class Sites:
    """Motif sites as parallel arrays (one entry per site).

    Attributes:
        row: ``(n,)`` int64 row of the scanned chunk / array (offset by the chunk's first index).
        start: ``(n,)`` int64 0-based site start within the sequence; the site is ``[start, start+w)``.
        motif: ``(n,)`` int32 index into the scanner's motif list.
        strand: ``(n,)`` int8, 0 = ``+``, 1 = ``-``.
        scaled: ``(n,)`` int32 scaled FIMO score.
        score: ``(n,)`` float64 log-odds score in bits.
        pvalue: ``(n,)`` float64 p-value (always > 0).
    """

    row: np.ndarray
    start: np.ndarray
    motif: np.ndarray
    strand: np.ndarray
    scaled: np.ndarray
    score: np.ndarray
    pvalue: np.ndarray

    def __len__(self) -> int:
        return int(self.row.shape[0])

    @classmethod
    def empty(cls) -> "Sites":
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.int8),
                   np.empty(0, np.int32), np.empty(0, np.float64), np.empty(0, np.float64))

    @classmethod
    def concat(cls, parts: Sequence["Sites"]) -> "Sites":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                     ("row", "start", "motif", "strand", "scaled", "score", "pvalue")))

    def take(self, index: np.ndarray) -> "Sites":
        return Sites(self.row[index], self.start[index], self.motif[index], self.strand[index],
                     self.scaled[index], self.score[index], self.pvalue[index])


@dataclass
class SequenceChunk:
    """A block of sequences to scan with their metadata.

    Attributes:
        codes: ``(n, L)`` uint8 codes (shorter sequences padded with code 4).
        meta: ``n`` rows with columns ``region`` (name), ``region_index``, ``chrom``, ``start``,
            ``end`` (genomic window, 0-based half-open; empty/-1 when unknown), ``strand``
            (``+``/``-`` of the window relative to the genome; ``+`` when unknown) and ``length``.
    """

    codes: np.ndarray
    meta: pd.DataFrame


@dataclass
class _FilterGroup:
    weight: np.ndarray  # (G, 4, width) float32
    kmin: np.ndarray  # (G,) float32 smallest significant scaled score
    motif: np.ndarray  # (G,) int32
    strand: np.ndarray  # (G,) int8
    width: int  # padded width of the group
    widths: np.ndarray  # (G,) true widths


@dataclass
class MotifScanner:
    """Scan code arrays for motif sites.

    Args:
        motifs: the motifs.
        background: ``'uniform'``, ``'nrdb'``, ``'A,C,G,T'`` text or 4 numbers (see
            :func:`~chromtransfer.interpret.pwm.resolve_background`).
        threshold: report sites with p-value strictly below this.
        pseudocount: FIMO's ``--motif-pseudo``.
        score_range: integer range of one column's scaled scores (FIMO: 1000; larger values give
            p-values closer to those of the unscaled scores, at the price of FIMO fidelity).
        device: ``'cpu'`` (the look-up kernel), ``'cuda'`` (a convolution on the GPU) or
            ``'auto'`` (the GPU where there is one).
        batch_size: sequences per batch.
        group_size: filters (motif strands) per GPU convolution.
        threads: CPU threads (default: torch's setting, which the commands' ``--threads`` sets).
    """

    motifs: list[Motif]
    background: object = "uniform"
    threshold: float = DEFAULT_THRESHOLD
    pseudocount: float = DEFAULT_PSEUDOCOUNT
    score_range: int = DEFAULT_RANGE
    device: str = "cpu"
    batch_size: int = 256
    group_size: int = 256
    threads: int | None = None
    pwms: list[tuple[ScaledPWM, ScaledPWM]] = field(init=False, repr=False)
    weak_motifs: list[str] = field(init=False)

    def __post_init__(self) -> None:
        if not self.motifs:
            raise ValueError("no motifs to scan")
        if not (0 < self.threshold <= 1):
            raise ValueError("the p-value threshold must be in (0, 1]")
        if self.score_range < 1 or self.score_range * max(m.width for m in self.motifs) >= _MAX_EXACT:
            raise ValueError(f"score_range x motif width must stay below {int(_MAX_EXACT)}")
        self.background = resolve_background(self.background)
        self.pwms = [build_pwm_pair(m, self.background, self.pseudocount, self.score_range) for m in self.motifs]
        self.weak_motifs = [m.motif_id for m, (f, r) in zip(self.motifs, self.pwms)
                            if min(f.best_pvalue, r.best_pvalue) >= self.threshold]
        self._groups = self._build_groups()
        self._torch_device = None
        self._tables: KmerTables | None = None
        self._sites_lookup: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ set-up
    def _build_groups(self) -> list[_FilterGroup]:
        entries = []  # (width, motif index, strand, matrix, kmin)
        for i, pair in enumerate(self.pwms):
            for s, pwm in enumerate(pair):
                kmin = pwm.min_significant_score(self.threshold)
                if kmin is None:
                    continue
                entries.append((pwm.width, i, s, pwm.matrix, kmin))
        entries.sort(key=lambda e: (e[0], e[1], e[2]))
        groups = []
        for lo in range(0, len(entries), self.group_size):
            block = entries[lo:lo + self.group_size]
            width = max(e[0] for e in block)
            weight = np.zeros((len(block), 4, width), dtype=np.float32)
            for g, (w, _, _, matrix, _) in enumerate(block):
                weight[g, :, :w] = matrix.T
            groups.append(_FilterGroup(
                weight=weight,
                kmin=np.array([e[4] for e in block], dtype=np.float32),
                motif=np.array([e[1] for e in block], dtype=np.int32),
                strand=np.array([e[2] for e in block], dtype=np.int8),
                width=width,
                widths=np.array([e[0] for e in block], dtype=np.int64),
            ))
        return groups

    @property
    def max_width(self) -> int:
        return max(m.width for m in self.motifs)

    def _kmer_tables(self) -> tuple[KmerTables, np.ndarray, np.ndarray]:
        """The CPU kernel's tables, built on first use, with each filter's motif and strand."""
        if self._tables is None:
            matrices, kmins, motif, strand = [], [], [], []
            for group in self._groups:
                for g in range(len(group.motif)):
                    pwm = self.pwms[int(group.motif[g])][int(group.strand[g])]
                    matrices.append(pwm.matrix)
                    kmins.append(int(group.kmin[g]))
                    motif.append(int(group.motif[g]))
                    strand.append(int(group.strand[g]))
            self._tables = build_tables(matrices, kmins, self.background)
            self._filter_motif = np.asarray(motif, dtype=np.int32)
            self._filter_strand = np.asarray(strand, dtype=np.int8)
        return self._tables, self._filter_motif, self._filter_strand

    def _device(self):
        import torch

        from ..devices import resolve_device

        if self._torch_device is None:
            self._torch_device = resolve_device(self.device)
            self._weights = [torch.from_numpy(g.weight).to(self._torch_device) for g in self._groups]
            self._kmins = [torch.from_numpy(g.kmin).to(self._torch_device) for g in self._groups]
        return self._torch_device

    # ------------------------------------------------------------------ scanning
    def scan(self, codes: np.ndarray, row_offset: int = 0, dedupe: bool = True) -> Sites:
        """Sites in ``codes`` ``(N, L)`` uint8 (rows numbered from ``row_offset``).

        With ``dedupe`` (the default) a motif matching one position on both strands is reported
        once (:func:`dedupe_strands`); without it every strand's match is kept, as FIMO reports
        them. Sorted by row, start, motif index, strand.
        """
        codes = np.asarray(codes)
        if codes.ndim != 2:
            raise ValueError(f"codes must be (N, L), got shape {codes.shape}")
        on_cpu = self._device().type == "cpu"
        # On the CPU the threads take chunks of _CPU_CHUNK rows from a shared queue, so a batch
        # holds many chunks per thread (a thread slowed by other processes holds up no one).
        step = max(self.batch_size, 16 * _CPU_CHUNK * (self.threads or default_threads())) if on_cpu \
            else self.batch_size
        parts = []
        for lo in range(0, codes.shape[0], step):
            batch = codes[lo:lo + step]
            parts.append(self._scan_batch_cpu(batch, row_offset + lo) if on_cpu
                         else self._scan_batch(batch, row_offset + lo))
        sites = Sites.concat(parts)
        if dedupe:
            sites = dedupe_strands(sites)
        order = np.lexsort((sites.strand, sites.motif, sites.start, sites.row))
        return sites.take(order)

    def _scan_batch_cpu(self, codes: np.ndarray, row_offset: int) -> Sites:
        tables, filter_motif, filter_strand = self._kmer_tables()
        if codes.shape[0] == 0 or codes.shape[1] == 0 or not filter_motif.size:
            return Sites.empty()
        threads = self.threads or default_threads()
        rows, filters, starts, scaled = scan_codes(tables, np.minimum(codes, N_CODE).astype(np.uint8, copy=False),
                                                   threads=threads, chunk=_CPU_CHUNK)
        return self._make_sites(filter_motif[filters], filter_strand[filters], rows + row_offset, starts, scaled)

    def _scan_batch(self, codes: np.ndarray, row_offset: int) -> Sites:
        import torch

        device = self._device()
        n, length = codes.shape
        if n == 0 or length == 0:
            return Sites.empty()
        pad = self.max_width - 1
        padded = np.full((n, length + pad), N_CODE, dtype=np.uint8)
        padded[:, :length] = np.minimum(codes, N_CODE)
        # Number of non-ACGT codes before each position: a window [i, i+w) is scorable iff
        # n_before[:, i+w] == n_before[:, i].
        n_before = np.zeros((n, length + pad + 1), dtype=np.int32)
        np.cumsum(padded == N_CODE, axis=1, out=n_before[:, 1:])
        x = torch.from_numpy(padded).to(device)
        channels = torch.arange(4, device=device, dtype=x.dtype).view(1, 4, 1)
        onehot = (x.unsqueeze(1) == channels).to(torch.float32)  # code 4 -> all-zero column
        found = []
        with _exact_float32(device):
            for group, weight, kmin in zip(self._groups, self._weights, self._kmins):
                span = length + group.width - 1
                out = torch.nn.functional.conv1d(onehot[:, :, :span], weight)  # (n, G, length)
                hit = out >= kmin.view(1, -1, 1)
                if not bool(hit.any()):
                    continue
                b, g, pos = hit.nonzero(as_tuple=True)
                scaled = out[b, g, pos].round().to(torch.int64)
                b, g, pos, scaled = (t.cpu().numpy() for t in (b, g, pos, scaled))
                end = pos + group.widths[g]
                ok = (end <= length) & (n_before[b, end] == n_before[b, pos])
                b, g, pos, scaled = b[ok], g[ok], pos[ok], scaled[ok]
                if b.size:
                    found.append(self._make_sites(group.motif[g], group.strand[g], b + row_offset, pos, scaled))
        return Sites.concat(found)

    def _site_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per filter (``motif * 2 + strand``): scale, ``w * offset``, and the p-value tails.

        Returns ``(scale, bits_offset, base, tails)``: the p-value of scaled score ``k`` of filter
        ``f`` is ``tails[base[f] + k]`` for every reportable ``k`` (from the filter's smallest
        significant score to its maximum), so sites get their p-values without a loop over motifs.
        """
        if self._sites_lookup is None:
            n = 2 * len(self.pwms)
            scale = np.ones(n)
            bits_offset = np.zeros(n)
            base = np.zeros(n, dtype=np.int64)
            tails, used = [], 0
            for i, pair in enumerate(self.pwms):
                for s, pwm in enumerate(pair):
                    f = 2 * i + s
                    scale[f], bits_offset[f] = pwm.scale, pwm.width * pwm.offset
                    kmin = pwm.min_significant_score(self.threshold)
                    if kmin is None:
                        continue
                    tail = pwm.pvalues[kmin:pwm.max_score + 1]
                    tails.append(tail)
                    base[f] = used - kmin
                    used += tail.size
            flat = np.concatenate(tails) if tails else np.zeros(0)
            self._sites_lookup = (scale, bits_offset, base, flat)
        return self._sites_lookup

    def _make_sites(self, motif: np.ndarray, strand: np.ndarray, rows, pos, scaled) -> Sites:
        """Sites from windows (motif index, strand, row, start, scaled score), with score and p-value."""
        motif = np.asarray(motif, dtype=np.int32)
        strand = np.asarray(strand, dtype=np.int8)
        scaled = np.asarray(scaled, dtype=np.int64)
        scale, bits_offset, base, tails = self._site_tables()
        key = motif.astype(np.int64) * 2 + strand
        score = round_significant(scaled / scale[key] + bits_offset[key])
        pvalue = tails[base[key] + scaled] if len(key) else np.zeros(0)
        keep = (pvalue > 0) & (pvalue < self.threshold)
        return Sites(np.asarray(rows, dtype=np.int64)[keep], np.asarray(pos, dtype=np.int64)[keep], motif[keep],
                     strand[keep], scaled.astype(np.int32)[keep], np.atleast_1d(score)[keep], pvalue[keep])

    # ------------------------------------------------------------------ convenience
    def iter_tables(self, chunks: Iterable[SequenceChunk]) -> Iterator[pd.DataFrame]:
        """Scan chunks and yield one site table (``SITE_COLUMNS``) per chunk."""
        for chunk in chunks:
            sites = self.scan(chunk.codes)
            yield sites_frame(sites, chunk, self.motifs)

    def scan_table(self, codes: np.ndarray, names: Sequence[str] | None = None) -> pd.DataFrame:
        """Scan a ``(N, L)`` code array and return the site table (no genomic coordinates)."""
        codes = np.asarray(codes, dtype=np.uint8)
        n = codes.shape[0]
        meta = pd.DataFrame({
            "region": list(names) if names is not None else [f"seq{i}" for i in range(n)],
            "region_index": np.arange(n), "chrom": "", "start": -1, "end": -1, "strand": "+",
            "length": codes.shape[1],
        })
        return next(self.iter_tables([SequenceChunk(codes, meta)]))

    def describe(self) -> dict:
        """Parameters and counts, for manifests."""
        return {
            "motifs": len(self.motifs),
            "weak_motifs": len(self.weak_motifs),
            "background": [float(x) for x in self.background],
            "threshold": self.threshold,
            "pseudocount": self.pseudocount,
            "score_range": self.score_range,
        }


def dedupe_strands(sites: Sites) -> Sites:
    """Keep one site per (row, motif, start): smaller p-value, then higher score, then ``+``."""
    if len(sites) == 0:
        return sites
    order = np.lexsort((sites.strand, -sites.score, sites.pvalue, sites.start, sites.motif, sites.row))
    s = sites.take(order)
    first = np.ones(len(s), dtype=bool)
    first[1:] = (s.row[1:] != s.row[:-1]) | (s.motif[1:] != s.motif[:-1]) | (s.start[1:] != s.start[:-1])
    return s.take(np.flatnonzero(first))


def site_sequences(codes: np.ndarray, rows: np.ndarray, starts: np.ndarray, widths: np.ndarray,
                   strands: np.ndarray) -> np.ndarray:
    """Matched sequences (in the motif's orientation: reverse complement on ``-``), object array."""
    out = np.empty(len(rows), dtype=object)
    for w in np.unique(widths):
        sel = np.flatnonzero(widths == w)
        window = codes[rows[sel, None], starts[sel, None] + np.arange(w)[None, :]]
        minus = strands[sel] == 1
        window[minus] = COMPLEMENT_CODE[window[minus]][:, ::-1]
        text = DECODE_TABLE[np.minimum(window, N_CODE)]
        out[sel] = text.view(f"S{w}").ravel().astype(str)
    return out


def sites_frame(sites: Sites, chunk: SequenceChunk, motifs: Sequence[Motif]) -> pd.DataFrame:
    """The site table (``SITE_COLUMNS``) of sites found in ``chunk`` (rows index the chunk)."""
    meta = chunk.meta
    rows = sites.row
    widths = np.array([m.width for m in motifs], dtype=np.int64)[sites.motif]
    site_end = sites.start + widths
    region_start = meta["start"].to_numpy(np.int64)[rows]
    region_end = meta["end"].to_numpy(np.int64)[rows]
    has_coord = region_start >= 0
    minus_window = meta["strand"].to_numpy(object)[rows] == "-"
    g_start = np.where(minus_window, region_end - site_end, region_start + sites.start)
    g_end = np.where(minus_window, region_end - sites.start, region_start + site_end)
    frame = pd.DataFrame({
        "region": meta["region"].to_numpy(object)[rows],
        "region_index": meta["region_index"].to_numpy(np.int64)[rows],
        "chrom": meta["chrom"].to_numpy(object)[rows],
        "start": pd.array(np.where(has_coord, g_start, 0), dtype="Int64"),
        "end": pd.array(np.where(has_coord, g_end, 0), dtype="Int64"),
        "site_start": sites.start,
        "site_end": site_end,
        "strand": np.where(sites.strand == 1, "-", "+"),
        "motif_id": np.array([m.motif_id for m in motifs], dtype=object)[sites.motif],
        "tf": np.array([m.name for m in motifs], dtype=object)[sites.motif],
        "score": sites.score,
        "pvalue": sites.pvalue,
        "sequence": site_sequences(chunk.codes, rows, sites.start, widths, sites.strand),
    }, columns=SITE_COLUMNS)
    frame.loc[~has_coord, ["start", "end"]] = pd.NA
    return frame


class _exact_float32:
    """Context: no TF32 in CUDA convolutions (scores must be exact integer sums)."""

    def __init__(self, device):
        self.device = device
        self._ctx = None

    def __enter__(self):
        import torch

        if self.device.type == "cuda":
            self._ctx = torch.backends.cudnn.flags(enabled=True, allow_tf32=False)
            self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            self._ctx.__exit__(*exc)
        return False
