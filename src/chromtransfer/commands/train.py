"""``chromtransfer train --preset P --data STORE --out RUN``: train a model with one of the paper's presets."""
from __future__ import annotations

import click

from ._options import threads_option

PRESET_CHOICES = ["pretrain", "finetune", "baseline", "multiclass", "kmer"]
#: The options the kmer preset takes (the others set up a network and are refused with it).
KMER_OPTIONS = ("k", "gapped", "fold", "seed", "class_weights", "resume", "overwrite", "threads", "quiet")
HEAD_CHOICES = ["pretrain", "finetune", "finetune-bn", "multiclass", "multiclass-1024"]


class _BatchLimit(click.ParamType):
    """An int (number of batches) or a float in (0, 1] (fraction of the batches)."""

    name = "N|FRACTION"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return value
        text = str(value).strip()
        try:
            number = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:
            self.fail(f"{value!r} is neither a number of batches nor a fraction", param, ctx)
        if isinstance(number, float) and not 0 < number <= 1:
            self.fail("a fraction must lie in (0, 1]", param, ctx)
        if isinstance(number, int) and number < 1:
            self.fail("a number of batches must be at least 1", param, ctx)
        return number


class _Devices(click.ParamType):
    """A positive number of processes per node, or 'auto'."""

    name = "N|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text == "auto":
            return "auto"
        try:
            number = int(text)
        except ValueError:
            self.fail(f"{value!r} is neither a number of devices nor 'auto'", param, ctx)
        if number < 1:
            self.fail("at least 1 device", param, ctx)
        return number


class _Fold(click.ParamType):
    name = "K|all|none"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text in ("all", "none"):
            return text
        try:
            return int(text)
        except ValueError:
            self.fail(f"{value!r} is neither a fold number nor 'all' or 'none'", param, ctx)


@click.command("train")
@click.option("--preset", required=True, type=click.Choice(PRESET_CHOICES),
              help="The paper's settings for this kind of model (every one overridable below).")
@click.option("--data", "store", required=True, type=click.Path(), help="Dataset store to train on.")
@click.option("-o", "--out", required=True, type=click.Path(), help="Run directory to create (or resume).")
@click.option("--init", type=click.Path(), default=None,
              help="Pre-trained model or run directory whose whole body starts the run (finetune).")
@click.option("--head", type=click.Choice(HEAD_CHOICES), default=None,
              help="Model head (default: the preset's; finetune-bn = the paper text's head with BatchNorm).")
@click.option("--lr", type=float, default=None, help="Adam learning rate.")
@click.option("--batch-size", type=int, default=None, help="Sequences per step.")
@click.option("--max-epochs", type=int, default=None, help="Epoch limit.")
@click.option("--patience", type=int, default=None, help="Early-stopping patience on val loss (0 = off).")
@click.option("--lr-patience", type=int, default=None,
              help="Epochs without val-loss improvement before the LR is cut x0.1 (0 = off).")
@click.option("--l2", type=float, default=None, help="L2 penalty on the conv kernels (added to the loss).")
@click.option("--class-weights", type=click.Choice(["balanced", "none"]), default=None,
              help="Per-class loss weights computed from the training labels.")
@click.option("--width", type=float, default=None,
              help="Filter-count multiplier; 1.0 (default) is the published network, < 1 for quick tests.")
@click.option("--frozen-body", is_flag=True,
              help="Train only the head (body weights and BatchNorm statistics fixed); "
                   "lr 1e-3 and 20 epochs unless given.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds shuffling, dropout, initialisation and the random validation set.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Accelerator: cuda when a GPU is visible (auto), or cpu.")
@click.option("--devices", type=_Devices(), default="1", show_default=True,
              help="Processes per node: GPUs to use (auto = all visible), or CPU processes. More than one "
                   "process in all trains with DDP; --batch-size stays the global batch.")
