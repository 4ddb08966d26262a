"""``chromtransfer motifs scan|enrich|discover``: JASPAR motif sites, the KS ranking of TFs, de novo motifs."""
from __future__ import annotations

import click

from ._options import overwrite_option, quiet_option, threads_option


@click.group("motifs")
def motifs_group() -> None:
    """Scan sequences for motif sites (FIMO p-values), rank TFs by attribution scores, find de novo motifs."""


@motifs_group.command("scan")
@click.option("--data", "store", type=click.Path(), default=None, help="Dataset store to scan.")
@click.option("--split", default=None, type=click.Choice(["train", "test", "all"]),
              help="Rows of the store to scan (default: all).")
@click.option("--bed", type=click.Path(), default=None, help="Region file (BED/narrowPeak/TSV) to cut from --genome.")
@click.option("--genome", type=click.Path(), default=None, help="Genome FASTA/2bit for --bed.")
@click.option("--window", type=click.IntRange(min=1), default=None,
              help="With --bed: re-centre regions to windows of this many bp (default: regions as given).")
@click.option("--fasta", type=click.Path(), default=None, help="FASTA file of sequences to scan.")
@click.option("--motifs", "motif_file", type=click.Path(), default=None,
              help="MEME (.meme) or JASPAR (.jaspar/.pfm) motif file instead of the bundled JASPAR.")
@click.option("--release", default="JASPAR2022", show_default=True, help="JASPAR release (bundled with pyjaspar).")
@click.option("--collection", default="CORE", show_default=True, help="JASPAR collection.")
@click.option("--tax-group", default="vertebrates", show_default=True, help="JASPAR taxonomic group.")
@click.option("--pvalue", "threshold", type=click.FloatRange(0, 1, min_open=True), default=1e-5, show_default=True,
              help="Report sites with p-value below this.")
@click.option("--background", default="uniform", show_default=True,
              help="uniform | nrdb (FIMO's default) | motif-file | sequences | A,C,G,T frequencies.")
@click.option("--pseudocount", type=click.FloatRange(0, min_open=True), default=0.1, show_default=True,
              help="FIMO's --motif-pseudo.")
@click.option("--score-range", type=click.IntRange(min=10), default=1000, show_default=True,
              help="Integer range of a PWM column (FIMO: 1000; larger = closer to unscaled p-values).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda or auto.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--out", "out", type=click.Path(), required=True, help="Output TSV of sites (and OUT.json).")
@overwrite_option("a site table written earlier")
@threads_option
@quiet_option
def scan_command(store, split, bed, genome, window, fasta, motif_file, release, collection, tax_group, threshold,
                 background, pseudocount, score_range, device, batch_size, out, overwrite, threads, quiet) -> None:
    """Find motif sites (both strands, p < --pvalue, entirely inside each sequence)."""
    from ..artifacts import check_output_file
    from ..errors import InputError
    from ..interpret import scan_io
    from ..interpret.jaspar import load_motifs, read_meme_background
    from ..interpret.motifs import MotifScanner
    from ..interpret.pwm import background_from_codes
    from ..progress import progress_bar
    from ..runtime import set_cpu_defaults

    sources = [name for name, given in (("--data", store), ("--bed", bed), ("--fasta", fasta)) if given]
    if len(sources) != 1:
        raise click.UsageError("give exactly one of --data, --bed (with --genome) or --fasta")
    if bed and not genome:
        raise click.UsageError("--bed needs --genome")
    if split and not store:
        raise click.UsageError("--split applies to --data only")
    check_output_file(out, overwrite=overwrite, sidecar_format=scan_io.SITES_FORMAT)
    set_cpu_defaults(threads)

    def chunks():
        if store:
            return scan_io.chunks_from_store(store, split)
        if bed:
            return scan_io.chunks_from_regions(bed, genome, window)
        return scan_io.chunks_from_fasta(fasta)

    motifs = load_motifs(motif_file, release, collection, tax_group)
    spec = background.strip().lower()
    if spec == "motif-file":
        bg = read_meme_background(motif_file) if motif_file else None
        if bg is None:
            raise InputError(motif_file or "--background", "no 'Background letter frequencies' in the motif file",
                             fix="use --background uniform or give the frequencies as A,C,G,T")
    elif spec == "sequences":
        bg = background_from_codes(chunk.codes for chunk in chunks())
    else:
        bg = background
    try:
        scanner = MotifScanner(motifs, background=bg, threshold=threshold, pseudocount=pseudocount,
                               score_range=score_range, device=device, batch_size=batch_size)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    inputs = {"data": store, "split": split, "bed": bed, "genome": genome, "window": window, "fasta": fasta,
              "motifs": motif_file or f"{release}/{collection}/{tax_group}", "background_option": background}
    with progress_bar(None, "scan", quiet=quiet) as progress:
        manifest = scan_io.write_sites(scanner, chunks(), out, inputs={k: v for k, v in inputs.items() if v is not None},
                                       progress=progress, overwrite=overwrite)
    bg_text = ",".join(f"{x:.4g}" for x in scanner.background)
    click.echo(f"motifs: {len(motifs)} ({len(scanner.weak_motifs)} cannot reach p < {threshold:g})")
    click.echo(f"background A,C,G,T: {bg_text}")
    click.echo(f"sequences: {manifest['sequences']}  sites: {manifest['sites']}")
    click.echo(f"wrote {out} and {out}.json")


