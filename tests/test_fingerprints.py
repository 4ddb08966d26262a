"""Study fingerprints: a rerun redoes exactly the stages whose config values, inputs or upstream
stages changed (and says why), skips the rest, resumes a stage stopped midway, and a dry run changes
nothing. Cheap fake stages exercise the runner; one small real study checks the whole chain."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chromtransfer.workflow import stages as stages_module
from chromtransfer.workflow.stages import Stage, StageRunner


class Recorder:
    """Fake stages A -> B (B reads A) and C (independent), each writing a file in its folder."""

    def __init__(self, out: Path):
        self.out = out
        self.ran: list[str] = []
        self.lines: list[str] = []
        self.settings = {"A": {"a.x": 1}, "B": {"b.y": "y"}, "C": {"c.z": [1, 2]}}
        self.inputs: list[Path] = []
        self.fail: str | None = None

    def _work(self, name: str):
        def run():
            self.ran.append(name)
            if self.fail == name:
                raise RuntimeError("killed")
            folder = self.out / name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "result.txt").write_text(f"{name} {self.settings[name]}")
            return {"value": name}
        return run

    def stages(self) -> list[Stage]:
        return [Stage("A", self._work("A"), settings=self.settings["A"], inputs=self.inputs, outputs=[self.out / "A"]),
                Stage("B", self._work("B"), settings=self.settings["B"], depends=["A"], outputs=[self.out / "B"]),
                Stage("C", self._work("C"), settings=self.settings["C"], outputs=[self.out / "C"])]

    def run(self, dry_run: bool = False) -> StageRunner:
        self.ran, self.lines = [], []
        runner = StageRunner(self.out, echo=self.lines.append, dry_run=dry_run)
        for stage in self.stages():
            runner.run(stage)
        return runner


def _markers(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (out / "stages").glob("*.json")}


def test_unchanged_rerun_skips_every_stage(tmp_path):
    study = Recorder(tmp_path)
    study.run()
    assert study.ran == ["A", "B", "C"]
    before = _markers(tmp_path)
    study.run()
    assert study.ran == [] and study.lines == ["[skip] A: complete", "[skip] B: complete", "[skip] C: complete"]
    assert _markers(tmp_path) == before


def test_changed_value_redoes_the_stage_and_its_dependents_and_says_why(tmp_path):
    study = Recorder(tmp_path)
    study.run()
    (tmp_path / "A" / "stale.txt").write_text("from the old settings")
    study.settings["A"] = {"a.x": 2}
    study.run()
    assert study.ran == ["A", "B"]
    assert study.lines[0] == "[redo] A: a.x 1 -> 2"
    assert "[redo] B: depends on A (redone)" in study.lines and "[skip] C: complete" in study.lines
    assert not (tmp_path / "A" / "stale.txt").exists()  # a redone stage starts from an empty folder
    marker = json.loads((tmp_path / "stages" / "A.json").read_text())
    assert marker["status"] == "complete" and marker["fingerprint"]["settings"] == {"a.x": 2}


def test_dry_run_says_what_would_happen_and_changes_nothing(tmp_path):
    fresh = Recorder(tmp_path / "new")
    fresh.run(dry_run=True)
    assert fresh.ran == [] and not (tmp_path / "new").exists()
    assert [line.split(":")[0] for line in fresh.lines] == ["[run ] A", "[run ] B", "[run ] C"]
    study = Recorder(tmp_path / "old")
    study.run()
    before = _markers(tmp_path / "old")
    study.settings["C"] = {"c.z": [1, 3]}
    study.settings["A"] = {"a.x": 1, "a.w": True}
    study.run(dry_run=True)
    assert study.ran == [] and _markers(tmp_path / "old") == before
    assert study.lines == ["[redo] A: a.w added (true)", "[redo] B: depends on A (redone)", "[redo] C: c.z [1, 2] -> [1, 3]"]


def test_input_files_are_identified_by_content_or_by_size_and_time(tmp_path, monkeypatch):
    small = tmp_path / "labels.tsv"
    small.write_text("chr1\t0\t100\t1\n")
    study = Recorder(tmp_path / "out")
    study.inputs = [small]
    study.run()
    os.utime(small, ns=(small.stat().st_atime_ns, small.stat().st_mtime_ns + 5_000_000_000))
    study.run()
    assert study.ran == []  # touched but the same bytes: small files are compared by content
    small.write_text("chr1\t0\t100\t0\n")
    study.run()
    assert study.ran == ["A", "B"] and study.lines[0] == f"[redo] A: input {small} changed"
    monkeypatch.setattr(stages_module, "HASH_LIMIT", 0)  # as for a genome: judged by size and mtime
    study.run()
    assert study.ran == ["A", "B"]
    study.run()
    assert study.ran == []
    os.utime(small, ns=(small.stat().st_atime_ns, small.stat().st_mtime_ns + 5_000_000_000))
    study.run()
    assert study.ran == ["A", "B"] and study.lines[0] == f"[redo] A: input {small} changed"


def test_stage_stopped_midway_resumes_unless_its_settings_changed(tmp_path):
    study = Recorder(tmp_path)
    study.fail = "B"
    with pytest.raises(RuntimeError):
        study.run()
    assert json.loads((tmp_path / "stages" / "B.json").read_text())["status"] == "running"
    (tmp_path / "B").mkdir()
    (tmp_path / "B" / "checkpoint").write_text("half-way")
    study.fail = None
    study.run()
    assert study.ran == ["B", "C"] and "[run ] B: resuming (stopped midway; same settings and inputs)" in study.lines
    assert (tmp_path / "B" / "checkpoint").exists()  # resumed: its partial work is kept
    study.fail = "B"
    study.settings["B"] = {"b.y": "z"}
    with pytest.raises(RuntimeError):
        study.run()
    (tmp_path / "B").mkdir(exist_ok=True)  # the redo emptied it; the killed run left a checkpoint
    (tmp_path / "B" / "checkpoint").write_text("half-way with the new settings")
    study.settings["B"] = {"b.y": "w"}
    study.fail = None
    study.run()
    assert "[redo] B: b.y z -> w" in study.lines
    assert not (tmp_path / "B" / "checkpoint").exists()  # redone: stale checkpoints are not resumed


def test_markers_without_fingerprint_are_kept(tmp_path):
    study = Recorder(tmp_path)
    study.run()
    for path in (tmp_path / "stages").glob("*.json"):
        document = json.loads(path.read_text())
        del document["fingerprint"]
        path.write_text(json.dumps(document))
    study.run()
    assert study.ran == [] and study.lines[0] == "[skip] A: complete (recorded before fingerprints; kept)"
    assert "fingerprint" in json.loads((tmp_path / "stages" / "A.json").read_text())
    study.settings["A"] = {"a.x": 5}
    study.run()
    assert study.ran == ["A", "B"]


def test_outputs_outside_the_study_are_never_removed(tmp_path):
    study = Recorder(tmp_path / "out")
    runner = StageRunner(tmp_path / "out", echo=lambda _: None)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    stage = Stage("X", lambda: {}, settings={"x": 1}, outputs=[foreign])
    runner.run(stage)
    stage.settings = {"x": 2}
    with pytest.raises(ValueError, match="not inside the study folder"):
        runner.run(stage)
    assert foreign.is_dir() and study.ran == []


# -- one small real study ------------------------------------------------------------------------
SMALL_STUDY = """
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
cells: [HepG2]
folds: [0]
train:
  common: {width: 0.25, batch_size: 32}
  pretrain: {max_epochs: 1}
  finetune: {max_epochs: 1, lr: 1.0e-3}
  baseline: {max_epochs: 1}
