"""``prepare pretrain`` / ``prepare finetune``: filters, sampling, splits, folds, label rules, CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from chromtransfer.cli import main
from chromtransfer.datasets.build import GC_BINS, gc_matched_sample
from chromtransfer.datasets.composition import balance_warnings, cpg_per_100bp, gc_fraction
from chromtransfer.datasets.finetune import prepare_finetune
from chromtransfer.datasets.labels import exclusive_positives, open_from_signal, read_cell_table, read_signal_matrix
from chromtransfer.datasets.pretrain import prepare_pretrain
from chromtransfer.datasets.splits import assign_folds, assign_split
from chromtransfer.datasets.store import open_store
from chromtransfer.errors import InputError
from chromtransfer.genome import Genome

LENGTHS = {"chr1": 40_000, "chr2": 24_000, "chr3": 24_000, "chr4": 30_000}
GAP = ("chr1", 6000, 9000)
BLACKLIST = ("chr4", 5000, 10_000)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A genome with a gap, GC-rich positive regions, and the region files of the tests."""
    root = tmp_path_factory.mktemp("prepare")
    rng = np.random.default_rng(11)
    seqs = {}
    positives = []
    for name, size in LENGTHS.items():
        codes = rng.choice(np.frombuffer(b"ACGT", np.uint8), size, p=[0.3, 0.2, 0.2, 0.3])
        starts = np.arange(1500, size - 1500, 2500)
        for s in starts:  # GC-rich open regions of 200 bp
            if GAP[0] == name and GAP[1] - 1500 < s < GAP[2] + 1500:
                continue
            codes[s:s + 200] = rng.choice(np.frombuffer(b"ACGT", np.uint8), 200, p=[0.15, 0.35, 0.35, 0.15])
            positives.append((name, int(s), int(s) + 200))
        if name == GAP[0]:
            codes[GAP[1]:GAP[2]] = ord("N")
        seqs[name] = codes.tobytes().decode()
    fasta = root / "genome.fa"
    with open(fasta, "w") as handle:
        for name, seq in seqs.items():
            handle.write(f">{name}\n" + "\n".join(seq[i:i + 80] for i in range(0, len(seq), 80)) + "\n")
    pos = pd.DataFrame(positives, columns=["chrom", "start", "end"])
    extra = pd.DataFrame([("chr1", 7000, 7300),   # inside the gap: dropped for N content
                          ("chr2", 23_800, 23_950),  # window runs off the end
                          positives[0]], columns=["chrom", "start", "end"])  # a duplicate
    bed = root / "pos.bed"
    pd.concat([pos, extra]).to_csv(bed, sep="\t", header=False, index=False)
    excl = root / "cells.bed"
    pd.DataFrame([("chr3", positives_on(pos, "chr3")[0][1] + 50, positives_on(pos, "chr3")[0][1] + 60),
                  ("chr4", positives_on(pos, "chr4")[1][1], positives_on(pos, "chr4")[1][2]),
                  ("chr9", 1, 100)]).to_csv(excl, sep="\t", header=False, index=False)
    black = root / "blacklist.bed"
    black.write_text("\t".join(map(str, BLACKLIST)) + "\nchrUn_x\t1\t100\n")
    return {"root": root, "fasta": fasta, "positives": bed, "exclude": excl, "blacklist": black, "regions": pos}


def positives_on(table, chrom):
    return [tuple(r) for r in table.loc[table["chrom"] == chrom].itertuples(index=False)]


def _min_gap(chrom, start, end, regions):
    same = regions.loc[regions["chrom"] == chrom]
    return np.maximum(same["start"].to_numpy() - end, start - same["end"].to_numpy()).min()


