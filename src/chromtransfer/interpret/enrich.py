"""Which transcription factors matter to a model: KS enrichment of attribution scores at motif sites.

The method (Salvatore et al. 2023; docs/method.md section 6):

1. Each motif site gets one importance score from the per-base attribution scores of its region:
   the **maximum** gradient x input (or DeepLIFT/SHAP contribution) over the site's bases, or the
   **minimum** per-base ISM delta (``aggregate="auto"`` picks by the attribution method;
   ``"max"``/``"min"`` force one).
   Sites are matched to attribution rows by region name; sites of regions without attributions
   are left out (attributions usually cover only the positive predictions).
2. Sites are grouped by TF name (JASPAR's ``tf`` column, e.g. the two HNF4A matrices form one
   group; ``group_by="motif"`` tests every matrix on its own). A site found by several matrices of
   one TF at the same bases counts once (:func:`dedupe_tf_sites`; the authors' ``motif_analysis.R``
   keeps one site per genomic range and TF name, strand ignored). Groups with at least
   ``min_sites`` sites (default 100) are tested.
3. For a group ``t``, the background is every site of every other group that does not overlap
   (share a base with) any site of ``t`` in the same region. Test: two-sample two-sided
   Kolmogorov-Smirnov (:func:`scipy.stats.ks_2samp`) of the group's scores against the background.
4. ``D`` is signed: negative when the group's sites have a lower mean rank than the background in
   the pooled ranking (ties share the average rank), else positive. The mean-rank comparison is
   computed exactly as the Mann-Whitney statistic ``U_t`` against ``n_t * n_bg / 2``.
5. Benjamini-Hochberg (:func:`scipy.stats.false_discovery_control`) over the tested groups;
   significant at FDR < ``fdr`` (default 0.001).
6. Families of redundant motifs: JASPAR holds many near-identical matrices (about 30 AP-1/MAF
   bZIP motifs, 40 forkhead motifs), whose sites fall on the same bases and which therefore rank
   side by side, splitting one signal over many names. Walking the table from the highest D down,
   a TF joins the family of the first better-ranked family head on whose sites at least
   ``family_overlap`` (default 1/2) of its own sites lie (share a base, same region); else it heads
   a family of its own. The ``family`` column names the head. The test itself is unchanged: each
   TF keeps its own D, p and FDR; families only say which rows are one signal.
7. Two attribution sets (models A and B, same regions matched by name): the test is also run on the
   per-site differences ``score_B - score_A`` (positive D: the TF gains importance in model B), and
   the tables report both models' D side by side. A TF counts as significant in the comparison
   (``significance="either"``, the default, as the authors' ``motif_analysis.R``: ``sig <-
   classB.fdr < 0.001 | classA.fdr < 0.001``) when it is significant in either model's own test;
   the D of the difference gives the direction. ``significance="difference"`` takes it from the
   difference test's own FDR instead (kept as ``significant_difference`` either way).

Cost: the non-overlap background of a group is found with one sorted pass per group
(``searchsorted`` of every site against the group's sites sorted by region and start, plus a
running maximum of their ends): O(n log n_t) per group, never O(n^2).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ..encoding import COMPLEMENT_CODE, N_CODE
from ..errors import InputError
from .attributions import Attributions

__all__ = ["Attributions", "COMPARISON_SIGNIFICANCE", "EnrichmentResult", "FAMILY_OVERLAP",
           "assign_families", "dedupe_tf_sites",
           "compare_sets", "enrichment_test", "family_heads", "ks_enrichment", "overlap_mask",
           "run_enrichment", "score_sites", "signed_ks", "write_enrichment"]

FAMILY_OVERLAP = 0.5
#: How a comparison decides significance (module docstring, item 7).
COMPARISON_SIGNIFICANCE = ("either", "difference")
#: The per-base score of each attribution method, as figures name it.
SCORE_LABELS = {"grad_x_input": "gradient x input", "ism": "ISM delta", "deeplift_shap": "DeepLIFT/SHAP contribution"}
_SCORE_CHUNK = 1 << 19


# ----------------------------------------------------------------------------- site scores
def dedupe_tf_sites(sites: pd.DataFrame) -> pd.DataFrame:
    """One site per (region, site_start, site_end, tf): the one with the smallest p-value (when a
    ``pvalue`` column exists), else the first; strands and matrices of one TF at the same bases
    are one site. Row order is kept."""
    if len(sites) == 0:
        return sites
    order = sites.sort_values("pvalue", kind="stable") if "pvalue" in sites else sites
    kept = order.drop_duplicates(["region", "site_start", "site_end", "tf"], keep="first")
    return sites.loc[np.sort(kept.index.to_numpy())]


def score_sites(sites: pd.DataFrame, attributions: Attributions, aggregate: str = "auto",
                check_sequences: bool = True, source: str = "sites") -> pd.DataFrame:
    """Attach each site's importance score; drop sites of regions without attributions.

    Args:
        sites: site table (columns ``region``, ``site_start``, ``site_end``, ``tf``, ``motif_id``,
            optionally ``strand`` and ``sequence``).
        attributions: per-base scores.
        aggregate: ``auto`` (max for gradient x input, min for ISM), ``max`` or ``min``.
        check_sequences: when the attributions store their sequences and the sites their matched
            sequence, verify that they agree (a guard against scanning other sequences).
        source: name of the site table, for error messages.

    Returns:
        The kept sites (original columns) plus ``row`` (attribution row) and ``site_score``.
    """
    if aggregate == "auto":
        aggregate = attributions.default_aggregate
    if aggregate not in ("max", "min"):
        raise ValueError("aggregate must be auto, max or min")
    lookup = pd.Series(np.arange(len(attributions.names)), index=attributions.names)
    rows = lookup.reindex(sites["region"].astype(str).to_numpy()).to_numpy()
    keep = ~np.isnan(rows)
    kept = sites.loc[keep].copy()
    kept["row"] = rows[keep].astype(np.int64)
    start = kept["site_start"].to_numpy(np.int64)
    end = kept["site_end"].to_numpy(np.int64)
    length = attributions.scores.shape[1]
    if len(kept) and end.max() > length:
        bad = int(np.argmax(end > length))
        raise InputError(source, f"site {kept['region'].iloc[bad]}:{start[bad]}-{end[bad]} lies outside the "
                         f"{length} bp attribution window", fix="scan the same sequences that were attributed")
    values = np.empty(len(kept), dtype=np.float64)
    reduce = np.max if aggregate == "max" else np.min
    widths = end - start
    row = kept["row"].to_numpy()
    for w in np.unique(widths):
        sel = np.flatnonzero(widths == w)
        for lo in range(0, sel.size, _SCORE_CHUNK):
            part = sel[lo:lo + _SCORE_CHUNK]
            window = attributions.scores[row[part, None], start[part, None] + np.arange(w)[None, :]]
            values[part] = reduce(window, axis=1)
    kept["site_score"] = values
    if check_sequences and attributions.codes is not None and "sequence" in kept and len(kept):
        _check_sequences(kept, attributions.codes, source)
    return kept.reset_index(drop=True)


def _check_sequences(kept: pd.DataFrame, codes: np.ndarray, source: str) -> None:
    from ..encoding import encode

    seqs = kept["sequence"].astype(str).to_numpy()
    start = kept["site_start"].to_numpy(np.int64)
    widths = kept["site_end"].to_numpy(np.int64) - start
    minus = (kept["strand"].astype(str).to_numpy() == "-") if "strand" in kept else np.zeros(len(kept), bool)
    row = kept["row"].to_numpy()
    for w in np.unique(widths):
        sel = np.flatnonzero((widths == w) & (np.char.str_len(seqs.astype(str)) == w))
        if sel.size == 0:
            continue
        expected = codes[row[sel, None], start[sel, None] + np.arange(w)[None, :]]
        flip = minus[sel]
        expected[flip] = COMPLEMENT_CODE[np.minimum(expected[flip], N_CODE)][:, ::-1]
        given = encode("".join(seqs[sel])).reshape(-1, w)
        bad = np.flatnonzero(np.any(given != expected, axis=1))
        if bad.size:
            i = sel[bad[0]]
            raise InputError(source, f"site sequence {seqs[i]} at {kept['region'].iloc[i]}:{start[i]} does not match "
                             "the attributed sequence", fix="scan the sequences that were attributed (same store/split)")


# ----------------------------------------------------------------------------- the test
def overlap_mask(region: np.ndarray, start: np.ndarray, end: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Which sites share at least one base with a member site in the same region.

    Args:
        region: ``(n,)`` int64 region codes; start, end: ``(n,)`` int64 half-open intervals.
        member: ``(n,)`` bool, the group's sites.

    Returns:
        ``(n,)`` bool (members overlap themselves and are True).
    """
    idx = np.flatnonzero(member)
    if idx.size == 0:
        return np.zeros(region.shape[0], dtype=bool)
    big = int(max(end.max(), 1)) + 1
    key_start = region[idx] * big + start[idx]
    order = np.argsort(key_start, kind="stable")
    key_start = key_start[order]
    reach = np.maximum.accumulate(region[idx][order] * big + end[idx][order])
    j = np.searchsorted(key_start, region * big + end, side="left")  # members starting before our end
    prev = np.where(j > 0, reach[np.maximum(j - 1, 0)], -1)
    return (j > 0) & (prev > region * big + start)


