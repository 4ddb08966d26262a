"""Lightning callbacks of a training run: atomic checkpoints, the learning curve, a throughput bar.

Lightning runs checkpoint callbacks after all others, so when ``last.ckpt`` is written at the end
of an epoch the learning-curve row of that epoch and the early-stopping state are already in it.

Under DDP every process keeps the same learning-curve rows (the epoch metrics are reduced over all
processes before they reach the callbacks); only global rank 0 writes files.
"""
from __future__ import annotations

import csv
import io
import math
import os
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar

from ..artifacts import write_text

#: Columns of ``learning_curve.csv`` (one row per finished epoch; epochs count from 1).
CURVE_COLUMNS = ["epoch", "train_loss", "val_loss", "train_auroc", "val_auroc", "lr", "seconds",
                 "train_bce", "val_bce", "l2_term"]


class AtomicModelCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that writes each checkpoint under a temporary name and renames it.

    A process killed while saving leaves the previous ``last.ckpt``/``best.ckpt`` intact.
    """

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        path = Path(filepath)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            trainer.save_checkpoint(str(tmp), self.save_weights_only)
            if trainer.is_global_zero:
                os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore, re-rooting the stored paths when the run directory was moved or renamed."""
        old = state_dict.get("dirpath")
        if old and self.dirpath and old != self.dirpath:
            state_dict = dict(state_dict)
            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                value = state_dict.get(key)
                if isinstance(value, str) and value.startswith(old):
                    state_dict[key] = self.dirpath + value[len(old):]
            if isinstance(state_dict.get("best_k_models"), dict):
                state_dict["best_k_models"] = {
                    (self.dirpath + k[len(old):] if k.startswith(old) else k): v
                    for k, v in state_dict["best_k_models"].items()}
            state_dict["dirpath"] = self.dirpath
        super().load_state_dict(state_dict)


class QuietProcess(Callback):
    """Runs ``quiet`` in a process that Lightning spawned for training (``ddp_spawn``).

    The launching process silences Lightning around ``fit``; spawned processes start afresh.
    """

    def __init__(self, quiet: Any):
        self.quiet = quiet
        self._parent = os.getpid()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if os.getpid() != self._parent:
            self.quiet()


class LearningCurve(Callback):
    """Keeps one row per epoch (:data:`CURVE_COLUMNS`) and rewrites ``path`` atomically.

    The rows are part of the checkpoint, so a resumed run's curve holds exactly the epochs of the
    checkpoint it resumed from, followed by the new ones. Only global rank 0 writes the file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows: list[dict[str, float]] = []
        self._writer = True

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._writer = bool(trainer.is_global_zero)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write()  # after a resume: the checkpoint's rows, dropping any later ones

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        record = getattr(pl_module, "epoch_record", None)
        if trainer.sanity_checking or record is None:
            return
        self.rows = [r for r in self.rows if r["epoch"] < record["epoch"]] + [dict(record)]
        pl_module.epoch_record = None
        self.write()

    def write(self) -> None:
        if not self._writer:
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CURVE_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _fmt(row.get(k, math.nan)) for k in CURVE_COLUMNS})
        write_text(self.path, buffer.getvalue())

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state_dict.get("rows", [])]


def _fmt(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    value = float(value)
    return "nan" if math.isnan(value) else repr(value)


class ThroughputProgressBar(TQDMProgressBar):
    """The tqdm progress bar plus ``seq/s``: training sequences per second in this epoch.

    Under DDP the bar is rank 0's and counts the global batches (all processes together).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._seen = 0
        self._since = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._seen = 0
        self._since = time.perf_counter()
        super().on_train_epoch_start(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        self._seen += int(batch[2]) if len(batch) > 2 else int(batch[1].shape[0])
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        elapsed = time.perf_counter() - self._since
        if self._seen and elapsed > 0:
            metrics["seq/s"] = f"{self._seen / elapsed:.0f}"
        return metrics