multiclass:
  enabled: false
"""
STAGES = ["inputs", "prepare/pretrain", "prepare/HepG2", "train/pretrain", "train/HepG2/finetune/fold0",
          "train/HepG2/baseline/fold0", "evaluate/HepG2"]


def _run(config: Path, out: Path, *extra: str) -> dict[str, str]:
    """Run the study; returns each stage's log line (``[skip] NAME: why``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "chromtransfer.cli", "run", str(config), "--out", str(out), *extra],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = {}
    for line in result.stdout.splitlines():
        if line[:6] in ("[skip]", "[run ]", "[redo]"):
            lines[line[7:].split(":")[0]] = line
    return lines


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    base = tmp_path_factory.mktemp("fingerprints")
    config, out = base / "small.yaml", base / "out"
    config.write_text(SMALL_STUDY)
    first = _run(config, out)
    return config, out, first


def test_real_study_redoes_exactly_what_a_config_edit_touches(small_study):
    config, out, first = small_study
    assert all(first[name].startswith("[run ]") for name in STAGES)
    again = _run(config, out)
    assert all(again[name] == f"[skip] {name}: complete" for name in STAGES)

    sentinel = out / "models" / "HepG2" / "finetune" / "fold0" / "left-by-the-old-run"
    sentinel.write_text("")
    config.write_text(SMALL_STUDY.replace("finetune: {max_epochs: 1,", "finetune: {max_epochs: 2,"))
    lines = _run(config, out)
    assert lines["train/HepG2/finetune/fold0"] == "[redo] train/HepG2/finetune/fold0: train.finetune.max_epochs 1 -> 2"
    assert lines["evaluate/HepG2"] == "[redo] evaluate/HepG2: depends on train/HepG2/finetune/fold0 (redone)"
    redone = {name for name in STAGES if lines[name].startswith("[redo]")}
    assert redone == {"train/HepG2/finetune/fold0", "evaluate/HepG2"}
    assert not sentinel.exists()  # the redone run started afresh
    run = json.loads((out / "models" / "HepG2" / "finetune" / "fold0" / "run.json").read_text())
    assert run["settings"]["max_epochs"] == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["train"]["finetune"]["max_epochs"] == 2
    assert summary["settings"]["prepare"]["max_n_fraction"] == 0.1  # defaults recorded

    config.write_text(SMALL_STUDY.replace("length: 200", "length: 160")
                      .replace("finetune: {max_epochs: 1,", "finetune: {max_epochs: 2,"))
    markers = _markers(out)
    manifest = (out / "data" / "HepG2" / "manifest.json").read_bytes()
    planned = _run(config, out, "--dry-run")
    assert _markers(out) == markers and (out / "data" / "HepG2" / "manifest.json").read_bytes() == manifest
    assert planned["inputs"] == "[skip] inputs: complete"
    assert planned["prepare/HepG2"] == "[redo] prepare/HepG2: prepare.length 200 -> 160"
    assert planned["train/HepG2/baseline/fold0"] == ("[redo] train/HepG2/baseline/fold0: depends on prepare/HepG2 "
                                                     "(redone)")
    lines = _run(config, out)
    assert {name for name in STAGES if lines[name].startswith("[redo]")} == set(STAGES) - {"inputs"}
    assert lines["train/pretrain"] == "[redo] train/pretrain: depends on prepare/pretrain (redone)"
    assert json.loads((out / "data" / "HepG2" / "manifest.json").read_text())["length"] == 160
    assert all(line.startswith("[skip]") for line in _run(config, out).values())

    # markers as a chromtransfer without the rc_augment option wrote them: kept, and so is what reads them
    stage, reader = out / "stages" / "train_HepG2_finetune_fold0.json", out / "stages" / "evaluate_HepG2.json"
    old, later = json.loads(stage.read_text()), json.loads(reader.read_text())
    del old["fingerprint"]["settings"]["train.finetune.rc_augment"]
    later["fingerprint"]["depends"]["train/HepG2/finetune/fold0"] = stages_module.digest(old["fingerprint"])
    stage.write_text(json.dumps(old))
    reader.write_text(json.dumps(later))
    lines = _run(config, out)
    assert lines["train/HepG2/finetune/fold0"] == ("[skip] train/HepG2/finetune/fold0: complete (kept: "
                                                   "train.finetune.rc_augment is new, at the default)")
    assert lines["evaluate/HepG2"] == "[skip] evaluate/HepG2: complete (kept: reads train/HepG2/finetune/fold0, kept)"
    assert all(line.endswith(": complete") for line in _run(config, out).values())


