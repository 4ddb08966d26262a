"""The bad-input catalogue: every situation the README's error promise names, through the CLI.

Each case runs ``chromtransfer.cli.main`` in-process on tiny synthetic files built once for the
module, and asserts the exit status 2, the one ``error:`` line (the file, the line where there is
one, and the fix), and that every file already in the folders the command was pointed at is
byte-identical afterwards. A few cases that are not errors sit at the end: flagged N-rich
sequences, stale temporary files, the umask of written files, ``--overwrite`` leaving other files.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from chromtransfer.artifacts import MARKER_FILE
from chromtransfer.cli import main
from chromtransfer.datasets.store import write_store
from chromtransfer.encoding import decode
from chromtransfer.modelio import save_model
from chromtransfer.models import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LENGTH = 200  # window length of the toy store and FASTA files (bp)


# --------------------------------------------------------------------------------------- helpers
def _snapshot(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file under ``roots`` (files or folders), by path."""
    digests = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


@dataclass
class Toy:
    """The module's shared files (see :func:`toy`)."""

    root: Path
    genome: Path
    bed: Path
    fasta: Path
    model: Path
    store: Path
    run: Path
    user_dir: Path
    attributions: Path
    evaluation: Path
    sites: Path


def _gz_truncated(path: Path, text: str) -> Path:
    data = gzip.compress(text.encode())
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Toy:
    root = tmp_path_factory.mktemp("bad_inputs")
    rng = np.random.default_rng(0)
    chroms = {"chr1": rng.integers(0, 4, 6000), "chr2": rng.integers(0, 4, 4000)}
    genome = root / "genome.fa"
    genome.write_text("".join(f">{name}\n{decode(codes.astype(np.uint8))}\n" for name, codes in chroms.items()))
    bed = root / "regions.bed"
    bed.write_text("chr1\t1000\t1200\tr1\nchr1\t3000\t3200\tr2\nchr2\t500\t700\tr3\n")
    codes = rng.integers(0, 4, (12, LENGTH)).astype(np.uint8)
    fasta = root / "seqs.fa"
    fasta.write_text("".join(f">s{i}\n{decode(c)}\n" for i, c in enumerate(codes)))
    torch.manual_seed(0)
    model = save_model(build_model("finetune", width=0.25).eval(), root / "model")
    store = write_store(root / "store", codes, np.arange(12) % 2, np.r_[np.zeros(6), np.ones(6)],
                        np.r_[np.zeros(6), -np.ones(6)])
    # a training run as 'train' leaves it: run.json, a checkpoint, the curve and the model
    run = save_model(build_model("finetune", width=0.25).eval(), root / "runs" / "m")
    (run / "run.json").write_text(json.dumps({"format": "chromtransfer-run", "status": "complete"}))
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"checkpoint bytes")
    (run / "learning_curve.csv").write_text("epoch,val_loss\n1,0.5\n")
    user_dir = root / "mine"
    user_dir.mkdir()
    (user_dir / "notes.txt").write_text("a week of work\n")
    (user_dir / "results.csv").write_text("x,y\n1,2\n")
    assert main(["attribute", "--model", str(model), "--fasta", str(fasta), "--select", "all", "--device", "cpu",
                 "--out", str(root / "attr")]) == 0
    assert main(["evaluate", "--model", str(model), "--data", str(store), "--device", "cpu",
                 "--out", str(root / "eval")]) == 0
    sites = root / "sites.tsv"
    table = pd.DataFrame({"region": ["s0", "s1", "s2"], "region_index": [0, 1, 2], "chrom": "", "start": -1,
                          "end": -1, "site_start": [10, 20, 30], "site_end": [18, 28, 38], "strand": "+",
                          "motif_id": ["MA0001.1", "MA0002.1", "MA0001.1"], "tf": ["TFA", "TFB", "TFA"],
                          "score": 10.0, "pvalue": 1e-6,
                          "sequence": [decode(codes[k, s:s + 8]) for k, s in ((0, 10), (1, 20), (2, 30))]})
    table.to_csv(sites, sep="\t", index=False)
    return Toy(root, genome, bed, fasta, model, store, run, user_dir, root / "attr", root / "eval", sites)


