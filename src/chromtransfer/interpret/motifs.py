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

Speed: each window's score is a sum of ``w`` integer table entries, computed for all motifs at
once as a 1D convolution of the one-hot sequence with integer-valued filters. Every intermediate
value is an integer below 2**24, so float32 arithmetic is exact and the scores equal the integer
sums bit for bit (on a GPU, TF32 is switched off for the call). Windows holding a non-ACGT code are
recognised from a running count of such codes and dropped. Motifs are grouped by width so that little padding is
convolved; sequences are processed in chunks, so memory stays bounded for any number of sequences.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from ..encoding import COMPLEMENT_CODE, DECODE_TABLE, N_CODE
from .pwm import (DEFAULT_PSEUDOCOUNT, DEFAULT_RANGE, Motif, ScaledPWM, build_pwm_pair,
                  resolve_background)

__all__ = ["DEFAULT_THRESHOLD", "SITE_COLUMNS", "MotifScanner", "SequenceChunk", "Sites",
           "dedupe_strands", "site_sequences", "sites_frame"]

DEFAULT_THRESHOLD = 1e-5
SITE_COLUMNS = ["region", "region_index", "chrom", "start", "end", "site_start", "site_end", "strand",
                "motif_id", "tf", "score", "pvalue", "sequence"]
#: Scores are sums of at most w * range integers; below 2**24 float32 sums are exact.
_MAX_EXACT = float(2 ** 24)


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
        device: torch device for the convolution (``'cpu'``, ``'cuda'``, ``'auto'``).
        batch_size: sequences per convolution batch.
        group_size: filters (motif strands) per convolution.
    """

    motifs: list[Motif]
    background: object = "uniform"
    threshold: float = DEFAULT_THRESHOLD
    pseudocount: float = DEFAULT_PSEUDOCOUNT
    score_range: int = DEFAULT_RANGE
    device: str = "cpu"
    batch_size: int = 256
    group_size: int = 256
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
        parts = []
        for lo in range(0, codes.shape[0], self.batch_size):
            parts.append(self._scan_batch(codes[lo:lo + self.batch_size], row_offset + lo))
        sites = Sites.concat(parts)
        if dedupe:
            sites = dedupe_strands(sites)
        order = np.lexsort((sites.strand, sites.motif, sites.start, sites.row))
        return sites.take(order)

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
                    found.append(self._make_sites(group, b + row_offset, g, pos, scaled))
        return Sites.concat(found)

    def _make_sites(self, group: _FilterGroup, rows, g, pos, scaled) -> Sites:
        motif = group.motif[g]
        strand = group.strand[g]
        score = np.empty(len(g), dtype=np.float64)
        pvalue = np.empty(len(g), dtype=np.float64)
        for key in np.unique(g):
            sel = g == key
            pwm = self.pwms[int(group.motif[key])][int(group.strand[key])]
            score[sel] = pwm.raw_score(scaled[sel])
            pvalue[sel] = pwm.pvalues[scaled[sel]]
        keep = (pvalue > 0) & (pvalue < self.threshold)
        return Sites(rows.astype(np.int64)[keep], pos.astype(np.int64)[keep], motif[keep], strand[keep],
                     scaled.astype(np.int32)[keep], score[keep], pvalue[keep])

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
