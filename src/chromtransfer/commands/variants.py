"""``chromtransfer variants``: cell-type-specific effects of the variants of a VCF."""
from __future__ import annotations

import click

from ._options import precision_option


@click.command("variants")
@click.option("--vcf", required=True, type=click.Path(dir_okay=False),
              help="Variants: .vcf, .vcf.gz (bgzip or gzip) or .bcf; multi-allelic records are split.")
@click.option("--genome", required=True, type=click.Path(dir_okay=False),
              help="Genome FASTA / .2bit the VCF was called on (chr20 and 20 are the same chromosome).")
@click.option("--model", "models", multiple=True, required=True, type=click.Path(file_okay=False),
              help="Fine-tuned model (or '--fold all' run: its folds are averaged) of one cell line; "
                   "repeat for several lines.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder (new, empty, or an earlier variants output to resume).")
@click.option("--regions", type=click.Path(dir_okay=False), default=None,
              help="BED of elements: score each variant in the element holding it (else a window "
                   "of the model's length centred on the variant).")
@click.option("--on-ref-mismatch", default="error", show_default=True, type=click.Choice(["error", "skip", "flip"]),
              help="A REF allele that differs from the genome: stop, skip the variant, or swap REF "
                   "and ALT when the ALT matches the genome.")
@click.option("--rc-average/--no-rc-average", default=False, show_default=True,
              help="Average each probability with the reverse-complement window's (twice the work).")
@click.option("--null", "n_null", default=0, show_default=True, type=click.IntRange(min=0),
              help="Random SNVs from the same elements/windows as an empirical null (z-score, p).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the null SNVs.")
@click.option("--motifs", default="JASPAR2022", show_default=True,
              help="Motifs for motifs_lost/motifs_gained: JASPAR2022 (bundled), a MEME/JASPAR file, or none.")
@click.option("--motif-threshold", default=1e-5, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="p-value threshold of a motif site.")
@click.option("--explain", default=0, show_default=True, type=click.IntRange(min=0),
              help="REF/ALT attribution logos for this many top variants (DIR/explain/).")
@click.option("--length", type=click.IntRange(min=1), default=None,
              help="Window length (default: the models' training length).")
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(min=1))
@click.option("--chunk-size", default=10000, show_default=True, type=click.IntRange(min=1),
              help="Variants per chunk (memory and resume granularity).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@precision_option
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for the models.")
@click.option("--quiet", is_flag=True, help="No progress line.")
def variants_command(vcf, genome, models, out, regions, on_ref_mismatch, rc_average, n_null, seed, motifs,
                     motif_threshold, explain, length, batch_size, chunk_size, device, precision, threads,
                     quiet) -> None:
    """Score every variant of a VCF with each cell line's model: p_ref, p_alt, delta_p, delta_logit
    (> 0: the ALT allele raises accessibility), specificity across lines, null z-scores, motif
    sites lost or gained. Writes OUT/variants.tsv.gz, OUT/variants.vcf.gz and figures; a killed
    run resumes when started again with the same arguments."""
    from ..runtime import limit_heap_fragmentation
    from ..variants import score_variants

    limit_heap_fragmentation()  # process-wide: the command's to choose, not the library's

    echo = None if quiet else (lambda line: click.echo(line, err=True))
    summary = score_variants(vcf, genome, list(models), out, regions=regions, on_ref_mismatch=on_ref_mismatch,
                             rc_average=rc_average, null=n_null, seed=seed,
                             motifs=None if motifs.lower() == "none" else motifs,
                             motif_threshold=motif_threshold, explain=explain, length=length,
                             batch_size=batch_size, chunk_size=chunk_size, device=device, threads=threads,
                             precision=precision, progress=not quiet, echo=echo)
    counts = ", ".join(f"{k} {v}" for k, v in summary["counts"].items() if v)
    click.echo(f"{summary['variants']} variants from {summary['records']} records ({counts})")
    if summary.get("variants_per_s"):
        click.echo(f"scored {summary['scored_this_run']} in {summary['seconds_this_run']:.1f} s "
                   f"({summary['variants_per_s']:.1f} variants/s)")
    from pathlib import Path

    written = [Path(p).name for key, p in summary["files"].items() if isinstance(p, str)]
    if summary["files"].get("explain"):
        written.append(f"explain/ ({len(summary['files']['explain'])} figures)")
    click.echo(f"wrote {out}/ ({', '.join(written)})")


def register(app: click.Group) -> None:
    app.add_command(variants_command)
