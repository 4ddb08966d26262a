"""Run a training preset on a dataset store: planning, Lightning's loop, resume, export.

The run directory and its documents: :mod:`.rundir`. Devices and processes: :mod:`.processes`.

Resuming: checkpoints are written only at epoch ends. Every epoch's shuffling is a function of
``(seed, epoch)`` and the dropout RNG is reseeded before every batch from ``(seed, epoch, batch)``,
so a run killed in epoch ``k`` and resumed from the checkpoint of epoch ``k - 1`` repeats epoch
``k`` exactly and ends with the same weights as an uninterrupted run (bit for bit on the CPU; on a
GPU, cuDNN may pick different kernels between processes, so expect agreement to rounding only).
``--precision bf16`` is Lightning's ``bf16-mixed`` on the CPU and on GPUs
(:func:`chromtransfer.precision.lightning_precision`); on a CPU without native bf16 it is slower
than float32 (see docs/scaling.md).

Lightning keeps no logs of its own here (no logger, nothing in the working directory); the
learning curve and ``run.json`` are the records of a run.

Several processes (``--devices``, ``--num-nodes``; Lightning's DDP, see docs/scaling.md): every
process runs this same code. Only global rank 0 (:func:`~chromtransfer.training.distributed.is_primary`,
read from the launcher's environment variables) writes ``run.json``, removes stale checkpoints,
exports the model and writes ``folds.json``; Lightning's checkpoints are written by rank 0 alone
and read by every process on resume, so the run directory must be on a file system all nodes
share. The other processes make the same read-only decisions (resume or not, which fold) from the
same files and settings, train, and leave the writing to rank 0.
"""
from __future__ import annotations

import dataclasses
import logging
import random
import signal
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import check_output_dir, claim_output_dir, file_sha256, provenance, write_json
from ..datasets.store import Store, open_store
from ..errors import ArtifactError, ChromTransferError
from ..precision import lightning_precision
from .presets import PRESET_NAMES, PRESETS, ResolvedSettings, TrainSettings, requested_fold, resolve, with_fold
from .processes import (
    is_primary,
    quiet_lightning,
    quiet_lightning_process,
    remember_launched,
    resolve_process_count,
    training_device,
)
from .rundir import (
    BEST_CHECKPOINT,
    CHECKPOINT_DIR,
    CURVE_FILE,
    FOLDS_FILE,
    LAST_CHECKPOINT,
    MODEL_PREFIX,
    RUN_FILE,
    RUN_FORMAT,
    RUN_KIND,
    curve_summary,
    init_record,
    is_complete,
    load_checkpoint,
    read_run,
    utc_now,
)

log = logging.getLogger("chromtransfer.training")

# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def train_model(settings: TrainSettings | None = None, **kwargs: Any) -> Path:
    """Train one model as ``settings`` (or keyword arguments mirroring the CLI) ask; returns RUN.

    ``fold="all"`` trains every cross-validation fold (see :func:`train_folds`) and returns the
    parent directory. With ``resume=True`` a finished run is returned untouched, an unfinished one
    continues from its last checkpoint and a missing one starts.

    Raises:
        ChromTransferError (InputError, ArtifactError): impossible settings, a bad store, init
        model or checkpoint, or a run directory that already holds another run.
    """
    settings = _settings(settings, kwargs)
    if str(requested_fold(settings)).lower() == "all":
        train_folds(settings)
        return Path(settings.out)
    return _train_one(settings)


