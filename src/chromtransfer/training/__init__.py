"""Training: the paper's presets, the Lightning module and the run engine.

Public API::

    from chromtransfer.training import train_model, train_folds, is_complete, TrainSettings

    run = train_model(preset="pretrain", store="stores/pretrain", out="runs/pretrain", seed=1)
    ft = train_model(preset="finetune", store="stores/HepG2", out="runs/HepG2", init=run)

Several GPUs or machines: ``devices=``, ``num_nodes=``, ``strategy=`` (Lightning DDP; the batch
size stays global, see docs/scaling.md and :mod:`chromtransfer.training.distributed`).

Importing this package is light: Lightning and torch load when a run starts.
"""
from .engine import train_folds, train_model
from .presets import PRESET_NAMES, PRESETS, Preset, ResolvedSettings, TrainSettings, resolve
from .rundir import checkpoint_model_state, is_complete, load_checkpoint, read_run

__all__ = [
    "PRESETS",
    "PRESET_NAMES",
    "Preset",
    "ResolvedSettings",
    "TrainSettings",
    "checkpoint_model_state",
    "is_complete",
    "load_checkpoint",
    "read_run",
    "resolve",
    "train_folds",
    "train_model",
]
