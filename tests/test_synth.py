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

FILES = ["genome.fa", "rdhs.bed", "label_matrix.tsv", "blacklist.bed", "truth.json"] + \
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
