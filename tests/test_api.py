"""The Python API (``import chromtransfer as ct``): docs/api.md's examples, the sequence converter,
fold ensembles, and other libraries (captum, tangermeme) on a loaded model."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from api_workspace import make_workspace
from chromtransfer.encoding import decode, encode, reverse_complement_codes
from chromtransfer.errors import ArtifactError, ChromTransferError, InputError

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "api.md"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def ct():
    import chromtransfer

    return chromtransfer


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(first line, code)`` of every fenced ```python block of a Markdown text."""
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.M | re.S):
        blocks.append((text.count("\n", 0, match.start(1)) + 1, match.group(1)))
    return blocks


# --------------------------------------------------------------------------------- the documentation
def test_every_example_of_docs_api_runs(workspace):
    """All ```python blocks of docs/api.md run in order, in one fresh interpreter, in the workspace;
    a failure's traceback names the line of docs/api.md."""
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 8
    runner = (
        "import re, sys\n"
        "text = open(sys.argv[1]).read()\n"
        "namespace = {'__name__': '__main__'}\n"
        "for m in re.finditer(r'^```python\\n(.*?)^```', text, flags=re.M | re.S):\n"
        "    first = text.count('\\n', 0, m.start(1))\n"
        "    exec(compile('\\n' * first + m.group(1), sys.argv[1], 'exec'), namespace)\n"
        "print('ALL EXAMPLES RAN')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", runner, str(DOC)], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "ALL EXAMPLES RAN" in done.stdout
    assert "(8, 600)" in done.stdout  # the attribution scores' shape printed by the example


def test_import_is_light_and_sets_nothing():
    """No torch until a function runs (set_cpu_defaults must come before OpenMP starts)."""
    code = ("import os, sys; before = dict(os.environ); import chromtransfer as ct; ct.set_cpu_defaults; "
            "print(ct.__version__, 'torch' in sys.modules, dict(os.environ) == before)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(ROOT / "src")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    version, torch_loaded, unchanged = out.stdout.split()
    assert re.match(r"^\d+\.\d+", version) and torch_loaded == "False" and unchanged == "True"


def test_public_names_resolve(ct):
    for name in ct.__all__:
        assert getattr(ct, name) is not None
    with pytest.raises(AttributeError):
        ct.no_such_name  # noqa: B018


# --------------------------------------------------------------------------------- the converter
@pytest.fixture(scope="module")
def two_sequences():
    return ["ACGTNACGTA", "ttgacTCAgg"]


def test_strings_encode_any_case_and_other_letters_as_n(ct, two_sequences):
    seqs = ct.as_sequences(two_sequences)
    assert seqs.equal_length and seqs.codes.dtype == np.uint8 and seqs.codes.shape == (2, 10)
    assert decode(seqs.codes[1]) == "TTGACTCAGG" and seqs.codes[0, 4] == 4 and seqs.names is None
    mixed = ct.as_sequences(["ACGT", "ACGTRYA"])
    assert not mixed.equal_length and decode(mixed.codes[1]) == "ACGTNNA"
    single = ct.as_sequences("ACGT")
    assert single.codes.shape == (1, 4)
    with pytest.raises(ChromTransferError, match="empty"):
        ct.as_sequences(["ACGT", ""])


def test_codes_and_one_hot_numpy_and_torch_give_the_same_codes(ct, two_sequences):
    codes = ct.as_sequences(two_sequences).codes
    onehot = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), np.float32)])[codes].transpose(0, 2, 1)
    for x in (codes, torch.from_numpy(codes), codes.astype(np.int64), onehot, torch.from_numpy(onehot)):
        got = ct.as_sequences(x)
        assert got.codes.dtype == np.uint8 and np.array_equal(got.codes, codes), type(x)
    assert np.array_equal(ct.as_sequences(codes[0]).codes, codes[:1])  # one (L,) sequence
    assert np.array_equal(ct.as_sequences(onehot[0]).codes, codes[:1])  # one (4, L) sequence
    with pytest.raises(ChromTransferError, match="0/1"):
        ct.as_sequences(onehot * 0.5)
    with pytest.raises(ChromTransferError, match="cannot read sequences"):
        ct.as_sequences(np.zeros((2, 3, 5), np.float32))
    with pytest.raises(ChromTransferError, match="non-negative"):
        ct.as_sequences(np.array([[0, -1]]))