def signed_ks(values: np.ndarray, background: np.ndarray) -> tuple[float, float, float]:
    """Two-sided two-sample KS test with D signed by mean rank.

    Returns:
        ``(D_signed, p_value, mann_whitney_fraction)`` where the fraction ``U / (n_t * n_bg)`` is
        below 1/2 exactly when ``values`` have the lower mean rank in the pooled ranking.
    """
    from scipy.stats import ks_2samp

    values = np.asarray(values, dtype=np.float64)
    background = np.asarray(background, dtype=np.float64)
    result = ks_2samp(values, background, alternative="two-sided", method="auto")
    bg_sorted = np.sort(background)
    left = np.searchsorted(bg_sorted, values, side="left")
    right = np.searchsorted(bg_sorted, values, side="right")
    u = float(np.sum(left) + 0.5 * np.sum(right - left))
    fraction = u / (values.size * background.size)
    sign = -1.0 if fraction < 0.5 else 1.0
    return sign * float(result.statistic), float(result.pvalue), fraction


def assign_families(groups: list[str], shared: np.ndarray, threshold: float = FAMILY_OVERLAP) -> list[str]:
    """Greedy families of redundant motifs (module docstring, point 6).

    Args:
        groups: ``(k,)`` group labels, best-ranked first.
        shared: ``(k, k)`` fraction of group ``i``'s sites that overlap a site of group ``j``.
        threshold: smallest fraction that makes ``i`` a member of the family headed by ``j``.

    Returns:
        ``(k,)`` the head of each group's family (a head is its own head).
    """
    heads: list[int] = []
    family: list[str] = []
    for i, label in enumerate(groups):
        joined = next((h for h in heads if shared[i, h] >= threshold), None)
        if joined is None:
            heads.append(i)
            family.append(label)
        else:
            family.append(groups[joined])
    return family


