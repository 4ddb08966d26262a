"""De novo motifs: TF-MoDISco patterns from per-base contributions, matched to JASPAR with TOMTOM.

The steps (:func:`discover_motifs`):

1. **Contributions** (:func:`contribution_tracks`): TF-MoDISco reads the one-hot sequences and
   the *hypothetical* contributions ``(N, L, 4)``, the score each base would get at each
   position; the actual contributions are their value at the present base. They come from the
   attributions as they are:

   * ``Attributions.hypothetical`` where the method gives it (DeepLIFT/SHAP multipliers, or
     gradients), used as it is;
   * else ISM (``Attributions.ism``, the change of the output when each base is put in place):
     mean-centred per position, ``h[b] = ism[b] - mean_b ism``, so the present base scores how much
     better it does than the average base (the usual reading of ISM as contributions);
   * else the per-base ``scores`` (gradient x input of the present base only): ``h = scores x
     one-hot``. The other three bases are unknown and set to 0, so the hypothetical track equals
     the actual one: seqlets are found and clustered on the present bases only. This is the
     documented approximation for attribution folders that kept no gradients.

   ``window`` keeps the central ``W`` bases of every sequence (seqlet coordinates are within
   that window). N bases have an all-zero one-hot row and contribute nothing.
2. **Patterns** (:func:`run_modisco`): modisco-lite's ``TFMoDISco`` (seqlets called against a
   null of the contribution scores, clustered by Leiden, merged and trimmed), with its settings
   scaled to short windows (:func:`modisco_settings`): modisco's defaults (a 21 bp seqlet core
   with 10 bp flanks, extended by 10 bp) assume windows of 100 bp and more; below that they
   leave almost no room for a seqlet and return nothing (tfmodisco-lite issue #68), so the core,
   the flanks and the extension shrink with the window. Patterns of positive contributions
   (``pos_*``) and of negative ones (``neg_*``) are kept apart, each ranked by its seqlet count.
3. **Matches** (:func:`match_patterns`): each pattern's position frequency matrix, trimmed to
   the positions whose contribution reaches 30 % of its largest (modisco's report does the same),
   is compared with every motif of the database (default JASPAR 2022 CORE vertebrates) by
   memelite's TOMTOM, in process (no external binary), both strands. ``q`` is the
   Benjamini-Hochberg adjustment of one pattern's p-values over the whole database. A match
   carries the motif's JASPAR TF family (``family``: its partners' families joined by ``/``).
4. **Comparison** (:func:`compare_patterns`): the patterns of two runs (fine-tuned vs pre-trained
   model, cell line A vs B) matched to each other by TOMTOM on their *cores*
   (:attr:`Pattern.core_ppm`: the trimmed pattern cut further to the span from its first to its
   last position of at least :data:`CORE_BITS` bits of information); a pattern is shared when its
   best match in the other run has ``q < max_q``, else it is found in one run only. Without the
   cut, two patterns whose long, weakly informative AT-rich flanks line up match each other with
   q < 1e-8 although their cores differ (a CEBPA and a GATA pattern of the demo); with it such
   pairs get q > 0.5, and patterns of one TF still match at q < 1e-7. TOMTOM takes the
   background of its p-values from the target columns, so the other run's patterns are compared
   together with the whole motif database as targets (a dozen patterns alone give unstable
   p-values) and the adjustment runs over the other run's patterns only.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import ChromTransferError, InputError
from .attributions import Attributions
from .pwm import Motif

__all__ = ["CORE_BITS", "DiscoveryResult", "MAX_Q", "Pattern", "TRIM_FRACTION", "compare_patterns", "contribution_tracks",
           "discover_motifs", "match_patterns", "modisco_settings", "planted_in_top", "run_modisco"]

#: A match is significant below this TOMTOM q-value.
MAX_Q = 0.05
#: Pattern positions whose summed absolute contribution reaches this share of the largest are
#: kept for matching (modisco-lite's report uses 0.3).
TRIM_FRACTION = 0.3
#: A pattern's core (for comparing runs) spans its positions of at least this information (bits).
CORE_BITS = 0.5
#: The shortest window TF-MoDISco is run on (a seqlet core of 5 bp with 2 bp flanks, twice).
MIN_WINDOW = 20
#: Matches listed per pattern whatever their q-value (more are listed while q < ``MAX_Q``).
TOP_MATCHES = 3
_FULL_WINDOW = 100  # modisco-lite's defaults are kept from this window length up


@dataclass
class Pattern:
    """One TF-MoDISco pattern.

    Attributes:
        name: ``pos_K`` (positive contributions) or ``neg_K``, ``K`` by decreasing seqlet count.
        sign: +1 or -1, the metacluster.
        seqlets: number of seqlets in the pattern.
        ppm: ``(w, 4)`` position frequency matrix (A, C, G, T), the whole pattern.
        cwm: ``(w, 4)`` contribution weight matrix: mean actual contribution per base.
        hcwm: ``(w, 4)`` mean hypothetical contribution per base.
        trim: ``(start, end)`` of the positions used for matching (:data:`TRIM_FRACTION`).
        sites: ``(seqlets, 4)`` int64 rows ``sequence, start, end, reverse`` of each seqlet
            (coordinates in the window given to TF-MoDISco).
    """

    name: str
    sign: int
    seqlets: int
    ppm: np.ndarray
    cwm: np.ndarray
    hcwm: np.ndarray
    trim: tuple[int, int]
    sites: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))

    @property
    def trimmed_ppm(self) -> np.ndarray:
        """``(w', 4)`` the frequencies of the positions kept for matching."""
        return self.ppm[self.trim[0]:self.trim[1]]

    @property
    def core_ppm(self) -> np.ndarray:
        """``(w'', 4)``: :attr:`trimmed_ppm` from its first to its last position carrying at least
        :data:`CORE_BITS` bits (all of it when no position does)."""
        ppm = self.trimmed_ppm
        bits = 2.0 + (np.clip(ppm, 1e-12, 1.0) * np.log2(np.clip(ppm, 1e-12, 1.0))).sum(axis=1)
        informative = np.flatnonzero(bits >= CORE_BITS)
        return ppm if informative.size == 0 else ppm[informative.min():informative.max() + 1]

    @property
    def consensus(self) -> str:
        """The trimmed pattern as IUPAC-free text: the base above 1/2, else ``n``."""
        return _consensus(self.trimmed_ppm)

    @property
    def core_consensus(self) -> str:
        """:attr:`core_ppm` as text (as :attr:`consensus`)."""
        return _consensus(self.core_ppm)


def _consensus(ppm: np.ndarray) -> str:
    return "".join("ACGT"[int(j)] if ppm[i, j] > 0.5 else "n" for i, j in enumerate(ppm.argmax(axis=1)))


@dataclass
class DiscoveryResult:
    """What :func:`discover_motifs` found.

    Attributes:
        patterns: positive patterns first, each group by decreasing seqlet count.
        matches: one row per (pattern, database motif) listed: ``pattern, rank, motif_id, tf,
            family, p, q, offset, strand`` (the best :data:`TOP_MATCHES` of each pattern, and
            every further one with ``q < MAX_Q``).
        source: where the hypothetical contributions came from (:func:`contribution_tracks`).
        settings: the TF-MoDISco settings used.
        sequences, length: ``N`` and the window length ``L`` given to TF-MoDISco.
        seconds: time spent in ``modisco`` and ``tomtom``.
        method: the attribution method of the input.
        note: why no pattern was found, where none was.
    """

    patterns: list[Pattern]
    matches: pd.DataFrame
    source: str
    settings: dict[str, Any]
    sequences: int
    length: int
    seconds: dict[str, float]
    method: str = ""
    note: str = ""

    def table(self) -> pd.DataFrame:
        """One row per pattern: ``pattern, sign, seqlets, width, consensus, best_match, tf, q,
        family`` (the best match's; empty where the pattern matches nothing)."""
        rows = []
        for pattern in self.patterns:
            best = self.best_match(pattern.name)
            rows.append({"pattern": pattern.name, "sign": pattern.sign, "seqlets": pattern.seqlets,
                         "width": pattern.trim[1] - pattern.trim[0], "consensus": pattern.consensus,
                         "best_match": best.get("motif_id", ""), "tf": best.get("tf", ""),
                         "q": best.get("q", np.nan), "family": best.get("family", "")})
        columns = ["pattern", "sign", "seqlets", "width", "consensus", "best_match", "tf", "q", "family"]
        return pd.DataFrame(rows, columns=columns)

    def best_match(self, pattern: str) -> dict[str, Any]:
        """The pattern's best database match (lowest p) as a dict, ``{}`` where none."""
        rows = self.matches[(self.matches["pattern"] == pattern) & (self.matches["rank"] == 1)]
        return rows.iloc[0].to_dict() if len(rows) else {}

    def de_novo(self) -> list[dict[str, Any]]:
        """The summary's ``de_novo`` list: ``{pattern, seqlets, best_match, q, family}`` per pattern
        (``best_match`` as ``MOTIF_ID TF``)."""
        out = []
        for row in self.table().itertuples():
            q = float(row.q) if np.isfinite(row.q) else None
            out.append({"pattern": row.pattern, "seqlets": int(row.seqlets),
                        "best_match": f"{row.best_match} {row.tf}".strip(), "q": q, "family": row.family})
        return out


# ----------------------------------------------------------------------------- contributions
def one_hot(codes: np.ndarray) -> np.ndarray:
    """``(N, L)`` base codes -> ``(N, L, 4)`` float32 one-hot (N bases all zero)."""
    codes = np.asarray(codes)
    out = np.zeros((*codes.shape, 4), dtype=np.float32)
    known = codes < 4
    out[known, codes[known].astype(np.int64)] = 1.0
    return out


def contribution_tracks(attributions: Attributions, window: int | None = None
                        ) -> tuple[np.ndarray, np.ndarray, str]:
    """One-hot sequences and hypothetical contributions for TF-MoDISco (module docstring, step 1).

    Returns:
        ``(one_hot, hypothetical, source)``: two ``(N, W, 4)`` float32 arrays (``W`` = ``window``,
        default the whole length ``L``; the central ``W`` bases) and a phrase naming the source.

    Raises:
        InputError: attributions without base codes, or a window outside ``[MIN_WINDOW, L]``.
    """
    where = str(attributions.path or "attributions")
    if attributions.codes is None:
        raise InputError(where, "the attributions hold no sequences (codes)",
                         fix="run 'chromtransfer attribute' again; it saves the sequences")
    length = int(attributions.scores.shape[1])
    window = length if window is None else int(window)
    if not MIN_WINDOW <= window <= length:
        raise InputError(where, f"--window {window} is outside [{MIN_WINDOW}, {length}] (the sequences are "
                         f"{length} bp)", fix=f"give a window of {MIN_WINDOW} to {length} bp")
    sequence = one_hot(attributions.codes)
    if attributions.hypothetical is not None:
        hypothetical = np.asarray(attributions.hypothetical, dtype=np.float32)
        source = f"hypothetical contributions ({attributions.method})"
    elif attributions.ism is not None:
        ism = np.asarray(attributions.ism, dtype=np.float32)
        hypothetical = ism - ism.mean(axis=2, keepdims=True)
        source = "ISM, mean-centred per position"
    else:
        hypothetical = np.asarray(attributions.scores, dtype=np.float32)[:, :, None] * sequence
        source = f"{attributions.method} scores x one-hot (no hypothetical contributions: other bases 0)"
    start = (length - window) // 2
    chosen = slice(start, start + window)
    return (np.ascontiguousarray(sequence[:, chosen]), np.ascontiguousarray(hypothetical[:, chosen]), source)


# ----------------------------------------------------------------------------- TF-MoDISco
def modisco_settings(length: int, max_seqlets: int = 20000, min_seqlets: int = 20, leiden_runs: int = 10
                     ) -> dict[str, Any]:
    """Keyword arguments of ``modiscolite.tfmodisco.TFMoDISco`` for windows of ``length`` bp.

    Args:
        length: window length given to TF-MoDISco.
        max_seqlets: most seqlets clustered per metacluster (modisco's ``max_seqlets_per_metacluster``).
        min_seqlets: the fewest seqlets of a metacluster and of a final pattern.
        leiden_runs: Leiden clusterings per round (modisco's default is 50; 10 give the same
            patterns on a few thousand seqlets at a fifth of the time).

    From :data:`_FULL_WINDOW` bp up modisco's seqlet geometry is kept (21 bp core, 10 bp flanks,
    extended by 10, trimmed to 30); shorter windows scale it down (module docstring, step 2).
    """
    scale = min(1.0, length / _FULL_WINDOW)
    core = max(5, int(round(21 * scale)) | 1)  # odd, as modisco's 21
    flank = max(2, int(round(10 * scale)))
    return {
        "sliding_window_size": core, "flank_size": flank, "initial_flank_to_add": flank,
        "trim_to_window_size": max(core, int(round(30 * scale))), "min_ic_windowsize": min(6, core),
        "max_seqlets_per_metacluster": int(max_seqlets), "min_metacluster_size": int(min_seqlets),
        "final_min_cluster_size": int(min_seqlets), "min_num_to_trim_to": min(30, int(min_seqlets)),
        "n_leiden_runs": int(leiden_runs), "target_seqlet_fdr": 0.05,
    }


def _import_modisco():
    try:
        from modiscolite.tfmodisco import TFMoDISco
    except ImportError as exc:
        raise ChromTransferError(f"modisco-lite is not installed ({exc}); pip install 'chromtransfer[motifs]'") from None
    return TFMoDISco


def _cache_modisco_kernels() -> None:
    """Turn numba's on-disk cache on for modisco-lite's kernels.

    modisco-lite 3.0.0 turns it on only where it can fork children to compile them
    (``modiscolite.precompile.start``); in a process whose threads make forking unsafe (an
    OpenMP numba kernel or TOMTOM ran before, as in a study), every run would compile them again
    (minutes on a loaded 2-core machine). With the cache on, a kernel compiled once is loaded.
    The kernel list is modisco-lite's own (the version is pinned); without it nothing changes."""
    try:
        from modiscolite import precompile
        from numba.core.dispatcher import Dispatcher

        groups = precompile._kernels()
    except Exception:  # pragma: no cover - another modisco-lite layout: its own behaviour
        return
    for group in groups:
        for dispatcher, _ in group:
            if isinstance(dispatcher, Dispatcher):
                try:
                    dispatcher.enable_caching()
                except Exception:  # pragma: no cover - no writable cache location
                    pass


def _pattern(name: str, sign: int, seqlet_set) -> Pattern:
    cwm = np.asarray(seqlet_set.contrib_scores, dtype=np.float64)
    strength = np.abs(cwm).sum(axis=1)
    kept = np.flatnonzero(strength >= TRIM_FRACTION * strength.max()) if strength.max() > 0 else np.arange(len(cwm))
    sites = np.array([[s.example_idx, s.start, s.end, int(bool(s.is_revcomp))] for s in seqlet_set.seqlets],
                     dtype=np.int64).reshape(-1, 4)
    return Pattern(name, sign, len(seqlet_set.seqlets), np.asarray(seqlet_set.sequence, dtype=np.float64), cwm,
                   np.asarray(seqlet_set.hypothetical_contribs, dtype=np.float64),
                   (int(kept.min()), int(kept.max()) + 1), sites)


def run_modisco(sequence: np.ndarray, hypothetical: np.ndarray, settings: dict[str, Any]) -> list[Pattern]:
    """TF-MoDISco on ``(N, W, 4)`` one-hot sequences and hypothetical contributions.

    Returns the patterns, positive first, each group by decreasing seqlet count (``[]`` when
    too few seqlets pass, which modisco reports by returning nothing).
    """
    tfmodisco = _import_modisco()
    if len(sequence) == 0:
        return []
    _cache_modisco_kernels()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty-slice means of seqlet-less windows
        positive, negative = tfmodisco(sequence.astype(np.float32), hypothetical.astype(np.float32), **settings)
    patterns: list[Pattern] = []
    for prefix, sign, found in (("pos", 1, positive), ("neg", -1, negative)):
        ranked = sorted(found or [], key=lambda p: -len(p.seqlets))
        patterns += [_pattern(f"{prefix}_{k}", sign, p) for k, p in enumerate(ranked)]
    return patterns


# ----------------------------------------------------------------------------- TOMTOM
def _tomtom(queries: list[np.ndarray], targets: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """memelite's TOMTOM: ``(len(queries), len(targets))`` p-values, offsets and strands."""
    from memelite import tomtom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the few-targets warning: compare_patterns adds the database
        p, _, offsets, _, strands = tomtom([np.ascontiguousarray(q.T) for q in queries],
                                           [np.ascontiguousarray(t.T) for t in targets])
    return np.asarray(p, dtype=np.float64), np.asarray(offsets), np.asarray(strands)


def _bh(p: np.ndarray) -> np.ndarray:
    from scipy.stats import false_discovery_control

    p = np.clip(np.nan_to_num(np.asarray(p, dtype=np.float64), nan=1.0), 0.0, 1.0)
    return false_discovery_control(p, axis=-1) if p.size else p


MATCH_COLUMNS = ["pattern", "rank", "motif_id", "tf", "family", "p", "q", "offset", "strand"]


def match_patterns(patterns: Sequence[Pattern], motifs: Sequence[Motif], top: int = TOP_MATCHES,
                   max_q: float = MAX_Q) -> pd.DataFrame:
    """TOMTOM matches of every pattern against ``motifs`` (module docstring, step 3).

    Returns:
        Columns :data:`MATCH_COLUMNS`, per pattern its ``top`` best motifs and every further one
        with ``q < max_q``, best first (``rank`` 1 = lowest p). ``strand`` is ``+`` or ``-``.
    """
    if not patterns or not motifs:
        return pd.DataFrame(columns=MATCH_COLUMNS)
    p, offsets, strands = _tomtom([pat.trimmed_ppm for pat in patterns], [m.frequencies for m in motifs])
    q = _bh(p)
    rows = []
    for i, pattern in enumerate(patterns):
        order = np.argsort(p[i], kind="stable")
        for rank, j in enumerate(order, start=1):
            if rank > top and q[i, j] >= max_q:
                break
            motif = motifs[j]
            rows.append({"pattern": pattern.name, "rank": rank, "motif_id": motif.motif_id, "tf": motif.name,
                         "family": "/".join(motif.families), "p": float(p[i, j]), "q": float(q[i, j]),
                         "offset": int(offsets[i, j]), "strand": "-" if int(strands[i, j]) else "+"})
    return pd.DataFrame(rows, columns=MATCH_COLUMNS)


def compare_patterns(patterns_a: Sequence[Pattern], patterns_b: Sequence[Pattern], motifs: Sequence[Motif] = (),
                     max_q: float = MAX_Q, labels: tuple[str, str] = ("a", "b")) -> pd.DataFrame:
    """Patterns of two runs matched to each other (module docstring, step 4).

    Returns:
        One row per pattern of either run: ``run, pattern, seqlets, consensus, best_other, p, q,
        shared`` (``run`` is ``labels[0]`` or ``labels[1]``; ``consensus`` that of the core
        compared; ``best_other`` the other run's most similar pattern, ``shared`` whether its
        ``q < max_q``).
    """
    rows = []
    background = [m.frequencies for m in motifs]
    for label, mine, other in ((labels[0], patterns_a, patterns_b), (labels[1], patterns_b, patterns_a)):
        if not mine:
            continue
        best = np.full(len(mine), -1)
        p_best = np.ones(len(mine))
        q_best = np.ones(len(mine))
        if other:
            p, _, _ = _tomtom([pat.core_ppm for pat in mine], [pat.core_ppm for pat in other] + background)
            p = p[:, :len(other)]
            q = _bh(p)
            best = p.argmin(axis=1)
            p_best, q_best = p[np.arange(len(mine)), best], q[np.arange(len(mine)), best]
        for i, pattern in enumerate(mine):
            rows.append({"run": label, "pattern": pattern.name, "seqlets": pattern.seqlets,
                         "consensus": pattern.core_consensus,
                         "best_other": other[best[i]].name if best[i] >= 0 else "",
                         "p": float(p_best[i]), "q": float(q_best[i]),
                         "shared": bool(best[i] >= 0 and q_best[i] < max_q)})
    columns = ["run", "pattern", "seqlets", "consensus", "best_other", "p", "q", "shared"]
    return pd.DataFrame(rows, columns=columns)


# ----------------------------------------------------------------------------- the whole run
def discover_motifs(attributions: Attributions, motifs: Sequence[Motif] | None = None, *, window: int | None = None,
                    max_seqlets: int = 20000, min_seqlets: int = 20, leiden_runs: int = 10,
                    top: int = TOP_MATCHES, max_q: float = MAX_Q) -> DiscoveryResult:
    """De novo motifs of ``attributions`` matched to ``motifs`` (module docstring).

    Args:
        attributions: any attribution method (hypothetical contributions, ISM, or scores).
        motifs: the database matched against (default: JASPAR 2022 CORE vertebrates).
        window: central bases given to TF-MoDISco (default: the whole sequence).
        max_seqlets, min_seqlets, leiden_runs: :func:`modisco_settings`.
        top, max_q: matches listed per pattern (:func:`match_patterns`).

    Returns:
        A :class:`DiscoveryResult`; finding no pattern is not an error (``note`` says why).
    """
    if motifs is None:
        from .jaspar import load_jaspar

        motifs = load_jaspar()
    sequence, hypothetical, source = contribution_tracks(attributions, window)
    settings = modisco_settings(sequence.shape[1], max_seqlets, min_seqlets, leiden_runs)
    started = time.perf_counter()
    failure = ""
    try:
        patterns = run_modisco(sequence, hypothetical, settings)
    except ValueError as exc:  # modisco's seqlet null fit on too few or one-signed windows
        patterns, failure = [], f"TF-MoDISco found no seqlets to cluster ({exc})"
    modisco_seconds = time.perf_counter() - started
    started = time.perf_counter()
    matches = match_patterns(patterns, list(motifs), top=top, max_q=max_q)
    seconds = {"modisco": round(modisco_seconds, 3), "tomtom": round(time.perf_counter() - started, 3)}
    note = "" if patterns else (
        f"no pattern: {failure or f'fewer than {min_seqlets} seqlets of one sign passed the threshold'} in "
        f"{len(sequence)} sequences of {sequence.shape[1]} bp (attribute more sequences, or lower min_seqlets)")
    return DiscoveryResult(patterns, matches, source, settings, int(len(sequence)), int(sequence.shape[1]), seconds,
                           method=attributions.method, note=note)


def planted_in_top(result: DiscoveryResult, planted_ids: Sequence[str], motifs: Sequence[Motif], top: int = 3,
                   max_q: float = MAX_Q) -> bool:
    """Whether one of the ``top`` positive patterns with the most seqlets matches a planted motif
    (``planted_ids``: JASPAR matrix ids) or a motif of one of its JASPAR families with ``q < max_q``.

    Positive patterns only: a driver raises the model's output."""
    by_id = {m.motif_id: m for m in motifs}
    families = {f for i in planted_ids if i in by_id for f in by_id[i].families}
    wanted = set(planted_ids)
    leading = [p.name for p in result.patterns if p.sign > 0][:top]
    hits = result.matches[result.matches["pattern"].isin(leading) & (result.matches["q"] < max_q)]
    for row in hits.itertuples():
        if row.motif_id in wanted or families & set(str(row.family).split("/")) - {""}:
            return True
    return False

