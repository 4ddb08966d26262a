"""``prepare`` on real data (../shared/data/real, GRCh37), on a subsample; skipped where absent.

The genome names chromosomes the Ensembl way (``20``) while the labels use UCSC names (``chr20``),
so these tests also exercise the chromosome aliases on real files.
"""
from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from chromtransfer.datasets.finetune import prepare_finetune
from chromtransfer.datasets.labels import CELL_LINES, read_published_labels
from chromtransfer.datasets.pretrain import prepare_pretrain
from chromtransfer.datasets.store import open_store
from chromtransfer.genome import Genome

CSV_NAMES = ["A549", "GM12878", "HCT116", "HEPG2", "K562", "MCF7"]


@pytest.fixture(scope="module")
def real(shared_data):
    root = shared_data / "real"
    paths = {"genome": root / "genome" / "GRCh37_dev.fa.gz", "cells": root / "labels" / "chromtransfer_cells_GRCh37.tsv.gz",
             "csv": root / "labels" / "chromtransfer_csv_GRCh37", "ensembl": root / "labels" / "ensembl_open_chromatin_GRCh37.bed.gz",
             "blacklist": root / "hg19-blacklist.v2.bed.gz"}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        pytest.skip(f"real data files missing: {', '.join(missing)}")
    return paths


def test_pretrain_store_from_real_data(real, tmp_path):
    cells = pd.read_csv(real["cells"], sep="\t", dtype=str, keep_default_na=False)
    labels = cells[CSV_NAMES]
    present = labels != ""
    only_neg = present.any(axis=1) & (~present | labels.apply(lambda col: col.str.endswith("_NEG"))).all(axis=1)
    rdhs = cells.loc[only_neg, ["#chrom", "start", "end"]].sample(300, random_state=0)
    rdhs_bed = tmp_path / "rdhs.bed"
    rdhs.to_csv(rdhs_bed, sep="\t", header=False, index=False)
    with gzip.open(real["ensembl"], "rt") as handle:
        ensembl = pd.read_csv(handle, sep="\t", header=None, names=["chrom", "start", "end", "kind"])
    ens_bed = tmp_path / "ensembl.bed"
    ensembl.loc[ensembl["kind"] == "positive"].sample(200, random_state=0).to_csv(ens_bed, sep="\t", header=False, index=False)
    cell_pos = []
    for name in CSV_NAMES:
        table = read_published_labels(real["csv"] / f"{name}.csv")
        cell_pos.append(table.loc[table["label"] == name, ["chrom", "start", "end"]])
    excl_bed = tmp_path / "cell_positives.bed"
    pd.concat(cell_pos).to_csv(excl_bed, sep="\t", header=False, index=False)

    store = open_store(prepare_pretrain(real["genome"], [rdhs_bed, ens_bed], tmp_path / "pre",
                                        exclude_positives=excl_bed, blacklist=real["blacklist"], neg_ratio=1.0,
                                        test_chroms="chr22", exclude_chroms="X", seed=0))
    dropped = store.manifest["dropped"]
    n_pos = int((store.labels == 1).sum())
    removed = sum(dropped.get(k, 0) for k in ("positives_duplicates", "excluded_positives", "excluded_chromosome",
                                               "off_end", "duplicate_windows", "n_fraction"))
    assert n_pos == 500 - removed and dropped["excluded_chromosome"] > 0  # every positive accounted for
    assert set(store.regions["chrom"]) == {"20", "22"}  # Ensembl names from the genome
    assert (store.split[store.regions["chrom"].to_numpy() == "22"] == 1).all()
    for code in (0, 1):
        in_split = store.split == code
        assert (store.labels[in_split] == 0).sum() == (store.labels[in_split] == 1).sum()
    assert dropped["tiles_blacklist"] > 0 and dropped["tiles_gap"] > 0
    g = Genome(real["genome"])
    r = store.regions.iloc[5]
    np.testing.assert_array_equal(store.sequences[5], g.fetch_codes(r["chrom"], r["start"], r["end"]))
    assert not (np.asarray(store.sequences)[store.labels == 0] == 4).any()