def family_heads(table: pd.DataFrame, key: str = "tf", positive: bool = True) -> list[dict[str, object]]:
    """The significant families of an enrichment table, best first.

    Each entry: ``{"tf": head, "D": head's D, "fdr": head's FDR, "members": [every tested member,
    best first]}``; a family is listed when its head is significant (with ``D > 0`` when
    ``positive``).
    """
    if not len(table) or "family" not in table:
        return []
    ranked = table.sort_values("D", ascending=False, kind="stable")
    heads = ranked[(ranked[key].astype(str) == ranked["family"].astype(str)) & ranked["significant"].astype(bool)]
    if positive:
        heads = heads[heads["D"] > 0]
    return [{key: str(row[key]), "D": float(row["D"]), "fdr": float(row["fdr"]),
             "members": [str(m) for m in ranked.loc[ranked["family"] == row["family"], key]]}
            for _, row in heads.iterrows()]


def ks_enrichment(scores: np.ndarray, groups: np.ndarray, region: np.ndarray, start: np.ndarray,
                  end: np.ndarray, min_sites: int = 100, fdr: float = 0.001,
                  family_overlap: float = FAMILY_OVERLAP, progress: Callable[[int], None] | None = None
                  ) -> pd.DataFrame:
    """The KS enrichment table of every group with at least ``min_sites`` sites.

    Args:
        scores: ``(n,)`` site scores; groups: ``(n,)`` group labels (TF names or motif ids);
        region, start, end: ``(n,)`` region codes and site intervals (for the overlap exclusion).
        min_sites: smallest group tested.
        fdr: significance level of the Benjamini-Hochberg adjusted p-values.
        family_overlap: site-overlap fraction that makes a group a member of a better-ranked
            group's family (above 1: every group is its own family).
        progress: called with 1 after each group's test.

    Returns:
        One row per tested group: ``group, sites, background_sites, D, ks_statistic, p, fdr,
        significant, family, mean_score, background_mean_score, rank_fraction``; sorted by D
        descending.
    """
    from scipy.stats import false_discovery_control

    region = np.asarray(region, dtype=np.int64)
    start = np.asarray(start, dtype=np.int64)
    end = np.asarray(end, dtype=np.int64)
    # Sites in (region, end) order make the overlap queries sorted, which numpy's searchsorted
    # answers much faster; the results do not depend on the order.
    order = np.lexsort((end, region))
    region, start, end = region[order], start[order], end[order]
    scores = np.asarray(scores, dtype=np.float64)[order]
    groups = np.asarray(groups).astype(str)[order]
    labels, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    rows = []
    covered_counts = []  # per tested group: how many sites of every group overlap its sites
    for g in np.flatnonzero(counts >= min_sites):
        member = inverse == g
        covered = overlap_mask(region, start, end, member)
        background = ~member & ~covered
        if not background.any():
            continue
        covered_counts.append(np.bincount(inverse[covered], minlength=labels.size))
        d, p, frac = signed_ks(scores[member], scores[background])
        if progress is not None:
            progress(1)
        rows.append({
            "group": labels[g],
            "sites": int(member.sum()),
            "background_sites": int(background.sum()),
            "D": d,
            "ks_statistic": abs(d),
            "p": p,
            "mean_score": float(scores[member].mean()),
            "background_mean_score": float(scores[background].mean()),
            "rank_fraction": frac,
        })
    columns = ["group", "sites", "background_sites", "D", "ks_statistic", "p", "fdr", "significant", "family",
               "mean_score", "background_mean_score", "rank_fraction"]
    if not rows:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows)
    table["fdr"] = false_discovery_control(table["p"].to_numpy(), method="bh")
    table["significant"] = table["fdr"] < fdr
    table = table.sort_values(["D", "group"], ascending=[False, True], kind="stable")
    # shared[i, j]: fraction of ranked group i's sites lying on sites of ranked group j (the
    # columns of covered_counts follow the unsorted rows, i.e. the table's index)
    tested = np.searchsorted(labels, table["group"].to_numpy())
    shared = np.stack(covered_counts, axis=1)[tested][:, table.index] / counts[tested, None]
    table["family"] = assign_families(list(table["group"]), shared, family_overlap)
    return table[columns].reset_index(drop=True)


