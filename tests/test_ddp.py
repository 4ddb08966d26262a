"""Training on several processes (Lightning DDP, gloo on the CPU) computes what one process computes.

The end-to-end test runs ``chromtransfer train --devices 2 --strategy ddp`` in a subprocess (the
launcher re-runs the command for rank 1) and compares it with the same run in one process.
Both runs use ``--precision 64`` and ``--dropout 0``:

* dropout masks differ by design between one process and two (each rank draws its own masks for
  its share of the batch), so exact agreement needs dropout off;
* in float32 the two runs differ by rounding (summation order of the BatchNorm statistics and of
  the gradient all-reduce, ~1e-7 relative), and Adam turns the rounding noise of gradients that
  are zero up to rounding into steps of size ~lr, so float32 runs drift apart by ~1e-3 within a
  few steps even though the arithmetic is the same. In float64 the rounding is ~1e-16: measured
  differences are ~1e-15 relative on losses and < 1e-10 absolute on weights, hence the
  tolerances below (1e-9 relative on losses, 1e-8 absolute on weights), which any real
  difference in the computation (an unsynchronised BatchNorm, a wrongly weighted uneven share,
  validation on one rank's rows only) exceeds by orders of magnitude.
"""
from __future__ import annotations

import csv
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from chromtransfer.datasets.store import open_store, write_store
from chromtransfer.encoding import encode
from chromtransfer.training import TrainSettings, checkpoint_model_state, read_run, resolve, train_model
from chromtransfer.training.data import CodeBatches, EpochBatchSampler, RankBatchSampler
from chromtransfer.training.distributed import AllReduceBatchNorm, convert_sync_batchnorm, is_primary
from chromtransfer.training.module import ChromTransferModule, batch_seed