def train_folds(settings: TrainSettings | None = None, **kwargs: Any) -> list[Path]:
    """Train one model per cross-validation fold of the store into ``out/fold<k>``.

    Fold ``k``'s model validates on the training rows of fold ``k`` and trains on the others.
    Finished folds are skipped when ``resume`` is set. Writes ``out/folds.json`` at the end.
    Returns the fold run directories.
    """
    settings = _settings(settings, kwargs)
    store = open_store(settings.store)
    if store.n_folds == 0:
        raise ArtifactError(
            f"{store.path}: the store has no cross-validation folds, so --fold all has nothing to "
            "train (build the store with folds, or leave --fold out to validate on a random 10 %)")
    parent = Path(settings.out)
    names = [f"fold{k}" for k in range(store.n_folds)]
    if is_primary():
        check_output_dir(parent, RUN_KIND, overwrite=settings.overwrite, resume=True)
    if is_complete(parent) and (parent / FOLDS_FILE).exists() and not settings.overwrite:
        if settings.resume:
            return [parent / name for name in names]
        raise ArtifactError(f"{parent}: already holds finished cross-validation models; add --overwrite "
                            "to train them again, or choose another --out")
    if is_primary():
        claim_output_dir(parent, RUN_KIND, resume=True)
        (parent / FOLDS_FILE).unlink(missing_ok=True)
    paths = [_train_one(with_fold(settings, k, str(parent / name))) for k, name in enumerate(names)]
    if not is_primary():
        return paths
    summaries = [read_run(path) for path in paths]
    write_json(parent / FOLDS_FILE, {
        "format": "chromtransfer-folds",
        "status": "complete",
        "preset": settings.preset,
        "folds": names,
        "store": str(Path(settings.store).resolve()),
        "best_val_loss": [s.get("result", {}).get("best_val_loss") for s in summaries],
        "best_epoch": [s.get("result", {}).get("best_epoch") for s in summaries],
        "provenance": provenance(),
    })
    return paths


# ---------------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------------
def _settings(settings: TrainSettings | None, kwargs: dict[str, Any]) -> TrainSettings:
    if settings is None:
        try:
            return TrainSettings.from_kwargs(**kwargs)
        except TypeError as exc:
            raise ChromTransferError(str(exc)) from exc
    return dataclasses.replace(settings, **kwargs) if kwargs else settings


def _concrete_fold(store: Store, fold: int | str | None) -> int | None:
    """The validation fold: ``None`` -> fold 0 when the store has folds, else no fold;
    ``"none"`` -> no fold (every training row trains)."""
    if fold is None:
        return 0 if store.n_folds > 0 else None
    if isinstance(fold, str) and fold.lower() == "none":
        return None
    try:
        k = int(fold)
    except (TypeError, ValueError):
        raise ChromTransferError(f"--fold must be a fold number, 'all' or 'none', not {fold!r}") from None
    if store.n_folds == 0:
        raise ArtifactError(f"{store.path}: the store has no cross-validation folds; leave --fold "
                            "out to validate on a random 10 % of the training rows")
    if not 0 <= k < store.n_folds:
        raise ArtifactError(f"{store.path}: no fold {k}; the store has folds 0..{store.n_folds - 1}")
    return k


@dataclasses.dataclass
class _Plan:
    """Everything one run needs, checked before anything is written."""

    run_dir: Path
    store: Store
    settings: ResolvedSettings
    manifest_sha256: str
    previous: dict[str, Any] | None
    resume_from: Path | None
    source: Any  # the --init model, or None