def test_a_new_option_at_its_default_keeps_the_stage_and_its_dependents(tmp_path):
    """A newer version adds a settings key: unset in the config, the stages are kept (no GPU-days
    redone for an upgrade); set in the config, the stage and its dependents are redone."""
    study = Recorder(tmp_path)
    study.run()
    study.settings["A"] = {"a.x": 1, "a.new": False}

    def run(given):
        study.ran, study.lines = [], []
        runner = StageRunner(tmp_path, echo=study.lines.append, given=given)
        for stage in study.stages():
            runner.run(stage)

    run(given={"a.x"})
    assert study.ran == []
    assert study.lines == ["[skip] A: complete (kept: a.new is new, at the default)",
                           "[skip] B: complete (kept: reads A, kept)", "[skip] C: complete"]
    assert json.loads((tmp_path / "stages" / "A.json").read_text())["fingerprint"]["settings"] == study.settings["A"]
    run(given={"a.x"})
    assert study.ran == [] and study.lines == ["[skip] A: complete", "[skip] B: complete", "[skip] C: complete"]

    study.settings["A"] = {"a.x": 1, "a.new": False, "a.newer": 3}
    run(given={"a.x", "a.newer"})  # the config sets it: a change, whatever its value
    assert study.ran == ["A", "B"] and study.lines[0] == "[redo] A: a.newer added (3)"


def test_the_config_names_the_keys_it_sets(tmp_path):
    from chromtransfer.workflow.config import load_config

    path = tmp_path / "study.yaml"
    path.write_text("inputs:\n  synthetic: {size: tiny}\ncells: [HepG2]\n"
                    "train:\n  common: {bn_momentum: 0.9}\n  finetune: {lr: 1.0e-4}\n")
    given = load_config(path).given_keys()
    assert {"cells", "inputs.synthetic.size", "train.finetune.lr", "train.common.bn_momentum",
            "train.pretrain.bn_momentum", "train.finetune.bn_momentum"} <= given
    assert not {"train.finetune.rc_augment", "prepare.length", "train.pretrain.lr", "seed"} & given
