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
