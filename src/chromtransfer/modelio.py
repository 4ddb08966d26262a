"""The model format: ``model.safetensors`` (weights) plus ``model.json`` (config and provenance).

A model directory (a training run directory is one) holds::

    model.json          {"format": "chromtransfer-model", "format_version": 1,
                         "architecture": "chromtransfer-resnet1d", "config": {...ModelConfig...},
                         "preset": ..., "training": {...}, "provenance": {...}}
    model.safetensors   every parameter and BatchNorm buffer of the network, by state-dict name

A k-mer composition model (:mod:`chromtransfer.kmer`) is saved the same way with architecture
``chromtransfer-kmer`` (its coefficients in ``model.safetensors``); :func:`load_model` returns the
module the architecture names, so every command predicts with either.

Nothing is pickled: a model loads without the training code. The Lightning checkpoint that a
training run also keeps is only for resuming that run.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .artifacts import atomic_path, provenance, read_document, write_json
from .errors import ArtifactError
from .kmer.model import ARCHITECTURE as KMER_ARCHITECTURE
from .models import ChromTransferNet, ModelConfig

FORMAT = "chromtransfer-model"
FORMAT_VERSION = 1
ARCHITECTURE = "chromtransfer-resnet1d"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model.json"
#: The output kind of a model folder written on its own (``import-keras``); a training run that
#: exports its model is of kind ``run`` (:mod:`chromtransfer.artifacts`).
MODEL_KIND = "model"


def save_model(model: torch.nn.Module, directory: str | os.PathLike, **metadata: Any) -> Path:
    """Write ``model`` into ``directory`` (created if needed); ``metadata`` goes into model.json.

    Weights are written first and the JSON last, both atomically: a directory with ``model.json``
    holds a complete model. Both get the umask's permissions (:func:`~chromtransfer.artifacts.atomic_path`;
    safetensors itself writes 0600 files).
    The caller owns ``directory`` (a claimed output folder, :mod:`chromtransfer.artifacts`).
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT})
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": getattr(model, "architecture", ARCHITECTURE),
        "config": model.config.to_dict(),
        **metadata,
    }
    document.setdefault("provenance", provenance())
    write_json(directory / CONFIG_FILE, document)
    return directory


def read_model_document(directory: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``model.json`` of a model directory (raises ``ArtifactError`` with the fix)."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: no such model directory")
    return read_document(path, FORMAT, what="chromtransfer model description",
                         fix="save or import the model again", version=FORMAT_VERSION,
                         missing=f"{directory}: not a complete model directory, {CONFIG_FILE} is missing "
                                 "(train or import a model into it, or finish its training run with --resume)")


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a model directory written by :func:`save_model`, in eval mode on ``device``: a
    :class:`~chromtransfer.models.ChromTransferNet`, or a :class:`~chromtransfer.kmer.KmerModel`
    for architecture ``chromtransfer-kmer``; its ``document`` attribute holds ``model.json``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    document = read_model_document(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.exists():
        raise ArtifactError(f"{directory}: {WEIGHTS_FILE} is missing (copy the whole model directory)")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{weights}: corrupt or truncated weights file ({exc}); re-export the model") from exc
    architecture = document.get("architecture", ARCHITECTURE)
    if architecture == KMER_ARCHITECTURE:
        return _load_kmer(directory, document, state).to(device).eval()
    if architecture != ARCHITECTURE:
        raise ArtifactError(f"{directory / CONFIG_FILE}: unknown architecture {architecture!r} (a newer "
                            "chromtransfer wrote it; update chromtransfer)")
    model = ChromTransferNet(ModelConfig.from_dict(document["config"]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        detail = ", ".join((missing + unexpected)[:3])
        raise ArtifactError(f"{weights}: weights do not match the architecture in {CONFIG_FILE} ({detail})")
    model.document = document  # type: ignore[attr-defined]
    return model.to(device).eval()


def _load_kmer(directory: Path, document: dict[str, Any], state: dict[str, torch.Tensor]) -> torch.nn.Module:
    from .kmer.model import KmerConfig, KmerModel

    try:
        model = KmerModel.from_tensors(KmerConfig.from_dict(document["config"]), state)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{directory / WEIGHTS_FILE}: does not match the k-mer model in {CONFIG_FILE} "
                            f"({exc}); train the model again") from exc
    model.document = document  # type: ignore[attr-defined]
    return model
