"""The study config schema: unknown keys, strict booleans, types and ranges refused with the line;
defaults filled; the schema table printed by ``run --show-schema`` and kept in the README."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

from chromtransfer.errors import InputError
from chromtransfer.training import presets
from chromtransfer.workflow.config import STUDY_SET_TRAIN_KEYS, TRAIN_KEYS, load_config
from chromtransfer.workflow.config_schema import schema_table

BASE = "inputs:\n  synthetic: {size: tiny}\ncells: [HepG2, K562]\n"
README = Path(__file__).resolve().parents[1] / "README.md"


def _error(tmp_path: Path, text: str) -> str:
    config = tmp_path / "study.yaml"
    config.write_text(text)
    with pytest.raises(InputError) as caught:
        load_config(config)
    return str(caught.value).replace(f"{tmp_path}/", "")


@pytest.mark.parametrize("text, message", [
    (BASE + "interpret:\n  min_site: 3\n",
     "study.yaml:5: unknown key 'min_site' under interpret (did you mean 'min_sites'?)"),
    (BASE + "train:\n  finetune: {max_epoch: 3}\n",
     "study.yaml:5: unknown key 'max_epoch' under train.finetune (did you mean 'max_epochs'?)"),
    (BASE + "train:\n  fintune: {max_epochs: 3}\n",
     "study.yaml:5: unknown key 'fintune' under train (did you mean 'finetune'?)"),
    (BASE + "interpet: {fdr: 0.1}\n", "study.yaml:4: unknown key 'interpet' at the top level (did you mean 'interpret'?)"),
    (BASE + "prepare:\n  length: 300\n  finetune: {neg_ratio: 2, backgrund: 5}\n",
     "study.yaml:6: unknown key 'backgrund' under prepare.finetune (did you mean 'background'?)"),
    (BASE + "train:\n  common: {store: x}\n", "study.yaml:5: unknown key 'store' under train.common"),
])
def test_unknown_keys_are_refused_with_line_and_suggestion(tmp_path, text, message):
    assert _error(tmp_path, text).startswith(message)


@pytest.mark.parametrize("text, message", [
    (BASE + "bootstrap:\n  enabled: \"no\"\n", "study.yaml:5: bootstrap.enabled is 'no': expected true or false"),
    (BASE + "multiclass: {enabled: 'false'}\n", "study.yaml:4: multiclass.enabled is 'false': expected true or false"),
    (BASE + "train:\n  finetune:\n    max_epochs: one\n",
     "study.yaml:6: train.finetune.max_epochs is 'one': expected a whole number"),
    (BASE + "train:\n  pretrain: {max_epochs: 2.5}\n", "study.yaml:5: train.pretrain.max_epochs is 2.5: expected a whole number"),
    (BASE + "bootstrap:\n  fractions: half\n", "study.yaml:5: bootstrap.fractions is 'half': expected a list"),
    (BASE + "bootstrap:\n  fractions:\n    - 0.5\n    - half\n", "study.yaml:7: bootstrap.fractions[1] is 'half': expected a number"),
    ("inputs: {synthetic: {size: tiny}}\ncells: HepG2\n", "study.yaml:2: cells is 'HepG2': expected a list"),
    (BASE + "interpret: {target: logits}\n", "study.yaml:4: interpret.target is 'logits': expected one of 'probability' or 'logit'"),
    (BASE + "train: {common: {precision: 16}}\n", "study.yaml:4: train.common.precision is '16': expected one of"),
    (BASE + "precision: half\n", "study.yaml:4: precision is 'half': expected one of 'float32' or 'bf16'"),
])
def test_wrong_types_are_refused_with_line(tmp_path, text, message):
    assert _error(tmp_path, text).startswith(message)


@pytest.mark.parametrize("text, message", [
    (BASE + "interpret: {fdr: 2}\n", "study.yaml:4: interpret.fdr is 2: should be less than or equal to 1"),
    (BASE + "interpret: {family_overlap: 0}\n", "study.yaml:4: interpret.family_overlap is 0: should be greater than 0"),
    (BASE + "bootstrap: {fractions: [0.5, 1.5]}\n", "study.yaml:4: bootstrap.fractions[1] is 1.5: should be less"),
    (BASE + "bootstrap: {replicates: 0}\n", "study.yaml:4: bootstrap.replicates is 0: should be greater than or equal to 1"),
    (BASE + "prepare: {length: 0}\n", "study.yaml:4: prepare.length is 0: should be greater than or equal to 1"),
    (BASE + "train:\n  finetune: {lr: -1.0}\n", "study.yaml:5: train.finetune.lr is -1.0: must be positive"),
    (BASE + "train:\n  common: {width: 9.0}\n", "study.yaml:5: train.common.width is 9.0: must lie in (0, 4]"),
    (BASE + "folds: [0, 3]\n", "study.yaml:4: folds has fold 3, but prepare.folds is 3 (use folds 0..2)"),
    (BASE + "bootstrap: {cell: A549}\n", "study.yaml:4: bootstrap.cell 'A549' is not one of cells"),
    (BASE + "interpret: {compare: [HepG2, HepG2]}\n", "study.yaml:4: interpret.compare names the same cell line twice"),
    (BASE + "interpret: {method: deeplift_shap, references: 0}\n",
     "study.yaml:4: interpret.references is 0: should be greater than or equal to 1"),
    ("cells: [HepG2]\n", "study.yaml:1: inputs is missing"),
    ("inputs: {genome: g.fa, rdhs: r.bed}\ncells: [HepG2]\n", "study.yaml:1: inputs need one of labels_csv"),
    ("inputs: {genome: g.fa, rdhs: r.bed, label_matrix: m.tsv}\ncells: [HepG2]\nvariants: {null_snvs: 10}\n",
     "study.yaml:3: variants.vcf is missing (name the VCF to score"),
    (BASE + "variants: {windows: tiles}\n", "study.yaml:4: variants.windows is 'tiles': expected one of"),
])
def test_values_out_of_range_are_refused_with_line(tmp_path, text, message):
    assert _error(tmp_path, text).startswith(message)


def test_yaml_booleans_are_booleans(tmp_path):
    config = tmp_path / "study.yaml"
    config.write_text(BASE + "multiclass: {enabled: no}\nbootstrap: {enabled: false}\n")
    loaded = load_config(config)
    assert loaded.multiclass.enabled is False and loaded.bootstrap.enabled is False


def test_defaults_are_filled(tmp_path):
    config = tmp_path / "mini.yaml"
    config.write_text(BASE + "train:\n  common: {width: 0.5}\n  finetune: {max_epochs: 3}\n")
    loaded = load_config(config)
    assert loaded.name == "mini" and loaded.seed == 0 and loaded.folds == [0]
    assert loaded.prepare.length == 600 and loaded.prepare.test_chroms == ["chr2", "chr3"]
    assert loaded.prepare.finetune.neg_ratio == 3.0 and loaded.evaluate.batch_size == 256
    # sections left out are stages not run; present ones fill their cells from the study's
    assert not loaded.bootstrap.enabled and not loaded.interpret.enabled
    filled = loaded.filled()
    finetune = filled["train"]["finetune"]
    assert finetune["max_epochs"] == 3 and finetune["width"] == 0.5
    assert finetune["lr"] == presets.PRESETS["finetune"].lr and finetune["patience"] == presets.PRESETS["finetune"].patience
    assert filled["train"]["multiclass"]["max_epochs"] == presets.PRESETS["multiclass"].max_epochs
    config.write_text(BASE + "bootstrap: {replicates: 2}\ninterpret: {min_sites: 5}\n")
    loaded = load_config(config)
    assert loaded.bootstrap.enabled and loaded.bootstrap.cell == "HepG2"
    assert loaded.interpret.cells == ["HepG2", "K562"] and loaded.interpret.compare == ["HepG2", "K562"]
    assert loaded.interpret.fdr == 0.001 and loaded.interpret.target == "probability"
    assert loaded.interpret.method == "grad_x_input" and loaded.interpret.references == 20
    config.write_text(BASE + "interpret: {method: deeplift_shap, references: 8}\n")
    loaded = load_config(config)
    assert loaded.interpret.method == "deeplift_shap" and loaded.interpret.references == 8


def test_bundled_configs_are_valid():
    demo = load_config(files("chromtransfer") / "configs" / "demo.yaml")
    assert demo.prepare.length == 300 and demo.train_options("finetune")["lr"] == 5e-4
    assert demo.interpret.target == "logit" and demo.interpret.min_sites == 20
    paper = load_config(files("chromtransfer") / "configs" / "paper.yaml")
    assert paper.prepare.exclude_chroms == ["chrX", "chrY", "chrM"] and paper.folds == [0, 1, 2]
    assert paper.filled()["train"]["finetune"]["precision"] == "32"  # float32, as the paper trained
    assert paper.multiclass.protocol == "authors" and paper.multiclass.prepare.multiclass_set == "authors"
    # the variants stage: on in the demo (the synthetic VCF), off in the paper's study (no VCF)
    assert demo.variants.enabled and demo.variants.vcf is None and demo.variants.windows == "elements"
    assert not paper.variants.enabled


def test_training_keys_are_those_of_train_settings():
    settable = {f.name for f in dataclasses.fields(presets.TrainSettings)} - set(STUDY_SET_TRAIN_KEYS)
    assert set(TRAIN_KEYS) == settable


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "chromtransfer.cli", "run", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_bad_config_stops_the_command_before_any_work(tmp_path):
    config = tmp_path / "study.yaml"
    config.write_text(BASE + "interpret:\n  min_site: 3\n")
    result = _cli(str(config), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr == f"error: {config}:5: unknown key 'min_site' under interpret (did you mean 'min_sites'?)\n"
    assert not (tmp_path / "out").exists()


def test_show_schema_prints_the_table_the_readme_holds():
    result = _cli("--show-schema")
    assert result.returncode == 0 and result.stdout == schema_table()
    for key in ("interpret.min_sites", "prepare.length", "bootstrap.fractions", ".max_epochs`"):
        assert key in result.stdout
    text = README.read_text()
    start = text.index("<!-- config-schema:start")
    start = text.index("\n", start) + 1
    end = text.index("<!-- config-schema:end -->")
    assert text[start:end] == schema_table(), "README's config table is stale: paste 'chromtransfer run --show-schema'"