def test_pretrain_filters_and_counts(data, tmp_path):
    out = prepare_pretrain(data["fasta"], data["positives"], tmp_path / "pre", exclude_positives=data["exclude"],
                           blacklist=data["blacklist"], min_distance=300, folds=3, seed=1)
    store = open_store(out)
    manifest = store.manifest
    dropped = manifest["dropped"]
    assert dropped["positives_duplicates"] == 1
    assert dropped["excluded_positives"] == 2
    assert dropped["off_end"] == 1
    assert dropped["n_fraction"] == 1
    assert dropped["tiles_gap"] >= 5 and dropped["tiles_blacklist"] >= 8
    n_regions = len(data["regions"])
    regions = store.regions
    pos = regions.loc[store.labels == 1]
    neg = regions.loc[store.labels == 0]
    assert len(pos) == n_regions - 2
    assert set(pos["label_name"]) == {"rDHS"} and set(neg["label_name"]) == {"background"}
    assert (regions["end"] - regions["start"]).eq(600).all()
    g = Genome(data["fasta"])
    seqs = np.asarray(store.sequences)
    for i in range(0, len(regions), 7):  # stored sequence == genome window
        r = regions.iloc[i]
        np.testing.assert_array_equal(seqs[i], g.fetch_codes(r["chrom"], r["start"], r["end"]))
    assert not (seqs[store.labels == 0] == 4).any()  # no gap in any negative
    all_open = pd.concat([data["regions"], pd.read_csv(data["exclude"], sep="\t", header=None,
                                                       names=["chrom", "start", "end"])])
    for r in neg.itertuples(index=False):
        assert not (r.chrom == BLACKLIST[0] and r.start < BLACKLIST[2] and r.end > BLACKLIST[1])
        assert _min_gap(r.chrom, r.start, r.end, all_open) >= 300
    # negatives are the genome tiling: starts on the 600 bp grid
    assert (neg["start"] % 600 == 0).all()
    # splits: chr2 and chr3 are the test set; folds only on training rows
    test = regions["chrom"].isin(["chr2", "chr3"]).to_numpy()
    np.testing.assert_array_equal(store.split, test.astype(np.uint8))
    assert (store.fold[test] == -1).all() and set(store.fold[~test]) == {0, 1, 2}
    assert manifest["inputs"]["genome"][0]["sha256"] and manifest["parameters"]["min_distance"] == 300
    assert "fold_assignment" in manifest and manifest["seed"] == 1


def test_pretrain_neg_ratio_and_distance(data, tmp_path):
    far = open_store(prepare_pretrain(data["fasta"], data["positives"], tmp_path / "a", min_distance=1000, seed=0))
    near = open_store(prepare_pretrain(data["fasta"], data["positives"], tmp_path / "b", min_distance=0, seed=0))
    assert (far.labels == 0).sum() < (near.labels == 0).sum()
    ratio = open_store(prepare_pretrain(data["fasta"], data["positives"], tmp_path / "c", neg_ratio=0.5, seed=0))
    for code in (0, 1):
        in_split = ratio.split == code
        n_pos = int((ratio.labels[in_split] == 1).sum())
        assert int((ratio.labels[in_split] == 0).sum()) == round(0.5 * n_pos)
    assert ratio.manifest["sampling"]["neg_ratio"] == 0.5


def test_pretrain_negatives_keep_their_distance_from_the_region_itself(data, tmp_path):
    """The paper removes tiles within 300 bp of an rDHS; the 600 bp window around a 200 bp region
    reaches 200 bp further, so measuring from it removes tiles 300-500 bp from the region too."""
    region = open_store(prepare_pretrain(data["fasta"], data["positives"], tmp_path / "r", min_distance=300, seed=0))
    window = open_store(prepare_pretrain(data["fasta"], data["positives"], tmp_path / "w", min_distance=300, seed=0,
                                         distance_from="window"))
    assert region.manifest["parameters"]["distance_from"] == "region"
    regions = data["regions"]
    gaps = {name: np.array([_min_gap(r.chrom, r.start, r.end, regions) for r in store.regions.loc[
        store.labels == 0].itertuples(index=False)]) for name, store in (("region", region), ("window", window))}
    assert (gaps["region"] >= 300).all() and (gaps["window"] >= 500).all()
    assert ((gaps["region"] >= 300) & (gaps["region"] < 500)).any()
    assert (region.labels == 0).sum() > (window.labels == 0).sum()
    with pytest.raises(InputError, match="distance-from"):
        prepare_pretrain(data["fasta"], data["positives"], tmp_path / "x", distance_from="peak")


