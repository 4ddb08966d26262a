"""Position weight matrices with FIMO's log-odds scores and exact p-values.

The contract (every number below is what FIMO of the MEME suite does, read off its source:
``motif.c:apply_pseudocount_to_motif``, ``pssm.c:build_motif_pssm``, ``scale_score_matrix``,
``get_pdf_table``, ``get_pv_lookup``, ``fimo.c:fimo_score_site``):

1. **Pseudocount** (FIMO's ``--motif-pseudo``, default 0.1), applied to the letter frequencies of
   each motif column with the background ``b`` that is used for scoring::

       f'[i, a] = (f[i, a] * n + pseudocount * b[a]) / (n + pseudocount)

   ``n`` is the motif's site count: for a MEME file its ``nsites=`` truncated to an integer as FIMO
   does (20 when absent, FIMO's default); for a count matrix such as JASPAR's, each column's own
   count total, which makes ``f * n`` the raw counts (JASPAR's MEME downloads state one ``nsites``
   per matrix; where a matrix's column totals differ, which they do by a few counts in some JASPAR
   matrices, the frequencies differ from FIMO's on that file by far less than the pseudocount).
2. **Log-odds** in bits: ``s[i, a] = log2(f'[i, a] / b[a])``.
3. **Integer scaling** so that every column score lies in ``[0, range]`` (``range`` = 1000, FIMO's
   ``PSSM_RANGE``)::

       offset = floor(min s);  scale = floor(range / (max s - offset))
       S[i, a] = round_half_up((s[i, a] - offset) * scale)

   A window's scaled score is the sum of its ``w`` column entries, an integer in ``[0, w*range]``;
   its reported log-odds score is ``S / scale + w * offset`` (bits).
4. **P-values**: the exact distribution of the scaled score of a random ``w``-mer drawn from the
   0-order background, by dynamic programming over the integer scores
   (``pdf_{i+1}[k + S[i, a]] += pdf_i[k] * b[a]``); ``pvalue[k] = P(score >= k)``. P-values are
   rounded to 10 significant digits like FIMO's. They are exact for the scaled scores; against the
   unscaled log-odds score they differ only by the rounding of the matrix entries (about 0.005 bit
   per column; see :func:`exact_pvalue` for the unscaled reference used in the tests).
5. **Reverse strand**: the motif's reverse complement (pseudocounted frequencies, rows reversed,
   A<->T and C<->G swapped) gets its own scaled matrix and p-value table, exactly as FIMO builds a
   second PSSM; it is then scored on the forward sequence. With a strand-symmetric background the
   two strands share their scale, offset and p-values.

The best possible p-value of a motif is ``pvalue[max score] = prod_i max_a b[a]`` restricted to the
best letters, always > 0 because backgrounds are validated to be strictly positive; a p-value of 0
cannot arise.

Backgrounds (:func:`resolve_background`): ``uniform`` (the default of chromtransfer, and what the
JASPAR MEME downloads declare), ``nrdb`` (FIMO's own command-line default when no ``--bfile`` is
given: the non-redundant database frequencies A 0.281774, C 0.222020, G 0.228876, T 0.267330), or an
explicit ``A,C,G,T`` list; :func:`background_from_codes` measures a set of sequences.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = [
    "DEFAULT_PSEUDOCOUNT", "DEFAULT_RANGE", "DEFAULT_SITE_COUNT", "NRDB_BACKGROUND", "UNIFORM_BACKGROUND",
    "Motif", "ScaledPWM", "apply_pseudocount", "background_from_codes", "build_pwm", "build_pwm_pair",
    "exact_pvalue", "log_odds", "pvalue_table", "resolve_background", "reverse_complement_frequencies",
    "round_significant", "scale_log_odds",
]

DEFAULT_PSEUDOCOUNT = 0.1  # FIMO --motif-pseudo
DEFAULT_RANGE = 1000  # FIMO PSSM_RANGE (pssm.h)
DEFAULT_SITE_COUNT = 20  # MEME motif.c DEFAULT_SITE_COUNT, used when a file gives no nsites
UNIFORM_BACKGROUND = np.full(4, 0.25)
NRDB_BACKGROUND = np.array([0.281774, 0.222020, 0.228876, 0.267330])
#: Smallest accepted background frequency: keeps every p-value far above float64 underflow.
MIN_BACKGROUND = 1e-6


@dataclass
class Motif:
    """A DNA motif: letter frequencies per position, channel order A, C, G, T.

    Attributes:
        motif_id: matrix identifier (e.g. ``MA0114.4``).
        name: transcription-factor name (e.g. ``HNF4A``); the motif id when the source has none.
        frequencies: ``(w, 4)`` float64, each row sums to 1.
        sites: ``(w,)`` float64 site count per column (``n`` of the pseudocount formula).
        source: where the motif came from (``JASPAR2022``, a file path).
        families: the TF structural families JASPAR annotates (``("C4-GATA-related",)``; one per
            partner of a dimer), ``()`` where the source gives none.
    """

    motif_id: str
    name: str
    frequencies: np.ndarray
    sites: np.ndarray
    source: str = ""
    families: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        return int(self.frequencies.shape[0])

    @classmethod
    def from_counts(cls, motif_id: str, name: str, counts, source: str = "",
                    families: tuple[str, ...] = ()) -> "Motif":
        """A motif from a ``(w, 4)`` count matrix (rows = positions, A C G T)."""
        counts = np.asarray(counts, dtype=np.float64)
        _check_matrix(counts, motif_id)
        totals = counts.sum(axis=1)
        if np.any(totals <= 0):
            raise ValueError(f"motif {motif_id}: a column has no counts")
        return cls(motif_id, name or motif_id, counts / totals[:, None], totals, source, tuple(families))

    @classmethod
    def from_frequencies(cls, motif_id: str, name: str, frequencies, sites: float | None = None,
                         source: str = "") -> "Motif":
        """A motif from a ``(w, 4)`` probability matrix; rows are renormalised to sum to 1."""
        freqs = np.asarray(frequencies, dtype=np.float64)
        _check_matrix(freqs, motif_id)
        totals = freqs.sum(axis=1)
        if np.any(totals <= 0):
            raise ValueError(f"motif {motif_id}: a row sums to 0")
        # FIMO keeps the site count in an int: nsites= 20.7 counts as 20 (motif.c).
        n = float(int(sites)) if sites is not None and int(sites) > 0 else float(DEFAULT_SITE_COUNT)
        return cls(motif_id, name or motif_id, freqs / totals[:, None], np.full(freqs.shape[0], n), source)


def _check_matrix(matrix: np.ndarray, motif_id: str) -> None:
    if matrix.ndim != 2 or matrix.shape[1] != 4 or matrix.shape[0] < 1:
        raise ValueError(f"motif {motif_id}: expected a (width, 4) matrix, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
        raise ValueError(f"motif {motif_id}: negative or non-finite entries")


@dataclass
class ScaledPWM:
    """One strand of a motif, ready for scanning.

    Attributes:
        motif: the source motif.
        strand: ``'+'`` (the motif) or ``'-'`` (its reverse complement).
        log_odds: ``(w, 4)`` float64 log2-odds scores (bits).
        matrix: ``(w, 4)`` int32 scaled scores, each in ``[0, range]``.
        scale, offset: the scaling (score_bits = S / scale + w * offset).
        pvalues: ``(w*range + 1,)`` float64, ``pvalues[k] = P(S >= k)`` under the background.
        max_score: the largest reachable scaled score.
    """

    motif: Motif
    strand: str
    log_odds: np.ndarray
    matrix: np.ndarray
    scale: float
    offset: float
    pvalues: np.ndarray
    max_score: int = field(init=False)

    def __post_init__(self) -> None:
        self.max_score = int(self.matrix.max(axis=1).sum())

    @property
    def width(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def best_pvalue(self) -> float:
        """The smallest p-value any sequence can reach."""
        return float(self.pvalues[self.max_score])

    def min_significant_score(self, threshold: float) -> int | None:
        """Smallest scaled score with p-value < ``threshold``; ``None`` when no score reaches it."""
        below = np.flatnonzero(self.pvalues[: self.max_score + 1] < threshold)
        return int(below[0]) if below.size else None

    def raw_score(self, scaled):
        """Log-odds score in bits of scaled score(s) ``scaled``, rounded to 10 significant digits."""
        return round_significant(np.asarray(scaled, dtype=np.float64) / self.scale + self.width * self.offset)

    def score_windows(self, codes: np.ndarray) -> np.ndarray:
        """Scaled scores of ``(n, w)`` code windows (reference implementation; no N allowed)."""
        codes = np.asarray(codes)
        return self.matrix[np.arange(self.width)[None, :], codes].sum(axis=1)


# ----------------------------------------------------------------------------- backgrounds
def resolve_background(spec: str | Sequence[float] | np.ndarray | None) -> np.ndarray:
    """A validated A,C,G,T background from ``'uniform'``, ``'nrdb'``, ``'A,C,G,T'`` text or numbers.

    Frequencies are renormalised to sum to 1; each must be at least 1e-6. Raises ``ValueError``
    with the reason otherwise.
    """
    if spec is None:
        return UNIFORM_BACKGROUND.copy()
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "uniform":
            return UNIFORM_BACKGROUND.copy()
        if text == "nrdb":
            return NRDB_BACKGROUND / NRDB_BACKGROUND.sum()
        parts = [p for p in text.replace(";", ",").split(",") if p.strip()]
        try:
            values = np.array([float(p) for p in parts], dtype=np.float64)
        except ValueError:
            raise ValueError(f"background {spec!r} is not 'uniform', 'nrdb' or four numbers A,C,G,T") from None
    else:
        values = np.asarray(spec, dtype=np.float64).ravel()
    if values.shape != (4,) or not np.all(np.isfinite(values)):
        raise ValueError(f"background needs four finite frequencies A,C,G,T, got {spec!r}")
    total = values.sum()
    if total <= 0:
        raise ValueError(f"background {spec!r} sums to {total}")
    values = values / total
    if np.any(values < MIN_BACKGROUND):
        raise ValueError(f"background {spec!r}: every frequency must be at least {MIN_BACKGROUND:g}")
    return values


def background_from_codes(codes_iter, symmetric: bool = True, pseudocount: float = 1.0) -> np.ndarray:
    """Base composition of code arrays (an array or an iterable of arrays; code 4 ignored).

    With ``symmetric`` the counts of each base and its complement are pooled (both strands are
    scanned). ``pseudocount`` is added to every base count. Returns ``(4,)`` float64.
    """
    counts = np.zeros(5, dtype=np.int64)
    if isinstance(codes_iter, np.ndarray):
        codes_iter = [codes_iter]
    for block in codes_iter:
        counts += np.bincount(np.minimum(np.asarray(block, dtype=np.uint8).ravel(), 4), minlength=5)[:5]
    acgt = counts[:4].astype(np.float64)
    if symmetric:
        acgt = (acgt + acgt[::-1]) / 2.0
    return resolve_background(acgt + pseudocount)


# ----------------------------------------------------------------------------- matrices
def apply_pseudocount(motif: Motif, background: np.ndarray, pseudocount: float = DEFAULT_PSEUDOCOUNT) -> np.ndarray:
    """FIMO's pseudocounted frequencies ``(f*n + pseudocount*b) / (n + pseudocount)``, ``(w, 4)``."""
    if pseudocount < 0:
        raise ValueError("pseudocount must be >= 0")
    n = motif.sites[:, None]
    freqs = (motif.frequencies * n + pseudocount * background[None, :]) / (n + pseudocount)
    return freqs


