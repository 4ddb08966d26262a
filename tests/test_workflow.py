"""The study workflow: a tiny study end to end, killed during training and resumed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import f1_score

from chromtransfer.evaluation import auprc

TINY_STUDY = """
name: tiny workflow test
seed: 3
device: cpu
inputs:
  synthetic: {size: tiny}
prepare:
  length: 200
  test_chroms: [chr2]
  folds: 2
  pretrain: {neg_ratio: 1.0}
  finetune: {neg_ratio: 2.0, background: 10}
cells: [HepG2, K562]
folds: [0]
train:
  common: {width: 0.25, batch_size: 32}
  pretrain: {max_epochs: 2}
  finetune: {max_epochs: 2, lr: 1.0e-3}
  baseline: {max_epochs: 2}
  multiclass: {max_epochs: 1}
bootstrap:
  cell: HepG2
  fractions: [0.5]
  replicates: 1
interpret:
  cells: [HepG2, K562]
  min_sites: 3
  fdr: 0.5
variants:
  null_snvs: 20
  explain: 1
  top: 4
"""


def _command(config: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "chromtransfer.cli", "run", str(config), "--out", str(out)]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """Run the tiny study, SIGKILL it while it trains a fine-tuning model, then run it again."""
    base = tmp_path_factory.mktemp("study")
    config, out = base / "tiny.yaml", base / "out"
    config.write_text(TINY_STUDY)
    process = subprocess.Popen(_command(config, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=_env(), start_new_session=True)
    target = out / "models" / "HepG2" / "finetune" / "fold0" / "run.json"
    deadline = time.time() + 600
    while not target.exists():
        if process.poll() is not None:
            pytest.fail(f"study ended before the fine-tuning stage: {process.stdout.read().decode()[-2000:]}")
        if time.time() > deadline:
            process.kill()
            pytest.fail("the fine-tuning stage never started")
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    markers = {p.name: p.stat().st_mtime_ns for p in (out / "stages").glob("*.json")
               if json.loads(p.read_text())["status"] == "complete"}
    assert "train_pretrain.json" in markers and "train_HepG2_finetune_fold0.json" not in markers
    assert json.loads((out / "stages" / "train_HepG2_finetune_fold0.json").read_text())["status"] == "running"
    second = subprocess.run(_command(config, out), capture_output=True, text=True, env=_env(), timeout=900)
    return out, markers, second


def test_resumed_study_finishes_without_redoing_completed_stages(killed_and_resumed):
    out, markers, second = killed_and_resumed
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "[skip] train/pretrain: complete" in second.stdout
    assert "[run ] train/pretrain" not in second.stdout
    assert "[run ] train/HepG2/finetune/fold0: resuming" in second.stdout
    for name, mtime in markers.items():  # completed stages were not run again
        assert (out / "stages" / name).stat().st_mtime_ns == mtime, name
    assert (out / "stages" / "train_HepG2_finetune_fold0.json").exists()
    assert (out / "models" / "HepG2" / "finetune" / "fold0" / "model.json").exists()


def test_summary_follows_the_documented_schema(killed_and_resumed):
    out, _, _ = killed_and_resumed
    summary = json.loads((out / "summary.json").read_text())
    for cell in ("HepG2", "K562"):
        entry = summary["cells"][cell]
        for kind in ("finetuned", "baseline", "kmer", "pretrained"):
            assert set(entry[kind]) >= {"auroc", "auprc", "average_precision", "f1_negative", "f1_positive",
                                        "f1_overall", "f1_macro"}
            assert 0 <= entry[kind]["auroc"] <= 1
            # the paper's definitions: interpolated PR area, class-size weighted overall F1
            predictions = pd.read_csv(out / "evaluation" / cell / kind / "predictions.tsv", sep="\t")
            y, s = predictions["label"].to_numpy(), predictions.iloc[:, -1].to_numpy()
            assert entry[kind]["auprc"] == pytest.approx(auprc(y, s), abs=1e-9)
            assert entry[kind]["f1_overall"] == pytest.approx(f1_score(y, s > 0.5, average="weighted"), abs=1e-9)
            assert entry[kind]["f1_macro"] == pytest.approx(f1_score(y, s > 0.5, average="macro"), abs=1e-9)
        assert "top_tfs" in entry and entry["planted_tfs"]
        variants = entry["variants"]  # the synthetic truth: driver-breaking vs non-motif SNVs of CELL
        truth = pd.read_csv(out / "inputs" / "variants_truth.tsv", sep="\t", keep_default_na=False)
        assert variants["n_driver"] == ((truth["class"] == "driver") & (truth["cell"] == cell)).sum() > 10
        assert variants["n_neutral"] == ((truth["class"] == "nonmotif") & (truth["cell"] == cell)).sum() > 10
        assert 0 <= variants["auroc_driver_vs_neutral"] <= 1
        own = truth[(truth["class"] == "driver") & (truth["cell"] == cell)]
        assert variants["n_specific_driver"] == (own["shared_with"] == "").sum() > 0
        assert 0 <= variants["auroc_specific_driver_vs_neutral"] <= 1
        assert 0 <= variants["planted_tf_in_motifs_lost_share"] <= 1
        assert len(variants["top"]) == 4 and {"chrom", "pos", "ref", "alt", "delta_logit", "null_z",
                                               "motifs_lost", "class"} <= set(variants["top"][0])
        effects = [abs(v["delta_logit"]) for v in variants["top"]]
        assert effects == sorted(effects, reverse=True)
        kmer = json.loads((out / "models" / cell / "kmer" / "fold0" / "model.json").read_text())
        assert kmer["architecture"] == "chromtransfer-kmer" and kmer["training"]["settings"]["fold"] == 0
        assert 0 <= summary["multiclass"][cell]["auroc"] <= 1
    assert [row["fraction"] for row in summary["bootstrap"]] == [0.5]
    assert {"f1_overall_mean", "f1_overall_sd"} <= set(summary["bootstrap"][0])
    assert {"prepare/pretrain", "train/pretrain", "bootstrap", "interpret/HepG2", "variants"} <= set(summary["timings"])
    scores = pd.read_csv(out / "variants" / "scores" / "variants.tsv.gz", sep="\t")
    assert set(scores["model"]) == {"HepG2", "K562"} and "specificity" in scores
    # the multi-class baseline as the authors trained it: one model on every training row, last weights
    multiclass_run = json.loads((out / "models" / "multiclass" / "all" / "run.json").read_text())
    assert multiclass_run["settings"]["export"] == "last" and multiclass_run["settings"]["validation"] == "test"
    assert "train/multiclass" in summary["timings"]


def test_cell_comparison_uses_the_union_of_positive_predictions(killed_and_resumed):
    from chromtransfer.interpret.pipeline import inputs_from_store, predict_unit
    from chromtransfer.modelio import load_model

    out, _, _ = killed_and_resumed
    comparison = json.loads((out / "summary.json").read_text())["comparison"]
    assert comparison["region_set"] == "predicted" and comparison["significance"] == "either"
    union = set()
    for cell in ("HepG2", "K562"):
        inputs = inputs_from_store(out / "data" / cell, split="all")
        p = predict_unit(load_model(out / "models" / cell / "finetune" / "fold0"), inputs, None, batch_size=256,
                         device="cpu")
        union |= set(inputs.names[p > 0.5].tolist())
    assert comparison["regions"] == len(union)
    table = pd.read_csv(out / "interpret" / "compare" / "enrichment" / "comparison.tsv", sep="\t")
    assert (table["significant"] == ((table["fdr_a"] < 0.5) | (table["fdr_b"] < 0.5))).all()  # fdr: 0.5


def test_report_is_self_contained_with_figures(killed_and_resumed):
    out, _, _ = killed_and_resumed
    html = (out / "report.html").read_text()
    assert "<h2>Test-set performance</h2>" in html and "<h2>Learning curves</h2>" in html
    assert "<h2>Variant effects</h2>" in html and "Driver-breaking vs non-motif SNVs" in html
    assert html.count("<td>k-mer composition</td>") == 2  # one row per cell line beside the networks
    assert html.count("data:image/png;base64,") >= 5
    assert "src=\"http" not in html and "href=\"http" not in html


def test_discover_step_adds_de_novo_motifs_without_redoing_the_interpretation(killed_and_resumed):
    pytest.importorskip("modiscolite", reason="modisco-lite is not installed (pip install 'chromtransfer[motifs]')")
    out, _, _ = killed_and_resumed
    config = out.parent / "discover.yaml"
    config.write_text(TINY_STUDY.replace("\nvariants:", "\n  discover: {enabled: true, min_seqlets: 5, leiden_runs: 2}\nvariants:"))
    result = subprocess.run(_command(config, out), capture_output=True, text=True, env=_env(), timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ran = [line.split()[2].rstrip(":") for line in result.stdout.splitlines() if line.startswith("[run ]")]
    assert ran == ["discover/HepG2", "discover/K562", "discover/compare"]  # nothing else is redone
    summary = json.loads((out / "summary.json").read_text())
    for cell in ("HepG2", "K562"):
        entry = summary["cells"][cell]
        assert isinstance(entry["de_novo_planted_in_top3"], bool)
        for pattern in entry["de_novo"]:
            assert set(pattern) == {"pattern", "seqlets", "best_match", "q", "family"} and pattern["seqlets"] >= 5
        table = pd.read_csv(out / "interpret" / cell / "motifs" / "patterns.tsv", sep="\t")
        assert list(table["pattern"]) == [p["pattern"] for p in entry["de_novo"]]
    assert set(summary["comparison"]["de_novo"]) == {"only_in_HepG2", "only_in_K562"}
    assert "<h2>De novo motifs: HepG2</h2>" in (out / "report.html").read_text()


def test_bad_config_is_one_error_line(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("inputs: {synthetic: {size: tiny}}\ncells: HepG2\n")
    result = subprocess.run(_command(config, tmp_path / "out"), capture_output=True, text=True, env=_env())
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "bad.yaml:2: cells is 'HepG2': expected a list" in result.stderr
    # Interpretation settings are checked when the config is read, not after hours of training.
    for setting, message in (("target: logits", "interpret.target is 'logits'"),
                             ("family_overlap: 2", "interpret.family_overlap is 2")):
        config.write_text(f"inputs: {{synthetic: {{size: tiny}}}}\ncells: [HepG2]\ninterpret: {{{setting}}}\n")
        result = subprocess.run(_command(config, tmp_path / "out2"), capture_output=True, text=True, env=_env())
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
        assert not (tmp_path / "out2" / "models").exists()