@click.option("--num-nodes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Machines (with --devices processes each); see docs/scaling.md for SLURM and torchrun.")
@click.option("--strategy", type=click.Choice(["auto", "ddp", "ddp_spawn"]), default="auto", show_default=True,
              help="auto = ddp when several processes; ddp re-runs this command for the other "
                   "processes of a node; ddp_spawn spawns them from Python.")
@click.option("--sync-batchnorm/--no-sync-batchnorm", default=True, show_default=True,
              help="Under DDP, BatchNorm statistics over the global batch (as one process would).")
@click.option("--bn-momentum", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="BatchNorm momentum, Keras convention (default 0.99 as published; e.g. 0.9 for runs "
                   "of few steps).")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Dropout rate (default: the published 0.1, or the --init model's).")
@click.option("--rc-augment", is_flag=True,
              help="Train on each window or its reverse complement, drawn at random per batch (seeded; "
                   "validation unchanged). Off by default, as published; helps small fine-tuning sets.")
@click.option("--recalibrate-bn", is_flag=True,
              help="After training, recompute the BatchNorm moving statistics with dropout off (one pass "
                   "over the training rows; recorded in model.json). With --resume on a finished run, "
                   "recalibrates its model in place. Off by default, as published.")
@click.option("--precision", type=click.Choice(["32", "bf16", "64"]), default="32", show_default=True,
              help="bf16 = bf16-mixed (bf16 autocast, float32 weights; CPU or GPU, slower than 32 on "
                   "CPUs without avx512_bf16/AMX); 64 = float64, slow, for numerical checks.")
@click.option("--num-workers", type=int, default=None,
              help="DataLoader worker processes (default 0 on the CPU, 4 on a GPU).")
@click.option("--limit-train-batches", type=_BatchLimit(), default=None,
              help="Train on N batches, or a FRACTION of them, per epoch.")
@click.option("--fold", type=_Fold(), default=None,
              help="Validation fold K of the store, 'all' for one model per fold in RUN/fold<K>, or 'none' "
                   "for one model on every training row with the test rows as a validation curve only "
                   "(with --export last) "
                   "(default: the multiclass preset's 'none', the authors' protocol; else fold 0, or a random "
                   "10% of the training rows when the store has no folds).")
@click.option("--train-fraction", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="Train on a random share of the training rows (validation rows stay whole).")
@click.option("--subsample-seed", type=int, default=None,
              help="Seed of the --train-fraction subsample (default: --seed).")
@click.option("--export", type=click.Choice(["best", "last"]), default=None,
              help="Which epoch's weights become the model: lowest val loss, or the last one "
                   "(default: last for the multiclass preset, best for the others).")
@click.option("--k", "k", type=click.IntRange(1, 6), default=None,
              help="kmer preset: k-mer length, 1-6 (default 4: 136 canonical 4-mers).")
@click.option("--gapped", type=click.IntRange(1, 12), default=None, metavar="SPAN",
              help="kmer preset: gapped k-mers, k informative bases within at most SPAN bases "
                   "(gkm-SVM's l = SPAN); default: contiguous k-mers.")
@click.option("--resume", is_flag=True,
              help="Continue the run in RUN from its last checkpoint (same settings); a finished run is left as is.")
@click.option("--overwrite", is_flag=True,
              help="Train again from scratch where RUN holds a run (finished or not); only the run's own files "
                   "are replaced. A folder holding anything else is always refused.")
@threads_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def train_command(preset: str, store: str, out: str, **options) -> None:
    """Train a model with a --preset on the dataset store (--data) into the run directory --out.

    \b
    Presets (docs/method.md section 4; all use Adam and L2 1e-4 on the conv kernels):
      pretrain    head pretrain, lr 1e-3, batch 256, early stopping patience 15
      finetune    head finetune, lr 5e-6, batch 128, patience 10, balanced class
                  weights, LR x0.1 after 5 epochs without improvement; needs --init
      baseline    head finetune from scratch, lr 1e-3, batch 128, patience 10,
                  balanced class weights
      multiclass  head multiclass (one output per store class), lr 1e-3,
                  batch 256, 50 epochs, softmax cross-entropy
      kmer        composition baseline: L2 logistic regression (scikit-learn) on
                  canonical k-mer frequencies (--k, --gapped), balanced class
                  weights, C chosen on the validation rows; seconds to train
    Max epochs 100 unless stated. RUN gets run.json, checkpoints/, learning_curve.csv and,
    once training is complete, the best epoch's model (model.safetensors + model.json).

    \b
    Several GPUs or machines (Lightning DDP; docs/scaling.md):
      chromtransfer train ... --device cuda --devices 4            one node, 4 GPUs
      srun chromtransfer train ... --devices 4 --num-nodes 2       SLURM, 8 GPUs
    The batch size stays the global one (each of W processes gets batch/W rows).
    """
    from pathlib import Path

    from ..runtime import set_cpu_defaults
    from ..training import read_run, train_model
    from ..training.distributed import is_primary

    set_cpu_defaults(options.pop("threads"))
    kmer_options = {k: options.pop(k) for k in ("k", "gapped")}
    if preset == "kmer":
        _train_kmer(store, out, {**options, **kmer_options})
        return
    given = [k for k, v in kmer_options.items() if v is not None]
    if given:
        raise click.UsageError(f"--{given[0]} applies to --preset kmer only")

    try:
        run_dir = train_model(preset=preset, store=store, out=out, **options)
    except KeyboardInterrupt:
        click.echo("interrupted: continue the run with the same command plus --resume", err=True)
        raise
    if not is_primary():  # the other DDP processes: rank 0 reports
        return

    fold_dirs = sorted(p for p in Path(run_dir).glob("fold*") if (p / "run.json").exists())
    for directory in (fold_dirs if str(options.get("fold")).lower() == "all" else [Path(run_dir)]):
        result = read_run(directory).get("result", {})
        click.echo(
            f"model: {directory}  best epoch {result.get('best_epoch')} of {result.get('epochs')}  "
            f"val_loss {result.get('best_val_loss', float('nan')):.4f}  "
            f"val_auroc {result.get('best_val_auroc', float('nan')):.4f}")


def _train_kmer(store: str, out: str, options: dict) -> None:
    """``--preset kmer``: refuse the network's options, fit the composition model, report it."""
    from ..kmer import DEFAULT_K, train_kmer
    from ..training import read_run

    defaults = {"seed": 0, "device": "auto", "devices": "1", "num_nodes": 1, "strategy": "auto",
                "sync_batchnorm": True, "precision": "32", "train_fraction": 1.0, "recalibrate_bn": False,
                "rc_augment": False}
    network_only = [name for name, value in options.items() if name not in KMER_OPTIONS
                    and value not in (None, False) and defaults.get(name, object()) != value
                    and str(defaults.get(name)) != str(value)]
    if network_only:
        raise click.UsageError(f"--{network_only[0].replace('_', '-')} sets up a network; "
                               "the kmer preset does not take it")
    run_dir = train_kmer(store, out, k=options["k"] or DEFAULT_K, span=options["gapped"], fold=options["fold"],
                         seed=options["seed"], class_weights=options["class_weights"] or "balanced",
                         overwrite=options["overwrite"], resume=options["resume"])
    result = read_run(run_dir).get("result", {})
    click.echo(f"model: {run_dir}  k-mer logistic regression, {result.get('n_features')} features, "
               f"C {result.get('C'):g}  val_loss {result.get('best_val_loss', float('nan')):.4f}  "
               f"val_auroc {result.get('best_val_auroc', float('nan')):.4f}  "
               f"({result.get('train_seconds', float('nan')):.1f} s)")


def register(app: click.Group) -> None:
    app.add_command(train_command)