def test_pretrain_gc_match(data, tmp_path):
    def gc(store, label):
        s = np.asarray(store.sequences)[store.labels == label]
        return np.isin(s, (1, 2)).mean()

    plain = open_store(prepare_pretrain(data["fasta"], data["positives"], tmp_path / "u", neg_ratio=0.5,
                                        min_distance=0, seed=3))
    matched = open_store(prepare_pretrain(data["fasta"], data["positives"], tmp_path / "m", neg_ratio=0.5,
                                          min_distance=0, seed=3, gc_match=True))
    assert matched.manifest["sampling"]["gc_match"] is True
    assert abs(gc(matched, 0) - gc(matched, 1)) < abs(gc(plain, 0) - gc(plain, 1))
    with pytest.raises(InputError, match="neg-ratio"):
        prepare_pretrain(data["fasta"], data["positives"], tmp_path / "x", gc_match=True)


def test_test_chroms_all_and_folds_by_seed(data, tmp_path):
    store = open_store(prepare_pretrain(data["fasta"], data["positives"], tmp_path / "t", test_chroms="all"))
    assert (store.split == 1).all() and (store.fold == -1).all() and store.n_folds == 0
    a = open_store(prepare_pretrain(data["fasta"], data["positives"], tmp_path / "s1", seed=5))
    b = open_store(prepare_pretrain(data["fasta"], data["positives"], tmp_path / "s2", seed=5))
    c = open_store(prepare_pretrain(data["fasta"], data["positives"], tmp_path / "s3", seed=6))
    np.testing.assert_array_equal(a.fold, b.fold)
    assert not np.array_equal(a.fold, c.fold)
    np.testing.assert_array_equal(a.labels, c.labels)
    # stratified: every fold holds a third of each label, to within one row
    train = a.split == 0
    for label in (0, 1):
        per_fold = np.bincount(a.fold[train & (a.labels == label)], minlength=3)
        assert per_fold.max() - per_fold.min() <= 1


def test_split_helpers():
    chroms = np.array(["chr1", "2", "chr3", "chrX", "chr2"], dtype=object)
    assert assign_split(chroms, "chr2,chr3").tolist() == [0, 1, 1, 0, 1]
    assert assign_split(chroms, ["3"]).tolist() == [0, 0, 1, 0, 0]
    assert assign_split(chroms, "all").tolist() == [1] * 5
    split = np.zeros(40, dtype=np.uint8)
    by_chrom = assign_folds(split, 2, 0, chroms=np.repeat(["a", "b", "c", "d"], 10), scheme="chromosomes")
    for k in range(4):  # whole chromosomes stay in one fold
        assert len(set(by_chrom[k * 10:(k + 1) * 10])) == 1
    assert sorted(np.bincount(by_chrom)) == [20, 20]
    with pytest.raises(InputError):
        assign_folds(split, 5, 0, chroms=np.repeat(["a", "b"], 20), scheme="chromosomes")


# --------------------------------------------------------------------------- fine-tuning
def _csv(path, rows):
    path.write_text("".join(f"{c}:{s}-{e},{label}\n" for c, s, e, label in rows))
    return path


