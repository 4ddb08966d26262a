"""The synthetic data set: determinism, files, planted motifs, and that prepare reads it."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from chromtransfer.cli import main
from chromtransfer.datasets.finetune import prepare_finetune
from chromtransfer.datasets.labels import CELL_LINES
from chromtransfer.datasets.pretrain import prepare_pretrain
from chromtransfer.datasets.store import open_store
from chromtransfer.datasets.synthetic import DRIVERS, make_synthetic, planted_motif_matrices
from chromtransfer.genome import Genome

FILES = ["genome.fa", "rdhs.bed", "label_matrix.tsv", "blacklist.bed", "truth.json", "variants.vcf.gz",
         "variants_truth.tsv"] + \
    [f"open/{c}.bed" for c in CELL_LINES]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("synth") / "a", seed=7, size="tiny")


def test_same_seed_same_files(tiny, tmp_path):
    again = make_synthetic(tmp_path / "b", seed=7, size="tiny")
    for name in FILES:
        assert (tiny.out / name).read_bytes() == (again.out / name).read_bytes(), name
    other = make_synthetic(tmp_path / "c", seed=8, size="tiny")
    assert (other.out / "genome.fa").read_bytes() != (tiny.out / "genome.fa").read_bytes()


def test_files_and_truth(tiny):
    truth = json.loads(tiny.truth.read_text())
    assert truth["cells"]["HepG2"] == ["HNF4A", "CEBPA", "FOXA2", "HNF1A"]
    assert truth["cells"]["K562"] == ["GATA1", "TAL1::TCF3"]
    assert set(truth["cells"]) == set(CELL_LINES)
    assert truth["motif_ids"]["HNF4A"].startswith("MA") and truth["jaspar_release"] == "JASPAR2022"
    assert set(truth["ubiquitous"]).isdisjoint(m for d in DRIVERS.values() for m in d)
    assert set(truth["decoys"]).isdisjoint(truth["ubiquitous"])
    assert truth["parameters"]["seed"] == 7
    g = Genome(tiny.genome)
    assert g.names == [f"chr{i}" for i in range(1, 6)]
    assert g.lengths == truth["chromosomes"]
    matrix = pd.read_csv(tiny.label_matrix, sep="\t")
    rdhs = pd.read_csv(tiny.rdhs, sep="\t", header=None, names=["chrom", "start", "end", "name"])
    assert list(matrix.columns) == ["chrom", "start", "end", "name", *CELL_LINES]
    assert matrix[["chrom", "start", "end", "name"]].equals(rdhs)
    only = matrix[list(CELL_LINES)].sum(axis=1) == 1
    for cell in CELL_LINES:
        assert int((only & (matrix[cell] == 1)).sum()) == truth["counts"]["positives"][cell] > 20
        bed = pd.read_csv(tiny.open_beds[cell], sep="\t", header=None)
        assert len(bed) == int(matrix[cell].sum())
    assert (matrix[list(CELL_LINES)].sum(axis=1) == 0).sum() == truth["counts"]["open_in_none"]
    black = pd.read_csv(tiny.blacklist, sep="\t", header=None)
    assert len(black) >= 5


def test_background_composition(tiny):
    g = Genome(tiny.genome)
    codes = np.concatenate([g.chromosome_codes(c) for c in g.names])
    codes = codes[codes < 4]
    gc = np.isin(codes, (1, 2)).mean()
    cpg = ((codes[:-1] == 1) & (codes[1:] == 2)).mean() / (gc / 2) ** 2
    assert 0.37 < gc < 0.45
    assert 0.15 < cpg < 0.45  # CpG depleted
    assert g.gaps("chr1", min_length=10_000)[0].size >= 2  # telomere and centromere-like gaps


def _best_scores(codes, pwm):
    """Max log-odds score of ``pwm`` over both strands of each window: (N,)."""
    logodds = np.log(pwm / 0.25)
    onehot = np.eye(5, 4)[codes]  # N, L, 4 (N -> zeros)
    windows = np.lib.stride_tricks.sliding_window_view(onehot, pwm.shape[1], axis=1)  # N, P, 4, w
    fwd = np.einsum("npcw,cw->np", windows, logodds)
    rev = np.einsum("npcw,cw->np", windows, logodds[::-1, ::-1])
    return np.maximum(fwd, rev).max(axis=1)


def test_planted_motifs_mark_their_cell_lines(tiny):
    g = Genome(tiny.genome)
    matrix = pd.read_csv(tiny.label_matrix, sep="\t")
    centre = (matrix["start"] + matrix["end"]) // 2
    codes = g.fetch_many(matrix["chrom"], (centre - 150).to_numpy(), length=300)
    motifs = planted_motif_matrices(["GATA1", "HNF4A", "CTCF", "NRF1", "SOX2"])
    k562 = (matrix["K562"] == 1).to_numpy() & (matrix[list(CELL_LINES)].sum(axis=1) == 1).to_numpy()
    none = (matrix[list(CELL_LINES)].sum(axis=1) == 0).to_numpy()
    gata = _best_scores(codes, motifs["GATA1"])
    assert np.median(gata[k562]) > np.median(gata[none]) + 3
    ubiquitous = np.maximum(_best_scores(codes, motifs["CTCF"]), _best_scores(codes, motifs["NRF1"]))
    rng = np.random.default_rng(0)
    background_starts = rng.integers(20_000, 200_000, 200)
    background = g.fetch_many(["chr1"] * 200, background_starts, length=300)
    bg_ubiq = np.maximum(_best_scores(background, motifs["CTCF"]), _best_scores(background, motifs["NRF1"]))
    assert np.median(ubiquitous[none]) > np.median(bg_ubiq) + 3


def test_prepare_reads_synthetic_data(tiny, tmp_path):
    pre = open_store(prepare_pretrain(tiny.genome, tiny.rdhs, tmp_path / "pre",
                                      exclude_positives=list(tiny.open_beds.values()), blacklist=tiny.blacklist,
                                      neg_ratio=1.0))
    truth = json.loads(tiny.truth.read_text())
    assert (pre.labels == 1).sum() == truth["counts"]["open_in_none"]
    assert set(pre.regions["chrom"]) == set(truth["chromosomes"]) and (pre.split == 1).any()
    ft = open_store(prepare_finetune(tiny.genome, tmp_path / "ft", cell="HEPG2", label_matrix=tiny.label_matrix))
    assert (ft.labels == 1).sum() == truth["counts"]["positives"]["HepG2"]


def test_cli_synth(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "s"), "--seed", "3", "--size", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "open sites" in out and (tmp_path / "s" / "truth.json").exists()


def test_variant_truth_is_a_vcf_of_driver_nonmotif_and_background_snvs(tiny):
    """cyvcf2 reads variants.vcf.gz; its classes are those of variants_truth.tsv; driver SNVs sit in
    an element open only in their cell line and break a near-consensus site of the planted TF at its
    most damaging base;
    non-motif SNVs lie in the same elements' core, background SNVs far from every element."""
    from cyvcf2 import VCF

    truth = pd.read_csv(tiny.variants_truth, sep="\t", keep_default_na=False)
    reader = VCF(str(tiny.variants))
    assert reader.seqnames == [f"chr{i}" for i in range(1, 6)]
    records = [(r.CHROM, r.POS, r.REF, r.ALT[0], r.INFO.get("CLASS"), r.INFO.get("CELL") or "") for r in reader]
    assert records == list(zip(truth["chrom"], truth["pos"], truth["ref"], truth["alt"], truth["class"],
                               truth["cell"]))
    counts = json.loads(tiny.truth.read_text())["counts"]["variants"]
    assert counts == truth["class"].value_counts().to_dict() and set(counts) == {"driver", "nonmotif", "background"}
    positives = json.loads(tiny.truth.read_text())["counts"]["positives"]
    driver = truth[truth["class"] == "driver"]
    assert all(0.7 * positives[c] <= n <= positives[c] for c, n in driver["cell"].value_counts().items())
    g = Genome(tiny.genome)
    bases = ["ACGTN"[g.fetch_codes(c, p - 1, p)[0]] for c, p in zip(truth["chrom"], truth["pos"])]
    assert bases == truth["ref"].tolist() and (truth["ref"] != truth["alt"]).all()
    matrix = pd.read_csv(tiny.label_matrix, sep="\t").set_index("name")
    for row in truth[truth["class"] != "background"].itertuples():
        element = matrix.loc[row.element]
        assert element["chrom"] == row.chrom and element["start"] < row.pos <= element["end"]
        assert element[list(CELL_LINES)].sum() == 1 and element[row.cell] == 1
        if row._5 == "driver":
            assert row.tf in DRIVERS[row.cell]
            # other lines with a driver of the TF's JASPAR family: HNF4A (HepG2, HCT116), FOXA1/FOXA2
            expected = {("HepG2", "HNF4A"): "HCT116", ("HCT116", "HNF4A"): "HepG2", ("HepG2", "FOXA2"): "MCF7",
                        ("MCF7", "FOXA1"): "HepG2"}.get((row.cell, row.tf), "")
            assert row.shared_with == expected, row
        else:
            assert abs(row.pos - 1 - (element["start"] + element["end"]) // 2) <= 101
    centres = (matrix["start"] + matrix["end"]) // 2
    for row in truth[truth["class"] == "background"].itertuples():
        assert (centres[matrix["chrom"] == row.chrom] - row.pos).abs().min() >= 700
    matrices = planted_motif_matrices(sorted(set(driver["tf"])))
    most_damaging = []
    for row in driver.itertuples():
        logp = np.log2(matrices[row.tf] / 0.25)  # log-odds against a uniform background
        width = logp.shape[1]
        local = g.fetch_codes(row.chrom, row.pos - width, row.pos + width - 1)  # the SNV at index width - 1
        best = None
        for strand_codes, at in ((local, width - 1), ((3 - local)[::-1], width - 1)):
            for s0 in range(at - width + 1, at + 1):
                site = strand_codes[s0:s0 + width]
                if site.size == width and (site < 4).all():
                    score = logp[site, np.arange(width)].sum()
                    if best is None or score > best[0]:
                        best = (score, site, at - s0)
        score, site, column = best
        drops = logp[site, np.arange(width)] - logp.min(axis=0)
        most_damaging.append(np.isclose(drops[column], drops.max())
                             and score > 0.6 * logp.max(axis=0).sum())
    assert np.mean(most_damaging) > 0.9  # a near-consensus site broken at its most damaging base
