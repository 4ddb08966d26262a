"""``chromtransfer track``: model predictions along the genome as bigWig tracks."""
from __future__ import annotations

import click


@click.command("track")
@click.option("--model", "models", multiple=True, required=True, type=click.Path(file_okay=False),
              help="Model (or '--fold all' run: folds averaged); repeat for one track per model.")
@click.option("--genome", required=True, type=click.Path(dir_okay=False), help="Genome FASTA / .2bit.")
@click.option("--regions", type=click.Path(dir_okay=False), default=None,
              help="BED of regions to cover (default: whole chromosomes).")
@click.option("--chrom", "chroms", multiple=True, help="Without --regions: only these chromosomes (repeatable).")
@click.option("--step", default=50, show_default=True, type=click.IntRange(min=1),
              help="Bin size: a window every STEP bp, its probability on the STEP bp at its centre.")
@click.option("--length", type=click.IntRange(min=1), default=None,
              help="Window length (default: the models' training length).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Track file (.bw); several models: OUT stem + .MODEL.bw. bedGraph without pybigtools.")
@click.option("--rc-average", is_flag=True, help="Average with the reverse complement's prediction.")
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--overwrite", is_flag=True, help="Replace existing track files.")
def track_command(models, genome, regions, chroms, step, length, out, rc_average, batch_size, device,
                  overwrite) -> None:
    """Write each model's predicted accessibility along regions (or chromosomes) as a bigWig track."""
    from ..prediction_tracks import track

    paths = track(list(models), genome, out, regions=regions, chroms=list(chroms) or None, step=step,
                  length=length, rc_average=rc_average, batch_size=batch_size, device=device, overwrite=overwrite)
    for path in paths:
        click.echo(f"wrote {path}")


def register(app: click.Group) -> None:
    app.add_command(track_command)