def reverse_complement_frequencies(freqs: np.ndarray) -> np.ndarray:
    """Reverse complement of a ``(w, 4)`` A,C,G,T matrix: rows reversed, columns A<->T, C<->G."""
    return np.ascontiguousarray(np.asarray(freqs)[::-1, ::-1])


def log_odds(freqs: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``log2(f / b)`` in bits, ``(w, 4)``; zero frequencies need a pseudocount (raises otherwise)."""
    if np.any(freqs <= 0):
        raise ValueError("a motif frequency is 0: use a pseudocount > 0")
    return np.log2(freqs / background[None, :])


def _round_half_up(x: np.ndarray) -> np.ndarray:
    # MEME's nint() for the non-negative values met here.
    return np.floor(x + 0.5)


def scale_log_odds(scores: np.ndarray, range_: int = DEFAULT_RANGE) -> tuple[np.ndarray, float, float]:
    """FIMO's integer scaling: returns ``(matrix int32 (w,4), scale, offset)``."""
    small = float(scores.min())
    large = float(scores.max())
    if large == small:
        small = large - 1.0
    offset = math.floor(small)
    scale = math.floor(range_ / (large - offset))
    if scale < 1:
        raise ValueError(f"score range {large - offset:.3g} bits is wider than range={range_}")
    matrix = _round_half_up((scores - offset) * scale).astype(np.int64)
    return matrix.astype(np.int32), float(scale), float(offset)


def pvalue_table(matrix: np.ndarray, background: np.ndarray, range_: int | None = None) -> np.ndarray:
    """``P(score >= k)`` for k = 0..len-1 of integer score matrix ``(w, 4)`` under ``background``.

    Exact dynamic programming over the integer scores (FIMO's ``get_pdf_table``/``get_pv_lookup``).
    The table has ``w * range_ + 1`` entries (``range_`` defaults to the matrix maximum), rounded to
    10 significant digits, clipped to at most 1.
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    if np.any(matrix < 0):
        raise ValueError("scaled scores must be non-negative")
    w = matrix.shape[0]
    if range_ is None:
        range_ = int(matrix.max()) if matrix.size else 0
    size = w * int(range_) + 1
    pdf = np.zeros(size, dtype=np.float64)
    pdf[0] = 1.0
    top = 0
    for i in range(w):
        new = np.zeros(size, dtype=np.float64)
        for a in range(4):
            s = int(matrix[i, a])
            new[s:s + top + 1] += pdf[: top + 1] * background[a]
        top += int(matrix[i].max())
        pdf = new
    pv = np.cumsum(pdf[::-1])[::-1]
    np.minimum(pv, 1.0, out=pv)
    return round_significant(pv)


def round_significant(x, digits: int = 10):
    """Round to ``digits`` significant digits (FIMO's ``RND``); zeros stay zero."""
    arr = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(arr == 0, 0, np.floor(np.log10(np.abs(np.where(arr == 0, 1, arr)))))
    factor = 10.0 ** (digits - 1 - mag)
    out = np.round(arr * factor) / factor
    return out if out.ndim else float(out)


def build_pwm(motif: Motif, background: np.ndarray, pseudocount: float = DEFAULT_PSEUDOCOUNT,
              range_: int = DEFAULT_RANGE, strand: str = "+") -> ScaledPWM:
    """The scaled PWM and p-value table of ``motif`` (``strand='-'``: of its reverse complement)."""
    background = resolve_background(background)
    freqs = apply_pseudocount(motif, background, pseudocount)
    if strand == "-":
        freqs = reverse_complement_frequencies(freqs)
    elif strand != "+":
        raise ValueError("strand must be '+' or '-'")
    scores = log_odds(freqs, background)
    matrix, scale, offset = scale_log_odds(scores, range_)
    pvalues = pvalue_table(matrix, background, range_)
    return ScaledPWM(motif, strand, scores, matrix, scale, offset, pvalues)


def build_pwm_pair(motif: Motif, background: np.ndarray, pseudocount: float = DEFAULT_PSEUDOCOUNT,
                   range_: int = DEFAULT_RANGE) -> tuple[ScaledPWM, ScaledPWM]:
    """Forward and reverse-complement PWMs of ``motif``."""
    return (build_pwm(motif, background, pseudocount, range_, "+"),
            build_pwm(motif, background, pseudocount, range_, "-"))


# ----------------------------------------------------------------------------- exact reference
def exact_pvalue(scores: np.ndarray, background: np.ndarray, thresholds, max_half: int = 10) -> np.ndarray:
    """Exact ``P(score >= t)`` of a real-valued ``(w, 4)`` score matrix, by enumeration.

    The motif is split in two halves; each half's ``4**(w/2)`` words are enumerated with their
    scores and probabilities, one half is sorted, and for every word of the other half the
    probability mass of partners reaching the threshold is read from a cumulative sum. Exact up to
    float rounding; for widths up to ``2 * max_half``. A reference for tests and benchmarks.
    """
    scores = np.asarray(scores, dtype=np.float64)
    w = scores.shape[0]
    if w > 2 * max_half:
        raise ValueError(f"width {w} is too wide for exact enumeration (max {2 * max_half})")
    thresholds = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))

    def enumerate_half(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = np.zeros(1)
        p = np.ones(1)
        for row in rows:
            s = (s[:, None] + row[None, :]).ravel()
            p = (p[:, None] * background[None, :]).ravel()
        return s, p

    left_s, left_p = enumerate_half(scores[: w // 2])
    right_s, right_p = enumerate_half(scores[w // 2:])
    order = np.argsort(right_s, kind="stable")
    right_s = right_s[order]
    tail = np.cumsum(right_p[order][::-1])[::-1]  # tail[j] = P(right >= right_s[j])
    tail = np.append(tail, 0.0)
    out = np.empty(thresholds.shape[0])
    tol = 1e-9
    for k, t in enumerate(thresholds):
        idx = np.searchsorted(right_s, t - left_s - tol, side="left")
        out[k] = float(np.sum(left_p * tail[idx]))
    return out
