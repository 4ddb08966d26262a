"""Training presets (docs/method.md section 4) and the settings of one training run.

A :class:`Preset` holds the published defaults of one kind of model; :class:`TrainSettings` is what
a user asks for (every field mirrors a ``chromtransfer train`` option, ``None`` meaning "the
preset's value"); :func:`resolve` merges the two into a :class:`ResolvedSettings` with no ``None``
left, which is what the engine runs and what ``run.json`` records.

| preset     | head       | lr   | batch | early stopping  | LR plateau     | class weights | loss       |
|------------|------------|------|-------|-----------------|----------------|---------------|------------|
| pretrain   | pretrain   | 1e-3 | 256   | patience 15     | off            | none          | binary CE  |
| finetune   | finetune   | 5e-6 | 128   | patience 10     | x0.1 after 5   | balanced      | binary CE  |
| baseline   | finetune   | 1e-3 | 128   | patience 10     | off            | balanced      | binary CE  |
| multiclass | multiclass | 1e-3 | 256   | off (50 epochs) | off            | none          | softmax CE |

The ``multiclass`` preset is the authors' multi-class baseline: the ``multiclass`` head (Dense 512,
BN, Dense 128, BN, 7-way softmax), one model on every training row (fold ``none``: the test rows
give the validation curve only) keeping the last weights (export ``last``). ``--head
multiclass-1024`` is the 1024/32 variant without BatchNorm; ``--fold all --export best`` the
cross-validated protocol of the binary models.

All use Adam and the L2 penalty 1e-4 on the convolution kernels. ``baseline`` uses balanced class
weights like ``finetune``: the binary baseline is the fine-tuned model's from-scratch twin, so the
two differ only in the initial body and the learning rate. ``--frozen-body`` (the authors' later
script) trains only the head of a fine-tuned model, at 1e-3 for 20 epochs unless overridden.

Batch sizes are global: with ``devices x num_nodes`` > 1 processes (DDP) each process takes its
share of every batch of ``batch_size`` rows, so the published batch sizes and learning rates hold
on any number of GPUs (docs/scaling.md).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

PRESET_NAMES = ("pretrain", "finetune", "baseline", "multiclass")
DEVICES = ("auto", "cpu", "cuda")
#: ``auto``: one process per device (DDP when there are several); ``ddp``: Lightning's launcher
#: starts the other processes by re-running the command; ``ddp_spawn``: it spawns them from Python.
STRATEGIES = ("auto", "ddp", "ddp_spawn")
#: ``32``: float32; ``bf16``: bf16 autocast (GPU); ``64``: float64 throughout, slow, for numerical
#: checks (e.g. that several DDP processes compute what one process computes).
PRECISIONS = ("32", "bf16", "64")
CLASS_WEIGHTS = ("balanced", "none")
EXPORTS = ("best", "last")
#: Learning rate and epochs of the authors' frozen-body script.
FROZEN_BODY_LR = 1e-3
FROZEN_BODY_EPOCHS = 20
#: Fraction of the training rows held out for validation when the store has no folds.
RANDOM_VALIDATION_FRACTION = 0.1
#: Where the validation loss comes from: ``fold`` (a cross-validation fold of the store),
#: ``random`` (a random 10 % of the training rows, for stores without folds) or ``test`` (``--fold
#: none``: the model trains on every training row and the test rows give the validation curve
#: only, as the authors' multi-class notebook did; nothing is chosen by them).
VALIDATIONS = ("fold", "random", "test")
#: What ``train_fraction`` subsamples (:class:`TrainSettings`).
SUBSAMPLE_SCOPES = ("train", "all")


@dataclass(frozen=True)
class Preset:
    """The published training defaults of one model kind.

    Attributes:
        name: preset name.
        head: model head (see :data:`chromtransfer.models.HEADS`).
        lr: Adam learning rate.
        batch_size: sequences per optimisation step.
        max_epochs: epoch limit.
        patience: early-stopping patience in epochs on the validation loss (0 = no early stopping).
        lr_patience: epochs without improvement before the learning rate is multiplied by
            ``lr_factor`` (0 = constant learning rate).
        lr_factor: the plateau multiplier.
        class_weights: ``"balanced"`` (scikit-learn's balanced weights of the training labels) or
            ``"none"``.
        l2: L2 penalty on the convolution kernels (Keras kernel_regularizer).
        needs_init: whether the run starts from a pre-trained model (``--init``).
        task: the store task the preset trains on (``"binary"`` or ``"multiclass"``).
        fold: the validation fold when none is asked for (``None``: fold 0, or a random 10 % of
            the training rows; ``"none"``: every training row trains, see :class:`TrainSettings`).
        export: the weights that become the model when not asked for (``best`` or ``last``).
    """

    name: str
    head: str
    lr: float
    batch_size: int
    max_epochs: int
    patience: int
    lr_patience: int = 0
    lr_factor: float = 0.1
    class_weights: str = "none"
    l2: float = 1e-4
    needs_init: bool = False
    task: str = "binary"
    fold: str | None = None
    export: str = "best"


PRESETS: dict[str, Preset] = {
    "pretrain": Preset("pretrain", head="pretrain", lr=1e-3, batch_size=256, max_epochs=100,
                       patience=15),
    "finetune": Preset("finetune", head="finetune", lr=5e-6, batch_size=128, max_epochs=100,
                       patience=10, lr_patience=5, lr_factor=0.1, class_weights="balanced",
                       needs_init=True),
    "baseline": Preset("baseline", head="finetune", lr=1e-3, batch_size=128, max_epochs=100,
                       patience=10, class_weights="balanced"),
    # the authors' Train_Multiclass.ipynb: one model on every training row, 50 epochs, the last
    # weights saved (the test set passed as validation_data, a curve only)
    "multiclass": Preset("multiclass", head="multiclass", lr=1e-3, batch_size=256, max_epochs=50,
                         patience=0, task="multiclass", fold="none", export="last"),
}


@dataclass
class TrainSettings:
    """What a user asks of one training run; ``None`` takes the preset's value.

    Attributes:
        preset: one of :data:`PRESET_NAMES`.
        store: path of the dataset store.
        out: run directory (with ``fold="all"``, the parent of ``fold0``, ``fold1``, ...).
        init: model or run directory whose body starts the run (``finetune``).
        head, lr, batch_size, max_epochs, patience, lr_patience, l2, class_weights: override the
            preset (``patience``/``lr_patience`` 0 = off).
        width: filter-count multiplier (1.0 = published network; < 1 for quick tests).
        frozen_body: train only the head; the body's weights and BatchNorm statistics stay fixed.
        seed: seeds Python, NumPy and torch, the shuffling, dropout and the random validation set.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        devices: processes (GPUs, or CPU processes) per node, or ``"auto"`` (every visible GPU;
            one process on the CPU). With more than one process in all the run uses DDP and
            ``batch_size`` stays the global batch size (see docs/scaling.md).
        num_nodes: machines; ``devices x num_nodes`` processes in all.
        strategy: one of :data:`STRATEGIES`.
        sync_batchnorm: under DDP, BatchNorm statistics over the global batch (as one process
            would compute them) rather than over each process's share.
        bn_momentum: BatchNorm momentum in Keras' convention (``None``: the published 0.99; the
            moving statistics keep this share of their value each step). Short runs of few
            steps need a lower value (e.g. 0.9) for the moving statistics to catch up.
        dropout: dropout rate of the network (``None``: the published 0.1, or the ``--init``
            model's rate).
        precision: ``"32"``, ``"bf16"`` (Lightning's bf16-mixed: bf16 autocast, float32 weights;
            CPU or GPU, see chromtransfer.precision) or ``"64"`` (float64, for numerical
            checks).
        num_workers: DataLoader worker processes (``None``: 0 on the CPU, 4 on a GPU).
        limit_train_batches: train on this many batches (int) or this fraction (float) per epoch.
        fold: validation fold of the store (``None``: fold 0 if the store has folds, else a random
            10 % of the training rows); ``"all"`` trains one model per fold; ``"none"`` trains one
            model on every training row, the test rows giving the validation curve only (needs
            ``export="last"`` and no early stopping or LR schedule: the authors' multi-class
            protocol).
        export: weights that become the model: ``best`` (lowest validation loss) or ``last``
            (``None``: the preset's, ``last`` for ``multiclass``, else ``best``).
        train_fraction: train on a random share (0, 1] of the training rows (the bootstrap
            analysis of training-set size); see ``subsample_scope``.
        subsample_seed: seed of that subsample (``None``: ``seed``).
        subsample_scope: ``"train"``: a plain random share of the rows left for training once the
            validation rows are set aside (those stay whole); ``"all"``: a label-stratified share
            of the whole training set (``round(fraction * n)`` rows of each label, validation
            fold included), then split into training and validation rows as the whole set is
            (the paper's bootstrap: 1 % of HepG2's 74,673 rows = 257 + 490 = 747).
        rc_augment: train on each row or its reverse complement, drawn at random per batch and
            epoch (seeded, so a resumed run draws the same); validation rows are not flipped. Off
            as published; doubles the effective data of small fine-tuning sets.
        recalibrate_bn: once training is done, recompute the BatchNorm moving statistics with
            dropout off in one pass over the training rows (chromtransfer.training.recalibrate; recorded in
            model.json). The paper's models keep the statistics of training (the default). With
            ``resume`` on a finished run, recalibrates its model in place.
        resume: continue the run in ``out`` from its last checkpoint.
        overwrite: start afresh in ``out`` even where it holds a run (finished or not): the run's
            own files are replaced, no other file in ``out`` is touched.
        quiet: no progress bar.
    """

    preset: str
    store: str
    out: str
    init: str | None = None
    head: str | None = None
    lr: float | None = None
    batch_size: int | None = None
    max_epochs: int | None = None
    patience: int | None = None
    lr_patience: int | None = None
    l2: float | None = None
    class_weights: str | None = None
    width: float | None = None
    frozen_body: bool = False
    seed: int = 0
    device: str = "auto"
    precision: str = "32"
    num_workers: int | None = None
    limit_train_batches: int | float | None = None
    fold: int | str | None = None
    export: str | None = None
    train_fraction: float = 1.0
    subsample_seed: int | None = None
    subsample_scope: str = "train"
    resume: bool = False
    overwrite: bool = False
    quiet: bool = False
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    sync_batchnorm: bool = True
    dropout: float | None = None
    bn_momentum: float | None = None
    rc_augment: bool = False
    recalibrate_bn: bool = False

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "TrainSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown training setting(s): {', '.join(unknown)}")
        return cls(**kwargs)


@dataclass
class ResolvedSettings:
    """Settings with every preset default filled in (recorded in ``run.json``)."""

    preset: str
    store: str
    out: str
    init: str | None
    head: str
    lr: float
    batch_size: int
    max_epochs: int
    patience: int
    lr_patience: int
    lr_factor: float
    l2: float
    class_weights: str
    width: float
    frozen_body: bool
    seed: int
    device: str
    precision: str
    num_workers: int
    limit_train_batches: int | float | None
    fold: int | None
    export: str
    task: str
    train_fraction: float = 1.0
    subsample_seed: int = 0
    subsample_scope: str = "train"
    quiet: bool = False
    resume: bool = False
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "single"
    world_size: int = 1
    sync_batchnorm: bool = True
    dropout: float | None = None
    bn_momentum: float | None = None
    validation: str = "fold"
    rc_augment: bool = False
    recalibrate_bn: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    #: Settings that may differ when a run is resumed (they do not change the numbers on one
    #: device; a different number of processes changes only the dropout masks and rounding).
    RESUMABLE_CHANGES = ("out", "quiet", "resume", "num_workers", "max_epochs", "store", "init",
                         "device", "devices", "num_nodes", "strategy", "world_size", "extra", "recalibrate_bn")


def resolve(settings: TrainSettings, fold: int | None = None, width: float | None = None,
            device: str = "cpu", devices: int | None = None) -> ResolvedSettings:
    """Fill in the preset's defaults; ``ValueError`` (one sentence) for impossible combinations.

    ``fold`` is the concrete validation fold (``None`` = random validation set), ``width`` the
    network width when it is fixed by ``--init``, ``device`` the resolved device and ``devices``
    the resolved number of processes per node (``None``: ``settings.devices``, which must then be
    a number).
    """
    if settings.preset not in PRESETS:
        raise ValueError(f"unknown preset {settings.preset!r}; choose one of {', '.join(PRESET_NAMES)}")
    preset = PRESETS[settings.preset]
    if str(settings.precision) not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}")
    export = settings.export or preset.export
    if export not in EXPORTS:
        raise ValueError(f"--export must be one of {', '.join(EXPORTS)}")
    class_weights = settings.class_weights or preset.class_weights
    if class_weights not in CLASS_WEIGHTS:
        raise ValueError(f"--class-weights must be one of {', '.join(CLASS_WEIGHTS)}")
    head = settings.head or preset.head
    multiclass_head = head in ("multiclass", "multiclass-1024")
    if preset.task == "multiclass" and not multiclass_head:
        raise ValueError("the multiclass preset needs a multi-class head (multiclass or multiclass-1024)")
    if preset.task == "binary" and multiclass_head:
        raise ValueError(f"the {preset.name} preset trains a binary head, not the {head} one")
    if settings.strategy not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}")
    if devices is None:
        devices = parse_devices(settings.devices)
        if devices is None:
            raise ValueError("--devices auto must be resolved against the visible devices first")
    if int(devices) < 1:
        raise ValueError("--devices must be at least 1 (or auto)")
    if int(settings.num_nodes) < 1:
        raise ValueError("--num-nodes must be at least 1")
    world_size = int(devices) * int(settings.num_nodes)
    strategy = settings.strategy
    if strategy == "auto":
        strategy = "ddp" if world_size > 1 else "single"
    if settings.bn_momentum is not None and not 0 <= float(settings.bn_momentum) < 1:
        raise ValueError("--bn-momentum must lie in [0, 1)")
    if settings.dropout is not None and not 0 <= float(settings.dropout) < 1:
        raise ValueError("--dropout must lie in [0, 1)")
    wanted_fold = requested_fold(settings)
    if isinstance(wanted_fold, str) and wanted_fold.lower() == "none":
        validation = "test"
    else:
        validation = "fold" if fold is not None else "random"
    lr, max_epochs = preset.lr, preset.max_epochs
    if settings.frozen_body:
        lr, max_epochs = FROZEN_BODY_LR, FROZEN_BODY_EPOCHS
    resolved = ResolvedSettings(
        preset=preset.name,
        store=str(settings.store),
        out=str(settings.out),
        init=str(settings.init) if settings.init is not None else None,
        head=head,
        lr=float(settings.lr if settings.lr is not None else lr),
        batch_size=int(settings.batch_size if settings.batch_size is not None else preset.batch_size),
        max_epochs=int(settings.max_epochs if settings.max_epochs is not None else max_epochs),
        patience=int(settings.patience if settings.patience is not None else preset.patience),
        lr_patience=int(settings.lr_patience if settings.lr_patience is not None else preset.lr_patience),
        lr_factor=preset.lr_factor,
        l2=float(settings.l2 if settings.l2 is not None else preset.l2),
        class_weights=class_weights,
        width=float(width if width is not None else (settings.width if settings.width is not None else 1.0)),
        frozen_body=bool(settings.frozen_body),
        seed=int(settings.seed),
        device=device,
        precision=str(settings.precision),
        num_workers=int(settings.num_workers if settings.num_workers is not None
                        else (4 if device == "cuda" else 0)),
        limit_train_batches=settings.limit_train_batches,
        fold=fold,
        export=export,
        task=preset.task,
        train_fraction=float(settings.train_fraction),
        subsample_seed=int(settings.subsample_seed if settings.subsample_seed is not None else settings.seed),
        subsample_scope=str(settings.subsample_scope),
        quiet=bool(settings.quiet),
        resume=bool(settings.resume),
        devices=int(devices),
        num_nodes=int(settings.num_nodes),
        strategy=strategy,
        world_size=world_size,
        sync_batchnorm=bool(settings.sync_batchnorm),
        dropout=float(settings.dropout) if settings.dropout is not None else None,
        bn_momentum=float(settings.bn_momentum) if settings.bn_momentum is not None else None,
        validation=validation,
        rc_augment=bool(settings.rc_augment),
        recalibrate_bn=bool(settings.recalibrate_bn),
    )
    for name in ("lr", "l2"):
        if getattr(resolved, name) < 0 or (name == "lr" and resolved.lr == 0):
            raise ValueError(f"--{name} must be positive")
    for name in ("batch_size", "max_epochs"):
        if getattr(resolved, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("patience", "lr_patience", "num_workers"):
        if getattr(resolved, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be 0 or more")
    if validation == "test" and (resolved.export != "last" or resolved.patience or resolved.lr_patience):
        raise ValueError("--fold none validates on the test rows, so nothing may be chosen by them: use it "
                         "with --export last, --patience 0 and --lr-patience 0")
    if resolved.subsample_scope not in SUBSAMPLE_SCOPES:
        raise ValueError(f"subsample scope must be one of {', '.join(SUBSAMPLE_SCOPES)}")
    if not 0 < resolved.train_fraction <= 1:
        raise ValueError("--train-fraction must lie in (0, 1]")
    if not 0 < resolved.width <= 4:
        raise ValueError("--width must lie in (0, 4]")
    if world_size > 1 and resolved.batch_size < 2 * world_size:
        raise ValueError(f"--batch-size {resolved.batch_size} is the global batch; split over {world_size} "
                         f"processes each would get fewer than 2 rows (use at least {2 * world_size})")
    return resolved


def requested_fold(settings: TrainSettings) -> int | str | None:
    """The fold asked for, or the preset's default (``"none"`` for ``multiclass``)."""
    if settings.fold is not None:
        return settings.fold
    preset = PRESETS.get(settings.preset)
    return preset.fold if preset is not None else None


def parse_devices(value: int | str) -> int | None:
    """``--devices``: a positive count, or ``None`` for ``"auto"``; ``ValueError`` otherwise."""
    text = str(value).strip().lower()
    if text == "auto":
        return None
    try:
        count = int(text)
    except ValueError:
        raise ValueError(f"--devices must be a number or auto, not {value!r}") from None
    if count < 1:
        raise ValueError("--devices must be at least 1 (or auto)")
    return count


def with_fold(settings: TrainSettings, fold: int, out: str) -> TrainSettings:
    """A copy of ``settings`` for one cross-validation fold written to ``out``."""
    return replace(settings, fold=fold, out=out)
