"""``chromtransfer prepare pretrain|finetune``: build dataset stores from a genome and region files."""
from __future__ import annotations

import click

from ._options import overwrite_option

# Options that take several values after one flag (``--positives a.bed b.bed``); repeating the
# flag works as well.
_GREEDY = ("--positives", "--exclude-positives", "--blacklist", "--labels-csv")


class _GreedyCommand(click.Command):
    """A command whose list options also accept several values after one flag.

    ``--positives a.bed b.bed --genome g.fa`` is rewritten to
    ``--positives a.bed --positives b.bed --genome g.fa`` before click parses it.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rewritten: list[str] = []
        current: str | None = None
        taken = 0
        for i, token in enumerate(args):
            if token == "--":
                rewritten.extend(args[i:])
                break
            if token.startswith("-") and len(token) > 1:
                current = token if token in _GREEDY else None
                taken = 0
                rewritten.append(token)
                continue
            if current is not None:
                if taken:
                    rewritten.append(current)
                taken += 1
            rewritten.append(token)
        return super().parse_args(ctx, rewritten)


@click.group("prepare")
def prepare_group() -> None:
    """Build dataset stores (pre-training and fine-tuning sets) from a genome and region files."""


def _common_split_options(func):
    func = click.option("--max-n-fraction", default=0.1, show_default=True, type=click.FloatRange(0, 1),
                        help="Drop windows with a larger share of N (non-ACGT) bases.")(func)
    func = click.option("--fold-scheme", default="rows", show_default=True, type=click.Choice(["rows", "chromosomes"]),
                        help="Validation folds over training rows (stratified by label) or whole chromosomes.")(func)
    func = click.option("--seed", default=0, show_default=True, help="Seed of negative sampling and folds.")(func)
    func = click.option("--folds", default=3, show_default=True, type=click.IntRange(0, 127),
                        help="Validation folds over the training rows.")(func)
    func = click.option("--exclude-chroms", default=None,
                        help="Chromosomes left out entirely, e.g. chrX,chrY,chrM (the paper used autosomes).")(func)
    func = click.option("--test-chroms", default="chr2,chr3", show_default=True,
                        help="Test-set chromosomes, comma-separated (names the genome lacks are refused); "
                             "'all' for a test-only store, 'none' for no test set.")(func)
    func = click.option("--min-distance", default=300, show_default=True, type=click.IntRange(0),
                        help="Background windows lie at least this many bp from every positive region.")(func)
    func = click.option("--length", default=600, show_default=True, type=click.IntRange(1),
                        help="Window length (bp), centred on each region.")(func)
    return func


def _report(path, as_json: bool) -> None:
    import json

    from ..datasets.store import open_store
    from ..datasets.summary import store_summary

    summary = store_summary(open_store(path))
    if as_json:
        summary = {k: v for k, v in summary.items() if k != "manifest"}
        summary["dropped"] = open_store(path).manifest.get("dropped", {})
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"wrote {path}: {summary['rows']} windows of {summary['length']} bp "
               f"({summary['positives']} positives, {summary['negatives']} negatives)")
    click.echo("  " + ", ".join(f"{k}: {v}" for k, v in summary["splits"].items())
               + ("; folds: " + ", ".join(f"{k}={v}" for k, v in summary["folds"].items()) if summary["folds"] else ""))
    click.echo("  labels: " + ", ".join(f"{k}={v}" for k, v in summary["labels"].items()))
    dropped = summary["manifest"].get("dropped", {})
    if dropped:
        click.echo("  dropped/filtered: " + ", ".join(f"{k}={v}" for k, v in dropped.items()))
    for message in summary["warnings"]:
        click.echo(f"warning: {path}: {message}", err=True)


@prepare_group.command("pretrain", cls=_GreedyCommand)
@click.option("--genome", required=True, type=click.Path(), help="Genome FASTA (plain, gzip, bgzip) or .2bit.")
@click.option("--positives", multiple=True, required=True, type=click.Path(),
              help="Open-chromatin regions (BED/narrowPeak/TSV); several files after one flag, or the flag repeated.")
@click.option("--exclude-positives", multiple=True, type=click.Path(),
              help="Drop positives overlapping these regions (the cell-type sets).")
@click.option("--blacklist", multiple=True, type=click.Path(), help="Regions negatives must not overlap.")
@_common_split_options
@click.option("--neg-ratio", default=None, type=float,
              help="Negatives per positive, drawn at random per split (default: every candidate tile).")
@click.option("--gc-match", is_flag=True, help="Draw negatives with the positives' GC distribution (needs --neg-ratio).")
@click.option("--summit", "use_summit", is_flag=True, help="Centre narrowPeak windows on the summit.")
@click.option("--drop-missing-chroms", is_flag=True,
              help="Drop positives on chromosomes the genome lacks instead of stopping.")
@click.option("--distance-from", default="region", show_default=True, type=click.Choice(["region", "window"]),
              help="Measure --min-distance from each positive region (the paper) or from its window.")
@click.option("--out", required=True, type=click.Path(), help="Output store directory.")
@overwrite_option("a complete store")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def prepare_pretrain_command(genome, positives, exclude_positives, blacklist, length, min_distance, test_chroms,
                             exclude_chroms, folds, seed, fold_scheme, max_n_fraction, neg_ratio, gc_match,
                             use_summit, drop_missing_chroms, distance_from, out, overwrite, as_json) -> None:
    """Pre-training set: POSITIVES (minus --exclude-positives) against genome tiles.

    Negatives are the genome tiled in non-overlapping windows, minus windows with N (gaps),
    overlapping --blacklist, or within --min-distance of any positive.
    """
    from ..datasets.pretrain import prepare_pretrain

    path = prepare_pretrain(genome, list(positives), out, exclude_positives=list(exclude_positives),
                            blacklist=list(blacklist), length=length, min_distance=min_distance,
                            neg_ratio=neg_ratio, gc_match=gc_match, test_chroms=test_chroms, folds=folds,
                            seed=seed, max_n_fraction=max_n_fraction, use_summit=use_summit,
                            exclude_chroms=exclude_chroms, fold_scheme=fold_scheme,
                            drop_missing_chroms=drop_missing_chroms, distance_from=distance_from,
                            overwrite=overwrite)
    _report(path, as_json)


@prepare_group.command("finetune", cls=_GreedyCommand)
@click.option("--genome", required=True, type=click.Path(), help="Genome FASTA (plain, gzip, bgzip) or .2bit.")
@click.option("--cell", default=None, help="Cell line of the binary set (case-insensitive).")
@click.option("--labels-csv", multiple=True, type=click.Path(),
              help="Published label files (chrN:start-end,LABEL), a folder of <CELL>.csv or the files.")
@click.option("--label-matrix", type=click.Path(), default=None, help="TSV: regions x cell lines, 1 = open.")
@click.option("--cell-table", type=click.Path(), default=None,
              help="TSV: regions x cell lines holding the published labels (CELL, CELL_NEG, Negative or empty), "
                   "read as a label matrix: the paper's balanced sets.")
@click.option("--signal-matrix", type=click.Path(), default=None,
              help="TSV: regions x replicate signal columns (<CELL>_rep1 ...): log10, global z, open if z > 1.64.")
@click.option("--cells", default=None, help="Cell lines considered, comma-separated (default: all in the input).")
@click.option("--task", default="binary", show_default=True, type=click.Choice(["binary", "multiclass"]))
@click.option("--multiclass-set", default="authors", show_default=True, type=click.Choice(["authors", "union"]),
              help="Rows of a multi-class set: each line's positives plus the genomic background windows "
                   "(the authors'; no negative rDHS), or the union of the binary sets.")
@click.option("--neg-ratio", default=3.0, show_default=True, type=float,
              help="Negatives per positive for matrix inputs (the paper: 2.5 to 3.5).")
@click.option("--background", default=None, type=click.IntRange(0),
              help="Genomic background windows to add (default: matrices a tenth of the rDHS rows, at most 1000; published files 0).")
@click.option("--blacklist", multiple=True, type=click.Path(), help="Regions background windows must not overlap.")
@click.option("--gc-match", is_flag=True,
              help="Draw negatives and background windows with the positives' GC distribution (bins of 2 %).")
@_common_split_options
@click.option("--threshold", default=1.64, show_default=True, help="Signal matrix: z-score threshold.")
@click.option("--pseudocount", default=0.0, show_default=True, help="Signal matrix: added before log10.")
@click.option("--out", required=True, type=click.Path(), help="Output store directory.")
@overwrite_option("a complete store")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def prepare_finetune_command(genome, cell, labels_csv, label_matrix, cell_table, signal_matrix, cells, task,
                             multiclass_set, neg_ratio, background, blacklist, gc_match, length, min_distance, test_chroms, exclude_chroms,
                             folds, seed, fold_scheme, max_n_fraction, threshold, pseudocount, out, overwrite,
                             as_json) -> None:
    """Fine-tuning set of one cell line (or the multi-class set of all lines).

    Positives are regions open in --cell and in no other considered line; negatives are drawn
    from the other lines' positives and the regions open in none (--neg-ratio), plus
    --background genomic windows. Published label files are used as given.
    """
    from ..datasets.finetune import prepare_finetune

    path = prepare_finetune(genome, out, cell=cell, labels_csv=list(labels_csv) or None, label_matrix=label_matrix,
                            cell_table=cell_table, signal_matrix=signal_matrix, gc_match=gc_match, cells=cells, task=task, neg_ratio=neg_ratio,
                            background=background, blacklist=list(blacklist), length=length,
                            min_distance=min_distance, test_chroms=test_chroms, folds=folds, seed=seed,
                            max_n_fraction=max_n_fraction, fold_scheme=fold_scheme, exclude_chroms=exclude_chroms,
                            threshold=threshold, pseudocount=pseudocount, multiclass_set=multiclass_set,
                            overwrite=overwrite)
    _report(path, as_json)


def register(app: click.Group) -> None:
    app.add_command(prepare_group)
