"""The run-directory format of a training run: reading it and telling whether it is finished.

A run directory::

    RUN/
      run.json                 settings, store path and manifest checksum, seed, status
                               (running -> trained -> complete), sessions, best epoch, provenance
      checkpoints/last.ckpt    Lightning checkpoint written at the end of every epoch (for --resume)
      checkpoints/best.ckpt    the epoch with the lowest validation loss so far
      learning_curve.csv       one row per epoch (see callbacks.CURVE_COLUMNS)
      model.safetensors        the exported model (best epoch's weights, or the last epoch's with
      model.json               --export last); model.json is written last, only once training is
                               complete: a directory holding model.json is a finished model

``--fold all`` trains one such run per cross-validation fold into ``RUN/fold0``, ``RUN/fold1``, ...
and writes ``RUN/folds.json`` when every fold is complete.

The documents (``run.json``, ``folds.json``) are written by :mod:`.engine`; this module owns their
names and reads them back.
"""
from __future__ import annotations

import json
import os
import pickle
import time
import zipfile
from pathlib import Path
from typing import Any

from ..artifacts import file_sha256, read_document
from ..errors import ArtifactError

__all__ = ["RUN_FILE", "RUN_FORMAT", "checkpoint_model_state", "curve_summary", "init_record", "is_complete",
           "load_checkpoint", "read_run", "utc_now"]

RUN_FORMAT = "chromtransfer-run"
RUN_KIND = "run"
RUN_FILE = "run.json"
FOLDS_FILE = "folds.json"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINT = "best.ckpt"
CURVE_FILE = "learning_curve.csv"
MODEL_PREFIX = "model."

_CHECKPOINT_ERRORS = (RuntimeError, EOFError, OSError, ValueError, KeyError,
                      pickle.UnpicklingError, zipfile.BadZipFile)


def is_complete(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` holds a finished model (or, for ``--fold all``, every fold's model)."""
    run_dir = Path(run_dir)
    if (run_dir / "model.json").is_file() and (run_dir / "model.safetensors").is_file():
        return True
    folds = run_dir / FOLDS_FILE
    if folds.is_file():
        try:
            document = json.loads(folds.read_text())
        except json.JSONDecodeError:
            return False
        return document.get("status") == "complete" and all(
            is_complete(run_dir / name) for name in document.get("folds", []))
    return False


def read_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``run.json`` of a run directory (``ArtifactError`` when missing or unreadable)."""
    return read_document(Path(run_dir) / RUN_FILE, RUN_FORMAT, what="chromtransfer training run description",
                         fix="the run directory is damaged, train into a new --out",
                         missing=f"{run_dir}: not a training run directory ({RUN_FILE} is missing)")


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a Lightning checkpoint of a run (tensors only, no pickled code).

    Raises ``ArtifactError`` with the fix for a missing, truncated or foreign file.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except _CHECKPOINT_ERRORS as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ArtifactError(
            f"{path}: corrupt or truncated checkpoint ({reason}); delete it to restart the run "
            "from the beginning, or train into a new --out") from exc
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ArtifactError(f"{path}: not a chromtransfer training checkpoint (no state_dict); "
                            "delete it or train into a new --out")
    return checkpoint


def checkpoint_model_state(path: str | os.PathLike) -> dict[str, Any]:
    """The network's state dict (keys as in ``ChromTransferNet.state_dict()``) in a checkpoint."""
    state = load_checkpoint(path)["state_dict"]
    return {k[len(MODEL_PREFIX):]: v for k, v in state.items() if k.startswith(MODEL_PREFIX)}


def init_record(init: str | None) -> dict[str, Any] | None:
    if init is None:
        return None
    from ..modelio import WEIGHTS_FILE, read_model_document

    path = Path(init)
    model_doc = read_model_document(path)
    return {"path": str(path.resolve()), "weights_sha256": file_sha256(path / WEIGHTS_FILE),
            "preset": model_doc.get("preset"), "config": model_doc.get("config")}


def curve_summary(run_dir: Path) -> dict[str, Any]:
    import pandas as pd

    path = run_dir / CURVE_FILE
    if not path.exists():
        return {}
    curve = pd.read_csv(path)
    if curve.empty:
        return {}
    best = curve.loc[curve["val_loss"].idxmin()] if curve["val_loss"].notna().any() else curve.iloc[-1]
    return {
        "epochs": int(curve["epoch"].max()),
        "best_epoch": int(best["epoch"]),
        "best_val_loss": float(best["val_loss"]),
        "best_val_auroc": float(best["val_auroc"]),
        "last_val_loss": float(curve["val_loss"].iloc[-1]),
        "train_seconds": float(curve["seconds"].sum()),
    }


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
