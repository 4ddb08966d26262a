"""Training engine: presets, loss, run directory, early stopping, fine-tuning, folds, resume."""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from chromtransfer.cli import main
from chromtransfer.datasets.store import open_store, write_store
from chromtransfer.encoding import encode
from chromtransfer.errors import ArtifactError, ChromTransferError
from chromtransfer.modelio import load_model
from chromtransfer.models import SamePadConv1d, build_model
from chromtransfer.training import (
    PRESETS,
    TrainSettings,
    checkpoint_model_state,
    is_complete,
    load_checkpoint,
    read_run,
    resolve,
    train_model,
)
from chromtransfer.training.callbacks import CURVE_COLUMNS
from chromtransfer.training.data import (
    EpochBatchSampler,
    balanced_class_weights,
    split_rows,
    stratified_subsample,
    subsample_rows,
)
from chromtransfer.training.module import ChromTransferModule, per_sequence_loss

MOTIFS = ["TGACTCA", "GATAAGGC"]
FAST = dict(width=0.25, batch_size=32, device="cpu", quiet=True)


def make_store(path: Path, n: int = 240, length: int = 120, seed: int = 0, folds: int = 3,
               multiclass: bool = False) -> Path:
    """Random sequences; class c >= 1 carries motif c-1 at a random position."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, size=(n, length), dtype=np.uint8)
    n_classes = 3 if multiclass else 2
    labels = rng.integers(0, n_classes, size=n)
    for i in np.flatnonzero(labels > 0):
        motif = encode(MOTIFS[labels[i] - 1])
        start = rng.integers(0, length - len(motif))
        codes[i, start:start + len(motif)] = motif
    split = (rng.random(n) < 0.15).astype(np.uint8)
    fold = np.where(split == 1, -1, rng.integers(0, folds, size=n) if folds else -1)
    classes = ["background", "A", "B"] if multiclass else ["negative", "positive"]
    return write_store(path, codes, labels, split, fold, task="multiclass" if multiclass else "binary",
                       classes=classes, seed=seed)


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("stores") / "binary")


@pytest.fixture(scope="module")
def pretrained(store, tmp_path_factory) -> Path:
    """A pre-training run that stops early (a large learning rate makes the val loss jump)."""
    work = tmp_path_factory.mktemp("cwd")
    cwd = os.getcwd()
    os.chdir(work)
    try:
        run = train_model(preset="pretrain", store=str(store), out=str(work / "pre"), lr=1e-2,
                          patience=1, max_epochs=6, seed=0, **FAST)
    finally:
        os.chdir(cwd)
    assert not (work / "lightning_logs").exists() and sorted(p.name for p in work.iterdir()) == ["pre"]
    return run


# ---------------------------------------------------------------------------------------------
def test_presets_follow_method_section_4():
    pre, ft, base, multi = (PRESETS[k] for k in ("pretrain", "finetune", "baseline", "multiclass"))
    assert (pre.head, pre.lr, pre.batch_size, pre.patience, pre.lr_patience, pre.class_weights) == \
        ("pretrain", 1e-3, 256, 15, 0, "none")
    assert (ft.head, ft.lr, ft.batch_size, ft.patience, ft.lr_patience, ft.lr_factor, ft.class_weights,
            ft.needs_init) == ("finetune", 5e-6, 128, 10, 5, 0.1, "balanced", True)
    assert (base.head, base.lr, base.batch_size, base.patience, base.class_weights, base.needs_init) == \
        ("finetune", 1e-3, 128, 10, "balanced", False)
    assert (multi.head, multi.lr, multi.batch_size, multi.max_epochs, multi.patience, multi.task) == \
        ("multiclass", 1e-3, 256, 50, 0, "multiclass")
    # the authors' protocol: one model on every training row, the last weights kept
    assert (multi.fold, multi.export) == ("none", "last")
    resolved = resolve(TrainSettings(preset="multiclass", store="s", out="o"))
    assert (resolved.validation, resolved.export, resolved.head) == ("test", "last", "multiclass")
    with pytest.raises(ValueError, match="--export last"):
        resolve(TrainSettings(preset="multiclass", store="s", out="o", export="best"))
    assert resolve(TrainSettings(preset="multiclass", store="s", out="o", fold=1, export="best"),
                   fold=1).validation == "fold"
    assert resolve(TrainSettings(preset="multiclass", store="s", out="o", head="multiclass-1024")).head == \
        "multiclass-1024"
    assert all(p.l2 == 1e-4 for p in PRESETS.values())
    assert pre.max_epochs == ft.max_epochs == base.max_epochs == 100

    frozen = resolve(TrainSettings(preset="finetune", store="s", out="o", frozen_body=True))
    assert (frozen.lr, frozen.max_epochs, frozen.frozen_body) == (1e-3, 20, True)
    overridden = resolve(TrainSettings(preset="finetune", store="s", out="o", frozen_body=True, lr=2e-4,
                                       max_epochs=3, head="finetune-bn", class_weights="none"))
    assert (overridden.lr, overridden.max_epochs, overridden.head, overridden.class_weights) == \
        (2e-4, 3, "finetune-bn", "none")
    with pytest.raises(ValueError, match="multiclass"):
        resolve(TrainSettings(preset="pretrain", store="s", out="o", head="multiclass"))


def test_l2_penalty_and_class_weights_enter_the_loss():
    torch.manual_seed(0)
    model = build_model("finetune", width=0.25)
    class_weights = np.array([0.5, 2.0])
    module = ChromTransferModule(model, lr=1e-3, l2=1e-4, class_weights=class_weights)
    logits = torch.randn(16, 1)
    labels = torch.randint(0, 2, (16,))
    loss, data = module.training_loss(logits, labels)

    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], labels.float(), reduction="none")
    expected_data = (bce * torch.tensor(class_weights, dtype=torch.float32)[labels]).mean()
    kernels = [m.weight for m in model.body.modules() if isinstance(m, SamePadConv1d)]
    kernels = [w for w in kernels if w is not model.body.last_conv.weight]
    expected_penalty = 1e-4 * sum((w.detach() ** 2).sum() for w in kernels)
    assert len(kernels) == 20  # every conv of the body except the last one
    torch.testing.assert_close(data, expected_data)
    torch.testing.assert_close(loss - data, expected_penalty, rtol=1e-5, atol=1e-8)
    assert float(expected_penalty) > 1e-4  # the term is not negligible zero
    loss.backward()  # the penalty reaches the kernels' gradients
    assert model.body.stem.conv.weight.grad is not None

    without = ChromTransferModule(build_model("finetune", width=0.25), lr=1e-3, l2=0.0)
    loss0, data0 = without.training_loss(logits, labels)
    torch.testing.assert_close(loss0, data0)
    torch.testing.assert_close(data0, bce.mean())

    multi = per_sequence_loss(torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0]), multiclass=True)
    assert multi.shape == (5,) and bool((multi > 0).all())


def test_balanced_class_weights_and_sampling(store):
    labels = np.array([0] * 30 + [1] * 10)
    w = balanced_class_weights(labels, 2)
    np.testing.assert_allclose(w, [40 / (2 * 30), 40 / (2 * 10)])
    np.testing.assert_allclose(balanced_class_weights(np.array([0, 0, 2]), 3), [0.75, 1.0, 1.5])

    sampler = EpochBatchSampler(np.arange(10, 75), batch_size=16, shuffle=True, seed=4)
    sampler.set_epoch(2)
    first = [b.copy() for b in sampler]
    sampler.set_epoch(3)
    other = list(sampler)
    sampler.set_epoch(2)
    assert all(np.array_equal(a, b) for a, b in zip(first, sampler))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert [len(b) for b in first] == [16, 16, 16, 17]  # a lone last row joins the batch before
    assert np.array_equal(np.sort(np.concatenate(first)), np.arange(10, 75))

    rows = np.arange(100, 300)
    half = subsample_rows(rows, 0.25, seed=3)
    assert len(half) == 50 and np.all(np.diff(half) > 0) and np.isin(half, rows).all()
    assert np.array_equal(half, subsample_rows(rows, 0.25, seed=3))
    assert not np.array_equal(half, subsample_rows(rows, 0.25, seed=4))
    assert subsample_rows(rows, 1.0, seed=3) is rows

    opened = open_store(store)
    train, valid = split_rows(opened, 1, seed=0)
    assert np.array_equal(valid, opened.indices("valid", 1))
    assert np.array_equal(train, opened.indices("train", 1))


def test_pretrain_run_directory_and_early_stopping(pretrained, store):
    run = read_run(pretrained)
    assert run["status"] == "complete" and is_complete(pretrained)
    assert run["store"]["path"] == str(Path(store).resolve())
    assert len(run["store"]["manifest_sha256"]) == 64
    assert run["settings"]["lr"] == 1e-2 and run["settings"]["batch_size"] == 32
    assert run["data"]["validation"] == "store fold 0" and run["data"]["class_weights"] is None
    assert {p.name for p in (pretrained / "checkpoints").iterdir()} == {"last.ckpt", "best.ckpt"}

    with open(pretrained / "learning_curve.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0].keys()) == CURVE_COLUMNS
    assert [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1))
    val_loss = [float(r["val_loss"]) for r in rows]
    for r in rows:
        assert 0 <= float(r["val_auroc"]) <= 1 and 0 <= float(r["train_auroc"]) <= 1
        assert float(r["lr"]) == 1e-2 and float(r["seconds"]) > 0
        # loss = cross-entropy + L2 term
        assert math.isclose(float(r["val_loss"]), float(r["val_bce"]) + float(r["l2_term"]), rel_tol=1e-6)

    # early stopping (patience 1): stopped one epoch after the best one, and exported the best
    best = int(np.argmin(val_loss)) + 1
    result = run["result"]
    assert result["best_epoch"] == best and result["stopped_early"]
    assert len(rows) == best + 1 < 6
    exported = weights(pretrained)
    best_state = checkpoint_model_state(pretrained / "checkpoints" / "best.ckpt")
    last_state = checkpoint_model_state(pretrained / "checkpoints" / "last.ckpt")
    assert same_tensors(exported, {k: v for k, v in best_state.items() if not k.endswith("num_batches_tracked")})
    assert not same_tensors(exported, {k: v for k, v in last_state.items() if not k.endswith("num_batches_tracked")})

    model = load_model(pretrained)
    document = model.document
    assert document["preset"] == "pretrain" and document["config"]["head"] == "pretrain"
    assert document["training"]["result"]["best_epoch"] == best
    assert document["provenance"]["seed"] == 0


def test_finetune_copies_the_body_and_frozen_body_keeps_it(pretrained, store, tmp_path):
    source = load_model(pretrained)
    source_body = {k: v.clone() for k, v in source.body.state_dict().items()}

    frozen = train_model(preset="finetune", store=str(store), out=str(tmp_path / "frozen"),
                         init=str(pretrained), frozen_body=True, max_epochs=2, seed=1, **FAST)
    model = load_model(frozen)
    assert model.config.head == "finetune" and model.config.head_units == (1024, 32)
    body = model.body.state_dict()
    assert all(torch.equal(body[k], source_body[k]) for k in source_body)  # weights and BN statistics
    run = read_run(frozen)
    assert run["settings"]["lr"] == 1e-3 and run["settings"]["frozen_body"] is True
    assert run["init"]["path"] == str(Path(pretrained).resolve())

    tuned = train_model(preset="finetune", store=str(store), out=str(tmp_path / "tuned"),
                        init=str(pretrained), max_epochs=1, limit_train_batches=2, seed=1,
                        train_fraction=0.5, **FAST)
    run = read_run(tuned)
    before = run["data"]["train_rows_before_subsampling"]
    assert run["n_train"] == run["data"]["train_rows"] == round(0.5 * before)
    assert before == len(open_store(store).indices("train", 0))
    assert run["settings"]["lr"] == 5e-6 and run["settings"]["lr_patience"] == 5
    counts = run["data"]["train_counts"]
    n = counts["negative"] + counts["positive"]
    np.testing.assert_allclose(run["data"]["class_weights"],
                               [n / (2 * counts["negative"]), n / (2 * counts["positive"])])
    tuned_conv = load_model(tuned).body.stem.conv.weight
    source_conv = source.body.stem.conv.weight
    assert not torch.equal(tuned_conv, source_conv)  # it trained the body ...
    torch.testing.assert_close(tuned_conv, source_conv, atol=1e-4, rtol=0)  # ... starting from the source

    with pytest.raises(ChromTransferError, match="needs --init"):
        train_model(preset="finetune", store=str(store), out=str(tmp_path / "x"), **FAST)


def test_stratified_subsample_gives_the_papers_bootstrap_sizes():
    """HepG2's published training set: 74,673 rows, 25,669 positive. The paper: 1 % = 747 sequences
    with 257 positives, 5 % = 3,733 with 1,283 (Results and Table 1)."""
    labels = np.r_[np.ones(25_669, dtype=np.int8), np.zeros(49_004, dtype=np.int8)]
    rows = np.arange(labels.size) * 2  # any row ids
    for fraction, total, positives in ((0.01, 747, 257), (0.05, 3_733, 1_283)):
        picked = stratified_subsample(rows, labels, fraction, seed=3)
        assert picked.size == total and np.isin(picked, rows).all() and np.unique(picked).size == total
        assert int(labels[picked // 2].sum()) == positives
    a, b = (stratified_subsample(rows, labels, 0.01, seed=s) for s in (1, 2))
    assert not np.array_equal(a, b) and np.array_equal(a, stratified_subsample(rows, labels, 0.01, seed=1))
    assert stratified_subsample(rows, labels, 1.0, seed=0) is rows


def test_bootstrap_subsamples_the_whole_training_set(pretrained, store, tmp_path):
    from chromtransfer.bootstrap import replicate_seed, run_bootstrap

    opened = open_store(store)
    everything = opened.indices("train")
    table = run_bootstrap(store, pretrained, tmp_path / "boot", fractions=[0.5], replicates=2, seed=4,
                          train_options={"max_epochs": 1, "width": 0.25, "batch_size": 32},
                          device="cpu", batch_size=64, f1_average="macro", echo=lambda _: None)
    replicates = pd.read_csv(tmp_path / "boot" / "bootstrap_replicates.tsv", sep="\t")
    labels = np.asarray(opened.labels[everything])
    expected = sum(round(0.5 * int((labels == c).sum())) for c in (0, 1))
    assert (replicates["n_sequences"] == expected).all()  # a share of every fold, stratified
    assert (replicates["n_train"] + replicates["n_val"] == expected).all()
    runs = [read_run(tmp_path / "boot" / "f50" / f"rep{r}") for r in (0, 1)]
    assert [r["seed"] for r in runs] == [replicate_seed(4, 0.5, r) for r in (0, 1)]
    assert len({replicate_seed(4, f, r) for f in (0.01, 0.05, 0.5) for r in range(10)}) == 30
    # the validation rows are the subsample's fold-0 rows
    assert all(r["n_val"] < len(opened.indices("valid", 0)) for r in runs)
    # f1_overall follows --f1-average (macro here); the weighted F1 is the default elsewhere
    assert (replicates["f1_average"] == "macro").all()
    np.testing.assert_allclose(replicates["f1_overall"], replicates["f1_macro"])
    assert table["n_sequences"].tolist() == [expected] and "f1_macro_mean" in table


def test_learning_rate_plateau_follows_keras(store, tmp_path):
    """ReduceLROnPlateau as Keras: x0.1 once `lr_patience` epochs in a row fail to beat the best by 1e-4."""
    run_dir = train_model(preset="baseline", store=str(store), out=str(tmp_path / "run"), lr=1e-2,
                          lr_patience=1, patience=0, max_epochs=4, limit_train_batches=3, seed=2, **FAST)
    with open(run_dir / "learning_curve.csv") as handle:
        rows = list(csv.DictReader(handle))
    lr, best, wait, expected = 1e-2, math.inf, 0, []
    for row in rows:
        expected.append(lr)
        val = float(row["val_loss"])
        if val < best - 1e-4:
            best, wait = val, 0
        else:
            wait += 1
            if wait >= 1:
                lr, wait = lr * 0.1, 0
    np.testing.assert_allclose([float(r["lr"]) for r in rows], expected, rtol=1e-6)
    assert len(rows) == 4

    # A run killed right after its epoch-2 checkpoint resumes with the same plateau state.
    split = tmp_path / "split"
    train_model(preset="baseline", store=str(store), out=str(split), lr=1e-2, lr_patience=1, patience=0,
                max_epochs=2, limit_train_batches=3, seed=2, **FAST)
    (split / "model.json").unlink()
    document = json.loads((split / "run.json").read_text())
    document["status"] = "running"
    (split / "run.json").write_text(json.dumps(document))
    train_model(preset="baseline", store=str(store), out=str(split), lr=1e-2, lr_patience=1, patience=0,
                max_epochs=4, limit_train_batches=3, seed=2, resume=True, **FAST)
    with open(split / "learning_curve.csv") as handle:
        resumed = list(csv.DictReader(handle))
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in resumed] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert same_tensors(weights(split), weights(run_dir))


def test_multiclass_trains_on_every_training_row_and_keeps_the_last_weights(tmp_path):
    store = make_store(tmp_path / "multi", n=200, folds=0, multiclass=True, seed=2)
    run_dir = train_model(preset="multiclass", store=str(store), out=str(tmp_path / "run"),
                          max_epochs=2, seed=3, **FAST)
    model = load_model(run_dir)
    assert model.config.head == "multiclass" and model.config.n_outputs == 3
    assert model.config.classes == ["background", "A", "B"]
    probabilities = model.probabilities(torch.zeros(2, 4, 50))
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(2))
    run = read_run(run_dir)
    opened = open_store(store)
    assert run["data"]["train_rows"] == int((opened.split == 0).sum())  # every training row
    assert run["data"]["val_rows"] == int((opened.split == 1).sum())  # the test rows: a curve only
    assert run["data"]["validation"].startswith("the test rows")
    assert run["settings"]["export"] == "last"
    assert run["result"]["epochs"] == 2
    last_state = checkpoint_model_state(run_dir / "checkpoints" / "last.ckpt")
    assert same_tensors(weights(run_dir), {k: v for k, v in last_state.items() if not k.endswith("num_batches_tracked")})

    with pytest.raises(ArtifactError, match="no cross-validation folds"):
        train_model(preset="multiclass", store=str(store), out=str(tmp_path / "f"), fold=1, **FAST)
    with pytest.raises(ArtifactError, match="no cross-validation folds"):
        train_model(preset="multiclass", store=str(store), out=str(tmp_path / "f"), fold="all", **FAST)


def test_fold_all_trains_one_model_per_fold(store, tmp_path, capsys):
    out = tmp_path / "cv"
    args = ["train", "--preset", "baseline", "--data", str(store), "-o", str(out), "--fold", "all", "--width", "0.25",
            "--batch-size", "32", "--max-epochs", "1", "--limit-train-batches", "2", "--device", "cpu", "-q"]
    assert main(args) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 3 and all(line.startswith("model: ") for line in printed)
    opened = open_store(store)
    for k in range(3):
        run = read_run(out / f"fold{k}")
        assert is_complete(out / f"fold{k}")
        assert run["settings"]["fold"] == k
        assert run["data"]["val_rows"] == len(opened.indices("valid", k))
    folds = json.loads((out / "folds.json").read_text())
    assert folds["folds"] == ["fold0", "fold1", "fold2"] and is_complete(out)
    assert main(args + ["--resume"]) == 0  # everything finished: nothing to do
    assert main(args) == 2  # never overwrites a finished run
    assert "already holds" in capsys.readouterr().err


def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tmp_path):
    store = make_store(tmp_path / "store", n=300, length=150, seed=5)
    # with reverse-complement augmentation: its strand draws are part of what a resume must repeat
    options = dict(width=0.25, batch_size=16, seed=5, max_epochs=3, lr_patience=1, device="cpu", quiet=True,
                   rc_augment=True)
    reference = train_model(preset="pretrain", store=str(store), out=str(tmp_path / "reference"), **options)
    with open(reference / "learning_curve.csv") as handle:
        epoch_seconds = float(list(csv.DictReader(handle))[1]["seconds"])

    out = tmp_path / "killed"
    command = [sys.executable, "-m", "chromtransfer.cli", "train", "--preset", "pretrain", "--data", str(store), "-o", str(out),
               "--width", "0.25", "--batch-size", "16", "--seed", "5", "--max-epochs", "3",
               "--lr-patience", "1", "--device", "cpu", "--quiet", "--rc-augment"]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    last = out / "checkpoints" / "last.ckpt"
    with open(tmp_path / "stderr.txt", "wb") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 300
        while not last.exists():
            assert process.poll() is None, (tmp_path / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.005)
        time.sleep(0.5 * epoch_seconds)  # well inside epoch 2
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert load_checkpoint(last)["epoch"] == 0  # the kill came before epoch 2 ended
    assert read_run(out)["status"] == "running" and not is_complete(out)
    assert not (out / "model.json").exists()

    assert main(command[3:] + ["--resume"]) == 0
    assert is_complete(out)
    assert same_tensors(weights(out), weights(reference))
    with open(out / "learning_curve.csv") as a, open(reference / "learning_curve.csv") as b:
        drop = ("seconds",)
        rows_a = [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(a)]
        rows_b = [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(b)]
    assert rows_a == rows_b
    sessions = read_run(out)["sessions"]
    assert len(sessions) == 2 and sessions[1]["resumed_from"].endswith("last.ckpt")


def test_rc_augment_flips_random_training_rows_only(store, tmp_path, monkeypatch):
    from chromtransfer.encoding import reverse_complement_codes
    from chromtransfer.training import module

    codes = torch.from_numpy(np.random.default_rng(0).integers(0, 5, (2000, 30)).astype(np.uint8))
    torch.manual_seed(3)
    flipped = module.flip_strands(codes)
    torch.manual_seed(3)
    assert torch.equal(module.flip_strands(codes), flipped)  # drawn from the (reseeded) torch RNG
    reverse = reverse_complement_codes(codes)
    assert torch.equal(reverse, torch.from_numpy(reverse_complement_codes(codes.numpy()).copy()))
    is_rc = (flipped == reverse).all(1) & ~(flipped == codes).all(1)
    assert ((flipped == codes).all(1) | is_rc).all() and 0.45 < is_rc.float().mean() < 0.55

    seen: list[int] = []
    original = module.flip_strands
    monkeypatch.setattr(module, "flip_strands", lambda rows: seen.append(len(rows)) or original(rows))
    run = train_model(preset="pretrain", store=str(store), out=str(tmp_path / "rc"), max_epochs=2, patience=0,
                      seed=1, rc_augment=True, **FAST)
    document = read_run(run)
    assert document["settings"]["rc_augment"] is True
    assert sum(seen) == 2 * document["n_train"]  # every training row of both epochs, no validation row
    monkeypatch.setattr(module, "flip_strands", original)
    plain = train_model(preset="pretrain", store=str(store), out=str(tmp_path / "plain"), max_epochs=2, patience=0,
                        seed=1, **FAST)
    assert read_run(plain)["settings"]["rc_augment"] is False
    assert not same_tensors(weights(run), weights(plain))


def test_resume_refuses_changed_settings_and_corrupt_checkpoints(pretrained, store, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(pretrained, run)
    (run / "model.json").unlink()
    document = json.loads((run / "run.json").read_text())
    document["status"] = "running"
    (run / "run.json").write_text(json.dumps(document))
    base = ["train", "--preset", "pretrain", "--data", str(store), "-o", str(run), "--width", "0.25", "--batch-size", "32",
            "--lr", "0.01", "--patience", "1", "--max-epochs", "6", "--device", "cpu", "-q"]

    assert main(base) == 2  # exists, no --resume
    assert "add --resume" in capsys.readouterr().err
    assert main(base[:-1] + ["--lr", "0.02", "--resume", "-q"]) == 2
    assert "different settings" in capsys.readouterr().err

    ckpt = run / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    assert main(base + ["--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "corrupt or truncated checkpoint" in err[0]
    assert "Traceback" not in err[0]

    # bf16 trains on the CPU too (bf16-mixed, tests/test_precision.py); other values are refused
    assert main(["train", "--preset", "pretrain", "--data", str(store), "-o", str(tmp_path / "b"), "--precision", "16",
                 "--device", "cpu"]) == 2
    assert "--precision" in capsys.readouterr().err and not (tmp_path / "b").exists()


def test_recalibrate_bn_recomputes_the_moving_statistics_with_dropout_off(pretrained, store, tmp_path, capsys):
    from chromtransfer.training.recalibrate import batchnorm_modules, recalibrate_batchnorm

    # one batch: the first BatchNorm's moving mean is the plain mean of its input over the rows
    model = build_model("finetune", width=0.25)
    data = open_store(store)
    rows = data.indices("train")[:50]
    seen = []
    first = batchnorm_modules(model)[0]
    hook = first.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].detach()))
    record = recalibrate_batchnorm(model, data.sequences, rows, batch_size=len(rows))
    hook.remove()
    assert (record["rows"], record["batches"], record["dropout"]) == (50, 1, "off")
    assert not model.training and first.momentum == pytest.approx(0.01)  # the published momentum restored
    torch.testing.assert_close(first.running_mean, seen[0].mean(dim=(0, 2)), rtol=1e-5, atol=1e-6)

    # on a finished run: train --resume --recalibrate-bn changes only the BatchNorm buffers, once
    run = tmp_path / "pre"
    shutil.copytree(pretrained, run)
    before = weights(run)
    code = main(["train", "--preset", "pretrain", "--data", str(store), "--out", str(run), "--resume",
                 "--recalibrate-bn", "-q"])
    assert code == 0, capsys.readouterr().err
    after = weights(run)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.endswith(("running_mean", "running_var")) for k in moved)
    document = json.loads((run / "model.json").read_text())
    assert document["training"]["result"]["recalibrate_bn"]["rows"] == read_run(run)["n_train"]
    assert document["training"]["settings"]["recalibrate_bn"] is True
    assert main(["train", "--preset", "pretrain", "--data", str(store), "--out", str(run), "--resume",
                 "--recalibrate-bn", "-q"]) == 0
    assert same_tensors(after, weights(run))
