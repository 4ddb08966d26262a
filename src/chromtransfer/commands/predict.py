"""``chromtransfer predict``: score sequences from a FASTA file or regions of a genome."""
from __future__ import annotations

import click


@click.command("predict")
@click.option("--model", "model_dir", required=True, type=click.Path(),
              help="Model directory (a training run or an imported model).")
@click.option("--fasta", type=click.Path(dir_okay=False), default=None,
              help="FASTA file of sequences to score (any lengths; plain or gzip).")
@click.option("--bed", type=click.Path(dir_okay=False), default=None,
              help="BED file of regions to score (needs --genome).")
@click.option("--genome", type=click.Path(dir_okay=False), default=None,
              help="Genome FASTA / .2bit for --bed (chr20 and 20 are the same chromosome).")
@click.option("--window", type=click.IntRange(min=1), default=None,
              help="With --bed: score the WINDOW bp centred on each region instead of the region as given.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Output TSV: name, then score (binary) or one column per class.")
@click.option("--rc-average", is_flag=True, help="Average with the reverse complement's prediction.")
@click.option("--batch-size", default=1024, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--precision", default="float32", show_default=True, type=click.Choice(["float32", "float64"]),
              help="Arithmetic; float64 reproduces a Keras float64 run to ~1e-13 (slower).")
def predict_command(model_dir: str, fasta: str | None, bed: str | None, genome: str | None,
                    window: int | None, out_path: str, rc_average: bool, batch_size: int, device: str,
                    precision: str) -> None:
    """Write the model's probabilities for every sequence (--fasta) or region (--bed --genome).

    Rows are named by the FASTA record name, or chrom:start-end for BED regions. The output is
    written to a temporary file and renamed, so an interrupted run leaves no partial table.
    """
    from ..errors import ChromTransferError

    if (fasta is None) == (bed is None):
        raise ChromTransferError("give exactly one of --fasta or --bed (with --genome)")
    if bed is not None and genome is None:
        raise ChromTransferError("--bed needs --genome (the genome FASTA or .2bit the regions refer to)")
    if fasta is not None and (genome is not None or window is not None):
        raise ChromTransferError("--genome and --window apply to --bed only")

    import torch

    from ..inference import predict_fasta, predict_regions, resolve_device, write_table
    from ..modelio import load_model

    dev = resolve_device(device)
    model = load_model(model_dir, device=dev)
    if precision == "float64":
        model = model.to(torch.float64)
    options = dict(batch_size=batch_size, device=dev, rc_average=rc_average)
    if fasta is not None:
        table = predict_fasta(model, fasta, **options)
    else:
        table = predict_regions(model, bed, genome, window=window, **options)
    write_table(table, out_path)
    click.echo(f"wrote {len(table)} predictions to {out_path}")


def register(app: click.Group) -> None:
    app.add_command(predict_command)