def _plan(settings: TrainSettings) -> _Plan | Path:
    if settings.preset not in PRESETS:
        raise ChromTransferError(f"unknown preset {settings.preset!r}; choose one of {', '.join(PRESET_NAMES)}")
    preset = PRESETS[settings.preset]
    run_dir = Path(settings.out)
    if settings.resume and settings.overwrite:
        raise ChromTransferError("--resume continues the run in --out, --overwrite starts it again: give one")
    if is_primary():  # refuses a folder that holds anything but a training run
        check_output_dir(run_dir, RUN_KIND, overwrite=settings.overwrite, resume=True)
    if is_complete(run_dir) and not settings.overwrite:
        if settings.resume:
            log.info("%s: training already complete", run_dir)
            return run_dir
        raise ArtifactError(f"{run_dir}: already holds a finished model; add --overwrite to train it again "
                            "(only the run's own files are replaced), or choose another --out")
    previous = read_run(run_dir) if (run_dir / RUN_FILE).exists() and not settings.overwrite else None
    # The other DDP processes may start after rank 0 has written run.json for this very run.
    if previous is not None and not settings.resume and is_primary():
        raise ArtifactError(
            f"{run_dir}: holds an unfinished training run (status {previous.get('status')}); "
            "add --resume to continue it, --overwrite to start again, or choose another --out")
    store = open_store(settings.store)
    device = training_device(settings.device)
    source = None
    if preset.needs_init:
        if not settings.init:
            raise ChromTransferError(f"the {preset.name} preset needs --init: a pre-trained model or "
                                     "run directory whose body starts the fine-tuning")
        from ..modelio import load_model

        source = load_model(settings.init)
    elif settings.init:
        raise ChromTransferError(f"--init is used only by the finetune preset; the {preset.name} "
                                 "preset trains from scratch")
    if settings.frozen_body and source is None:
        raise ChromTransferError("--frozen-body trains the head on a pre-trained body: use it with "
                                 "the finetune preset and --init")
    width = None
    if source is not None:
        width = source.config.width
        if settings.width is not None and float(settings.width) != float(width):
            raise ChromTransferError(f"--width {settings.width} differs from the --init model's width "
                                     f"{width}; leave --width out when fine-tuning")
    if store.task != preset.task:
        raise ArtifactError(f"{store.path}: a {store.task} store; the {preset.name} preset needs a "
                            f"{preset.task} store (build it with the matching 'prepare' command)")
    if preset.task == "binary" and len(store.classes) != 2:
        raise ArtifactError(f"{store.path}: a binary store must have 2 classes, not {len(store.classes)}")
    fold = _concrete_fold(store, requested_fold(settings))
    devices = resolve_process_count(device, settings.devices)
    try:
        resolved = resolve(settings, fold=fold, width=width, device=device, devices=devices)
    except ValueError as exc:
        raise ChromTransferError(str(exc)) from exc
    manifest_sha = file_sha256(store.path / "manifest.json")
    resume_from = None
    if previous is not None:
        _check_resumable(run_dir, previous, resolved, manifest_sha)
        last = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
        if last.exists() and previous.get("status") == "running":
            load_checkpoint(last)  # one clear error line for a damaged file
            resume_from = last
    return _Plan(run_dir, store, resolved, manifest_sha, previous, resume_from, source)


def _check_resumable(run_dir: Path, previous: dict[str, Any], resolved: ResolvedSettings,
                     manifest_sha: str) -> None:
    if previous.get("store", {}).get("manifest_sha256") != manifest_sha:
        raise ArtifactError(f"{run_dir}: the run was trained on a different dataset store "
                            f"({previous.get('store', {}).get('path')}); resume it with that store "
                            "or train into a new --out")
    before = previous.get("settings", {})
    now = resolved.to_dict()
    differ = [k for k in now if k not in ResolvedSettings.RESUMABLE_CHANGES
              and k in before and before[k] != now[k]]
    if differ:
        detail = ", ".join(f"{k}: {before[k]!r} -> {now[k]!r}" for k in differ[:4])
        raise ArtifactError(f"{run_dir}: --resume with different settings ({detail}); resume with the "
                            "run's own settings (see its run.json) or train into a new --out")


def _build_model(plan: _Plan):
    from ..models import MULTICLASS_HEADS, build_model, transfer_body

    s, classes = plan.settings, plan.store.classes
    extra = {} if s.dropout is None else {"dropout": s.dropout}
    if plan.source is not None:
        model = transfer_body(plan.source, head=s.head, classes=classes, **extra)
    else:
        n_outputs = len(classes) if s.head in MULTICLASS_HEADS else 1
        model = build_model(s.head, width=s.width, n_outputs=n_outputs, classes=classes, **extra)
    if s.bn_momentum is not None:
        import torch

        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.momentum = 1.0 - s.bn_momentum  # PyTorch weights the new batch by momentum
    return model


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all devices)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _training_rows(store: Store, s: ResolvedSettings) -> tuple[np.ndarray, np.ndarray, int]:
    """The run's training and validation rows, and the number of training rows before subsampling."""
    from .data import split_rows, stratified_subsample, subsample_rows

    train_rows, val_rows = split_rows(store, s.fold, s.seed, s.validation)
    n_train_all = len(train_rows)
    if s.subsample_scope == "all" and s.train_fraction < 1:
        everything = store.indices("train")
        kept = stratified_subsample(everything, np.asarray(store.labels[everything]), s.train_fraction,
                                    s.subsample_seed)
        train_rows = train_rows[np.isin(train_rows, kept)]
        if s.validation != "test":
            val_rows = val_rows[np.isin(val_rows, kept)]
    else:
        train_rows = subsample_rows(train_rows, s.train_fraction, s.subsample_seed)
    return train_rows, val_rows, n_train_all