@motifs_group.command("enrich")
@click.option("--attributions", "attr_a", type=click.Path(), required=True,
              help="Attribution directory (from 'chromtransfer attribute') of model A.")
@click.option("--attributions-b", "attr_b", type=click.Path(), default=None,
              help="Attribution directory of model B (same regions): adds the B - A comparison.")
@click.option("--sites", type=click.Path(), required=True, help="Site table from 'chromtransfer motifs scan'.")
@click.option("--min-sites", type=click.IntRange(min=1), default=100, show_default=True,
              help="Test TFs with at least this many sites.")
@click.option("--fdr", type=click.FloatRange(0, 1, min_open=True), default=0.001, show_default=True,
              help="Benjamini-Hochberg FDR for significance.")
@click.option("--group-by", type=click.Choice(["tf", "motif"]), default="tf", show_default=True,
              help="Test TF names (pooling a TF's matrices) or single matrices.")
@click.option("--aggregate", type=click.Choice(["auto", "max", "min"]), default="auto", show_default=True,
              help="Site score: max (gradient x input) / min (ISM) over the site's bases; auto by method.")
@click.option("--family-overlap", type=click.FloatRange(0, 1, min_open=True), default=0.5, show_default=True,
              help="A TF whose sites lie on a better-ranked TF's sites at least this often joins its family "
                   "(the 'family' column; near-identical JASPAR matrices are one signal).")
@click.option("--significance", type=click.Choice(["either", "difference"]), default="either", show_default=True,
              help="With --attributions-b: a TF is significant in the comparison when it is in either model's "
                   "own test (the authors' rule; D of the difference gives the direction), or by the "
                   "difference test's own FDR.")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True, help="TFs per end of the D bar chart.")
@click.option("--no-figures", is_flag=True, help="Write the tables only.")
@click.option("--out", "out", type=click.Path(), required=True, help="Output directory.")
@overwrite_option("a complete enrichment")
@quiet_option
def enrich_command(attr_a, attr_b, sites, min_sites, fdr, group_by, aggregate, family_overlap, significance, top,
                   no_figures, out, overwrite, quiet) -> None:
    """Rank TFs by KS tests of their sites' attribution scores against other TFs' sites.

    Testing no group at all (no TF with --min-sites sites) stops with an error."""
    from ..artifacts import check_output_dir
    from ..errors import ChromTransferError
    from ..interpret.attributions import load_attributions
    from ..interpret.enrich import ENRICHMENT_KIND, family_heads, run_enrichment, write_enrichment
    from ..interpret.scan_io import read_sites
    from ..progress import progress_bar

    check_output_dir(out, ENRICHMENT_KIND, overwrite=overwrite)

    a = load_attributions(attr_a)
    b = load_attributions(attr_b) if attr_b else None
    table = read_sites(sites)
    with progress_bar(None, "KS tests", quiet=quiet, unit="test") as progress:
        result = run_enrichment(table, a, b, group_by=group_by, min_sites=min_sites, fdr=fdr, aggregate=aggregate,
                                source=sites, family_overlap=family_overlap, significance=significance,
                                progress=progress)
    if not len(result.a):
        counts = result.sites.groupby("tf" if group_by == "tf" else "motif_id").size()
        most = int(counts.max()) if len(counts) else 0
        raise ChromTransferError(
            f"no {'TF' if group_by == 'tf' else 'motif'} tested: none has --min-sites {min_sites} scored sites (the most has {most} of "
            f"{len(result.sites)}); lower --min-sites, or scan and attribute more sequences")
    params = {"sites": str(sites), "min_sites": min_sites, "fdr": fdr, "group_by": group_by, "aggregate": aggregate,
              "family_overlap": family_overlap, "significance": significance}
    manifest = write_enrichment(result, out, a, b, group_by=group_by, figures=not no_figures, top=top,
                                parameters=params, overwrite=overwrite)
    click.echo(f"sites scored: {manifest['sites_scored']}  groups tested: {manifest['groups_tested']}  "
               f"significant: {manifest['significant_a']}")
    key = "tf"
    families = family_heads(result.a, key)
    if families:
        click.echo("model A, significant families (D > 0): " + ", ".join(
            f"{f[key]} ({f['D']:+.3f}, {len(f['members'])} TF{'s' if len(f['members']) > 1 else ''})"
            for f in families[:8]))
    for label, frame in (("model A", result.a), ("model B", result.b), ("B - A", result.comparison)):
        if frame is None or not len(frame):
            continue
        ranked = frame.sort_values("D", ascending=False)
        click.echo(f"{label}: top " + ", ".join(f"{t} ({d:+.3f})" for t, d in zip(ranked[key].head(5), ranked["D"].head(5)))
                   + "; bottom " + ", ".join(f"{t} ({d:+.3f})" for t, d in zip(ranked[key].tail(3), ranked["D"].tail(3))))
    click.echo(f"wrote {out}/enrichment.tsv" + (" (+ enrichment_b.tsv, comparison.tsv)" if b is not None else ""))