def test_finetune_published_labels(data, tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    regions = data["regions"]
    w = [(r.chrom, r.start - 200, r.start + 400) for r in regions.itertuples(index=False)]
    _csv(folder / "HEPG2.csv", [(*w[0], "HEPG2"), (*w[1], "HEPG2"), (*w[2], "HEPG2_NEG"), (*w[3], "Negative"),
                                (*w[8], "HEPG2"), (*w[9], "HEPG2_NEG"), (*w[0], "HEPG2")])
    _csv(folder / "K562.csv", [(*w[0], "K562_NEG"), (*w[2], "K562"), (*w[4], "K562_NEG"), (*w[3], "Negative"),
                               (*w[10], "K562")])
    store = open_store(prepare_finetune(data["fasta"], tmp_path / "hep", cell="hepg2", labels_csv=folder,
                                        test_chroms="none"))
    assert store.classes == ["negative", "positive"] and store.manifest["cell"] == "HepG2"
    names = store.regions.set_index("name")["label_name"]
    assert names[f"{w[0][0]}:{w[0][1]}-{w[0][2]}"] == "HEPG2"
    assert sorted(store.regions["label_name"]) == sorted(["HEPG2", "HEPG2", "HEPG2", "HEPG2_NEG", "HEPG2_NEG",
                                                          "Negative"])
    assert (store.labels == (store.regions["label_name"] == "HEPG2").to_numpy()).all()
    assert store.manifest["dropped"]["HEPG2_duplicates"] == 1
    g = Genome(data["fasta"])
    r = store.regions.iloc[0]
    np.testing.assert_array_equal(store.sequences[0], g.fetch_codes(r["chrom"], r["start"], r["end"]))

    key = lambda i: f"{w[i][0]}:{w[i][1]}-{w[i][2]}"  # noqa: E731
    # the authors' set (default): positives of each line + the Negative windows of each file, no *_NEG
    multi = open_store(prepare_finetune(data["fasta"], tmp_path / "mc", task="multiclass", labels_csv=folder,
                                        test_chroms="none"))
    assert multi.task == "multiclass" and multi.classes == ["HepG2", "K562", "background"]
    assert multi.manifest["parameters"]["multiclass_set"] == "authors"
    table = multi.regions.assign(label=multi.labels)
    assert sorted(zip(table["name"], table["label"], table["label_name"])) == sorted(
        [(key(0), 0, "HEPG2"), (key(1), 0, "HEPG2"), (key(8), 0, "HEPG2"), (key(2), 1, "K562"),
         (key(10), 1, "K562"), (key(3), 2, "Negative"), (key(3), 2, "Negative")])  # once per file
    assert multi.manifest["dropped"]["multiclass_negative_rdhs_not_used"] == 4  # the four *_NEG rows
    # the union of the binary sets, each window once, negative rDHSs in the background class
    union = open_store(prepare_finetune(data["fasta"], tmp_path / "mcu", task="multiclass", labels_csv=folder,
                                        multiclass_set="union", test_chroms="none"))
    table = union.regions.assign(label=union.labels).set_index("name")
    assert table.loc[key(0), "label"] == 0 and table.loc[key(2), "label"] == 1  # positive beats *_NEG
    assert table.loc[key(3), "label"] == 2 and table.loc[key(3), "label_name"] == "Negative"
    assert table.loc[key(4), "label_name"] == "rDHS" and table.loc[key(4), "label"] == 2
    assert len(union.regions) == 8

    _csv(folder / "HEPG2.csv", [(*w[0], "HEPG2"), (*w[1], "liver")])
    with pytest.raises(InputError) as err:
        prepare_finetune(data["fasta"], tmp_path / "bad", cell="HepG2", labels_csv=folder)
    assert "HEPG2.csv:2" in str(err.value)
    with pytest.raises(InputError, match="cell line 'A549'"):
        prepare_finetune(data["fasta"], tmp_path / "bad", cell="A549", labels_csv=folder)


def _matrix(data, tmp_path):
    """Label matrix over the test regions: A only, B only, C only, none, A+B."""
    regions = data["regions"].reset_index(drop=True)
    pattern = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0], [1, 1, 0]])
    opened = pattern[np.arange(len(regions)) % len(pattern)]
    table = regions.assign(name=[f"r{i}" for i in range(len(regions))], A=opened[:, 0], B=opened[:, 1], C=opened[:, 2])
    path = tmp_path / "matrix.tsv"
    table.to_csv(path, sep="\t", index=False)
    return path, table, opened