# ------------------------------------------------------------------------ the catalogue of errors
@dataclass
class Case:
    """One bad input: the arguments (``{name}`` = a :class:`Toy` path), the folders or files that
    must stay byte-identical, and the fragments the error line must contain."""

    args: list[str]
    untouched: list[str]
    fragments: list[str]
    setup: str | None = None  # name of a function below preparing extra files


#: A valid study config: the folder is checked once the config is known to be good.
DEMO_CONFIG = str(Path(__file__).resolve().parents[1] / "src" / "chromtransfer" / "configs" / "demo.yaml")


def _format(toy: Toy, text: str) -> str:
    names = {k: str(v) for k, v in vars(toy).items()}
    return text.format(**names)


CASES = {
    # --- outputs never destroy foreign data
    "prepare finetune into a folder of user files": Case(
        ["prepare", "finetune", "--genome", "{genome}", "--cell", "A", "--label-matrix", "{root}/matrix.tsv",
         "--test-chroms", "chr2", "--folds", "0", "--out", "{user_dir}"],
        ["{user_dir}"], ["{user_dir}", "not empty and not written by chromtransfer", "notes.txt",
                         "choose another --out"], setup="matrix"),
    "prepare pretrain into a folder of user files": Case(
        ["prepare", "pretrain", "--genome", "{genome}", "--positives", "{bed}", "--test-chroms", "chr2",
         "--out", "{user_dir}"],
        ["{user_dir}"], ["{user_dir}", "not empty and not written by chromtransfer", "choose another --out"]),
    "attribute into the model run it reads": Case(
        ["attribute", "--model", "{run}", "--fasta", "{fasta}", "--device", "cpu", "--out", "{run}"],
        ["{run}"], ["{run}", "holds a training run", "run.json", "not attributions", "choose another --out"]),
    "evaluate into a dataset store": Case(
        ["evaluate", "--model", "{model}", "--data", "{store}", "--device", "cpu", "--out", "{store}"],
        ["{store}"], ["{store}", "holds a dataset store", "not an evaluation"]),
    "evaluate into a complete evaluation without --overwrite": Case(
        ["evaluate", "--model", "{model}", "--data", "{store}", "--device", "cpu", "--out", "{evaluation}"],
        ["{evaluation}"], ["{evaluation}", "already holds an evaluation", "--overwrite"]),
    "attribute into complete attributions without --overwrite": Case(
        ["attribute", "--model", "{model}", "--fasta", "{fasta}", "--select", "all", "--device", "cpu",
         "--out", "{attributions}"],
        ["{attributions}"], ["{attributions}", "already holds attributions", "--overwrite"]),
    "train into a dataset store": Case(
        ["train", "--preset", "baseline", "--data", "{store}", "--out", "{store}", "--width", "0.25",
         "--device", "cpu"],
        ["{store}"], ["{store}", "holds a dataset store", "not a training run"]),
    "train into a folder of user files": Case(
        ["train", "--preset", "baseline", "--data", "{store}", "--out", "{user_dir}", "--width", "0.25",
         "--device", "cpu"],
        ["{user_dir}"], ["{user_dir}", "not written by chromtransfer"]),
    "synth into a folder of user files": Case(
        ["synth", "--size", "tiny", "--out", "{user_dir}"],
        ["{user_dir}"], ["{user_dir}", "not empty and not written by chromtransfer"]),
    "import-keras into a model run": Case(
        ["import-keras", "{root}/missing.h5", "--out", "{run}"],
        ["{run}"], ["{run}", "holds a training run", "not a model"]),
    "bootstrap into attributions": Case(
        ["bootstrap", "--data", "{store}", "--init", "{model}", "--fractions", "0.5", "--replicates", "1",
         "--out", "{attributions}"],
        ["{attributions}"], ["{attributions}", "holds attributions", "not a bootstrap analysis"]),
    "run a study into a model run": Case(
        ["run", DEMO_CONFIG, "--out", "{run}"],
        ["{run}"], ["{run}", "holds a training run", "not a study"]),
    "demo into a folder of user files": Case(
        ["demo", "--out", "{user_dir}"],
        ["{user_dir}"], ["{user_dir}", "not written by chromtransfer"]),
    "motifs enrich into a dataset store": Case(
        ["motifs", "enrich", "--attributions", "{attributions}", "--sites", "{sites}", "--out", "{store}"],
        ["{store}"], ["{store}", "holds a dataset store", "not a TF enrichment"]),
    "motifs scan over a user's file": Case(
        ["motifs", "scan", "--fasta", "{fasta}", "--out", "{user_dir}/results.csv", "--overwrite"],
        ["{user_dir}"], ["results.csv", "not written by this command", "choose another --out"]),
    "predict over an existing file without --overwrite": Case(
        ["predict", "--model", "{model}", "--fasta", "{fasta}", "--out", "{user_dir}/notes.txt"],
        ["{user_dir}"], ["notes.txt", "already exists", "--overwrite"]),
    # --- damaged inputs
    "truncated gzip BED (predict)": Case(
        ["predict", "--model", "{model}", "--bed", "{root}/cut.bed.gz", "--genome", "{genome}",
         "--out", "{root}/out_cut_bed.tsv"],
        ["{root}/cut.bed.gz"], ["cut.bed.gz", "truncated or corrupt gzip file", "download the file again"],
        setup="cut_bed"),
    "truncated gzip label matrix (prepare finetune)": Case(
        ["prepare", "finetune", "--genome", "{genome}", "--cell", "A", "--label-matrix", "{root}/cut.tsv.gz",
         "--test-chroms", "chr2", "--out", "{root}/store_from_cut"],
        ["{root}/cut.tsv.gz"], ["cut.tsv.gz", "truncated or corrupt gzip file"], setup="cut_matrix"),
    "truncated gzip FASTA (predict)": Case(
        ["predict", "--model", "{model}", "--fasta", "{root}/cut.fa.gz", "--out", "{root}/out_cut_fa.tsv"],
        ["{root}/cut.fa.gz"], ["cut.fa.gz", "truncated or corrupt gzip file"], setup="cut_fasta"),
    "truncated bgzip genome (predict --bed)": Case(
        ["predict", "--model", "{model}", "--bed", "{bed}", "--genome", "{root}/cut_genome.fa.gz",
         "--out", "{root}/out_cut_genome.tsv"],
        ["{root}/cut_genome.fa.gz"], ["cut_genome.fa.gz", "truncated or corrupt gzip file", "cut short"],
        setup="cut_bgzf"),
    # --- malformed inputs: the file and its line
    "FASTA with a character that is no base": Case(
        ["predict", "--model", "{model}", "--fasta", "{root}/bad.fa", "--out", "{root}/out_bad_fa.tsv"],
        ["{root}/bad.fa"], ["bad.fa:4", "'X'", "replace"], setup="bad_fasta"),
    "BED region on a chromosome the genome lacks": Case(
        ["predict", "--model", "{model}", "--bed", "{root}/chr9.bed", "--genome", "{genome}",
         "--out", "{root}/out_chr9.tsv"],
        ["{root}/chr9.bed"], ["chr9.bed:2", "chr9"], setup="chr9_bed"),
    # --- selections
    "--test-chroms names a chromosome the genome lacks": Case(
        ["prepare", "pretrain", "--genome", "{genome}", "--positives", "{bed}", "--test-chroms", "chr2O",
         "--out", "{root}/store_chr2O"],
        ["{genome}", "{bed}"], ["--test-chroms", "chr2O", "not a chromosome", "genome.fa", "use the genome's names: chr1, chr2"]),
    "--exclude-chroms names a chromosome the genome lacks": Case(
        ["prepare", "pretrain", "--genome", "{genome}", "--positives", "{bed}", "--test-chroms", "chr2",
         "--exclude-chroms", "chrY", "--out", "{root}/store_chrY"],
        ["{genome}"], ["--exclude-chroms", "chrY", "use the genome's names: chr1, chr2"]),
    "a test split that would be empty (prepare)": Case(
        ["prepare", "finetune", "--genome", "{genome}", "--cell", "A", "--label-matrix", "{root}/matrix1.tsv",
         "--background", "0", "--folds", "0", "--test-chroms", "chr2", "--out", "{root}/store_no_test"],
        ["{root}/matrix1.tsv"], ["--test-chroms", "no window lies on chr2", "test split would be empty"],
        setup="matrix_chr1"),
    "attribute selects no sequence": Case(
        ["attribute", "--model", "{model}", "--fasta", "{fasta}", "--threshold", "1.0", "--device", "cpu",
         "--out", "{root}/attr_none"],
        ["{fasta}"], ["no sequence selected", "none of the 12", "--select all", "--threshold"]),
    "motifs enrich tests no TF": Case(
        ["motifs", "enrich", "--attributions", "{attributions}", "--sites", "{sites}", "--min-sites", "100",
         "--out", "{root}/enrich_none"],
        ["{attributions}", "{sites}"], ["no tf tested", "--min-sites 100", "lower --min-sites"]),
    "evaluate a split with no rows": Case(
        ["evaluate", "--model", "{model}", "--data", "{root}/train_only", "--device", "cpu",
         "--out", "{root}/eval_empty"],
        ["{root}/train_only"], ["train_only", "'test' split has no rows", "--split"], setup="train_only"),
    "bootstrap with 0 replicates": Case(
        ["bootstrap", "--data", "{store}", "--init", "{model}", "--replicates", "0", "--out", "{root}/boot0"],
        ["{store}"], ["--replicates", "at least 1"]),
    "bootstrap fractions outside (0, 1]": Case(
        ["bootstrap", "--data", "{store}", "--init", "{model}", "--fractions", "1.5,-0.1",
         "--out", "{root}/boot1"],
        ["{store}"], ["--fractions", "(0, 1]", "1.5", "-0.1"]),
    # --- config-schema cases are added in their own section below
}


