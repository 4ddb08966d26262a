"""``chromtransfer info model|dataset``: describe the network or a dataset store."""
from __future__ import annotations

import json

import click


@click.group("info")
def info_group() -> None:
    """Describe the network or a dataset store."""


@info_group.command("model")
@click.option("--head", default="pretrain", show_default=True,
              type=click.Choice(["pretrain", "finetune", "finetune-bn", "multiclass", "multiclass-1024"]))
@click.option("--model", "model_dir", type=click.Path(), default=None,
              help="Describe a saved model directory instead of a fresh network.")
@click.option("--length", default=600, show_default=True, help="Input length (bp) for the output shapes.")
@click.option("--width", default=1.0, show_default=True, help="Filter-count multiplier (1.0 = published network).")
def info_model(head: str, model_dir: str | None, length: int, width: float) -> None:
    """Print the layer table and the parameter counts (Keras' total and the trainable count)."""
    from ..modelio import load_model
    from ..models import build_model, count_parameters, layer_table

    net = load_model(model_dir) if model_dir else build_model(head, width=width)
    if hasattr(net, "describe"):  # the k-mer composition model has no layers to list
        for line in net.describe():
            click.echo(line)
        return
    rows = layer_table(net, length)
    name_width = max(len(r["name"]) for r in rows)
    click.echo(f"{'layer':<{name_width}}  {'type':<12} {'output':<10} {'parameters':>10}  detail")
    for r in rows:
        shape = "x".join(str(s) for s in r["output"])
        click.echo(f"{r['name']:<{name_width}}  {r['type']:<12} {shape:<10} {r['parameters']:>10}  {r['detail']}")
    counts = count_parameters(net)
    click.echo(f"head: {net.config.head}")
    click.echo(f"total parameters: {counts['total']}")
    click.echo(f"trainable parameters: {counts['trainable']}")
    click.echo(f"non-trainable parameters: {counts['non_trainable']}")


@info_group.command("dataset")
@click.argument("store", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info_dataset(store: str, as_json: bool) -> None:
    """Print counts per split, fold and label, and the manifest of a dataset STORE."""
    from ..datasets.store import open_store
    from ..datasets.summary import store_summary

    summary = store_summary(open_store(store))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"store: {store}")
    click.echo(f"task: {summary['task']}  classes: {', '.join(summary['classes'])}  "
               f"rows: {summary['rows']}  length: {summary['length']}")
    click.echo(f"positives: {summary['positives']}  negatives: {summary['negatives']}")
    for split, n in summary["splits"].items():
        by_class = summary["by_split_class"][split]
        click.echo(f"  {split:<6} {n:>9}  " + "  ".join(f"{c}={v}" for c, v in by_class.items()))
    for fold, n in summary["folds"].items():
        click.echo(f"  fold {fold}: {n} validation rows")
    click.echo("labels: " + ", ".join(f"{k}={v}" for k, v in summary["labels"].items()))
    click.echo("composition (GC fraction mean +- sd, CpG per 100 bp):")
    for part, by_class in summary["composition"].items():
        click.echo(f"  {part:<6} " + "  ".join(
            f"{c}: n={v['n']} GC {v['gc_mean']:.3f}+-{v['gc_sd']:.3f} CpG {v['cpg_per_100bp']:.2f}" if v["n"]
            else f"{c}: n=0" for c, v in by_class.items()))
    sampling = {k: summary["manifest"].get("parameters", {}).get(k) for k in ("gc_match", "gc_bins")}
    if sampling["gc_match"]:
        click.echo(f"GC-matched negatives: yes ({sampling['gc_bins']} bins)")
    for message in summary["warnings"]:
        click.echo(f"warning: {store}: {message}", err=True)
    click.echo("manifest:")
    click.echo(json.dumps(summary["manifest"], indent=2))


def register(app: click.Group) -> None:
    app.add_command(info_group)