def test_fasta_and_bed_paths(ct, workspace):
    fasta = ct.as_sequences(workspace / "peaks.fa")
    assert fasta.codes.shape == (8, 600) and fasta.names[:2] == ["peak0", "peak1"]
    bed = ct.as_sequences(str(workspace / "regions.bed"), genome=workspace / "genome.fa")
    assert not bed.equal_length and [len(c) for c in bed.codes] == [600, 650, 600, 600, 500]
    assert bed.names[1] == "chr1:1500-2150" and list(bed.start) == [100, 1500, 3000, 200, 2000]
    genome_chr1 = ct.Genome(workspace / "genome.fa").fetch_codes("chr1", 1500, 2150)
    assert np.array_equal(bed.codes[1], genome_chr1)
    windows = ct.as_sequences(workspace / "regions.bed", genome=workspace / "genome.fa", window=100)
    assert windows.codes.shape == (5, 100) and windows.start[1] == 1825 - 50
    with pytest.raises(InputError, match="needs a genome"):
        ct.as_sequences(workspace / "regions.bed")
    with pytest.raises(ChromTransferError, match="BED"):
        ct.as_sequences(workspace / "peaks.fa", genome=workspace / "genome.fa")
    with pytest.raises(InputError, match="unknown input file type"):
        ct.as_sequences(workspace / "store")


# --------------------------------------------------------------------------------- predict
def test_predict_every_input_gives_the_cli_numbers(ct, workspace):
    from chromtransfer.inference import predict_fasta, predict_regions
    from chromtransfer.modelio import load_model

    model = ct.load_model(workspace / "run")
    reference = load_model(workspace / "run")
    table = ct.predict(model, str(workspace / "peaks.fa"))
    assert table.equals(predict_fasta(reference, workspace / "peaks.fa", device="cpu"))
    regions = ct.predict(model, workspace / "regions.bed", genome=workspace / "genome.fa")
    expected = predict_regions(reference, workspace / "regions.bed", workspace / "genome.fa", device="cpu")
    assert list(regions["name"]) == list(expected["name"])
    assert np.allclose(regions["score"], expected["score"], atol=1e-6)
    strings = [decode(c) for c in ct.as_sequences(workspace / "peaks.fa").codes]
    p = ct.predict(model, strings, batch_size=3, threads=1)
    assert p.dtype == np.float32 and p.shape == (8, 1)
    assert np.allclose(p[:, 0], table["score"], atol=1e-6)
    rc = [decode(reverse_complement_codes(encode(s))) for s in strings]
    both = ct.predict(model, strings, rc_average=True)
    assert np.allclose(both, (p + ct.predict(model, rc)) / 2, atol=1e-6)


def test_threads_are_restored_after_a_call(ct, workspace):
    model = ct.load_model(workspace / "run")
    before = torch.get_num_threads()
    ct.predict(model, ["ACGT" * 20], threads=2)
    assert torch.get_num_threads() == before


# --------------------------------------------------------------------------------- ensembles
def test_fold_run_loads_as_an_ensemble_that_averages_probabilities(ct, workspace):
    from chromtransfer.modelio import load_model

    ensemble = ct.load_model(workspace / "folds")
    assert isinstance(ensemble, ct.ModelEnsemble) and ensemble.names == ["fold0", "fold1"]
    assert not ensemble.training and not ensemble.multiclass
    codes = ct.as_sequences(workspace / "peaks.fa").codes
    members = [load_model(workspace / "folds" / f"fold{k}") for k in range(2)]
    each = [ct.predict(m, codes) for m in members]
    assert not np.allclose(each[0], each[1])
    averaged = ct.predict(ensemble, codes)
    assert np.allclose(averaged, (each[0].astype(np.float64) + each[1]) / 2, atol=1e-6)
    x = torch.from_numpy(np.eye(4, dtype=np.float32)[codes].transpose(0, 2, 1).copy())
    with torch.no_grad():
        assert np.allclose(torch.sigmoid(ensemble(x)).numpy(), averaged, atol=1e-5)
    attributions = ct.attribute(ensemble, codes[:2])
    assert attributions.scores.shape == (2, 600) and np.abs(attributions.scores).sum() > 0
    with pytest.raises(ChromTransferError, match="ISM runs on one model"):
        ct.attribute(ensemble, codes[:1], method="ism")