def _train_one(settings: TrainSettings) -> Path:
    plan = _plan(settings)
    if isinstance(plan, Path):
        if settings.recalibrate_bn and is_primary():
            recalibrate_run(plan, settings.store)
        return plan
    s, run_dir = plan.settings, plan.run_dir
    if is_primary():
        claim_output_dir(run_dir, RUN_KIND, resume=True)
        if settings.overwrite:  # a killed retraining must not look finished with the old model
            for name in (RUN_FILE, "model.json", "model.safetensors"):
                (run_dir / name).unlink(missing_ok=True)
    from .data import balanced_class_weights

    seed_everything(s.seed)
    model = _build_model(plan)
    train_rows, val_rows, n_train_all = _training_rows(plan.store, s)
    train_labels = np.asarray(plan.store.labels[train_rows])
    n_classes = len(plan.store.classes)
    if len(np.unique(train_labels)) < 2:
        raise ArtifactError(f"{plan.store.path}: the training rows hold a single class; "
                            "a classifier needs at least two")
    if len(val_rows) == 0:
        raise ArtifactError(f"{plan.store.path}: the {s.train_fraction:g} share of the training set holds no "
                            "validation row; use a larger fraction or a larger store")
    if len(val_rows) < s.world_size:
        raise ArtifactError(f"{plan.store.path}: {len(val_rows)} validation rows cannot be shared by "
                            f"{s.world_size} processes; train on fewer processes")
    weights = balanced_class_weights(train_labels, n_classes) if s.class_weights == "balanced" else None
    primary = is_primary()

    document = plan.previous or {
        "format": RUN_FORMAT,
        "format_version": 1,
        "status": "running",
        "preset": s.preset,
        "seed": s.seed,
        "settings": s.to_dict(),
        "n_train": int(len(train_rows)),
        "n_val": int(len(val_rows)),
        "store": {"path": str(plan.store.path.resolve()), "manifest_sha256": plan.manifest_sha256,
                  "rows": plan.store.n_rows, "length": plan.store.length, "task": plan.store.task,
                  "classes": plan.store.classes},
        "data": {
            "train_rows": int(len(train_rows)),
            "val_rows": int(len(val_rows)),
            "train_fraction": s.train_fraction,
            "subsample_scope": s.subsample_scope,
            "train_rows_before_subsampling": int(n_train_all),
            "validation": ("the test rows (curve only; every training row trains)" if s.validation == "test"
                           else f"store fold {s.fold}" if s.fold is not None
                           else f"random 10% of the training rows (seed {s.seed})"),
            "train_counts": {c: int((train_labels == i).sum()) for i, c in enumerate(plan.store.classes)},
            "class_weights": weights.tolist() if weights is not None else None,
        },
        "init": init_record(s.init),
        "sessions": [],
        "provenance": provenance(),
    }
    document["settings"]["max_epochs"] = s.max_epochs
    document["sessions"].append({"started_utc": utc_now(),
                                 "resumed_from": str(plan.resume_from) if plan.resume_from else None,
                                 "device": s.device, "devices": s.devices, "num_nodes": s.num_nodes,
                                 "world_size": s.world_size, "strategy": s.strategy})
    if document["status"] not in ("trained", "complete"):  # else only the export is missing
        document["status"] = "running"
        if primary:
            write_json(run_dir / RUN_FILE, document)
        _fit(plan, model, weights, train_rows, val_rows, primary)
        if not primary:
            return run_dir
        document["status"] = "trained"
        document["sessions"][-1]["fit_finished_utc"] = utc_now()
        write_json(run_dir / RUN_FILE, document)
    if primary:
        _export(plan, model, document, train_rows)
    return run_dir