#: 135 training rows (fold 0 held out) = 4 batches of 32 + a last batch of 7, split 4 + 3 over two
#: processes; 45 validation rows, split 23 + 22: both exercise shares of unequal size.
N_TRAIN, N_VALID, N_TEST = 135, 45, 20
OPTIONS = ["--preset", "baseline", "--head", "finetune-bn", "--width", "0.25", "--batch-size", "32",
           "--lr-patience", "1", "--patience", "3", "--precision", "64", "--dropout", "0",
           "--seed", "3", "--device", "cpu", "-q"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    rng = np.random.default_rng(7)
    n, length = N_TRAIN + N_VALID + N_TEST, 100
    codes = rng.integers(0, 4, size=(n, length), dtype=np.uint8)
    labels = rng.integers(0, 2, size=n)
    motif = encode("TGACTCA")
    for i in np.flatnonzero(labels == 1):
        start = rng.integers(0, length - len(motif))
        codes[i, start:start + len(motif)] = motif
    split = np.r_[np.zeros(N_TRAIN + N_VALID), np.ones(N_TEST)].astype(np.uint8)
    fold = np.r_[rng.integers(1, 3, size=N_TRAIN), np.zeros(N_VALID), -np.ones(N_TEST)].astype(np.int8)
    order = rng.permutation(n)  # interleave the subsets in the file
    return write_store(tmp_path_factory.mktemp("ddp") / "store", codes[order], labels[order],
                       split[order], fold[order], seed=7)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``chromtransfer train ARGS`` in a fresh process, loopback-only rendezvous on a free port."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(_free_port()), PYTHONWARNINGS="ignore")
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "SLURM_NTASKS", "SLURM_PROCID"):
        env.pop(name, None)
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"
    command = [sys.executable, "-m", "chromtransfer.cli", "train", *args]
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _curve(run: Path) -> list[dict[str, float]]:
    with open(run / "learning_curve.csv") as handle:
        return [{k: float(v) for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def _assert_same_curve(got: list[dict[str, float]], want: list[dict[str, float]]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a["epoch"] == b["epoch"] and a["lr"] == b["lr"]
        for key in ("train_loss", "val_loss", "train_bce", "val_bce", "l2_term", "train_auroc", "val_auroc"):
            assert math.isclose(a[key], b[key], rel_tol=1e-9, abs_tol=1e-12), (a["epoch"], key, a[key], b[key])


# ---------------------------------------------------------------------------------------------
def test_two_gloo_processes_train_like_one_and_resume(store, tmp_path):
    single = train_model(preset="baseline", store=str(store), out=str(tmp_path / "single"), head="finetune-bn",
                         width=0.25, batch_size=32, lr_patience=1, patience=3, precision="64", dropout=0.0,
                         seed=3, device="cpu", quiet=True, max_epochs=3)
    reference = _curve(single)
    assert len(reference) == 3

    ddp = tmp_path / "ddp"
    first = _cli([*OPTIONS, "--data", str(store), "-o", str(ddp), "--devices", "2", "--strategy", "ddp",
                  "--max-epochs", "2"], cwd=tmp_path)
    assert first.stdout.count("model: ") == 1  # rank 1 leaves the reporting to rank 0
    run = read_run(ddp)
    assert run["settings"]["world_size"] == 2 and run["settings"]["strategy"] == "ddp"
    assert run["sessions"][0]["world_size"] == 2 and run["n_train"] == N_TRAIN and run["n_val"] == N_VALID
    _assert_same_curve(_curve(ddp), reference[:2])  # metrics over the whole validation set
    assert sorted(p.name for p in (ddp / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert not list(tmp_path.glob("lightning_logs"))
    assert [p.name for p in ddp.glob(".*")] == [".chromtransfer.json"]  # the folder's marker, no temp files

    # Interrupt after epoch 2 (as a killed run leaves it), then resume on two processes.
    (ddp / "model.json").unlink()
    document = json.loads((ddp / "run.json").read_text())
    document["status"] = "running"
    (ddp / "run.json").write_text(json.dumps(document))
    _cli([*OPTIONS, "--data", str(store), "-o", str(ddp), "--devices", "2", "--max-epochs", "3", "--resume"],
         cwd=tmp_path)
    resumed = read_run(ddp)
    assert resumed["status"] == "complete" and len(resumed["sessions"]) == 2
    assert resumed["sessions"][1]["resumed_from"].endswith("last.ckpt")
    _assert_same_curve(_curve(ddp), reference)  # plateau, early stopping and curve state resumed

    # The float64 weights (and BatchNorm statistics) of the last epoch.
    ours = checkpoint_model_state(ddp / "checkpoints" / "last.ckpt")
    theirs = checkpoint_model_state(single / "checkpoints" / "last.ckpt")
    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=1e-8, msg=key)
    assert ours["body.stem.conv.weight"].dtype == torch.float64
    assert read_run(ddp)["result"]["best_epoch"] == read_run(single)["result"]["best_epoch"]


# ---------------------------------------------------------------------------------------------
def test_rank_shares_are_disjoint_and_cover_every_global_batch():
    indices = np.arange(1000, 1103)
    for world in (1, 2, 3):
        batches = EpochBatchSampler(indices, batch_size=20, shuffle=True, seed=5, world_size=world)
        batches.set_epoch(4)
        global_batches = list(batches)
        shares = []
        for rank in range(world):
            sampler = RankBatchSampler(batches, rank)
            assert len(sampler) == len(global_batches)
            shares.append(list(sampler))
        for step, batch in enumerate(global_batches):
            parts = [shares[rank][step][0] for rank in range(world)]
            assert all(shares[rank][step][1] == len(batch) for rank in range(world))
            assert np.array_equal(np.concatenate(parts), batch)  # disjoint, contiguous, complete
            assert max(map(len, parts)) - min(map(len, parts)) <= 1 and min(map(len, parts)) >= 2
    # A last batch of fewer than 2 x world rows joins the one before: 103 = 5 x 20 + 3.
    assert [len(b) for b in EpochBatchSampler(indices, 20, False, 0, world_size=1)] == [20] * 5 + [3]
    assert [len(b) for b in EpochBatchSampler(indices, 20, False, 0, world_size=2)] == [20] * 4 + [23]


def test_loss_of_a_share_is_weighted_as_part_of_the_global_batch():
    torch.manual_seed(0)
    from chromtransfer.models import build_model

    module = ChromTransferModule(build_model("finetune", width=0.25), lr=1e-3, l2=1e-4,
                                 class_weights=np.array([0.5, 2.0]))
    logits, labels = torch.randn(7, 1), torch.tensor([0, 1, 1, 0, 1, 0, 0])
    whole, _ = module.training_loss(logits, labels)
    (a, _), (b, _) = (module.training_loss(logits[s], labels[s], total=7, world_size=2)
                      for s in (slice(0, 4), slice(4, 7)))
    torch.testing.assert_close((a + b) / 2, whole)  # what DDP's gradient average sees


def test_dropout_seeds_depend_on_rank_reproducibly():
    assert batch_seed(1, 2, 3) == batch_seed(1, 2, 3, rank=0)  # rank 0 draws what one process draws
    seeds = {batch_seed(1, 2, 3, rank=r) for r in range(4)}
    assert len(seeds) == 4 and batch_seed(1, 2, 3, rank=2) == batch_seed(1, 2, 3, rank=2)
    assert batch_seed(1, 2, 4, rank=1) != batch_seed(1, 2, 3, rank=1)


def test_synced_batchnorm_is_batchnorm_in_one_process():
    torch.manual_seed(1)
    from chromtransfer.models import build_model

    plain = build_model("pretrain", width=0.25, dropout=0.0)
    synced = convert_sync_batchnorm(build_model("pretrain", width=0.25, dropout=0.0), "cpu")
    synced.load_state_dict(plain.state_dict())
    assert any(isinstance(m, AllReduceBatchNorm) for m in synced.modules())
    assert plain.state_dict().keys() == synced.state_dict().keys()
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (6, 80)), 4).permute(0, 2, 1).float()
    for mode in (True, False):
        plain.train(mode)
        synced.train(mode)
        torch.testing.assert_close(synced(x), plain(x))
    for key, value in plain.state_dict().items():  # running statistics updated the same way
        torch.testing.assert_close(synced.state_dict()[key], value)


def test_rows_are_read_without_mapping_the_sequences(store):
    opened = open_store(store)
    expected = np.asarray(opened.sequences)
    dataset = CodeBatches(store)
    rng = np.random.default_rng(0)
    for rows in (np.arange(10, 50), np.sort(rng.choice(len(expected), 33, replace=False)),
                 np.array([5, 3, 4]), np.array([len(expected) - 1])):
        codes, labels, total = dataset[(rows, 99)]
        assert np.array_equal(codes.numpy(), expected[rows]) and total == 99
        assert np.array_equal(labels.numpy(), opened.labels[rows])
    maps = Path(f"/proc/{os.getpid()}/maps")
    if maps.exists():
        del opened, expected
        import gc

        gc.collect()
        assert str(Path(store).resolve() / "sequences.npy") not in maps.read_text()


def test_settings_for_several_processes(monkeypatch):
    base = dict(preset="pretrain", store="s", out="o")
    resolved = resolve(TrainSettings(**base, devices=4, num_nodes=2))
    assert (resolved.world_size, resolved.strategy, resolved.batch_size) == (8, "ddp", 256)
    assert resolve(TrainSettings(**base)).strategy == "single"
    assert resolve(TrainSettings(**base, devices=2, strategy="ddp_spawn")).strategy == "ddp_spawn"
    with pytest.raises(ValueError, match="global batch"):
        resolve(TrainSettings(**base, devices=8, batch_size=8))
    with pytest.raises(ValueError, match="--strategy"):
        resolve(TrainSettings(**base, strategy="fsdp"))
    with pytest.raises(ValueError, match="--dropout"):
        resolve(TrainSettings(**base, dropout=1.0))

    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_NTASKS", "SLURM_PROCID",
                 "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert is_primary()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not is_primary()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "1")
    assert not is_primary()
    monkeypatch.delenv("NODE_RANK")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert not is_primary()
    monkeypatch.setenv("SLURM_NTASKS", "1")  # a batch script's single task is rank 0
    assert is_primary()
    monkeypatch.setenv("RANK", "0")
    assert is_primary()
