"""TF enrichment: site scores, non-overlap backgrounds, signed KS D, BH, two-model comparison, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chromtransfer.cli import main
from chromtransfer.errors import ArtifactError, InputError
from chromtransfer.interpret.attributions import Attributions, load_attributions
from chromtransfer.interpret.enrich import (
    assign_families,
    enrichment_test,
    family_heads,
    ks_enrichment,
    overlap_mask,
    run_enrichment,
    score_sites,
    signed_ks,
    write_enrichment,
)

L = 200


def _save_attributions(directory: Path, scores, names, method="grad_x_input", codes=None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {"scores": np.asarray(scores, np.float32), "names": np.asarray(names), "method": np.array(method)}
    if codes is not None:
        arrays["codes"] = codes
    np.savez(directory / "attributions.npz", **arrays)
    return directory


def _synthetic(rng, n_regions=150, tfs=("HIGH", "LOW", "N1", "N2", "N3", "N4"), sites_per_region=8):
    """Random sites of several TFs; per-base scores N(0, 1) with HIGH sites raised and LOW lowered."""
    names = np.array([f"r{i}" for i in range(n_regions)])
    scores = rng.normal(size=(n_regions, L)).astype(np.float32)
    rows = []
    for r in range(n_regions):
        for _ in range(sites_per_region):
            tf = tfs[rng.integers(len(tfs))]
            w = int(rng.integers(6, 15))
            s = int(rng.integers(0, L - w))
            rows.append((names[r], r, s, s + w, "+", f"ID_{tf}", tf))
    sites = pd.DataFrame(rows, columns=["region", "region_index", "site_start", "site_end", "strand", "motif_id", "tf"])
    for row in sites.itertuples():
        if row.tf == "HIGH":
            scores[row.region_index, row.site_start:row.site_end] += 1.5
        elif row.tf == "LOW":
            scores[row.region_index, row.site_start:row.site_end] -= 1.5
    return names, scores, sites


def test_overlap_mask_matches_brute_force():
    rng = np.random.default_rng(0)
    n = 400
    region = rng.integers(0, 15, n)
    start = rng.integers(0, 300, n)
    end = start + rng.integers(1, 25, n)
    member = rng.random(n) < 0.2
    got = overlap_mask(region, start, end, member)
    expected = np.array([any(region[j] == region[i] and start[j] < end[i] and end[j] > start[i]
                             for j in np.flatnonzero(member)) for i in range(n)])
    np.testing.assert_array_equal(got, expected)
    assert got[member].all()
    # Touching intervals ([0,5) and [5,9)) do not overlap.
    touch = overlap_mask(np.array([0, 0]), np.array([0, 5]), np.array([5, 9]), np.array([True, False]))
    assert touch.tolist() == [True, False]


def test_planted_tf_ranks_first_and_low_tf_last_with_bh():
    rng = np.random.default_rng(1)
    names, scores, sites = _synthetic(rng)
    attr = Attributions(scores, names, "grad_x_input")
    result = run_enrichment(sites, attr, min_sites=100, fdr=0.001)
    table = result.a.set_index("tf")
    assert result.a["tf"].iloc[0] == "HIGH"
    assert result.a["tf"].iloc[-1] == "LOW"
    assert table.loc["HIGH", "D"] > 0.5 and table.loc["HIGH", "significant"]
    assert table.loc["LOW", "D"] < -0.3 and table.loc["LOW", "significant"]
    nulls = table.loc[["N1", "N2", "N3", "N4"]]
    assert (nulls["D"].abs() < table.loc["HIGH", "D"]).all()
    # Benjamini-Hochberg by hand.
    p = result.a["p"].to_numpy()
    order = np.argsort(p)
    m = p.size
    adjusted = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    expected = np.empty(m)
    expected[order] = np.minimum(adjusted, 1)
    np.testing.assert_allclose(result.a["fdr"].to_numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(result.a["significant"].to_numpy(), expected < 0.001)
    # Site score = max over the site's bases.
    s = result.sites.iloc[0]
    assert s["site_score"] == pytest.approx(scores[s["row"], s["site_start"]:s["site_end"]].max())


def test_signed_ks_matches_scipy_and_mean_rank_sign():
    from scipy.stats import ks_2samp, rankdata

    rng = np.random.default_rng(2)
    low = rng.normal(-0.3, 1, 300)
    bg = rng.normal(0, 1, 2000)
    d, p, frac = signed_ks(low, bg)
    ref = ks_2samp(low, bg)
    assert abs(d) == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    ranks = rankdata(np.concatenate([low, bg]))
    assert (ranks[:300].mean() < ranks[300:].mean()) and d < 0 and frac < 0.5
    d_hi, _, _ = signed_ks(-low, bg)
    assert d_hi > 0


def test_overlap_exclusion_defines_the_background():
    # TF X sits on Y sites in every region (overlapping); Z sites never overlap X.
    regions, rows = 120, []
    for r in range(regions):
        rows += [(f"r{r}", 10, 20, "X"), (f"r{r}", 15, 25, "Y"), (f"r{r}", 100, 110, "Z"), (f"r{r}", 150, 160, "Y")]
    sites = pd.DataFrame(rows, columns=["region", "site_start", "site_end", "tf"])
    sites["motif_id"] = sites["tf"]
    rng = np.random.default_rng(3)
    sites["site_score"] = rng.normal(size=len(sites))
    table = enrichment_test(sites, min_sites=100).set_index("tf")
    # X's background: Z (120) + the non-overlapping Y (120); the overlapping Y sites are excluded.
    assert table.loc["X", "background_sites"] == 240
    # Y's background: Z only (every X site overlaps a Y site) -> 120.
    assert table.loc["Y", "background_sites"] == 120
    assert table.loc["Z", "background_sites"] == 360
    # With overlapping Y sites carrying X's signal, excluding them keeps X's D honest.
    sites.loc[(sites["tf"] == "Y") & (sites["site_start"] == 15), "site_score"] += 50
    sites.loc[sites["tf"] == "X", "site_score"] += 50
    x = enrichment_test(sites, min_sites=100).set_index("tf").loc["X"]
    assert x["D"] == pytest.approx(1.0)


def test_ism_uses_minimum_and_region_matching():
    names = np.array(["a", "b"])
    scores = np.zeros((2, 20), np.float32)
    scores[0, 3:6] = [-1, 2, -3]
    attr = Attributions(scores, names, "ism")
    sites = pd.DataFrame({"region": ["a", "zz", "b"], "site_start": [3, 0, 0], "site_end": [6, 4, 4],
                          "tf": "T", "motif_id": "M"})
    scored = score_sites(sites, attr)
    assert list(scored["region"]) == ["a", "b"]  # the site of an unattributed region is dropped
    assert scored["site_score"].iloc[0] == -3
    assert score_sites(sites, attr, aggregate="max")["site_score"].iloc[0] == 2
    with pytest.raises(InputError, match="outside"):
        score_sites(pd.DataFrame({"region": ["a"], "site_start": [15], "site_end": [25], "tf": "T",
                                  "motif_id": "M"}), attr)


def test_sequence_check_catches_other_sequences():
    codes = np.zeros((1, 20), np.uint8)  # all A
    attr = Attributions(np.zeros((1, 20), np.float32), np.array(["a"]), "grad_x_input", codes, path=Path("."))
    good = pd.DataFrame({"region": ["a", "a"], "site_start": [0, 5], "site_end": [3, 8], "strand": ["+", "-"],
                         "sequence": ["AAA", "TTT"], "tf": "T", "motif_id": "M"})
    assert len(score_sites(good, attr)) == 2
    bad = good.assign(sequence=["AAA", "AAA"])
    with pytest.raises(InputError, match="does not match"):
        score_sites(bad, attr)


def test_two_model_comparison_finds_the_gaining_tf():
    rng = np.random.default_rng(4)
    names, scores_a, sites = _synthetic(rng, tfs=("GAIN", "N1", "N2", "N3", "N4", "N5"))
    scores_a = rng.normal(size=scores_a.shape).astype(np.float32)
    scores_b = scores_a + rng.normal(scale=0.3, size=scores_a.shape).astype(np.float32)
    for row in sites.itertuples():
        if row.tf == "GAIN":
            scores_b[row.region_index, row.site_start:row.site_end] += 2.0
    a = Attributions(scores_a, names, "grad_x_input", path=Path("a"))
    order = rng.permutation(len(names))  # model B stores the regions in another order
    b = Attributions(scores_b[order], names[order], "grad_x_input", path=Path("b"))
    result = run_enrichment(sites, a, b, min_sites=100)
    comp = result.comparison.set_index("tf")
    assert result.comparison["tf"].iloc[0] == "GAIN"
    assert comp.loc["GAIN", "D"] > 0.5 and comp.loc["GAIN", "significant"]
    assert abs(comp.loc["GAIN", "D_a"]) < 0.25 and comp.loc["GAIN", "D_b"] > 0.5
    np.testing.assert_allclose(result.sites["score_b"] - result.sites["score_a"],
                               [scores_b[names.tolist().index(r), s:e].max() - scores_a[names.tolist().index(r), s:e].max()
                                for r, s, e in zip(result.sites["region"], result.sites["site_start"],
                                                   result.sites["site_end"])], rtol=1e-6)


def test_load_attributions_errors(tmp_path):
    with pytest.raises(ArtifactError, match="attribute"):
        load_attributions(tmp_path / "none")
    _save_attributions(tmp_path / "dup", np.zeros((2, 5)), ["a", "a"])
    with pytest.raises(ArtifactError, match="appears"):
        load_attributions(tmp_path / "dup")
    _save_attributions(tmp_path / "m", np.zeros((2, 5)), ["a", "b"], method="saliency")
    with pytest.raises(ArtifactError, match="method"):
        load_attributions(tmp_path / "m")
    (tmp_path / "trunc").mkdir()
    (tmp_path / "trunc" / "attributions.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ArtifactError, match="unreadable"):
        load_attributions(tmp_path / "trunc")


def test_redundant_motifs_form_one_family():
    # HIGH_A and HIGH_B are near-identical matrices: HIGH_B's sites sit on HIGH_A's sites in 90 % of
    # regions (shifted by 2 bases), and on their own elsewhere. PARTIAL overlaps HIGH_A in 30 % only.
    rng = np.random.default_rng(7)
    rows = []
    for r in range(300):
        rows.append((f"r{r}", 20, 30, "HIGH_A", 3.0 + rng.normal(0, 0.3)))
        b_start = 22 if r % 10 else 120
        rows.append((f"r{r}", b_start, b_start + 10, "HIGH_B", 2.9 + rng.normal(0, 0.3)))
        p_start = 25 if r % 10 < 3 else 160
        rows.append((f"r{r}", p_start, p_start + 8, "PARTIAL", 2.0 + rng.normal(0, 0.3)))
        for k in range(3):
            rows.append((f"r{r}", 60 + 12 * k, 70 + 12 * k, f"N{k}", rng.normal(0, 1)))
    sites = pd.DataFrame(rows, columns=["region", "site_start", "site_end", "tf", "site_score"])
    sites["motif_id"] = sites["tf"]
    table = enrichment_test(sites, min_sites=100).set_index("tf")
    assert table.loc["HIGH_A", "family"] == "HIGH_A" and table.loc["HIGH_B", "family"] == "HIGH_A"
    assert table.loc["PARTIAL", "family"] == "PARTIAL"
    assert all(table.loc[f"N{k}", "family"] == f"N{k}" for k in range(3))
    heads = family_heads(table.reset_index())
    assert heads[0]["tf"] == "HIGH_A" and heads[0]["members"] == ["HIGH_A", "HIGH_B"]
    assert [h["tf"] for h in heads][:2] == ["HIGH_A", "PARTIAL"]
    # Above 1, families are off: every TF heads its own.
    alone = enrichment_test(sites, min_sites=100, family_overlap=1.01).set_index("tf")
    assert (alone["family"] == alone.index).all()


def test_assign_families_joins_heads_only():
    # B covers A's sites, C covers B's but not A's: C must not join through B (B is not a head).
    shared = np.array([[1.0, 0.9, 0.0],
                       [0.8, 1.0, 0.0],
                       [0.1, 0.7, 1.0]])
    assert assign_families(["A", "B", "C"], shared) == ["A", "A", "C"]
    assert assign_families(["A", "B", "C"], shared, threshold=0.95) == ["A", "B", "C"]


def test_ks_enrichment_skips_small_groups():
    rng = np.random.default_rng(6)
    groups = np.array(["A"] * 150 + ["B"] * 20 + ["C"] * 200)
    table = ks_enrichment(rng.normal(size=370), groups, np.arange(370), np.zeros(370, int), np.ones(370, int),
                          min_sites=100)
    assert set(table["group"]) == {"A", "C"}
    counts = table.set_index("group")["background_sites"]
    assert counts["A"] == 220 and counts["C"] == 170  # small groups still belong to the background


def test_cli_enrich_end_to_end_with_figures(tmp_path):
    rng = np.random.default_rng(5)
    names, scores, sites = _synthetic(rng)
    codes = rng.integers(0, 4, size=scores.shape).astype(np.uint8)
    a = _save_attributions(tmp_path / "attr_a", scores, names, codes=codes)
    scores_b = scores.copy()
    for row in sites.itertuples():
        if row.tf == "N1":
            scores_b[row.region_index, row.site_start:row.site_end] += 2
    b = _save_attributions(tmp_path / "attr_b", scores_b, names, codes=codes)
    site_file = tmp_path / "sites.tsv"
    sites.drop(columns="strand").to_csv(site_file, sep="\t", index=False)
    out = tmp_path / "enrich"
    assert main(["motifs", "enrich", "--attributions", str(a), "--attributions-b", str(b), "--sites", str(site_file),
                 "--top", "5", "--out", str(out)]) == 0
    table = pd.read_csv(out / "enrichment.tsv", sep="\t")
    assert table["tf"].iloc[0] == "HIGH" and list(table["D"]) == sorted(table["D"], reverse=True)
    comparison = pd.read_csv(out / "comparison.tsv", sep="\t")
    assert comparison["tf"].iloc[0] == "N1" and {"D_a", "D_b", "fdr_a", "fdr_b"} <= set(comparison.columns)
    for name in ("d_ranking.png", "ecdf_top.png", "d_scatter.png", "d_ranking_difference.png", "site_scores.tsv.gz"):
        assert (out / name).stat().st_size > 1000, name
    assert list(out.glob("logo_*.png"))
    manifest = json.loads((out / "enrichment.json").read_text())
    assert manifest["groups_tested"] == len(table) and manifest["significant_a"] >= 2
    assert main(["motifs", "enrich", "--attributions", str(tmp_path / "nothing"), "--sites", str(site_file),
                 "--out", str(tmp_path / "e2")]) == 2


def test_comparison_significance_follows_the_authors_rule():
    """motif_analysis.R: ``sig <- classB.fdr < 0.001 | classA.fdr < 0.001``; the D of the difference
    gives the direction. A TF important in both models is significant there, though its per-site
    difference is noise; with ``significance="difference"`` it is not."""
    rng = np.random.default_rng(5)
    names, scores_a, sites = _synthetic(rng, tfs=("BOTH", "N1", "N2", "N3", "N4", "N5"))
    scores_a = rng.normal(size=scores_a.shape).astype(np.float32)
    scores_b = scores_a + rng.normal(scale=0.3, size=scores_a.shape).astype(np.float32)
    for row in sites.itertuples():
        if row.tf == "BOTH":
            scores_a[row.region_index, row.site_start:row.site_end] += 1.5
            scores_b[row.region_index, row.site_start:row.site_end] += 1.5
    a = Attributions(scores_a, names, "grad_x_input", path=Path("a"))
    b = Attributions(scores_b, names, "grad_x_input", path=Path("b"))
    either = run_enrichment(sites, a, b, min_sites=100).comparison.set_index("tf")
    difference = run_enrichment(sites, a, b, min_sites=100, significance="difference").comparison.set_index("tf")
    both = either.loc["BOTH"]
    assert both["fdr_a"] < 0.001 and both["fdr_b"] < 0.001 and both["fdr"] > 0.001
    assert both["significant"] and not both["significant_difference"]
    assert not difference.loc["BOTH", "significant"]
    expected = (either["fdr_a"] < 0.001) | (either["fdr_b"] < 0.001)
    assert (either["significant"] == expected).all()
    assert (difference["significant"] == (difference["fdr"] < 0.001)).all()
    with pytest.raises(ValueError, match="significance"):
        run_enrichment(sites, a, b, min_sites=100, significance="both")


def test_sites_of_one_tf_at_the_same_bases_count_once():
    """motif_analysis.R keeps one JASPAR site per (genomic range, TF name): two HNF4A matrices on
    the same bases (either strand) are one HNF4A site; other TFs and other bases stay."""
    from chromtransfer.interpret.enrich import dedupe_tf_sites

    sites = pd.DataFrame({
        "region": ["r0", "r0", "r0", "r0", "r1"],
        "site_start": [10, 10, 10, 12, 10],
        "site_end": [22, 22, 22, 24, 22],
        "strand": ["+", "-", "+", "+", "+"],
        "motif_id": ["MA0114.4", "MA0484.2", "MA0018.4", "MA0114.4", "MA0114.4"],
        "tf": ["HNF4A", "HNF4A", "CREB1", "HNF4A", "HNF4A"],
        "pvalue": [3e-6, 1e-6, 2e-6, 4e-6, 5e-6],
    })
    kept = dedupe_tf_sites(sites)
    assert kept.index.tolist() == [1, 2, 3, 4]  # the better p-value of the two HNF4A matrices
    assert dedupe_tf_sites(sites.drop(columns="pvalue")).index.tolist() == [0, 2, 3, 4]
    names = np.array(["r0", "r1"])
    scores = np.zeros((2, L), dtype=np.float32)
    attributions = Attributions(scores, names, "grad_x_input")
    result = run_enrichment(sites, attributions, min_sites=1)
    assert len(result.sites) == 4
    assert (result.sites["tf"] == "HNF4A").sum() == 3
    assert set(result.sites["motif_id"]) == {"MA0484.2", "MA0018.4", "MA0114.4"}
    by_motif = run_enrichment(sites, attributions, min_sites=1, group_by="motif")
    assert len(by_motif.sites) == 5  # single matrices are tested as they are


def test_deeplift_shap_attributions_are_ranked_like_gradients(tmp_path):
    rng = np.random.default_rng(1)
    names, scores, sites = _synthetic(rng)
    hypothetical = np.repeat(scores[..., None], 4, axis=-1)
    attr = Attributions(scores, names, "deeplift_shap", hypothetical=hypothetical,
                        convergence_delta=np.zeros(len(names), np.float32))
    assert attr.default_aggregate == "max"
    result = run_enrichment(sites, attr, min_sites=100, fdr=0.001)
    reference = run_enrichment(sites, Attributions(scores, names, "grad_x_input"), min_sites=100, fdr=0.001)
    assert result.a["tf"].iloc[0] == "HIGH" and result.a["tf"].iloc[-1] == "LOW"
    pd.testing.assert_frame_equal(result.a, reference.a)
    attr.save(tmp_path / "dls")
    loaded = load_attributions(tmp_path / "dls")
    written = write_enrichment(run_enrichment(sites, loaded, min_sites=100), tmp_path / "enrichment", loaded,
                               figures=False)
    assert written["attributions_a"]["method"] == "deeplift_shap" and written["significant_a"] >= 2