def test_finetune_label_matrix(data, tmp_path):
    path, table, opened = _matrix(data, tmp_path)
    exclusive = exclusive_positives(opened)
    store = open_store(prepare_finetune(data["fasta"], tmp_path / "a", cell="a", label_matrix=path, neg_ratio=1.0,
                                        background=5, blacklist=data["blacklist"], seed=2))
    regions = store.regions
    by_name = table.set_index("name")
    rdhs = regions["label_name"] != "Negative"
    names = regions.loc[rdhs, "name"]
    ex = exclusive[table.index[table["name"].isin(names)]]
    assert set(ex.tolist()) <= {0, 1, 2, -1}  # regions open in several lines are never used
    pos_names = regions.loc[store.labels == 1, "name"]
    assert set(pos_names) == set(table.loc[exclusive == 0, "name"])  # every exclusive A region
    assert set(regions.loc[store.labels == 1, "label_name"]) == {"A"}
    assert set(regions.loc[rdhs & (store.labels == 0), "label_name"]) == {"A_NEG"}
    for code in (0, 1):  # 1:1 per split among rDHS rows (pool is large enough)
        sel = (store.split == code) & rdhs.to_numpy()
        assert (store.labels[sel] == 0).sum() == (store.labels[sel] == 1).sum()
    neg_names = regions.loc[rdhs & (store.labels == 0), "name"]
    assert not by_name.loc[neg_names, "A"].astype(bool).any()
    background = regions.loc[~rdhs]
    assert len(background) == 5 and (store.labels[~rdhs.to_numpy()] == 0).all()
    for r in background.itertuples(index=False):
        assert _min_gap(r.chrom, r.start, r.end, data["regions"]) >= 300
        assert not (r.chrom == BLACKLIST[0] and r.start < BLACKLIST[2] and r.end > BLACKLIST[1])
    # same seed -> same background windows for another cell line
    other = open_store(prepare_finetune(data["fasta"], tmp_path / "b", cell="B", label_matrix=path, neg_ratio=1.0,
                                        background=5, blacklist=data["blacklist"], seed=2))
    assert set(other.regions.loc[other.regions["label_name"] == "Negative", "name"]) == set(background["name"])
    assert store.manifest["dropped"]["regions_open_in_several"] == int((exclusive == -2).sum())
    bad = table.astype({"B": str})
    bad.loc[4, "B"] = "maybe"
    bad.to_csv(path, sep="\t", index=False)
    with pytest.raises(InputError) as err:
        prepare_finetune(data["fasta"], tmp_path / "c", cell="A", label_matrix=path)
    assert f"{path}:6" in str(err.value) and "'maybe'" in str(err.value)


def test_signal_rule():
    # log10: 0, 1, 2, 3, -inf(zero); global mean/sd over the finite values
    values = np.array([[1.0, 10.0], [100.0, 1000.0], [0.0, 1.0]])
    opened, stats = open_from_signal(values, np.array([0, 1]), 2, threshold=1.0)
    logged = np.array([0, 1, 2, 3, 0])
    assert stats["log10_mean"] == pytest.approx(logged.mean()) and stats["log10_sd"] == pytest.approx(logged.std())
    z = (np.array([[0, 1], [2, 3], [-np.inf, 0]]) - logged.mean()) / logged.std()
    np.testing.assert_array_equal(opened, z > 1.0)
    # any replicate of a line suffices
    opened, _ = open_from_signal(np.array([[1, 1, 1e6], [1, 1, 1], [1e6, 1, 1]] + [[1, 1, 1]] * 20, dtype=float),
                                 np.array([0, 0, 1]), 2)
    assert opened[0].tolist() == [False, True] and opened[2].tolist() == [True, False] and not opened[1].any()


def test_finetune_signal_matrix(data, tmp_path):
    regions = data["regions"].reset_index(drop=True).iloc[:30]
    rng = np.random.default_rng(4)
    signal = rng.uniform(5, 15, size=(30, 5))  # A_rep1 A_rep2 B_rep1 B_rep2 C
    signal[0:6, 0] = 5000     # open in A (one replicate)
    signal[6:12, 3] = 5000    # open in B
    signal[12:14, [1, 2]] = 5000  # open in A and B: in no set
    table = regions.assign(A_rep1=signal[:, 0], A_rep2=signal[:, 1], B_rep1=signal[:, 2], B_rep2=signal[:, 3],
                           C=signal[:, 4])
    path = tmp_path / "signal.tsv"
    table.to_csv(path, sep="\t", index=False)
    _, opened, names, stats = read_signal_matrix(path)
    assert names == ["A", "B", "C"] and stats["replicates"]["A"] == ["A_rep1", "A_rep2"]
    expected = np.zeros((30, 3), dtype=bool)
    expected[0:6, 0] = expected[6:12, 1] = True
    expected[12:14, :2] = True
    np.testing.assert_array_equal(opened, expected)
    store = open_store(prepare_finetune(data["fasta"], tmp_path / "s", cell="A", signal_matrix=path, neg_ratio=3.0,
                                        background=0, test_chroms="none"))
    assert (store.labels == 1).sum() == 6 and (store.labels == 0).sum() == 18
    assert store.manifest["parameters"]["labels_from"] == "signal matrix"
    bad = table.copy()
    bad.loc[3, "C"] = -1.0
    bad.to_csv(path, sep="\t", index=False)
    with pytest.raises(InputError) as err:
        read_signal_matrix(path)
    assert f"{path}:5" in str(err.value)