def test_an_unfinished_fold_run_and_mixed_tasks_are_refused(ct, workspace, tmp_path):
    import shutil

    from chromtransfer.models import build_model

    run = tmp_path / "unfinished"
    shutil.copytree(workspace / "folds", run)
    (run / "folds.json").unlink()
    with pytest.raises(ArtifactError, match="unfinished"):
        ct.load_model(run)
    (run / "folds.json").write_text(json.dumps({"status": "running", "folds": ["fold0"]}))
    with pytest.raises(ArtifactError, match="not complete"):
        ct.load_model(run)
    with pytest.raises(ChromTransferError, match="different tasks"):
        ct.ModelEnsemble([build_model("finetune", width=0.25),
                          build_model("multiclass", n_outputs=3, width=0.25)])


# --------------------------------------------------------------------------------- attributions
def test_attribute_matches_the_attribution_modules_and_round_trips(ct, workspace, tmp_path):
    from chromtransfer.interpret.attribution import grad_x_input
    from chromtransfer.interpret.ism import ism, ism_scores

    model = ct.load_model(workspace / "run")
    codes = ct.as_sequences(workspace / "peaks.fa").codes[:3]
    a = ct.attribute(model, codes, device="cpu")
    assert np.allclose(a.scores, grad_x_input(model, codes, device="cpu"))
    assert list(a.names) == ["seq0", "seq1", "seq2"] and a.method == "grad_x_input" and a.ism is None
    b = ct.attribute(model, codes[:1], method="ism")
    deltas = ism(model, codes[:1], device="cpu")
    assert np.allclose(b.ism, deltas, atol=1e-6) and np.allclose(b.scores, ism_scores(deltas, codes[:1]))
    onbed = ct.attribute(model, workspace / "regions.bed", genome=workspace / "genome.fa", window=600)
    assert onbed.scores.shape == (5, 600) and onbed.chrom[0] == "chr1" and onbed.start[1] == 1525
    with pytest.raises(ChromTransferError, match="one length"):
        ct.attribute(model, workspace / "regions.bed", genome=workspace / "genome.fa")
    onbed.save(tmp_path / "attr")
    assert (tmp_path / "attr" / "attributions.bedGraph").is_file()
    again = ct.load_attributions(tmp_path / "attr")
    assert np.array_equal(again.scores, onbed.scores) and np.array_equal(again.codes, onbed.codes)


def test_rank_and_compare_tfs_in_memory_equal_the_enrichment_module(ct, workspace):
    from chromtransfer.interpret.enrich import run_enrichment

    model = ct.load_model(workspace / "run")
    a = ct.attribute(model, workspace / "peaks.fa")
    b = ct.attribute(ct.load_model(workspace / "folds"), workspace / "peaks.fa")
    sites = ct.scan_motifs(a, motifs="JASPAR2022", pvalue=1e-4)
    assert {"region", "site_start", "site_end", "tf", "pvalue"} <= set(sites.columns)
    assert set(sites["region"]) <= set(a.names) and (sites["pvalue"] < 1e-4).all()
    ranking = ct.rank_tfs(a, sites, min_sites=5)
    assert len(ranking) > 0
    assert ranking.equals(run_enrichment(sites, a, min_sites=5).a)
    comparison = ct.compare_tfs(a, b, sites, min_sites=5)
    assert comparison.equals(run_enrichment(sites, a, b, min_sites=5).comparison)


