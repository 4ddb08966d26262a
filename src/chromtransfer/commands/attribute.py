"""``chromtransfer attribute``: per-base attributions (gradient x input, ISM or DeepLIFT/SHAP) of a model."""
from __future__ import annotations

import warnings

import click

from ._options import overwrite_option, precision_option, quiet_option, threads_option

#: What ``scores`` holds, per method (the manifest's ``scores`` entry).
SCORES = {
    "grad_x_input": "gradient x input summed over channels",
    "ism": "ISM per-base summary: the largest change (signed) of the alternative bases",
    "deeplift_shap": "DeepLIFT/SHAP contribution of the present base (mean over references)",
}


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
@click.option("--method", default="grad_x_input", show_default=True,
              type=click.Choice(["grad_x_input", "ism", "deeplift_shap"]),
              help="Gradient x input, in-silico saturation mutagenesis (per-base score: the largest change), "
                   "or DeepLIFT/SHAP contributions against dinucleotide-shuffled references.")
@click.option("--references", default=None, type=click.IntRange(min=1),
              help="deeplift_shap: dinucleotide-shuffled references per sequence (default 20).")
@click.option("--seed", default=0, show_default=True, type=int, help="deeplift_shap: seed of the shuffles.")
@click.option("--target", default="probability", show_default=True, type=click.Choice(["probability", "logit"]),
              help="Attribute the post-sigmoid (softmax) probability or the logit.")
@click.option("--class", "class_name", default=None,
              help="Multi-class models: the class (name or index) whose output is attributed.")
@click.option("--batch-size", default=None, type=click.IntRange(min=1),
              help="Sequences per pass (grad_x_input, default 128), mutants per batch (ism, default 128 "
                   "on the CPU, 1024 on a GPU) or sequence-reference pairs per pass (deeplift_shap, "
                   "default 128 on the CPU, 1024 on a GPU).")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--no-bigwig", is_flag=True, help="Do not write the bigWig track.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory (attributions.npz, bedGraph/bigWig tracks, manifest.json).")
@overwrite_option("complete attributions")
@click.option("--max-n-fraction", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Sequences with a larger share of N bases are attributed but flagged (n_fraction in "
                   "attributions.npz, and a warning).")
@precision_option
@threads_option
@quiet_option
def attribute_command(model_dir: str, store: str | None, split: str, bed: str | None, genome: str | None,
                      window: int, fasta: str | None, selection: str, threshold: float, method: str,
                      references: int | None, seed: int, target: str, class_name: str | None, batch_size: int | None, device: str, no_bigwig: bool,
                      out_dir: str, overwrite: bool, max_n_fraction: float, precision: str, threads: int | None,
                      quiet: bool) -> None:
    """Per-base attribution scores of a model for sequences of a store, a BED file or a FASTA file.

    Writes OUT/attributions.npz (scores (N, L); for ISM also the deltas (N, L, 4); for
    grad_x_input the gradients and for deeplift_shap the hypothetical contributions as
    hypothetical (N, L, 4), and for deeplift_shap the convergence delta of each sequence; codes,
    names, coordinates, predictions, n_fraction), genome tracks when the rows have coordinates
    (bedGraph; bigWig when pybigtools is installed; overlapping windows are averaged) and
    OUT/manifest.json last (for deeplift_shap with the convergence summary; a warning when a
    sequence's delta is above the tolerance). A selection of no sequence stops with an error before
    anything is written.
    """
    from ..artifacts import check_output_dir
    from ..errors import ChromTransferError
    from ..interpret.attributions import ATTRIBUTIONS_KIND
    from ..interpret.deeplift import ConvergenceWarning
    from ..precision import resolve_precision

    precision = resolve_precision(precision)

    given = [name for name, value in (("--data", store), ("--bed", bed), ("--fasta", fasta)) if value]
    if len(given) != 1:
        raise ChromTransferError("give exactly one input: --data STORE, --bed FILE --genome FASTA, or --fasta FILE")
    if bed is not None and genome is None:
        raise ChromTransferError("--bed needs --genome (the genome FASTA or .2bit the regions refer to)")
    if genome is not None and bed is None:
        raise ChromTransferError("--genome applies to --bed only")
    if references is not None and method != "deeplift_shap":
        raise ChromTransferError("--references applies to --method deeplift_shap only")
    check_output_dir(out_dir, ATTRIBUTIONS_KIND, overwrite=overwrite)

    from pathlib import Path

    from ..devices import resolve_device
    from ..interpret import pipeline
    from ..modelio import load_model
    from ..progress import progress_bar
    from ..runtime import set_cpu_defaults

    set_cpu_defaults(threads)
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

    if batch_size is None:
        batch_size = 1024 if method in ("ism", "deeplift_shap") and dev.type == "cuda" else 128
    with progress_bar(None, method, quiet=quiet) as progress, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        result = pipeline.attribute(model, inputs, method=method, target=target, class_index=class_index,
                                    select=selection, threshold=threshold, batch_size=batch_size,
                                    device=dev, progress=progress, precision=precision,
                                    model_path=str(Path(model_dir).resolve()), references=references, seed=seed)
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            click.echo(f"warning: {warning.message}", err=True)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if len(result) == 0:
        raise ChromTransferError(
            f"no sequence selected: none of the {result.n_candidates} has a predicted probability above "
            f"--threshold {threshold:g}; use --select all, or a lower --threshold")
    flagged = int((result.n_fraction > max_n_fraction).sum())
    if flagged:
        click.echo(f"warning: {flagged} of {len(result)} sequences have more than {max_n_fraction:.0%} "
                   "N bases (n_fraction in attributions.npz): their attributions mean little", err=True)
    manifest = {
        "model": str(Path(model_dir).resolve()),
        "model_head": model.config.head,
        "method": method,
        "target": target,
        "class": class_label,
        "class_index": class_index,
        "selection": {"mode": selection, "threshold": threshold if selection == "predicted-positive" else None},
        "scores": SCORES[method],
        "inputs": inputs.source,
        "batch_size": batch_size,
        "device": str(dev),
        "precision": precision,
        "max_n_fraction": max_n_fraction,
        "flagged_n_fraction": flagged,
        **{key: result.manifest[key] for key in ("deeplift_shap",) if key in result.manifest},
    }
    written = result.save(out_dir, manifest, bigwig=not no_bigwig, overwrite=overwrite)
    if isinstance(written["tracks"].get("bigwig"), str):
        click.echo(f"bigWig {written['tracks']['bigwig']}")
    click.echo(f"attributed {len(result)} of {result.n_candidates} sequences ({method}, {target}); "
               f"wrote {', '.join(written['files'])} and manifest.json to {out_dir}")


def register(app: click.Group) -> None:
    app.add_command(attribute_command)
