"""``chromtransfer evaluate``: test-set predictions, metrics, curves and figures of saved models."""
from __future__ import annotations

import click

from ._options import overwrite_option, precision_option, quiet_option, threads_option


@click.command("evaluate")
@click.option("--model", "models", multiple=True, required=True, type=click.Path(file_okay=False),
              help="Model or training run directory; repeat for several (e.g. the 3 CV folds: an "
                   "ensemble row averages their probabilities).")
@click.option("--data", "store", required=True, type=click.Path(file_okay=False), help="Dataset store to predict.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["test", "train", "all"]),
              help="Rows of the store to evaluate.")
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(min=1),
              help="Sequences per forward pass.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--rc-average", is_flag=True, help="Average each probability with that of the reverse complement.")
@click.option("--threshold", default=0.5, show_default=True, type=float,
              help="Binary predictions are positive when the probability exceeds this.")
@click.option("--bins", "n_bins", default=10, show_default=True, type=click.IntRange(min=1),
              help="Equal-width probability bins of the calibration curve and the ECE.")
@click.option("--f1-average", default="weighted", show_default=True, type=click.Choice(["weighted", "macro"]),
              help="How f1_overall combines the two per-class F1: class-size weighted (the paper's overall "
                   "F1) or their plain mean (always reported as f1_macro).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output directory: predictions.tsv, metrics.tsv, metrics.json, roc/pr/calibration .tsv and .png.")
@overwrite_option("a complete evaluation")
@precision_option
@threads_option
@quiet_option
def evaluate_command(models: tuple[str, ...], store: str, split: str, batch_size: int, device: str,
                     rc_average: bool, threshold: float, n_bins: int, f1_average: str, out: str, overwrite: bool,
                     precision: str, threads: int | None, quiet: bool) -> None:
    """Predict a split of a dataset store with one or more models and write predictions, metrics
    (AUROC, AUPRC, per-class and overall F1, precision, recall, Brier score, ECE; multi-class:
    one-vs-rest AUROC and AUPRC per class), curve tables and figures.

    predictions.tsv has one row per sequence and model: name, label, model, then score (binary;
    the column of 'chromtransfer predict') or one column per class."""
    import pandas as pd

    from ..evaluation.evaluate import evaluate_models
    from ..progress import progress_bar
    from ..runtime import set_cpu_defaults

    set_cpu_defaults(threads)
    with progress_bar(None, "evaluate", quiet=quiet) as progress:
        result = evaluate_models(list(models), store, split=split, out=out, batch_size=batch_size, device=device,
                                 rc_average=rc_average, threshold=threshold, n_bins=n_bins, f1_average=f1_average,
                                 echo=lambda line: click.echo(line, err=True), overwrite=overwrite,
                                 progress=progress, precision=precision)
    for note in result["notes"]:
        click.echo(f"note: {note}", err=True)
    table = pd.read_csv(result["files"]["metrics.tsv"], sep="\t")
    if result["task"] == "binary":
        keep = ["model", "n", "n_positive", "auroc", "auprc", "f1_negative", "f1_positive", "f1_overall", "ece"]
    else:
        keep = ["model", "n", "accuracy", "auroc_macro", "auprc_macro"] + [
            f"auroc_{c}" for c in result["classes"]]
    click.echo(table[keep].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    click.echo(f"wrote {out}/ (predictions.tsv, metrics.tsv, metrics.json, roc/pr/calibration .tsv and .png)")


def register(app: click.Group) -> None:
    app.add_command(evaluate_command)
