"""The empirical null of variant effects: random SNVs drawn where the scored variants lie.

:func:`draw_null_snvs` draws them (uniform over element bases, or within the scored variants'
windows); :class:`NullDistribution` turns their ``delta_logit`` per cell line into a z-score and a
two-sided empirical p-value for every scored variant.
"""
from __future__ import annotations

import numpy as np

from .vcf import SCORED, STATUSES, Variant, VariantPlan
from .windows import Elements

__all__ = ["NullDistribution", "draw_null_snvs"]


def draw_null_snvs(plan: VariantPlan, genome, elements: Elements | None, length: int, n: int,
               seed: int) -> list[Variant]:
    """``n`` random SNVs: uniform over element bases, or within the scored variants' windows.

    Candidates are drawn in batches; positions on N (or off a chromosome) are drawn again. The
    ALT base is uniform over the three others.
    """
    rng = np.random.default_rng(seed)
    out: list[Variant] = []
    scored = np.flatnonzero(np.isin(plan.status, [STATUSES.index(s) for s in SCORED]))
    if elements is None and scored.size == 0:
        return out
    if elements is not None:
        sizes = (elements.end - elements.start).astype(np.float64)
        cumulative = np.cumsum(sizes)
    for _ in range(100):
        want = 2 * (n - len(out)) + 16
        if elements is not None:
            where = rng.uniform(0, cumulative[-1], want)
            e = np.minimum(np.searchsorted(cumulative, where, side="right"), len(elements) - 1)
            chroms = elements.chrom[e]
            positions = elements.start[e] + np.minimum((where - (cumulative[e] - sizes[e])).astype(np.int64),
                                                       (sizes[e] - 1).astype(np.int64))
        else:
            i = rng.choice(scored, want)
            chroms = np.asarray(plan.chroms, dtype=object)[plan.chrom_index[i]]
            positions = plan.pos[i] + rng.integers(-(length // 2), length - length // 2, want)
        shifts = rng.integers(1, 4, want)
        for chrom, pos, shift in zip(chroms.tolist(), positions.tolist(), shifts.tolist()):
            if len(out) == n:
                return out
            if pos < 0 or pos >= genome.lengths[chrom]:
                continue
            base = int(genome.fetch_codes(chrom, pos, pos + 1)[0])
            if base > 3:
                continue
            out.append(Variant(len(out), -1, 0, 0, chrom, chrom, pos, ".", "ACGT"[base], "ACGT"[(base + shift) % 4]))
        if len(out) == n:
            break
    return out


class NullDistribution:
    """Per-cell null distribution of delta_logit: mean, sd and sorted absolute deviations."""

    def __init__(self, deltas: np.ndarray):
        self.n = deltas.shape[0]
        self.mean = deltas.mean(axis=0)
        self.sd = deltas.std(axis=0, ddof=1) if self.n > 1 else np.full(deltas.shape[1], np.nan)
        self.sorted_dev = np.sort(np.abs(deltas - self.mean), axis=0)

    def z(self, d: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (d - self.mean) / self.sd

    def p(self, d: np.ndarray) -> np.ndarray:
        dev = np.abs(d - self.mean)
        out = np.full(d.shape, np.nan)
        for c in range(d.shape[1]):
            ok = np.isfinite(dev[:, c])
            at_least = self.n - np.searchsorted(self.sorted_dev[:, c], dev[ok, c], side="left")
            out[ok, c] = (1 + at_least) / (self.n + 1)
        return out
