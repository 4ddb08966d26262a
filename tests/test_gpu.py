"""The GPU paths: training and resume, predict, attribute, ISM, motif scanning, 1-GPU DDP, bf16, TF32.

Every test here is marked ``gpu`` (``pytest -m gpu``; ``benchmarks/gpu_check.sh`` runs them) and is
skipped where CUDA is absent. Each compares the GPU's answer with the CPU's on the same model and
sequences: float32 on both sides agrees to rounding (1e-4 on probabilities, which differ by ~1e-6
between cuDNN's and oneDNN's summation orders); TF32 (10-bit mantissa products) and bf16 (8-bit)
are looser by design and get tolerances of 1e-2 on probabilities, the accuracy contract of the
bf16 paths. Models are narrow and data tiny, so the whole module runs in well under a minute.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from chromtransfer.datasets.store import write_store
from chromtransfer.encoding import encode, one_hot
from chromtransfer.inference import predict_codes
from chromtransfer.interpret.attribution import grad_x_input
from chromtransfer.interpret.ism import ism
from chromtransfer.models import ChromTransferNet
from chromtransfer.training import read_run, train_model

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (an NVIDIA GPU)")]

N_TRAIN, N_VALID, N_TEST, LENGTH = 256, 64, 32, 200


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    rng = np.random.default_rng(5)
    n = N_TRAIN + N_VALID + N_TEST
    codes = rng.integers(0, 4, size=(n, LENGTH), dtype=np.uint8)
    labels = rng.integers(0, 2, size=n)
    motif = encode("TGACTCA")
    for i in np.flatnonzero(labels == 1):
        start = rng.integers(0, LENGTH - len(motif))
        codes[i, start:start + len(motif)] = motif
    split = np.r_[np.zeros(N_TRAIN + N_VALID), np.ones(N_TEST)].astype(np.uint8)
    fold = np.r_[rng.integers(1, 3, size=N_TRAIN), np.zeros(N_VALID), -np.ones(N_TEST)].astype(np.int8)
    return write_store(tmp_path_factory.mktemp("gpu") / "store", codes, labels, split, fold, seed=5)


@pytest.fixture(scope="module")
def model() -> ChromTransferNet:
    torch.manual_seed(0)
    net = ChromTransferNet(head="finetune-bn", width=0.25).eval()
    # Non-trivial BatchNorm statistics, so that folding them is exercised.
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return net


@pytest.fixture(scope="module")
def codes() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 4, size=(24, 600), dtype=np.uint8)


def _train(store: Path, out: Path, **extra):
    options = dict(preset="baseline", store=str(store), out=str(out), head="finetune-bn", width=0.25,
                   batch_size=64, seed=3, quiet=True, device="cuda")
    options.update(extra)
    return train_model(**options)


# ----------------------------------------------------------------------------- training
def test_train_and_resume_on_gpu(store, tmp_path):
    run = _train(store, tmp_path / "run", max_epochs=2)
    first = read_run(run)
    assert first["status"] == "complete" and first["sessions"][0]["device"].startswith("cuda")
    # Interrupted after epoch 2 (as a killed run leaves it), then resumed for a third epoch.
    (Path(run) / "model.json").unlink()
    document = json.loads((Path(run) / "run.json").read_text())
    document["status"] = "running"
    (Path(run) / "run.json").write_text(json.dumps(document))
    resumed = _train(store, tmp_path / "run", max_epochs=3, resume=True)
    document = read_run(resumed)
    assert document["status"] == "complete" and len(document["sessions"]) == 2
    assert document["sessions"][1]["resumed_from"].endswith("last.ckpt")
    lines = (Path(resumed) / "learning_curve.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + 3  # header + three epochs
    assert all(np.isfinite(float(v)) for v in lines[-1].split(",")[1:3])


def test_bf16_training_on_gpu(store, tmp_path):
    run = _train(store, tmp_path / "bf16", max_epochs=2, precision="bf16")
    document = read_run(run)
    assert document["status"] == "complete" and document["settings"]["precision"] == "bf16"
    curve = (Path(run) / "learning_curve.csv").read_text().strip().splitlines()
    assert len(curve) == 3


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_one_gpu_ddp_run(store, tmp_path):
    # The DDP strategy on one GPU (NCCL process group of one) through the command line.
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), PYTHONWARNINGS="ignore")
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE"):
        env.pop(name, None)
    command = [sys.executable, "-m", "chromtransfer.cli", "train", "--preset", "baseline", "--head", "finetune-bn",
               "--width", "0.25", "--batch-size", "64", "--max-epochs", "1", "--seed", "3", "--device", "cuda",
               "--devices", "1", "--strategy", "ddp", "--data", str(store), "-o", str(tmp_path / "ddp"), "-q"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    run = read_run(tmp_path / "ddp")
    assert run["status"] == "complete" and run["settings"]["strategy"] == "ddp"
    assert run["n_train"] == N_TRAIN and run["sessions"][0]["world_size"] == 1


# ----------------------------------------------------------------------------- inference
def test_predict_gpu_equals_cpu(model, codes):
    cpu = predict_codes(model, codes, device="cpu")
    gpu = predict_codes(model, codes, device="cuda")
    model.cpu()
    assert cpu.shape == gpu.shape == (len(codes), 1)
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)


def test_tf32_and_bf16_inference_within_tolerance(model, codes):
    reference = predict_codes(model, codes, device="cpu")
    net = model.cuda()
    x = one_hot(torch.from_numpy(codes).cuda())
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        with torch.no_grad():
            tf32 = net.probabilities(x).float().cpu().numpy()
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = net.probabilities(x).float().cpu().numpy()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
        model.cpu()
    assert np.abs(tf32 - reference).max() < 1e-2
    assert np.abs(bf16 - reference).max() < 1e-2
    assert np.abs(bf16 - reference).max() > 0  # bf16 really ran in reduced precision


def test_precision_bf16_paths_on_gpu(model, codes):
    """The package's --precision bf16 (predict_codes and the attribution pipeline, bf16 autocast on
    CUDA) against float32 on the CPU: probabilities within the contract, ISM ranks kept."""
    from scipy.stats import spearmanr

    from chromtransfer.interpret.ism import ism_scores
    from chromtransfer.interpret.pipeline import AttributionInputs, attribute

    reference = predict_codes(model, codes, device="cpu")
    bf16 = predict_codes(model, codes, device="cuda", precision="bf16")
    assert 0 < np.abs(bf16 - reference).max() < 1e-2
    short = codes[:2, :300]
    n = len(short)
    inputs = AttributionInputs(codes=short, names=np.array(["a", "b"]), chrom=np.full(n, ""),
                               start=np.full(n, -1), end=np.full(n, -1), strand=np.full(n, "+"),
                               source={"kind": "test", "rows": n})
    cpu = ism(model, short, device="cpu")
    gpu = attribute(model, inputs, method="ism", select="all", device="cuda", precision="bf16")
    model.cpu()
    assert gpu.ism.dtype == np.float32
    rho = spearmanr(ism_scores(cpu, short).ravel(), gpu.scores.ravel()).statistic
    assert rho >= 0.95


def test_attribution_gpu_equals_cpu(model, codes):
    cpu = grad_x_input(model, codes[:8], device="cpu")
    gpu = grad_x_input(model, codes[:8], device="cuda")
    model.cpu()
    assert cpu.shape == gpu.shape
    scale = np.abs(cpu).max()
    np.testing.assert_allclose(gpu, cpu, atol=1e-4 * scale)


def test_ism_gpu_equals_cpu(model, codes):
    short = codes[:2, :300]
    cpu = ism(model, short, device="cpu")
    gpu = ism(model, short, device="cuda")
    model.cpu()
    assert cpu.shape == gpu.shape
    scale = np.abs(cpu).max()
    np.testing.assert_allclose(gpu, cpu, atol=1e-4 * scale)


def test_motif_scan_gpu_equals_cpu():
    from chromtransfer.interpret.jaspar import load_jaspar
    from chromtransfer.interpret.motifs import MotifScanner

    motifs = load_jaspar()[::8]
    rows = np.random.default_rng(2).integers(0, 4, size=(32, 600), dtype=np.uint8)
    cpu = MotifScanner(motifs, threshold=1e-4, device="cpu").scan(rows, dedupe=False)
    gpu = MotifScanner(motifs, threshold=1e-4, device="cuda").scan(rows, dedupe=False)
    assert len(cpu) > 10
    for name in ("row", "start", "motif", "strand", "scaled", "pvalue"):
        np.testing.assert_array_equal(getattr(gpu, name), getattr(cpu, name))
