"""``chromtransfer attribute``: per-base attributions (gradient x input or ISM) of a model."""
from __future__ import annotations

import click


@click.command("attribute")
@click.option("--model", "model_dir", required=True, type=click.Path(),
              help="Model directory (a training run or an imported model).")
@click.option("--data", "store", type=click.Path(), default=None, help="Dataset store to read sequences from.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "test", "all"]),
              help="With --data: which rows.")
@click.option("--bed", type=click.Path(dir_okay=False), default=None,
              help="BED (or region TSV) file: attribute the window centred on each region (needs --genome).")
@click.option("--genome", type=click.Path(dir_okay=False), default=None, help="Genome FASTA / .2bit for --bed.")
@click.option("--window", default=600, show_default=True, type=click.IntRange(min=1),
              help="With --bed: window length (bp) centred on each region's midpoint.")
@click.option("--fasta", type=click.Path(dir_okay=False), default=None,
              help="FASTA file of equal-length sequences.")
@click.option("--select", "selection", default="predicted-positive", show_default=True,
              type=click.Choice(["predicted-positive", "all"]),
              help="Attribute only rows predicted positive (probability > --threshold), or all rows.")
@click.option("--threshold", default=0.5, show_default=True, type=float,
              help="Probability above which a row counts as predicted positive.")
@click.option("--method", default="grad_x_input", show_default=True, type=click.Choice(["grad_x_input", "ism"]),
              help="Gradient x input, or in-silico saturation mutagenesis (per-base score: mean delta of "
                   "the alternative bases).")
@click.option("--target", default="probability", show_default=True, type=click.Choice(["probability", "logit"]),
              help="Attribute the post-sigmoid (softmax) probability or the logit.")
@click.option("--class", "class_name", default=None,
              help="Multi-class models: the class (name or index) whose output is attributed.")
@click.option("--batch-size", default=None, type=click.IntRange(min=1),
              help="Sequences per pass (grad_x_input, default 128) or mutants per batch (ism, default 128 "
                   "on the CPU, 1024 on a GPU).")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--no-bigwig", is_flag=True, help="Do not write the bigWig track.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory (attributions.npz, bedGraph/bigWig tracks, manifest.json).")
def attribute_command(model_dir: str, store: str | None, split: str, bed: str | None, genome: str | None,
                      window: int, fasta: str | None, selection: str, threshold: float, method: str, target: str,
                      class_name: str | None, batch_size: int | None, device: str, no_bigwig: bool,
                      out_dir: str) -> None:
    """Per-base attribution scores of a model for sequences of a store, a BED file or a FASTA file.

    Writes OUT/attributions.npz (scores (N, L), for ISM also the deltas (N, L, 4), codes, names,
    coordinates, predictions), genome tracks when the rows have coordinates (bedGraph; bigWig
    when pybigtools is installed; overlapping windows are averaged) and OUT/manifest.json last.
    """
    from ..errors import ChromTransferError

    given = [name for name, value in (("--data", store), ("--bed", bed), ("--fasta", fasta)) if value]
    if len(given) != 1:
        raise ChromTransferError("give exactly one input: --data STORE, --bed FILE --genome FASTA, or --fasta FILE")
    if bed is not None and genome is None:
        raise ChromTransferError("--bed needs --genome (the genome FASTA or .2bit the regions refer to)")
    if genome is not None and bed is None:
        raise ChromTransferError("--genome applies to --bed only")

    from pathlib import Path

    from ..inference import resolve_device
    from ..interpret import pipeline
    from ..modelio import load_model

    dev = resolve_device(device)
    model = load_model(model_dir, device=dev)
    class_index, class_label = pipeline.output_unit(model, class_name)
    if store is not None:
        inputs = pipeline.inputs_from_store(store, split)
    elif bed is not None:
        inputs = pipeline.inputs_from_bed(bed, genome, window)
    else:
        inputs = pipeline.inputs_from_fasta(fasta)
    click.echo(f"{len(inputs)} sequences of {inputs.length} bp from {inputs.source['kind']}")

    def progress(done: int, total: int) -> None:
        click.echo(f"  {method}: {done}/{total} sequences")

    if batch_size is None:
        batch_size = 1024 if method == "ism" and dev.type == "cuda" else 128
    result = pipeline.attribute(model, inputs, method=method, target=target, class_index=class_index,
                                select=selection, threshold=threshold, batch_size=batch_size,
                                device=dev, progress=progress)
    manifest = {
        "model": str(Path(model_dir).resolve()),
        "model_head": model.config.head,
        "method": method,
        "target": target,
        "class": class_label,
        "class_index": class_index,
        "selection": {"mode": selection, "threshold": threshold if selection == "predicted-positive" else None},
        "scores": ("gradient x input summed over channels" if method == "grad_x_input"
                   else "ISM per-base summary: mean delta of the alternative bases (3, or 4 at N)"),
        "inputs": inputs.source,
        "batch_size": batch_size,
        "device": str(dev),
    }
    written = pipeline.write_attributions(out_dir, result, manifest, bigwig=not no_bigwig)
    if isinstance(written["tracks"].get("bigwig"), str):
        click.echo(f"bigWig {written['tracks']['bigwig']}")
    click.echo(f"attributed {result['n_selected']} of {result['n_input']} sequences ({method}, {target}); "
               f"wrote {', '.join(written['files'])} and manifest.json to {out_dir}")


def register(app: click.Group) -> None:
    app.add_command(attribute_command)