def _fit(plan: _Plan, model, weights, train_rows: np.ndarray, val_rows: np.ndarray,
         primary: bool = True) -> None:
    import copy

    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping

    from .callbacks import AtomicModelCheckpoint, LearningCurve, QuietProcess, ThroughputProgressBar
    from .data import make_loader
    from .distributed import convert_sync_batchnorm
    from .module import ChromTransferModule

    s, run_dir = plan.settings, plan.run_dir
    cuda = s.device.startswith("cuda")
    index = s.device.partition(":")[2]
    distributed = s.strategy != "single"
    network = model
    if distributed and s.world_size > 1 and s.sync_batchnorm:
        # a copy: the export loads the checkpoint into the plain-BatchNorm model (same state keys)
        network = convert_sync_batchnorm(copy.deepcopy(model), "cuda" if cuda else "cpu")
    module = ChromTransferModule(network, lr=s.lr, l2=s.l2, class_weights=weights,
                                 lr_patience=s.lr_patience, lr_factor=s.lr_factor,
                                 frozen_body=s.frozen_body, seed=s.seed, rc_augment=s.rc_augment)
    if s.precision == "64":
        # Lightning converts to float64 only after restoring a checkpoint: a float32 module would
        # round the resumed float64 weights to float32 first.
        module = module.double()
    train_loader = make_loader(plan.store, train_rows, s.batch_size, shuffle=True, seed=s.seed,
                               num_workers=s.num_workers, pin_memory=cuda, world_size=s.world_size)
    val_loader = make_loader(plan.store, val_rows, s.batch_size, shuffle=False, seed=s.seed,
                             num_workers=s.num_workers, pin_memory=cuda, world_size=s.world_size)
    checkpoints = run_dir / CHECKPOINT_DIR
    if primary and plan.resume_from is None and checkpoints.exists():
        for stale in checkpoints.glob("*.ckpt"):  # an earlier attempt that never finished an epoch
            stale.unlink()
    if primary:
        for stale in checkpoints.glob(".*.tmp-*"):
            stale.unlink()
    callbacks: list[Any] = [
        QuietProcess(quiet_lightning_process),
        LearningCurve(run_dir / CURVE_FILE),
        # best.ckpt first, then last.ckpt, so that last.ckpt holds the best-checkpoint state of
        # this very epoch (Lightning keeps the order of its checkpoint callbacks).
        AtomicModelCheckpoint(dirpath=str(checkpoints), filename="best", monitor="val_loss",
                              mode="min", save_top_k=1, save_last=False,
                              enable_version_counter=False, auto_insert_metric_name=False),
        AtomicModelCheckpoint(dirpath=str(checkpoints), filename="last", monitor=None,
                              save_top_k=1, save_last=False, every_n_epochs=1,
                              enable_version_counter=False, auto_insert_metric_name=False),
    ]
    if s.patience > 0:
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=s.patience,
                                       min_delta=0.0, check_finite=True))
    if not s.quiet:
        callbacks.append(ThroughputProgressBar())
    limit = s.limit_train_batches if s.limit_train_batches is not None else 1.0
    plugins: list[Any] = []
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    if SLURMEnvironment.detect():
        # No mid-epoch "hpc" checkpoints and self-requeueing on SIGUSR1: a requeued job continues
        # from the last epoch-end checkpoint with --resume, which keeps resumed runs exact.
        plugins.append(SLURMEnvironment(auto_requeue=False))
    with quiet_lightning():
        trainer = pl.Trainer(
            accelerator="gpu" if cuda else "cpu", devices=[int(index)] if index else s.devices, num_nodes=s.num_nodes,
            strategy=s.strategy if distributed else "auto",
            precision=lightning_precision(s.precision),
            max_epochs=s.max_epochs, logger=False, default_root_dir=str(run_dir),
            callbacks=callbacks, enable_progress_bar=not s.quiet, enable_model_summary=False,
            num_sanity_val_steps=0, limit_train_batches=limit, use_distributed_sampler=False,
            log_every_n_steps=1, plugins=plugins or None,
        )
        try:
            trainer.fit(module, train_loader, val_loader,
                        ckpt_path=str(plan.resume_from) if plan.resume_from else None,
                        weights_only=True)
        except SystemExit:
            if trainer.interrupted:  # Lightning turns Ctrl-C into sys.exit(1)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                raise KeyboardInterrupt from None
            raise
        finally:
            remember_launched(getattr(getattr(trainer.strategy, "launcher", None), "procs", None) or [])
    if trainer.interrupted:
        raise KeyboardInterrupt