def _setup(toy: Toy, name: str | None) -> None:
    if name == "matrix":
        (toy.root / "matrix.tsv").write_text("chrom\tstart\tend\tA\tB\nchr1\t1000\t1200\t1\t0\n")
    elif name == "cut_bed":
        _gz_truncated(toy.root / "cut.bed.gz", "".join(f"chr1\t{i}\t{i + 100}\n" for i in range(0, 5000, 7)))
    elif name == "cut_matrix":
        _gz_truncated(toy.root / "cut.tsv.gz", "chrom\tstart\tend\tA\tB\n"
                      + "".join(f"chr1\t{i}\t{i + 100}\t1\t0\n" for i in range(0, 5000, 3)))
    elif name == "cut_fasta":
        rng = np.random.default_rng(5)
        _gz_truncated(toy.root / "cut.fa.gz", "".join(
            f">q{i}\n{decode(rng.integers(0, 4, 300).astype(np.uint8))}\n" for i in range(200)))
    elif name == "matrix_chr1":
        (toy.root / "matrix1.tsv").write_text("chrom\tstart\tend\tA\tB\n" + "".join(
            f"chr1\t{s}\t{s + 200}\t{int(k % 2 == 0)}\t{int(k % 2 == 1)}\n" for k, s in enumerate(range(300, 5000, 400))))
    elif name == "cut_bgzf":
        from Bio import bgzf

        with bgzf.BgzfWriter(str(toy.root / "genome_bgzf.fa.gz"), "wb") as writer:
            writer.write(toy.genome.read_bytes())
        data = (toy.root / "genome_bgzf.fa.gz").read_bytes()
        (toy.root / "cut_genome.fa.gz").write_bytes(data[: len(data) // 2])
    elif name == "bad_fasta":
        (toy.root / "bad.fa").write_text(">ok\nACGTACGT\n>bad\nACGXTA\n")
    elif name == "chr9_bed":
        (toy.root / "chr9.bed").write_text("chr1\t100\t300\nchr9\t100\t300\n")
    elif name == "train_only" and not (toy.root / "train_only").exists():
        write_store(toy.root / "train_only", np.zeros((4, LENGTH), np.uint8), [0, 1, 0, 1], np.zeros(4),
                    np.zeros(4))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(toy, capsys, name):
    case = CASES[name]
    _setup(toy, case.setup)
    untouched = [Path(_format(toy, p)) for p in case.untouched]
    before = _snapshot(*untouched)
    assert before, "the case guards no file"
    code, _, err = _run(capsys, *[_format(toy, a) for a in case.args])
    line = _error_line(err)
    assert code == 2, err
    for fragment in case.fragments:
        assert _format(toy, fragment).lower() in line.lower(), (fragment, line)
    assert _snapshot(*untouched) == before


# ---------------------------------------------------------------- config-schema cases (study config)
# The typed study-config schema keeps its own catalogue of bad configs here (unknown keys with the
# line number, wrong types, strict booleans, ranges), each with the same three assertions.


# ------------------------------------------------------------------------------ not errors, flagged
def test_all_n_sequence_is_scored_but_flagged(toy, capsys, tmp_path):
    fasta = tmp_path / "n.fa"
    fasta.write_text(">ok\n" + "ACGT" * 50 + "\n>gap\n" + "N" * 200 + "\n>half\n" + "ACGT" * 20 + "N" * 120 + "\n")
    out = tmp_path / "p.tsv"
    code, _, err = _run(capsys, "predict", "--model", toy.model, "--fasta", fasta, "--out", out)
    assert code == 0, err
    table = pd.read_csv(out, sep="\t").set_index("name")
    assert table.loc["gap", "n_fraction"] == 1.0 and table.loc["ok", "n_fraction"] == 0.0
    assert table.loc["half", "n_fraction"] == pytest.approx(0.6)
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "2 of 3 sequences" in warning[0] and "50% N" in warning[0], err


def test_stale_temporary_of_a_dead_process_is_removed(toy, capsys, tmp_path):
    out = tmp_path / "p.tsv"
    dead = 2 ** 22 + 12345  # above the usual pid_max: no live process has it
    stale = tmp_path / f".p.tsv.tmp-{dead}"
    stale.write_text("half a table")
    alive = tmp_path / f".p.tsv.tmp-{os.getppid()}"  # a live process: left alone
    alive.write_text("being written")
    code, _, err = _run(capsys, "predict", "--model", toy.model, "--fasta", toy.fasta, "--out", out)
    assert code == 0, err
    assert not stale.exists() and alive.exists()


def test_written_files_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        path = save_model(build_model("finetune", width=0.25), tmp_path / "m")
    finally:
        os.umask(previous)
    for name in ("model.safetensors", "model.json"):
        assert (path / name).stat().st_mode & 0o777 == 0o644, name


def test_overwrite_replaces_only_the_commands_own_files(toy, capsys, tmp_path):
    out = tmp_path / "eval"
    assert _run(capsys, "evaluate", "--model", toy.model, "--data", toy.store, "--device", "cpu",
                "--out", out)[0] == 0
    (out / "my_notes.txt").write_text("keep me\n")
    code, _, err = _run(capsys, "evaluate", "--model", toy.model, "--data", toy.store, "--device", "cpu",
                        "--out", out, "--overwrite")
    assert code == 0, err
    assert (out / "my_notes.txt").read_text() == "keep me\n"
    assert json.loads((out / MARKER_FILE).read_text())["kind"] == "evaluation"
    table = pd.read_csv(out / "predictions.tsv", sep="\t")
    assert table.columns.tolist() == ["name", "label", "model", "score"]
    # the table feeds 'chromtransfer metrics' as predict's does
    code, stdout, err = _run(capsys, "metrics", out / "predictions.tsv", "--score", "score", "--label", "label",
                             "--group", "model")
    assert code == 0, err
    assert stdout.splitlines()[0].split("\t")[0] == "model" and len(stdout.splitlines()) == 2


def test_claim_rules_of_an_output_folder(tmp_path):
    from chromtransfer.artifacts import claim_output_dir
    from chromtransfer.errors import ArtifactError

    folder = claim_output_dir(tmp_path / "e", "evaluation")
    assert json.loads((folder / MARKER_FILE).read_text())["kind"] == "evaluation"
    (folder / "predictions.tsv").write_text("half\n")  # killed before metrics.json: unfinished
    dead = folder / f".staging-{2 ** 22 + 7}"
    dead.mkdir()
    claim_output_dir(folder, "evaluation")  # an unfinished folder of the same kind is used again
    assert not dead.exists() and (folder / "predictions.tsv").exists()
    (folder / "metrics.json").write_text("{}")
    (folder / "mine.txt").write_text("mine\n")
    with pytest.raises(ArtifactError, match="already holds an evaluation"):
        claim_output_dir(folder, "evaluation")
    with pytest.raises(ArtifactError, match="holds an evaluation .*not attributions"):
        claim_output_dir(folder, "attributions", overwrite=True)
    claim_output_dir(folder, "evaluation", overwrite=True)
    assert not (folder / "metrics.json").exists()  # reads as unfinished until the new one is written
    assert (folder / "mine.txt").read_text() == "mine\n" and (folder / "predictions.tsv").exists()
