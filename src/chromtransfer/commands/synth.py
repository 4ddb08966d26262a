"""``chromtransfer synth``: write the bundled synthetic data set (genome, rDHS, labels, truth)."""
from __future__ import annotations

import click

from ._options import overwrite_option


@click.command("synth")
@click.option("--out", required=True, type=click.Path(), help="Output folder.")
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed: identical files).")
@click.option("--size", default="small", show_default=True, type=click.Choice(["tiny", "small", "demo", "medium"]),
              help="small: 24 Mb, ~700 positives per cell line; demo: 16 Mb, ~150 (the demo study); "
                   "medium: 80 Mb, ~2500; tiny: for tests.")
@click.option("--strength", default=3.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Exponent on motif probabilities when drawing planted sites (higher: closer to consensus).")
@overwrite_option("a complete synthetic data set")
def synth_command(out: str, seed: int, size: str, strength: float, overwrite: bool) -> None:
    """Synthetic genome with planted JASPAR 2022 motifs and six pseudo cell lines.

    Writes genome.fa, rdhs.bed, label_matrix.tsv, open/<CELL>.bed, blacklist.bed, truth.json
    (the driver motifs of each cell line, the ubiquitous and the decoy motifs), and
    variants.vcf.gz with variants_truth.tsv: SNVs that break a planted driver site, SNVs at
    non-motif bases of the same elements, and background SNVs.
    """
    import json

    from ..datasets.synthetic import make_synthetic

    data = make_synthetic(out, seed=seed, size=size, strength=strength, overwrite=overwrite)
    truth = json.loads(data.truth.read_text())
    counts = truth["counts"]
    click.echo(f"wrote {data.out}: {len(truth['chromosomes'])} chromosomes, "
               f"{sum(truth['chromosomes'].values())} bp, {counts['sites']} open sites")
    click.echo("  positives: " + ", ".join(f"{c}={n}" for c, n in counts["positives"].items())
               + f"; open in none: {counts['open_in_none']}; open in several: {counts['open_in_several']}")
    click.echo("  SNVs: " + ", ".join(f"{kind}={n}" for kind, n in counts["variants"].items()))
    for name in ("genome", "rdhs", "label_matrix", "blacklist", "truth", "variants", "variants_truth"):
        click.echo(f"  {name}: {getattr(data, name)}")


def register(app: click.Group) -> None:
    app.add_command(synth_command)
