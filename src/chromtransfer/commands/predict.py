"""``chromtransfer predict``: score sequences from a FASTA file or regions of a genome."""
from __future__ import annotations

import click

from ._options import overwrite_option, quiet_option, threads_option


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
              help="Output TSV: name, then score (binary) or one column per class, then n_fraction.")
@overwrite_option("an existing --out file")
@click.option("--rc-average", is_flag=True, help="Average with the reverse complement's prediction.")
@click.option("--batch-size", default=1024, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--precision", default="float32", show_default=True,
              help="Arithmetic: float32; bf16 (bf16 weights and activations, float32 sums: faster on GPUs "
                   "and CPUs with avx512_bf16/AMX, slower elsewhere, probabilities within ~1e-2); float64 "
                   "reproduces a Keras float64 run to ~1e-13 (slower).")
@click.option("--max-n-fraction", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Sequences with a larger share of N bases are still scored but flagged: see the "
                   "n_fraction column and the warning.")
@threads_option
@quiet_option
def predict_command(model_dir: str, fasta: str | None, bed: str | None, genome: str | None,
                    window: int | None, out_path: str, overwrite: bool, rc_average: bool, batch_size: int,
                    device: str, precision: str, max_n_fraction: float, threads: int | None, quiet: bool) -> None:
    """Write the model's probabilities for every sequence (--fasta) or region (--bed --genome).

    Rows are named by the FASTA record name, or chrom:start-end for BED regions; n_fraction is
    each sequence's share of N bases (above --max-n-fraction the score means little, and a
    warning counts them). The output is written to a temporary file and renamed, so an
    interrupted run leaves no partial table; an existing file is replaced only with --overwrite.
    """
    from ..artifacts import check_output_file
    from ..errors import ChromTransferError

    if (fasta is None) == (bed is None):
        raise ChromTransferError("give exactly one of --fasta or --bed (with --genome)")
    if bed is not None and genome is None:
        raise ChromTransferError("--bed needs --genome (the genome FASTA or .2bit the regions refer to)")
    if fasta is not None and (genome is not None or window is not None):
        raise ChromTransferError("--genome and --window apply to --bed only")

    from ..precision import resolve_precision

    compute = None if precision == "float64" else resolve_precision(precision)
    check_output_file(out_path, overwrite=overwrite)

    import torch

    from ..devices import resolve_device
    from ..inference import predict_fasta, predict_regions, write_table
    from ..modelio import load_model
    from ..progress import progress_bar
    from ..runtime import set_cpu_defaults

    set_cpu_defaults(threads)
    dev = resolve_device(device)
    model = load_model(model_dir, device=dev)
    if precision == "float64":
        model = model.to(torch.float64)
    with progress_bar(None, "predict", quiet=quiet) as progress:
        options = dict(batch_size=batch_size, device=dev, rc_average=rc_average, progress=progress,
                       precision=compute)
        if fasta is not None:
            table = predict_fasta(model, fasta, **options)
        else:
            table = predict_regions(model, bed, genome, window=window, **options)
    write_table(table, out_path)
    flagged = int((table["n_fraction"] > max_n_fraction).sum())
    if flagged:
        click.echo(f"warning: {flagged} of {len(table)} sequences have more than {max_n_fraction:.0%} N bases "
                   "(see the n_fraction column): their scores mean little", err=True)
    click.echo(f"wrote {len(table)} predictions to {out_path}")


def register(app: click.Group) -> None:
    app.add_command(predict_command)
