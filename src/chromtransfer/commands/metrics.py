"""``chromtransfer metrics``: metrics of any table of predictions, one row per group."""
from __future__ import annotations

import sys

import click


@click.command("metrics")
@click.argument("predictions", type=click.Path(dir_okay=False))
@click.option("--score", required=True,
              help="Column with the predicted probability (or score) of the positive class.")
@click.option("--label", required=True,
              help="Column with the true label: 0/1, True/False, or strings with --positive-label.")
@click.option("--group", default=None, help="Column to group rows by (one output row per group, in order of appearance).")
@click.option("--positive-label", default=None, help="The label value of positive rows (for string labels).")
@click.option("--sep", default="auto", show_default=True,
              help="Field separator: auto (tab if the first line has one, else comma), tab, comma, semicolon, "
                   "space, or one character.")
@click.option("--no-header", is_flag=True, help="The file has no header line.")
@click.option("--columns", default=None,
              help="Comma-separated column names (with --no-header; without it they replace the header). "
                   "Without a header and --columns, columns are named 1, 2, 3, ...")
@click.option("--threshold", default=0.5, show_default=True, type=float,
              help="A row is predicted positive when score > threshold (for F1, precision, recall).")
@click.option("--bins", "n_bins", default=10, show_default=True, type=click.IntRange(min=1),
              help="Equal-width probability bins for the expected calibration error.")
@click.option("--f1-average", default="weighted", show_default=True, type=click.Choice(["weighted", "macro"]),
              help="How f1_overall combines the two per-class F1: class-size weighted (the paper's overall "
                   "F1) or their plain mean (always reported as f1_macro).")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Write the TSV here (atomically) instead of standard output.")
def metrics_command(predictions: str, score: str, label: str, group: str | None, positive_label: str | None,
                    sep: str, no_header: bool, columns: str | None, threshold: float, n_bins: int,
                    f1_average: str, out: str | None) -> None:
    """Compute AUROC, AUPRC, F1 per class and overall, precision, recall, Brier score and ECE from
    a CSV/TSV table of PREDICTIONS (gzip ok) and print them as a TSV, one row per group.

    auprc is the area under the interpolated PR curve (R's PRROC auc.integral, the paper's AUPRC);
    average_precision is scikit-learn's step-wise area. f1_overall is the class-size weighted F1
    (the paper's overall F1), f1_macro the plain mean of the two per-class F1. Metrics that are undefined for a group (one class only) are nan,
    with a note on standard error.

    Example: chromtransfer metrics eval.csv.gz --no-header --columns score,cell,true_label,binary
    --score score --label binary --group cell
    """
    from ..artifacts import write_text
    from ..evaluation.tables import metrics_by_group, read_predictions

    names = columns.split(",") if columns else None
    table = read_predictions(predictions, score, label, group=group, positive_label=positive_label, sep=sep,
                             header=not no_header, columns=names)
    result, notes = metrics_by_group(table, threshold=threshold, n_bins=n_bins, f1_average=f1_average,
                                     group_name=group or "group")
    text = result.to_csv(sep="\t", index=False, na_rep="nan", lineterminator="\n")
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if out:
        write_text(out, text)
    else:
        sys.stdout.write(text)


def register(app: click.Group) -> None:
    app.add_command(metrics_command)