def enrichment_test(scored: pd.DataFrame, score_column: str = "site_score", group_by: str = "tf",
                    min_sites: int = 100, fdr: float = 0.001, family_overlap: float = FAMILY_OVERLAP,
                    progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """:func:`ks_enrichment` of a scored site table (``region``, ``site_start``, ``site_end``,
    ``tf``, ``motif_id``, and ``score_column``).

    Returns the table with ``tf`` and ``motif_id`` first (for ``group_by="tf"``, ``motif_id`` lists the
    group's matrices, comma-separated).
    """
    if group_by not in ("tf", "motif"):
        raise ValueError("group_by must be 'tf' or 'motif'")
    key = "tf" if group_by == "tf" else "motif_id"
    region = pd.factorize(scored["region"].astype(str))[0].astype(np.int64)
    table = ks_enrichment(scored[score_column].to_numpy(), scored[key].astype(str).to_numpy(), region,
                          scored["site_start"].to_numpy(np.int64), scored["site_end"].to_numpy(np.int64),
                          min_sites=min_sites, fdr=fdr, family_overlap=family_overlap, progress=progress)
    if group_by == "tf":
        ids = scored.groupby("tf")["motif_id"].agg(lambda s: ",".join(sorted(set(map(str, s)))))
        tf, motif = table["group"], table["group"].map(ids)
    else:
        names = scored.groupby("motif_id")["tf"].first()
        tf, motif = table["group"].map(names), table["group"]
    table.insert(0, "motif_id", motif.astype(object))
    table.insert(0, "tf", tf.astype(object))
    return table.drop(columns="group")


def compare_sets(scored: pd.DataFrame, group_by: str = "tf", min_sites: int = 100, fdr: float = 0.001,
                 table_a: pd.DataFrame | None = None, table_b: pd.DataFrame | None = None,
                 family_overlap: float = FAMILY_OVERLAP, significance: str = "either",
                 progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Model comparison on sites scored by two models (columns ``score_a``, ``score_b``).

    The test runs on ``score_b - score_a`` (positive D: higher importance in model B); the result
    carries ``D_a``/``fdr_a`` and ``D_b``/``fdr_b`` (each model's own test on the same sites) beside
    the difference test. ``significant``: ``fdr_a < fdr or fdr_b < fdr`` (``significance="either"``,
    the authors' rule) or the difference test's ``fdr < fdr`` (``"difference"``), which is kept as
    ``significant_difference``. Sorted by the difference D, descending.
    """
    if significance not in COMPARISON_SIGNIFICANCE:
        raise ValueError(f"significance must be one of {', '.join(COMPARISON_SIGNIFICANCE)}")
    work = scored.assign(score_diff=scored["score_b"] - scored["score_a"])
    diff = enrichment_test(work, "score_diff", group_by, min_sites, fdr, family_overlap, progress)
    if table_a is None:
        table_a = enrichment_test(work, "score_a", group_by, min_sites, fdr, family_overlap, progress)
    if table_b is None:
        table_b = enrichment_test(work, "score_b", group_by, min_sites, fdr, family_overlap, progress)
    key = "tf" if group_by == "tf" else "motif_id"
    diff = diff.rename(columns={"mean_score": "mean_difference",
                                "background_mean_score": "background_mean_difference"})
    for suffix, table in (("a", table_a), ("b", table_b)):
        indexed = table.set_index(key)
        diff[f"D_{suffix}"] = diff[key].map(indexed["D"])
        diff[f"fdr_{suffix}"] = diff[key].map(indexed["fdr"])
    diff["significant_difference"] = diff["significant"].astype(bool)
    if significance == "either":
        diff["significant"] = (diff["fdr_a"] < fdr) | (diff["fdr_b"] < fdr)
    return diff


@dataclass
class EnrichmentResult:
    """Tables of :func:`run_enrichment`: ``a`` (model A), ``b`` and ``comparison`` when B is given,
    and the scored sites."""

    a: pd.DataFrame
    sites: pd.DataFrame
    b: pd.DataFrame | None = None
    comparison: pd.DataFrame | None = None


def run_enrichment(sites: pd.DataFrame, attributions_a: Attributions, attributions_b: Attributions | None = None,
                   group_by: str = "tf", min_sites: int = 100, fdr: float = 0.001, aggregate: str = "auto",
                   source: str = "sites", family_overlap: float = FAMILY_OVERLAP,
                   significance: str = "either", progress: Callable[[int], None] | None = None
                   ) -> EnrichmentResult:
    """Score the sites with one or two attribution sets and run the enrichment tests.

    With two sets only regions present in both are used, so the three tests see the same sites;
    ``significance`` is the comparison's rule (:func:`compare_sets`). With ``group_by="tf"`` a
    TF's matrices that hit the same bases give one site (:func:`dedupe_tf_sites`). ``progress`` is
    called with 1 after each group's KS test.
    """
    if group_by == "tf":
        sites = dedupe_tf_sites(sites)
    scored_a = score_sites(sites, attributions_a, aggregate, source=source)
    if attributions_b is None:
        if len(scored_a) == 0:
            raise InputError(source, "no site lies in a region with attributions",
                             fix="scan the regions that were attributed (region names must match)")
        table = enrichment_test(scored_a, "site_score", group_by, min_sites, fdr, family_overlap, progress)
        return EnrichmentResult(a=table, sites=scored_a)
    scored_b = score_sites(sites, attributions_b, aggregate, source=source)
    common = np.intersect1d(attributions_a.names, attributions_b.names)
    scored_a = scored_a[scored_a["region"].isin(common)].reset_index(drop=True)
    scored_b = scored_b[scored_b["region"].isin(common)].reset_index(drop=True)
    if len(scored_a) == 0:
        raise InputError(source, "no site lies in a region attributed by both models",
                         fix="attribute the same regions with both models")
    merged = scored_a.drop(columns=["row"]).rename(columns={"site_score": "score_a"})
    merged["score_b"] = scored_b["site_score"].to_numpy()
    table_a = enrichment_test(merged, "score_a", group_by, min_sites, fdr, family_overlap, progress)
    table_b = enrichment_test(merged, "score_b", group_by, min_sites, fdr, family_overlap, progress)
    comparison = compare_sets(merged, group_by, min_sites, fdr, table_a, table_b, family_overlap, significance,
                              progress)
    return EnrichmentResult(a=table_a, b=table_b, comparison=comparison, sites=merged)


ENRICHMENT_KIND = "enrichment"


def write_enrichment(result: EnrichmentResult, out_dir: str | os.PathLike, attributions_a: Attributions,
                     attributions_b: Attributions | None = None, group_by: str = "tf", figures: bool = True,
                     top: int = 20, n_logos: int = 4, parameters: dict | None = None,
                     overwrite: bool = False) -> dict:
    """Write the tables, figures and manifest of an enrichment run into ``out_dir``.

    Files: ``enrichment.tsv`` (model A), ``site_scores.tsv.gz``; with model B also
    ``enrichment_b.tsv`` and ``comparison.tsv`` (the B - A difference test with both models' D);
    figures ``d_ranking.png``, ``ecdf_top.png``, ``logo_*.png`` (+ ``d_ranking_b.png``,
    ``d_ranking_difference.png``, ``d_scatter.png``); ``enrichment.json`` last (parameters,
    counts, provenance). Each file is written under a temporary name and renamed. ``out_dir`` is
    claimed as an enrichment folder (:func:`~chromtransfer.artifacts.claim_output_dir`): a folder
    holding anything else is refused, a complete enrichment is replaced only with ``overwrite``.

    Returns:
        The manifest dictionary.
    """
    from ..artifacts import atomic_path, claim_output_dir, provenance, write_json

    out = claim_output_dir(out_dir, ENRICHMENT_KIND, overwrite=overwrite)

    def write_table(table: pd.DataFrame, name: str) -> str:
        with atomic_path(out / name) as tmp:
            table.to_csv(tmp, sep="\t", index=False, float_format="%.6g",
                         compression="gzip" if name.endswith(".gz") else None)
        return name

    files = [write_table(result.a, "enrichment.tsv")]
    site_columns = [c for c in ("region", "site_start", "site_end", "strand", "motif_id", "tf", "pvalue",
                                "site_score", "score_a", "score_b") if c in result.sites]
    files.append(write_table(result.sites[site_columns], "site_scores.tsv.gz"))
    if result.b is not None:
        files.append(write_table(result.b, "enrichment_b.tsv"))
        files.append(write_table(result.comparison, "comparison.tsv"))
    key = "tf" if group_by == "tf" else "motif_id"
    if figures and len(result.a):
        from . import enrich_plots as plots

        ylabel = SCORE_LABELS.get(attributions_a.method, attributions_a.method)
        aggregate = f"min {ylabel}" if attributions_a.method == "ism" else f"max {ylabel}"
        column_a = "site_score" if result.b is None else "score_a"
        files.append(plots.save_figure(plots.plot_d_ranking(result.a, top, label=key), out / "d_ranking.png").name)
        ranked = result.a.sort_values("D", ascending=False)
        chosen = list(ranked[key].head(4)) + list(ranked[key].tail(2))
        chosen = list(dict.fromkeys(chosen))
        files.append(plots.save_figure(plots.plot_ecdfs(result.sites, result.a, chosen, column_a, group_by,
                                                        xlabel=f"site score ({aggregate})"),
                                       out / "ecdf_top.png").name)
        # Logos for the TFs that matter most: significant and positive D for gradient x input and
        # DeepLIFT/SHAP (high scores), negative D for ISM deltas (low scores); else the extreme ones.
        highest = attributions_a.method != "ism"
        wanted = ranked[(ranked["D"] > 0) if highest else (ranked["D"] < 0)]
        if wanted["significant"].any():
            wanted = wanted[wanted["significant"]]
        wanted = wanted if len(wanted) else ranked
        logo_tfs = list(wanted[key].head(n_logos)) if highest else list(wanted[key].iloc[::-1].head(n_logos))
        for stale in out.glob("logo_*.png"):  # logos of an earlier run into the same directory
            stale.unlink()
        files += [p.name for p in plots.example_logos(result.sites, attributions_a, logo_tfs, out, column_a,
                                                      group_by, ylabel=ylabel, highest=highest)]
        if result.b is not None:
            if len(result.b):
                files.append(plots.save_figure(plots.plot_d_ranking(result.b, top, title="TF importance, model B",
                                                                    label=key), out / "d_ranking_b.png").name)
            if len(result.comparison):
                files.append(plots.save_figure(
                    plots.plot_d_ranking(result.comparison, top, title="Importance change (model B - model A)",
                                         label=key), out / "d_ranking_difference.png").name)
                files.append(plots.save_figure(plots.plot_d_scatter(result.comparison, label=key),
                                               out / "d_scatter.png").name)
    manifest = {
        "format": "chromtransfer-tf-enrichment",
        "version": 1,
        "attributions_a": {"path": str(attributions_a.path), "method": attributions_a.method,
                           "regions": int(len(attributions_a.names))},
        "attributions_b": None if attributions_b is None else {
            "path": str(attributions_b.path), "method": attributions_b.method,
            "regions": int(len(attributions_b.names))},
        "sites_scored": int(len(result.sites)),
        "groups_tested": int(len(result.a)),
        "significant_a": int(result.a["significant"].sum()) if len(result.a) else 0,
        "significant_b": None if result.b is None else int(result.b["significant"].sum()),
        "significant_difference": None if result.comparison is None else int(result.comparison["significant"].sum()),
        "parameters": parameters or {},
        "files": files,
        "provenance": provenance(),
    }
    write_json(out / "enrichment.json", manifest)
    return manifest
