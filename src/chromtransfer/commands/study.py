"""``chromtransfer run``, ``demo`` and ``bootstrap``: the study workflow and Table 1."""
from __future__ import annotations

import click

from ._options import threads_option


@click.command("run")
@click.argument("config", type=click.Path(), required=False)
@click.option("--out", type=click.Path(), default=None,
              help="Study folder (default: a folder named after the config, beside it).")
@click.option("--dry-run", is_flag=True, help="List every stage with what would happen (skip/run/redo) and why; "
                                              "change nothing.")
@click.option("--show-schema", is_flag=True, help="Print every config key with its type, default and meaning.")
def run_command(config: str | None, out: str | None, dry_run: bool, show_schema: bool) -> None:
    """Run (or resume) the whole study described by CONFIG (YAML).

    Stages whose results are up to date are skipped, so a killed study resumes where it stopped (a
    training stage from its last checkpoint); a stage whose config values, input files or
    upstream stages changed is redone, with its dependents, and the log says why.
    """
    from pathlib import Path

    if show_schema:
        from ..workflow.config_schema import schema_table

        click.echo(schema_table(), nl=False)
        return
    if config is None:
        raise click.UsageError("give the study CONFIG (or --show-schema)")
    from ..workflow.study import run_study

    out = out or str(Path(config).with_suffix(""))
    summary = run_study(config, out, echo=click.echo, dry_run=dry_run)
    if dry_run:
        return
    click.echo(f"summary: {Path(out) / 'summary.json'}")
    click.echo(f"report:  {Path(out) / 'report.html'}")
    _print_headline(summary)


@click.command("demo")
@click.option("--out", type=click.Path(), default="demo-output", show_default=True, help="Output folder.")
@click.option("--config", type=click.Path(), default=None, help="Another study config (default: the bundled demo).")
def demo_command(out: str, config: str | None) -> None:
    """Make the bundled synthetic data and run the demo study on it (the real network)."""
    from importlib.resources import files
    from pathlib import Path

    from ..workflow.study import run_study

    config = config or str(files("chromtransfer") / "configs" / "demo.yaml")
    summary = run_study(config, out, echo=click.echo)
    click.echo(f"summary: {Path(out) / 'summary.json'}")
    click.echo(f"report:  {Path(out) / 'report.html'}")
    _print_headline(summary)


def _print_headline(summary: dict) -> None:
    for cell, entry in summary.get("cells", {}).items():
        parts = []
        for kind in ("finetuned", "baseline", "kmer", "pretrained"):
            m = entry.get(kind) or {}
            if m.get("auroc") is not None:
                parts.append(f"{kind} AUROC {m['auroc']:.3f} F1 {m.get('f1_overall') or float('nan'):.3f}")
        click.echo(f"{cell}: " + "; ".join(parts))


@click.command("bootstrap")
@click.option("--data", "store", required=True, type=click.Path(), help="Binary fine-tuning store.")
@click.option("--init", type=click.Path(), default=None,
              help="Pre-trained run or model directory (needed by --preset finetune).")
@click.option("--preset", type=click.Choice(["finetune", "kmer"]), default="finetune", show_default=True,
              help="What each subsample trains: the fine-tuned network (the paper's) or the k-mer "
                   "composition baseline (seconds per replicate).")
@click.option("--fractions", default="0.01,0.05,0.1,0.15,0.2,0.25,0.5,0.75", show_default=True,
              help="Comma-separated shares of the whole training set (drawn label-stratified).")
@click.option("--replicates", default=10, show_default=True, help="Subsamples per fraction (at least 1).")
@click.option("--fold", default=0, show_default=True,
              help="The subsample's rows of this fold validate (early stopping); the others train.")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--max-epochs", type=int, default=None, help="Override the fine-tuning preset's epochs.")
@click.option("--lr", type=float, default=None, help="Override the fine-tuning learning rate.")
@click.option("--batch-size", type=int, default=None, help="Override the fine-tuning batch size.")
@click.option("--include-full", is_flag=True, help="Also fine-tune once on all training rows.")
@click.option("--f1-average", default="weighted", show_default=True, type=click.Choice(["weighted", "macro"]),
              help="How f1_overall combines the two per-class F1 (the paper's overall F1 is 'weighted').")
@click.option("--out", required=True, type=click.Path(), help="Output folder (resumable).")
@threads_option
def bootstrap_command(store, init, preset, fractions, replicates, fold, seed, device, max_epochs, lr, batch_size,
                      include_full, f1_average, out, threads) -> None:
    """Fine-tune on subsamples of the training set: the paper's Table 1 (resumable)."""
    from ..bootstrap import run_bootstrap
    from ..errors import InputError
    from ..runtime import set_cpu_defaults

    set_cpu_defaults(threads)
    try:
        values = [float(f) for f in fractions.split(",") if f.strip()]
    except ValueError as exc:
        raise InputError("--fractions", f"not a list of numbers: {fractions!r}", fix="e.g. 0.05,0.1,0.5") from exc
    options = {k: v for k, v in (("max_epochs", max_epochs), ("lr", lr), ("batch_size", batch_size)) if v is not None}
    if preset == "kmer" and options:
        raise click.UsageError(f"--{next(iter(options)).replace('_', '-')} sets up a network; "
                               "the kmer preset does not take it")
    table = run_bootstrap(store, init, out, preset=preset, fractions=values, replicates=replicates, seed=seed, fold=fold,
                          include_full=include_full, train_options=options, device=device,
                          f1_average=f1_average, echo=click.echo)
    click.echo(table.to_csv(sep="\t", index=False, float_format="%.4f"), nl=False)


def register(app: click.Group) -> None:
    app.add_command(run_command)
    app.add_command(demo_command)
    app.add_command(bootstrap_command)
