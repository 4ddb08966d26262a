"""``chromtransfer predict`` and ``import-keras`` end to end, the FASTA reader and batched inference.

The reference check imports the Keras reference models through the command line and predicts the
reference inputs written as one FASTA file (600 bp and 1000 bp records together; all-zero one-hot
rows written as N). The scores agree with the Keras float64 sigmoid within 1e-5 for every
sequence. Against Keras' own float32 sigmoid, two independent float32 roundings add up (tf_keras
float32 is itself up to 8.1e-6 from its float64 result), so there 95 % of the sequences must agree
within 1e-5 and all within 2e-5; ``--precision float64`` agrees with the float32 reference within
1e-5 for every sequence.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from chromtransfer.cli import main
from chromtransfer.devices import resolve_device
from chromtransfer.encoding import codes_from_one_hot, decode, encode, reverse_complement_codes
from chromtransfer.errors import ChromTransferError, InputError
from chromtransfer.fasta import read_fasta
from chromtransfer.inference import predict_codes, predict_sequences
from chromtransfer.modelio import save_model
from chromtransfer.models import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_one_error_line(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)


# ------------------------------------------------------------------------ Keras reference models

@pytest.fixture(scope="module")
def keras_dir(shared_data) -> Path:
    path = Path(shared_data) / "reference" / "keras"
    if not (path / "reference_outputs.npz").is_file():
        pytest.skip(f"Keras reference files not found at {path}")
    return path


@pytest.fixture(scope="module")
def reference(keras_dir) -> dict[str, np.ndarray]:
    with np.load(keras_dir / "reference_outputs.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def reference_fasta(keras_dir, tmp_path_factory) -> Path:
    """The 64 x 600 bp and 8 x 1000 bp reference inputs as one FASTA (wrapped at 70, some records
    lower case), named s600_<i> and s1000_<i>."""
    path = tmp_path_factory.mktemp("fasta") / "reference.fa"
    with open(path, "w") as handle:
        for prefix, name in (("s600", "inputs.npy"), ("s1000", "inputs_len1000.npy")):
            for i, codes in enumerate(codes_from_one_hot(np.load(keras_dir / name))):
                text = decode(codes)
                if i % 3 == 0:
                    text = text.lower()
                handle.write(f">{prefix}_{i} reference input {i}\n")
                handle.writelines(text[k:k + 70] + "\n" for k in range(0, len(text), 70))
    return path


@pytest.fixture(scope="module")
def imported(keras_dir, tmp_path_factory) -> dict[str, Path]:
    """pretrained.h5 and finetuned.h5 imported through the command line."""
    out = {}
    for name in ("pretrained", "finetuned"):
        target = tmp_path_factory.mktemp("models") / name
        assert main(["import-keras", str(keras_dir / f"{name}.h5"), "--out", str(target)]) == 0
        out[name] = target
    return out


def _expected(reference, name: str, precision: str = "") -> pd.Series:
    values = np.concatenate([reference[f"{name}/{precision}sigmoid"][:, 0],
                             reference[f"{name}/{precision}len1000/sigmoid"][:, 0]])
    index = [f"s600_{i}" for i in range(64)] + [f"s1000_{i}" for i in range(8)]
    return pd.Series(values, index=index)


@pytest.mark.parametrize("name", ["pretrained", "finetuned"])
def test_predict_reproduces_keras_reference(capsys, imported, reference_fasta, reference, tmp_path, name):
    out = tmp_path / "preds.tsv"
    code, stdout, err = _run(capsys, "predict", "--model", imported[name], "--fasta", reference_fasta,
                             "--out", out, "--device", "cpu")
    assert code == 0, err
    table = pd.read_csv(out, sep="\t")
    assert list(table.columns) == ["name", "score", "n_fraction"]
    assert len(table) == 72 and table["name"].tolist() == _expected(reference, name).index.tolist()
    scores = table.set_index("name")["score"]
    diff64 = (scores - _expected(reference, name, "f64/")).abs()
    diff32 = (scores - _expected(reference, name)).abs()
    assert diff64.max() <= 1e-5
    assert (diff32 <= 1e-5).mean() >= 0.95 and diff32.max() <= 2e-5
    # the model directory records where it came from
    import json

    document = json.loads((imported[name] / "model.json").read_text())
    assert document["imported_from"]["file"] == f"{name}.h5"
    assert len(document["imported_from"]["sha256"]) == 64
    assert document["imported_from"]["keras_version"] == "2.21.0"


def test_predict_float64_matches_keras_float32_within_1e5(capsys, imported, reference_fasta, reference, tmp_path):
    records = read_fasta(reference_fasta)
    subset = tmp_path / "subset.fa"
    subset.write_text("".join(f">{r.name}\n{decode(r.codes)}\n" for r in records[::4]))
    out = tmp_path / "preds64.tsv"
    code, _, err = _run(capsys, "predict", "--model", imported["pretrained"], "--fasta", subset,
                        "--out", out, "--precision", "float64", "--batch-size", "7")
    assert code == 0, err
    scores = pd.read_csv(out, sep="\t").set_index("name")["score"]
    assert len(scores) == 18
    assert (scores - _expected(reference, "pretrained")[scores.index]).abs().max() <= 1e-5
    # float64 arithmetic, written as float32 probabilities: float32 rounding (~3e-8) remains
    assert (scores - _expected(reference, "pretrained", "f64/")[scores.index]).abs().max() <= 1e-7


def test_import_keras_truncated_file_is_one_error_line(capsys, keras_dir, tmp_path):
    data = (keras_dir / "finetuned.h5").read_bytes()
    broken = tmp_path / "broken.h5"
    broken.write_bytes(data[: len(data) // 3])
    code, _, err = _run(capsys, "import-keras", broken, "--out", tmp_path / "model")
    assert code == 2
    _assert_one_error_line(err, "broken.h5")
    assert not (tmp_path / "model" / "model.json").exists()


# ------------------------------------------------------------------------------- narrow models

@pytest.fixture(scope="module")
def narrow_model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(3)
    model = build_model("finetune", width=0.25)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("narrow") / "model"
    save_model(model.eval(), path)
    return path


def _random_codes(rng, n: int, length: int) -> np.ndarray:
    return rng.integers(0, 5, size=(n, length)).astype(np.uint8)


def test_predict_codes_batches_rc_and_lengths(narrow_model_dir):
    from chromtransfer.modelio import load_model

    model = load_model(narrow_model_dir)
    rng = np.random.default_rng(0)
    codes = _random_codes(rng, 9, 120)
    whole = predict_codes(model, codes, device="cpu")
    assert whole.shape == (9, 1) and whole.dtype == np.float32
    assert np.all((whole > 0) & (whole < 1))
    np.testing.assert_allclose(predict_codes(model, codes, batch_size=2, device="cpu"), whole, atol=1e-6)
    rc = predict_codes(model, reverse_complement_codes(codes), device="cpu")
    assert not np.allclose(rc, whole, atol=1e-4)  # the network is not strand-symmetric
    np.testing.assert_allclose(predict_codes(model, codes, device="cpu", rc_average=True), (whole + rc) / 2,
                               atol=1e-6)
    # the caller's train/eval mode survives, and dropout is off during prediction
    model.train()
    np.testing.assert_allclose(predict_codes(model, codes, device="cpu"), whole, atol=1e-6)
    assert model.training
    model.eval()
    # a memmap works as well as an array
    mm = np.lib.format.open_memmap(narrow_model_dir.parent / "codes.npy", mode="w+", dtype=np.uint8,
                                   shape=codes.shape)
    mm[:] = codes
    np.testing.assert_allclose(predict_codes(model, mm, device="cpu"), whole, atol=1e-6)
    # mixed lengths keep the input order
    short = _random_codes(rng, 4, 80)
    mixed = [codes[0], short[0], codes[1], short[1], short[2], codes[2]]
    got = predict_sequences(model, mixed, device="cpu", batch_size=2)
    want_long = predict_codes(model, codes[:3], device="cpu")
    want_short = predict_codes(model, short[:3], device="cpu")
    np.testing.assert_allclose(got[[0, 2, 5]], want_long, atol=1e-6)
    np.testing.assert_allclose(got[[1, 3, 4]], want_short, atol=1e-6)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        for spec in ("cuda", "CUDA:1"):
            with pytest.raises(ChromTransferError, match="CUDA is not available"):
                resolve_device(spec)
    else:
        assert resolve_device("cuda:0") == torch.device("cuda", 0)
        with pytest.raises(ChromTransferError, match="visible"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    for spec in ("gpu", "cuda:x", "tpu"):
        with pytest.raises(ChromTransferError, match="use auto, cpu, cuda or cuda:N"):
            resolve_device(spec)


def test_predict_fasta_any_lengths_and_rc_average(capsys, narrow_model_dir, tmp_path):
    from chromtransfer.modelio import load_model

    fasta = tmp_path / "q.fa.gz"
    seqs = {"a": "ACGTTGCA" * 20, "b": "acgtnnRYacgt" * 10, "c": "GGGCCCAATT" * 30}
    with gzip.open(fasta, "wt") as handle:
        for name, seq in seqs.items():
            handle.write(f">{name} some description\r\n{seq[:50]}\r\n{seq[50:]}\r\n\r\n")
    out = tmp_path / "p.tsv"
    code, stdout, err = _run(capsys, "predict", "--model", narrow_model_dir, "--fasta", fasta, "--out", out,
                             "--rc-average", "--batch-size", "2")
    assert code == 0, err
    assert "wrote 3 predictions" in stdout
    table = pd.read_csv(out, sep="\t")
    assert table["name"].tolist() == ["a", "b", "c"]
    model = load_model(narrow_model_dir)
    for i, seq in enumerate(seqs.values()):
        want = predict_codes(model, encode(seq)[None], device="cpu", rc_average=True)[0, 0]
        assert table["score"][i] == pytest.approx(want, abs=1e-6)


def test_predict_multiclass_columns(capsys, tmp_path):
    torch.manual_seed(0)
    model = build_model("multiclass", width=0.25, n_outputs=3, classes=["A549", "HepG2", "background"])
    save_model(model.eval(), tmp_path / "mc")
    fasta = tmp_path / "q.fa"
    fasta.write_text(">x\nACGTACGTAC\n>y\nTTTTGGGGCCCCAAAA\n")
    code, _, err = _run(capsys, "predict", "--model", tmp_path / "mc", "--fasta", fasta, "--out", tmp_path / "p.tsv")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "p.tsv", sep="\t")
    assert list(table.columns) == ["name", "A549", "HepG2", "background", "n_fraction"]
    np.testing.assert_allclose(table[["A549", "HepG2", "background"]].sum(axis=1), 1.0, atol=1e-6)


def test_predict_bed_on_genome_with_aliases(capsys, narrow_model_dir, tmp_path):
    from chromtransfer.modelio import load_model

    rng = np.random.default_rng(1)
    chrom = "".join(rng.choice(list("ACGT"), size=3000))
    genome = tmp_path / "genome.fa"
    genome.write_text(">20 chromosome 20\n" + "\n".join(chrom[k:k + 60] for k in range(0, 3000, 60)) + "\n")
    bed = tmp_path / "regions.bed"
    bed.write_text("chr20\t100\t700\tpeak1\nchr20\t1000\t1300\tpeak2\n20\t2000\t2600\tpeak3\n")
    out = tmp_path / "p.tsv"
    code, _, err = _run(capsys, "predict", "--model", narrow_model_dir, "--bed", bed, "--genome", genome,
                        "--out", out)
    assert code == 0, err
    table = pd.read_csv(out, sep="\t")
    assert table["name"].tolist() == ["chr20:100-700", "chr20:1000-1300", "20:2000-2600"]
    model = load_model(narrow_model_dir)
    for (start, end), score in zip([(100, 700), (1000, 1300), (2000, 2600)], table["score"]):
        want = predict_codes(model, encode(chrom[start:end])[None], device="cpu")[0, 0]
        assert score == pytest.approx(want, abs=1e-6)
    # --window scores the window centred on each region; names keep the file's coordinates
    code, _, err = _run(capsys, "predict", "--model", narrow_model_dir, "--bed", bed, "--genome", genome,
                        "--out", out, "--window", "600", "--overwrite")
    assert code == 0, err
    table = pd.read_csv(out, sep="\t")
    assert table["name"][1] == "chr20:1000-1300"
    want = predict_codes(model, encode(chrom[850:1450])[None], device="cpu")[0, 0]
    assert table["score"][1] == pytest.approx(want, abs=1e-6)
    # a chromosome the genome lacks stops with the BED line
    bed.write_text("chr20\t100\t700\nchr21\t100\t700\n")
    code, _, err = _run(capsys, "predict", "--model", narrow_model_dir, "--bed", bed, "--genome", genome,
                        "--out", out, "--overwrite")
    assert code == 2
    _assert_one_error_line(err, "regions.bed:2", "chr21")


# ------------------------------------------------------------------------------------- errors

def test_fasta_unknown_character_is_one_error_line_and_keeps_old_output(capsys, narrow_model_dir, tmp_path):
    fasta = tmp_path / "bad.fa"
    fasta.write_text(">ok\nACGTACGT\n>bad\nACGTAC\nACGXTA\n")
    out = tmp_path / "p.tsv"
    out.write_text("previous results\n")
    code, _, err = _run(capsys, "predict", "--model", narrow_model_dir, "--fasta", fasta, "--out", out,
                        "--overwrite")
    assert code != 0
    _assert_one_error_line(err, "bad.fa:5", "'X'", "column 4", "replace")
    assert out.read_text() == "previous results\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_model_directory_without_weights(capsys, narrow_model_dir, tmp_path):
    import shutil

    broken = tmp_path / "model"
    shutil.copytree(narrow_model_dir, broken)
    (broken / "model.safetensors").unlink()
    fasta = tmp_path / "q.fa"
    fasta.write_text(">a\nACGT\n")
    code, _, err = _run(capsys, "predict", "--model", broken, "--fasta", fasta, "--out", tmp_path / "p.tsv")
    assert code == 2
    _assert_one_error_line(err, "model.safetensors", "missing")
    assert not (tmp_path / "p.tsv").exists()


def test_truncated_weights_file(capsys, narrow_model_dir, tmp_path):
    import shutil

    broken = tmp_path / "model"
    shutil.copytree(narrow_model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    fasta = tmp_path / "q.fa"
    fasta.write_text(">a\nACGT\n")
    code, _, err = _run(capsys, "predict", "--model", broken, "--fasta", fasta, "--out", tmp_path / "p.tsv")
    assert code == 2
    _assert_one_error_line(err, "model.safetensors", "truncated")


def test_predict_needs_exactly_one_input(capsys, narrow_model_dir, tmp_path):
    code, _, err = _run(capsys, "predict", "--model", narrow_model_dir, "--out", tmp_path / "p.tsv")
    assert code == 2
    _assert_one_error_line(err, "--fasta", "--bed")
    code, _, err = _run(capsys, "predict", "--model", narrow_model_dir, "--bed", tmp_path / "x.bed",
                        "--out", tmp_path / "p.tsv")
    assert code == 2
    _assert_one_error_line(err, "--genome")


@pytest.mark.parametrize("text,line,fragment", [
    ("ACGT\n>a\nACGT\n", 1, "before the first '>' header"),
    (">a\nACGT\n>b\n>c\nACGT\n", 3, "'b' has no sequence"),
    (">a\nACGT\n>b\nAC\n>a\nGG\n", 5, "'a' is used twice (first on line 1)"),
    (">a\nAC GT\n", 2, "a space"),
    (">a\nACGT\n>\nACGT\n", 3, "header line without a name"),
    (">a\nAC\u00e9T\n", 2, "byte 0xC3"),
])
def test_fasta_reader_errors(tmp_path, text, line, fragment):
    path = tmp_path / "in.fa"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_fasta(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ") and fragment in message and "\n" not in message


def test_fasta_reader_accepts_iupac_case_and_gaps(tmp_path):
    path = tmp_path / "in.fa"
    path.write_text("\n>one first\nacgtRYSWKMBDHVN\n-.*U\n>two\nACGT\n")
    records = read_fasta(path)
    assert [r.name for r in records] == ["one", "two"]
    assert [r.line for r in records] == [2, 5]
    assert records[0].codes.tolist() == [0, 1, 2, 3] + [4] * 15
    assert records[1].codes.tolist() == [0, 1, 2, 3]
    empty = tmp_path / "empty.fa"
    empty.write_text("\n\n")
    with pytest.raises(InputError, match="no FASTA records"):
        read_fasta(empty)


def test_threads_option_sets_the_cpu_threads(capsys, narrow_model_dir, tmp_path):
    fasta = tmp_path / "q.fa"
    fasta.write_text(">a\nACGTACGTAC\n")
    before = torch.get_num_threads()
    try:
        code, _, err = _run(capsys, "predict", "--model", narrow_model_dir, "--fasta", fasta,
                            "--out", tmp_path / "p.tsv", "--threads", "2", "--quiet")
        assert code == 0, err
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_set_cpu_defaults_is_explicit(monkeypatch):
    import subprocess
    import sys

    from chromtransfer.runtime import set_cpu_defaults

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    import chromtransfer.cli  # noqa: F401  (importing the command line changes nothing)

    assert "OMP_WAIT_POLICY" not in os.environ
    before = torch.get_num_threads()
    try:
        assert set_cpu_defaults(threads=1) is False  # torch is already imported in this process
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="at least 1"):
        set_cpu_defaults(threads=0)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a user's own setting is kept
    set_cpu_defaults()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    # before torch is imported the policy takes effect, and the command line sets it first
    code = ("import os, sys; from chromtransfer.runtime import set_cpu_defaults; "
            "print(set_cpu_defaults(), os.environ['OMP_WAIT_POLICY'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ})
    assert done.stdout.split() == ["True", "PASSIVE"]