def _export(plan: _Plan, model, document: dict[str, Any], train_rows: np.ndarray) -> None:
    from ..modelio import save_model

    s, run_dir = plan.settings, plan.run_dir
    checkpoints = run_dir / CHECKPOINT_DIR
    best, last = checkpoints / BEST_CHECKPOINT, checkpoints / LAST_CHECKPOINT
    source = best if s.export == "best" and best.exists() else last
    if not source.exists():
        raise ArtifactError(f"{run_dir}: no checkpoint to export (training never finished an epoch); "
                            "train again with --resume")
    checkpoint = load_checkpoint(source)
    state = {k[len(MODEL_PREFIX):]: v for k, v in checkpoint["state_dict"].items()
             if k.startswith(MODEL_PREFIX)}
    model.load_state_dict(state)
    summary = curve_summary(run_dir)
    summary["exported"] = {"checkpoint": source.name, "epoch": int(checkpoint.get("epoch", -1)) + 1}
    summary["stopped_early"] = bool(summary.get("epochs", 0) < s.max_epochs)
    if s.recalibrate_bn:
        from .recalibrate import recalibrate_batchnorm

        summary["recalibrate_bn"] = recalibrate_batchnorm(model, plan.store.sequences, train_rows,
                                                          batch_size=s.batch_size, device=s.device)
    document["result"] = summary
    training = {
        "run": str(run_dir.resolve()),
        "settings": document["settings"],
        "store": document["store"],
        "data": document["data"],
        "init": document["init"],
        "result": summary,
    }
    save_model(model.cpu(), run_dir, preset=s.preset, training=training,
               provenance=provenance(seed=s.seed))
    document["status"] = "complete"
    document["finished_utc"] = utc_now()
    write_json(run_dir / RUN_FILE, document)


def recalibrate_run(run_dir: str | Path, store: str | Path | None = None) -> dict[str, Any]:
    """Recalibrate the BatchNorm statistics of a finished run's model in place (``train --resume
    --recalibrate-bn``); returns the record written into ``model.json`` (``training.result.
    recalibrate_bn``) and ``run.json``. A model already recalibrated is left as is.

    ``store`` is the run's store (default: the path in ``run.json``); it must be the very store
    the run trained on (same manifest checksum), whose training rows the pass reads.
    """
    from ..modelio import load_model, read_model_document, save_model
    from .recalibrate import recalibrate_batchnorm

    run_dir = Path(run_dir)
    model_document = read_model_document(run_dir)
    result = model_document.get("training", {}).get("result", {})
    if result.get("recalibrate_bn"):
        return result["recalibrate_bn"]
    document = read_run(run_dir)
    data = open_store(store or document["store"]["path"])
    if file_sha256(data.path / "manifest.json") != document.get("store", {}).get("manifest_sha256"):
        raise ArtifactError(f"{run_dir}: trained on another dataset store ({document['store']['path']}); "
                            "recalibrate it with that store")
    known = {f.name for f in dataclasses.fields(ResolvedSettings)}
    settings = ResolvedSettings(**{k: v for k, v in document["settings"].items() if k in known})
    train_rows, _, _ = _training_rows(data, settings)
    model = load_model(run_dir)
    record = recalibrate_batchnorm(model, data.sequences, train_rows, batch_size=settings.batch_size)
    result["recalibrate_bn"] = record
    model_document.get("training", {}).get("settings", {})["recalibrate_bn"] = True
    metadata = {k: v for k, v in model_document.items()
                if k not in ("format", "format_version", "architecture", "config")}
    save_model(model.cpu(), run_dir, **metadata)
    document.setdefault("result", {})["recalibrate_bn"] = record
    document["settings"]["recalibrate_bn"] = True
    write_json(run_dir / RUN_FILE, document)
    return record