def test_finetune_multiclass_from_matrix(data, tmp_path):
    path, table, opened = _matrix(data, tmp_path)
    exclusive = exclusive_positives(opened)
    authors = open_store(prepare_finetune(data["fasta"], tmp_path / "mca", task="multiclass", label_matrix=path,
                                          neg_ratio=1.0, background=4, seed=0))
    assert authors.classes == ["A", "B", "C", "background"]
    assert set(authors.regions["label_name"]) == {"A", "B", "C", "Negative"}  # no negative rDHS
    for c in range(3):
        assert (authors.labels == c).sum() == (exclusive == c).sum()
    background = authors.regions.loc[authors.labels == 3, "name"]
    assert len(background) == 4 * 3 and (background.value_counts() == 3).all()  # 4 windows, once per line
    store = open_store(prepare_finetune(data["fasta"], tmp_path / "mc", task="multiclass", label_matrix=path,
                                        neg_ratio=1.0, background=4, seed=0, multiclass_set="union"))
    assert store.classes == ["A", "B", "C", "background"]
    named = store.regions.assign(label=store.labels)
    ex = dict(zip(table["name"], exclusive))
    for r in named.itertuples(index=False):
        if r.label_name == "Negative":
            assert r.label == 3
        else:
            assert r.label == (ex[r.name] if ex[r.name] >= 0 else 3)
            assert ex[r.name] != -2
    for c in range(3):  # every exclusive positive of every line is in
        assert (store.labels == c).sum() == (exclusive == c).sum()
    summary = json.loads(_cli_json(["info", "dataset", str(store.path), "--json"]))
    assert summary["labels"]["Negative"] == 4 and summary["negatives"] == int((store.labels == 3).sum())


def _cli_json(args):
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(args) == 0
    return buffer.getvalue()