@pytest.mark.parametrize("cell", CSV_NAMES)
def test_finetune_store_from_published_csv(real, tmp_path, cell):
    source = real["csv"] / f"{cell}.csv"
    lines = source.read_text().splitlines()
    rng = np.random.default_rng(0)
    keep = sorted(rng.choice(len(lines), size=min(150, len(lines)), replace=False))
    subset = tmp_path / f"{cell}.csv"
    subset.write_text("\n".join(lines[i] for i in keep) + "\n")
    store = open_store(prepare_finetune(real["genome"], tmp_path / cell, cell=cell.lower(), labels_csv=subset,
                                        test_chroms="chr22", seed=0))
    table = read_published_labels(subset)
    assert store.n_rows == len(table.drop_duplicates(["chrom", "start", "end"]))
    assert (store.labels == 1).sum() == (table["label"] == cell).sum()
    assert store.regions["label_name"].value_counts().to_dict() == table["label"].value_counts().to_dict()
    assert store.manifest["cell"] in CELL_LINES
    g = Genome(real["genome"])
    r = store.regions.iloc[-1]
    np.testing.assert_array_equal(store.sequences[-1], g.fetch_codes(r["chrom"], r["start"], r["end"]))


def test_cell_table_gives_the_papers_balanced_sets(real, tmp_path):
    from chromtransfer.datasets.labels import read_cell_table

    regions, opened, names = read_cell_table(real["cells"])
    assert names == CSV_NAMES
    assert regions.attrs["dropped"]["cell_table_background"] == 7  # windows labelled only Negative
    table = pd.read_csv(real["cells"], sep="\t", dtype=str, keep_default_na=False)
    for j, name in enumerate(CSV_NAMES):  # open in a line = labelled with its name
        assert opened[:, j].sum() == (table[name] == name).sum()
    hepg2 = opened[:, CSV_NAMES.index("HEPG2")]
    assert hepg2.sum() == 1213 and (opened.sum(axis=1) <= 1).all()  # the published positives are exclusive
    # a balanced set on a subsample of the table: every positive, three negatives per positive and split
    subset = tmp_path / "cells.tsv"
    table.iloc[::6].to_csv(subset, sep="\t", index=False)
    store = open_store(prepare_finetune(real["genome"], tmp_path / "hep", cell="HepG2", cell_table=subset,
                                        test_chroms="chr22", background=0, seed=0))
    positives = int((table.iloc[::6]["HEPG2"] == "HEPG2").sum())
    assert int(store.labels.sum()) == positives
    rdhs = (store.regions["label_name"] != "Negative").to_numpy()
    for code in (0, 1):
        in_split = rdhs & (store.split == code)
        assert (store.labels[in_split] == 0).sum() == 3 * (store.labels[in_split] == 1).sum()
    assert set(store.regions.loc[rdhs & (store.labels == 0), "label_name"]) == {"HEPG2_NEG"}


def test_real_study_config_loads_and_plans(shared_data, tmp_path, capsys):
    from pathlib import Path

    from chromtransfer.cli import main
    from chromtransfer.workflow.config import load_config, missing_inputs

    config_path = Path(__file__).resolve().parents[1] / "configs" / "real_grch37.yaml"
    config = load_config(config_path)
    missing_inputs(config)  # every input resolves to the shared data next to the repository
    assert config.inputs.cell_table and config.inputs.rdhs is None
    assert config.prepare.test_chroms == ["chr22"] and config.interpret.cells == ["HepG2", "K562"]
    assert main(["run", str(config_path), "--out", str(tmp_path / "study"), "--dry-run"]) == 0
    planned = capsys.readouterr().out
    for stage in ("prepare/pretrain", "train/HepG2/finetune/fold0", "train/K562/baseline/fold0", "interpret/K562"):
        assert f"[run ] {stage}" in planned
    moved = tmp_path / "elsewhere" / "real.yaml"
    moved.parent.mkdir()
    moved.write_text(config_path.read_text())
    assert main(["run", str(moved), "--out", str(tmp_path / "s2"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "inputs.genome: ../../shared/data/real/genome/GRCh37_dev.fa.gz not found" in err