def test_scan_motifs_of_a_motif_file_on_strings(ct, tmp_path):
    motif = tmp_path / "ap1.meme"
    motif.write_text("MEME version 4\n\nALPHABET= ACGT\n\nstrands: + -\n\n"
                     "Background letter frequencies\nA 0.25 C 0.25 G 0.25 T 0.25\n\n"
                     "MOTIF AP1 AP1\nletter-probability matrix: alength= 4 w= 7\n"
                     "0 0 0 1\n0 0 1 0\n1 0 0 0\n0 1 0 0\n0 0 0 1\n0 1 0 0\n1 0 0 0\n")
    sites = ct.scan_motifs(["AAAATGACTCAAAAA", "CCCC", "GGTGAGTCAGG"], motifs=motif, pvalue=1e-3)
    assert list(sites["region"]) == ["seq0", "seq2"] and list(sites["site_start"]) == [4, 2]
    assert list(sites["strand"]) == ["+", "-"]


def test_metrics_binary_and_multiclass(ct):
    y = np.array([0, 0, 1, 1])
    assert ct.metrics(y, np.array([0.1, 0.2, 0.8, 0.9]))["auroc"] == 1.0
    assert ct.metrics(y, np.array([[0.9], [0.2], [0.8], [0.1]]))["auroc"] == 0.25
    p = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.7, 0.2, 0.1]])
    result = ct.metrics(np.array([0, 1, 2, 0]), p, classes=["a", "b", "c"])
    assert result["accuracy"] == 1.0 and set(result["per_class"]) == {"a", "b", "c"}


def test_set_cpu_defaults_sets_threads_and_wait_policy(ct, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    before = torch.get_num_threads()
    try:
        assert ct.set_cpu_defaults(threads=1) is False  # torch is imported: the policy applies to later processes
        assert torch.get_num_threads() == 1 and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
        monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
        ct.set_cpu_defaults()
        assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"  # a user's own setting wins
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------------- other libraries
def test_captum_and_tangermeme_run_on_a_loaded_model(ct, workspace):
    captum_attr = pytest.importorskip("captum.attr", reason="captum is not installed (pip install chromtransfer[interop])")
    tangermeme_predict = pytest.importorskip("tangermeme.predict",
                                             reason="tangermeme is not installed (pip install chromtransfer[interop])")
    model = ct.load_model(workspace / "run")
    codes = ct.as_sequences(workspace / "peaks.fa").codes[:4]
    x = torch.from_numpy(np.eye(4, dtype=np.float32)[codes].transpose(0, 2, 1).copy())

    logits = tangermeme_predict.predict(model, x, batch_size=2, device="cpu", verbose=False)
    assert logits.shape == (4, 1)
    assert np.allclose(torch.sigmoid(logits).numpy(), ct.predict(model, codes), atol=1e-5)

    saliency = captum_attr.Saliency(model).attribute(x.clone().requires_grad_(True), target=0, abs=False)
    assert saliency.shape == x.shape
    # gradient x input of the logit is the saliency at the reference bases
    ours = ct.attribute(model, codes, target="logit").scores
    assert np.allclose((saliency * x).sum(dim=1).numpy(), ours, atol=1e-5)
    integrated = captum_attr.IntegratedGradients(model).attribute(x, target=0, n_steps=8)
    assert integrated.shape == x.shape and torch.isfinite(integrated).all()


def test_multiclass_models_give_one_column_per_class(ct, workspace, tmp_path):
    from chromtransfer.modelio import save_model
    from chromtransfer.models import build_model

    torch.manual_seed(3)
    save_model(build_model("multiclass", n_outputs=3, width=0.25, classes=["a", "b", "c"]).eval(), tmp_path / "m")
    model = ct.load_model(tmp_path / "m")
    table = ct.predict(model, workspace / "peaks.fa")
    assert list(table.columns) == ["name", "a", "b", "c", "n_fraction"]
    assert np.allclose(table[["a", "b", "c"]].sum(axis=1), 1, atol=1e-5)
    a = ct.attribute(model, workspace / "peaks.fa", class_name="b")
    assert a.scores.shape == (8, 600)
    with pytest.raises(ChromTransferError, match="multi-class"):
        ct.attribute(model, workspace / "peaks.fa")