def test_cli_prepare_and_info(data, tmp_path, capsys):
    out = tmp_path / "cli"
    status = main(["prepare", "pretrain", "--genome", str(data["fasta"]), "--positives", str(data["positives"]),
                   str(data["exclude"]), "--blacklist", str(data["blacklist"]), "--neg-ratio", "1",
                   "--test-chroms", "chr2", "--drop-missing-chroms", "--out", str(out)])
    assert status == 0
    text = capsys.readouterr().out
    assert "wrote" in text and "dropped/filtered" in text
    summary = json.loads(_cli_json(["info", "dataset", str(out), "--json"]))
    for key in ("rows", "positives", "negatives", "splits", "folds", "labels"):
        assert key in summary
    assert set(summary["splits"]) == {"train", "test"}
    assert summary["rows"] == summary["positives"] + summary["negatives"]
    assert summary["labels"] == {"background": summary["negatives"], "rDHS": summary["positives"]}
    assert summary["manifest"]["inputs"]["positives"][1]["path"] == str(data["exclude"])  # two files after one flag
    assert summary["manifest"]["dropped"]["positives_missing_chromosome"] == 1  # chr9 of the second file
    # bad input: one error line, exit status 2
    bad = tmp_path / "bad.bed"
    bad.write_text("chr1\t100\t50\n")
    status = main(["prepare", "pretrain", "--genome", str(data["fasta"]), "--positives", str(bad),
                   "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and f"{bad}:1" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- GC matching, composition
def test_gc_matched_sample_follows_the_target_distribution():
    rng = np.random.default_rng(0)
    target = np.clip(rng.normal(0.55, 0.03, 2000), 0, 1)
    pool = rng.uniform(0.30, 0.70, 20_000)
    picked = pool[gc_matched_sample(np.random.default_rng(1), target, pool, 1000)]
    uniform = pool[rng.choice(pool.size, 1000, replace=False)]
    edges = np.linspace(0, 1, GC_BINS + 1)
    share = lambda x: np.histogram(x, edges)[0] / x.size  # noqa: E731
    assert np.abs(share(picked) - share(target)).sum() < 0.15  # total variation over 2 % bins
    assert np.abs(share(uniform) - share(target)).sum() > 1.0
    assert abs(picked.mean() - target.mean()) < 0.005 and len(set(picked)) == 1000


@pytest.fixture(scope="module")
def patchy_gc(tmp_path_factory):
    """A genome of 1.2 kb segments of GC 0.30-0.65 with rDHSs in its GC-rich segments, and their
    label matrix (lines A and B, every third region open in none)."""
    root = tmp_path_factory.mktemp("gc")
    rng = np.random.default_rng(5)
    regions, lines = [], []
    for chrom in ("chr1", "chr2"):
        gc = np.repeat(rng.uniform(0.30, 0.65, 80), 1200)
        u = rng.random(gc.size)
        codes = np.where(u < (1 - gc) / 2, 0, np.where(u < 0.5, 1, np.where(u < 0.5 + gc / 2, 2, 3)))
        lines.append(f">{chrom}\n" + "".join("ACGT"[c] for c in codes) + "\n")
        for segment in np.flatnonzero(gc[::1200] > 0.5):
            regions.append((chrom, int(segment * 1200 + 200), int(segment * 1200 + 400)))
    fasta = root / "genome.fa"
    fasta.write_text("".join(lines))
    table = pd.DataFrame(regions, columns=["chrom", "start", "end"])
    table["A"] = (np.arange(len(table)) % 3 == 0).astype(int)
    table["B"] = (np.arange(len(table)) % 3 == 1).astype(int)
    matrix = root / "matrix.tsv"
    table.to_csv(matrix, sep="\t", index=False)
    return fasta, matrix


def test_finetune_gc_match_draws_background_with_the_positives_gc(patchy_gc, data, tmp_path):
    fasta, matrix = patchy_gc

    def background_gc_gap(store):
        gc = gc_fraction(np.asarray(store.sequences))
        background = (store.regions["label_name"] == "Negative").to_numpy()
        return abs(gc[background].mean() - gc[store.labels == 1].mean())

    options = dict(cell="A", label_matrix=matrix, neg_ratio=1.0, background=30, min_distance=0, test_chroms="chr2",
                   seed=2)
    plain = open_store(prepare_finetune(fasta, tmp_path / "plain", **options))
    matched = open_store(prepare_finetune(fasta, tmp_path / "gc", gc_match=True, **options))
    assert matched.manifest["parameters"]["gc_match"] is True and matched.manifest["parameters"]["gc_bins"] == GC_BINS
    assert plain.manifest["parameters"]["gc_match"] is False
    assert (matched.regions["label_name"] == "Negative").sum() == 30
    assert background_gc_gap(plain) > 0.05 and background_gc_gap(matched) < 0.02
    folder = tmp_path / "csv"
    folder.mkdir()
    _csv(folder / "A.csv", [(r.chrom, r.start - 200, r.start + 400, "A") for r in data["regions"][:3].itertuples()])
    with pytest.raises(InputError, match="--background"):  # published files are used as given
        prepare_finetune(data["fasta"], tmp_path / "x", cell="A", labels_csv=folder, gc_match=True)


def _cell_table(data, tmp_path, opened, extra_rows=()):
    """The label matrix of :func:`_matrix` written as a cell table (published label names)."""
    rows = []
    for r, row in zip(data["regions"].itertuples(index=False), opened):
        labels = [cell if is_open else f"{cell}_NEG" for cell, is_open in zip("ABC", row)]
        rows.append([r.chrom, r.start, r.end, r.start + 7, r.end + 7, *labels])
    rows.extend(extra_rows)
    path = tmp_path / "cells.tsv"
    pd.DataFrame(rows, columns=["#chrom", "start", "end", "start_GRCh38", "end_GRCh38", "A", "B", "C"]).to_csv(
        path, sep="\t", index=False)
    return path


def test_finetune_cell_table_is_the_label_matrix_of_its_names(data, tmp_path):
    matrix, table, opened = _matrix(data, tmp_path)
    cells = _cell_table(data, tmp_path, opened, extra_rows=[["chr4", 20_000, 20_600, 1, 601, "Negative", "", ""]])
    regions, read, names = read_cell_table(cells)
    assert names == ["A", "B", "C"] and (read == opened.astype(bool)).all()
    assert regions.attrs["dropped"]["cell_table_background"] == 1
    _, two, _ = read_cell_table(cells, cells=["a", "B"])  # C's own windows stay, open in none of A, B
    assert two.shape == (len(opened), 2) and (two == opened[:, :2].astype(bool)).all()
    options = dict(cell="A", neg_ratio=1.0, background=5, seed=2)
    from_table = open_store(prepare_finetune(data["fasta"], tmp_path / "t", cell_table=cells, **options))
    from_matrix = open_store(prepare_finetune(data["fasta"], tmp_path / "m", label_matrix=matrix, **options))
    rows = lambda s: sorted(zip(s.regions["chrom"], s.regions["start"], s.labels.tolist(),  # noqa: E731
                                s.regions["label_name"]))
    assert rows(from_table) == rows(from_matrix)
    assert from_table.manifest["parameters"]["labels_from"] == "cell table"
    assert from_table.manifest["inputs"]["cell_table"][0]["path"] == str(cells)


def test_cell_table_errors_name_file_line_and_fix(data, tmp_path, capsys):
    _, _, opened = _matrix(data, tmp_path)
    cells = _cell_table(data, tmp_path, opened)
    text = cells.read_text().splitlines()
    fields = text[3].split("\t")
    fields[5] = "K562"  # a label of another line in column A
    text[3] = "\t".join(fields)
    cells.write_text("\n".join(text) + "\n")
    status = main(["prepare", "finetune", "--genome", str(data["fasta"]), "--cell", "A", "--cell-table", str(cells),
                   "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert f"{cells}:4" in err and "column 'A' holds 'K562'" in err and "A_NEG" in err
    cells.write_text("#chrom\tstart\tend\nchr1\t100\t700\n")
    with pytest.raises(InputError, match="no cell-line columns"):
        read_cell_table(cells)


def test_composition_measures():
    codes = np.array([[1, 2, 1, 2, 0, 3, 4, 4],   # C G C G A T N N: GC 4/6, CpG 2 per 6 bases
                      [0, 0, 3, 3, 0, 3, 0, 3]])
    np.testing.assert_allclose(gc_fraction(codes), [4 / 6, 0.0])
    np.testing.assert_allclose(cpg_per_100bp(codes), [200 / 6, 0.0])


def test_info_dataset_shows_composition_and_warns_on_uneven_classes(data, tmp_path, capsys):
    folder = tmp_path / "csv"
    folder.mkdir()
    w = [(r.chrom, r.start - 200, r.start + 400) for r in data["regions"].itertuples(index=False)]
    _csv(folder / "HEPG2.csv", [(*w[0], "HEPG2")] + [(*w[i], "HEPG2_NEG") for i in range(1, 10)])
    out = tmp_path / "uneven"
    assert main(["prepare", "finetune", "--genome", str(data["fasta"]), "--cell", "HepG2", "--labels-csv",
                 str(folder), "--test-chroms", "none", "--out", str(out)]) == 0
    assert "positive rows under 20 %: all rows 1 of 10 (10.0 %)" in capsys.readouterr().err  # prepare warns too
    assert main(["info", "dataset", str(out)]) == 0
    captured = capsys.readouterr()
    assert "composition (GC fraction" in captured.out and "GC 0." in captured.out
    assert (f"warning: {out}: positive rows under 20 %: all rows 1 of 10 (10.0 %), train 1 of 10 (10.0 %); "
            "build a balanced set: prepare finetune --cell-table") in captured.err
    summary = json.loads(_cli_json(["info", "dataset", str(out), "--json"]))
    store = open_store(out)
    gc = gc_fraction(np.asarray(store.sequences))
    assert summary["composition"]["all"]["negative"]["n"] == 9
    assert summary["composition"]["all"]["positive"]["gc_mean"] == pytest.approx(gc[store.labels == 1].mean(), abs=1e-4)
    assert summary["composition"]["test"]["positive"]["n"] == 0
    assert len(summary["warnings"]) == 1  # one line per under-represented class
    balanced = {"task": "binary", "classes": ["negative", "positive"],
                "by_split_class": {"train": {"negative": 70, "positive": 30}, "test": {"negative": 0, "positive": 0}}}
    assert balance_warnings(balanced) == []