@motifs_group.command("discover")
@click.option("--attributions", "attr_a", type=click.Path(), required=True,
              help="Attribution directory (from 'chromtransfer attribute'), any method.")
@click.option("--compare", "compare", type=click.Path(), default=None,
              help="A second attribution directory (or a 'motifs discover' folder): match the two runs' "
                   "patterns and list those found in one only.")
@click.option("--window", type=click.IntRange(min=1), default=None,
              help="Central bases given to TF-MoDISco (default: the whole sequence).")
@click.option("--max-seqlets", type=click.IntRange(min=1), default=20000, show_default=True,
              help="Most seqlets clustered per sign.")
@click.option("--min-seqlets", type=click.IntRange(min=2), default=20, show_default=True,
              help="Fewest seqlets of a pattern (and of a sign's metacluster).")
@click.option("--leiden-runs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Leiden clusterings per round.")
@click.option("--motifs", "motif_file", type=click.Path(), default=None,
              help="MEME or JASPAR motif file to match against instead of the bundled JASPAR 2022.")
@click.option("--no-figures", is_flag=True, help="Write the tables and motif files only.")
@click.option("--out", "out", type=click.Path(), required=True, help="Output directory.")
@overwrite_option("a complete motif discovery")
@threads_option
def discover_command(attr_a, compare, window, max_seqlets, min_seqlets, leiden_runs, motif_file, no_figures, out,
                     overwrite, threads) -> None:
    """De novo motifs: TF-MoDISco patterns matched to JASPAR by TOMTOM (in process).

    Writes patterns.tsv (seqlets, best match, q-value, family per pattern), matches.tsv,
    patterns.meme, CWM and PWM logos and manifest.json; with --compare also the second run's
    files (*_b) and comparison.tsv. Finding no pattern is reported, not an error."""
    from ..artifacts import check_output_dir
    from ..interpret.attributions import load_attributions
    from ..interpret.discover import compare_patterns, contribution_tracks, discover_motifs
    from ..interpret.discover_io import MOTIFS_KIND, read_discovery, write_discovery
    from ..interpret.jaspar import load_motifs
    from ..runtime import set_cpu_defaults

    check_output_dir(out, MOTIFS_KIND, overwrite=overwrite)
    set_cpu_defaults(threads)
    a = load_attributions(attr_a)
    contribution_tracks(a, window)  # the window and the sequences, checked before the long work
    b_attributions = None
    if compare and not _is_discovery(compare):
        b_attributions = load_attributions(compare)
        contribution_tracks(b_attributions, window)
    motifs = load_motifs(motif_file)
    options = {"window": window, "max_seqlets": max_seqlets, "min_seqlets": min_seqlets, "leiden_runs": leiden_runs}
    result = discover_motifs(a, motifs, **options)
    _echo_run("A" if compare else "", result)
    result_b = comparison = None
    if compare:
        result_b = read_discovery(compare) if b_attributions is None else discover_motifs(b_attributions, motifs,
                                                                                           **options)
        _echo_run("B", result_b)
        comparison = compare_patterns(result.patterns, result_b.patterns, motifs)
    manifest = write_discovery(result, out, inputs=str(attr_a), result_b=result_b, inputs_b=compare,
                               comparison=comparison, motifs=motif_file or "JASPAR2022/CORE/vertebrates",
                               figures=not no_figures, overwrite=overwrite)
    if comparison is not None:
        click.echo(f"only in A: {', '.join(manifest['only_in_a']) or '-'};  only in B: "
                   f"{', '.join(manifest['only_in_b']) or '-'}")
    click.echo(f"wrote {out}/patterns.tsv, matches.tsv, patterns.meme" + ("" if no_figures else ", logos/")
               + (" (+ *_b, comparison.tsv)" if comparison is not None else ""))


def _is_discovery(path) -> bool:
    from pathlib import Path

    from ..interpret.discover_io import MANIFEST_FILE, MOTIFS_FORMAT

    manifest = Path(path) / MANIFEST_FILE
    return manifest.is_file() and f'"{MOTIFS_FORMAT}"' in manifest.read_text()


def _echo_run(label: str, result) -> None:
    prefix = f"{label}: " if label else ""
    click.echo(f"{prefix}{result.sequences} sequences x {result.length} bp, contributions from {result.source}")
    if not result.patterns:
        click.echo(f"{prefix}{result.note}")
        return
    table = result.table()
    click.echo(f"{prefix}{len(table)} patterns ({int((table['sign'] > 0).sum())} positive) in "
               f"{result.seconds.get('modisco', 0):.1f} s; TOMTOM {result.seconds.get('tomtom', 0):.1f} s")
    for row in table.head(10).itertuples():
        match = f"{row.tf} ({row.best_match}, q {row.q:.2g}, {row.family or 'no family'})" if row.best_match else "-"
        click.echo(f"  {row.pattern:8s} {row.seqlets:6d} seqlets  {row.consensus:24s} {match}")


def register(app: click.Group) -> None:
    app.add_command(motifs_group)
