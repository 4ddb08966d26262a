"""The k-mer composition baseline: features, training, saving without pickle, and every command."""
from __future__ import annotations

import json
import pickletools
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import chromtransfer as ct
from chromtransfer.cli import main
from chromtransfer.datasets.store import write_store
from chromtransfer.encoding import decode, reverse_complement_codes
from chromtransfer.errors import ChromTransferError
from chromtransfer.kmer import train_kmer
from chromtransfer.kmer.features import KmerSpec, feature_matrix
from chromtransfer.kmer.model import KmerModel
from chromtransfer.modelio import load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def gc_store(path: Path, n: int = 300, length: int = 100, seed: int = 0) -> Path:
    """Positives drawn GC-rich (60 % G or C), negatives at 40 %: a composition signal."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(np.int64)
    gc = np.where(labels == 1, 0.6, 0.4)[:, None]
    strong = rng.random((n, length)) < gc
    codes = np.where(strong, rng.choice([1, 2], size=(n, length)), rng.choice([0, 3], size=(n, length)))
    codes = codes.astype(np.uint8)
    split = (rng.random(n) < 0.2).astype(np.uint8)
    fold = np.where(split == 1, -1, rng.integers(0, 3, size=n))
    return write_store(path, codes, labels, split, fold, task="binary", classes=["negative", "positive"], seed=seed)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return gc_store(tmp_path_factory.mktemp("kmer") / "store")


@pytest.fixture(scope="module")
def run(store, tmp_path_factory) -> Path:
    return train_kmer(store, tmp_path_factory.mktemp("kmer-run") / "run", k=3)


@pytest.mark.parametrize("k, span", [(1, None), (2, None), (4, None), (3, 5)])
def test_features_are_reverse_complement_invariant(k, span):
    rng = np.random.default_rng(k)
    codes = rng.integers(0, 5, size=(6, 57)).astype(np.uint8)  # N bases (4) included
    rc = np.stack([reverse_complement_codes(row) for row in codes])
    spec = KmerSpec(k, span)
    forward, backward = feature_matrix(codes, spec), feature_matrix(rc, spec)
    np.testing.assert_array_equal(forward, backward)
    np.testing.assert_allclose(forward.sum(axis=1), 1.0, rtol=1e-5)
    assert forward.shape == (6, spec.n_features)


def test_feature_counts_and_canonical_names():
    assert KmerSpec(1).n_features == 2 and KmerSpec(2).n_features == 10 and KmerSpec(4).n_features == 136
    spec = KmerSpec(2)
    names = spec.names()
    codes = np.array([[0, 0, 0, 1]], dtype=np.uint8)  # AAAC: AA twice, AC once (AC = GT merged)
    f = feature_matrix(codes, spec)[0]
    assert f[names.index("AA")] == pytest.approx(2 / 3) and f[names.index("AC")] == pytest.approx(1 / 3)
    gapped = KmerSpec(2, 3).names()
    assert "A.C" in gapped and "AC" in gapped
    with pytest.raises(ValueError, match="k must lie"):
        KmerSpec(7)


def test_train_saves_without_pickle_and_records_the_fit(run):
    document = json.loads((run / "model.json").read_text())
    assert document["architecture"] == "chromtransfer-kmer" and document["kind"] == "kmer"
    assert document["config"]["k"] == 3 and document["config"]["n_features"] == KmerSpec(3).n_features
    result = document["training"]["result"]
    assert result["C"] in [float(c) for c in document["training"]["settings"]["c_grid"]]
    assert result["best_val_auroc"] > 0.9  # the GC signal is strong
    assert document["training"]["data"]["class_weights"][1] > 1  # balanced: positives are rarer
    assert set(p.name for p in run.iterdir()) >= {"model.json", "model.safetensors", "run.json"}
    blob = (run / "model.safetensors").read_bytes()
    assert not zipfile.is_zipfile(run / "model.safetensors")
    with pytest.raises(Exception):
        list(pickletools.genops(blob))
    model = load_model(run)
    assert isinstance(model, KmerModel) and not model.multiclass


def test_predictions_rc_invariant_and_match_sklearn_scale(run, store):
    model = ct.load_model(run)
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 4, size=(5, 80)).astype(np.uint8)
    rc = np.stack([reverse_complement_codes(row) for row in codes])
    p = ct.predict(model, codes)
    np.testing.assert_allclose(p, ct.predict(model, rc), rtol=1e-6)
    strings = [decode(row) for row in codes]
    np.testing.assert_allclose(ct.predict(model, strings), p, rtol=1e-6)
    gc_rich = ct.predict(model, ["GCGCCGGCGCGATGCC" * 5])[0, 0]
    at_rich = ct.predict(model, ["ATATTAATATAGCATT" * 5])[0, 0]
    assert gc_rich > 0.5 > at_rich


def test_cli_train_predict_evaluate_bootstrap(capsys, store, tmp_path):
    code, out, err = _run(capsys, "train", "--preset", "kmer", "--data", store, "--out", tmp_path / "k",
                          "--k", "2", "--gapped", "4")
    assert code == 0, err
    assert "k-mer logistic regression" in out
    assert json.loads((tmp_path / "k" / "model.json").read_text())["config"]["span"] == 4
    code, _, err = _run(capsys, "train", "--preset", "kmer", "--data", store, "--out", tmp_path / "k2", "--lr", "0.1")
    assert code == 2 and "--lr" in err and not (tmp_path / "k2").exists()
    code, _, err = _run(capsys, "train", "--preset", "baseline", "--data", store, "--out", tmp_path / "b", "--k", "3")
    assert code == 2 and "--k" in err
    code, out, err = _run(capsys, "info", "model", "--model", tmp_path / "k")
    assert code == 0 and "canonical 2-mers, gapped within 4 bp" in out and "most positive:" in out, err
    fasta = tmp_path / "s.fa"
    fasta.write_text(">gc\n" + "GCGCCGGCGC" * 8 + "\n>at\n" + "ATATTAATAT" * 3 + "\n")
    code, _, err = _run(capsys, "predict", "--model", tmp_path / "k", "--fasta", fasta, "--out", tmp_path / "p.tsv")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "p.tsv", sep="\t")
    assert list(table["name"]) == ["gc", "at"] and table["score"][0] > table["score"][1]
    code, _, err = _run(capsys, "evaluate", "--model", tmp_path / "k", "--data", store, "--out", tmp_path / "ev")
    assert code == 0, err
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())["metrics"]
    assert next(iter(metrics.values()))["auroc"] > 0.9
    code, _, err = _run(capsys, "bootstrap", "--preset", "kmer", "--data", store, "--fractions", "0.5",
                        "--replicates", "2", "--out", tmp_path / "bs")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "bs" / "bootstrap_table.tsv", sep="\t")
    assert table["replicates"].tolist() == [2] and table["auroc_mean"][0] > 0.8


def test_attribution_refuses_the_kmer_model_in_one_line(capsys, run, store, tmp_path):
    code, _, err = _run(capsys, "attribute", "--model", run, "--data", store, "--out", tmp_path / "a")
    assert code == 2
    assert err.strip().count("\n") == 0 and "k-mer composition model" in err
    with pytest.raises(ChromTransferError, match="k-mer"):
        ct.attribute(ct.load_model(run), ["ACGT" * 20])


def test_refinished_run_is_kept_and_overwrite_replaces_it(run, store):
    before = (run / "model.safetensors").read_bytes()
    assert train_kmer(store, run, k=3, resume=True) == run
    assert (run / "model.safetensors").read_bytes() == before
    with pytest.raises(ChromTransferError,
                       match="already holds a finished model"):
        train_kmer(store, run, k=3)
    model = load_model(run)
    x = torch.zeros((1, 4, 10))
    assert model(x).shape == (1, 1)  # all-N input: no counted position, the intercept's logit


def test_variant_scoring_takes_the_kmer_model(run):
    from chromtransfer.inference import predict_codes
    from chromtransfer.variants.fastsnv import snv_probabilities

    model = load_model(run)
    windows = np.random.default_rng(5).integers(0, 4, size=(3, 60)).astype(np.uint8)
    rows, offsets, alts = np.array([0, 2, 2]), np.array([5, 0, 59]), np.array([1, 3, 0])
    p_windows, p_subs = snv_probabilities(model, windows, rows, offsets, alts)
    mutated = windows[rows].copy()
    mutated[np.arange(3), offsets] = alts
    np.testing.assert_allclose(p_windows, predict_codes(model, windows)[:, 0], rtol=1e-6)
    np.testing.assert_allclose(p_subs, predict_codes(model, mutated)[:, 0], rtol=1e-6)
    assert not np.allclose(p_subs, p_windows[rows])  # a substitution changes the k-mer counts
