"""The study's ``variants`` stage: variant effects of the fine-tuned models, checked against the
synthetic truth where there is one.

``score_study_variants`` scores the VCF (``variants.vcf``, or the synthetic data's
``variants.vcf.gz``) with every cell line's fine-tuned model (its folds averaged) through
:func:`~chromtransfer.variants.score_variants`, into ``OUT/variants/scores``. Windows
(``variants.windows``): ``elements`` puts each variant in the window of ``prepare.length`` centred
on the rDHS that holds it (``OUT/variants/windows.bed``: the windows the models were trained on;
variants in no rDHS are reported ``outside_regions``), ``centred`` centres a window on each variant. Motif changes are named with the study's motifs
(``interpret.motifs``, else the bundled JASPAR 2022).

With the synthetic truth (``variants_truth.tsv``, :mod:`chromtransfer.datasets.synthetic_variants`),
per cell line (:func:`truth_metrics`):

* ``auroc_driver_vs_neutral``: AUROC of ``|delta_logit|`` of the line's model separating the
  SNVs that break a planted driver site in the line's own elements (``n_driver``) from the SNVs at
  non-motif bases of the same elements (``n_neutral``);
* ``auroc_by_tf``: the same AUROC for the SNVs of each planted TF against all the non-motif SNVs:
  which drivers the model relies on (a line's drivers that other lines share, such as HNF4A of
  HepG2 and HCT116, or FOXA2 of HepG2 and the near-identical FOXA1 of MCF7, do not tell the line's
  elements from the other lines' ones the fine-tuned model was trained against);
* ``auroc_specific_driver_vs_neutral`` (``n_specific_driver``): the first AUROC restricted to the
  driver SNVs of TFs that no other line's drivers share by JASPAR family (``shared_with`` empty in
  the truth; ``None`` for truth tables without that column);
* ``planted_tf_in_motifs_lost_share``: among the ``variants.top`` driver-breaking SNVs with the
  largest ``|delta_logit|``, the share whose planted TF is among ``motifs_lost`` (names compared
  case-insensitively; JASPAR spells some in mouse case).

Every line also gets ``top``: its ``variants.top`` variants with the largest ``|delta_logit|``.
``OUT/variants/summary.json`` holds these per cell line for ``summary.json`` and the report. A
stage killed midway resumes the scoring from its finished chunks.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..artifacts import write_json

if TYPE_CHECKING:
    from .study import Study

#: ``variants.windows``: the rDHS window holding each variant, or a window centred on it.
VARIANT_WINDOWS = ("elements", "centred")
#: Columns of a ``top`` entry.
TOP_COLUMNS = ("chrom", "pos", "ref", "alt", "delta_logit", "p_ref", "p_alt", "null_z", "null_p", "motifs_lost",
               "class", "tf")
#: Entries of ``motifs_lost`` shown in a ``top`` entry.
SHOWN_MOTIFS = 3


def variants_dir(study: "Study") -> Path:
    return study.out / "variants"


def vcf_path(study: "Study") -> str:
    """The VCF the stage scores: the config's, or the synthetic data's (known after ``inputs``)."""
    if study.config.variants.vcf:
        return study.config.resolve(study.config.variants.vcf)
    path = study.inputs.get("variants")
    if not path or not Path(path).is_file():
        from ..errors import ChromTransferError

        raise ChromTransferError(
            f"{study.out / 'inputs'}: the synthetic data were made before synth wrote variants.vcf.gz; remove "
            f"{study.runner.marker('inputs')} to make them again (the genome is the same: later stages are kept "
            "unless their inputs changed), or name a VCF in variants.vcf")
    return path


def motif_source(study: "Study") -> str:
    """The motifs of ``motifs_lost``/``motifs_gained``: ``interpret.motifs``, else JASPAR 2022."""
    motifs = study.config.interpret.motifs
    return study.config.resolve(motifs) if motifs else "JASPAR2022"


def _element_windows(study: "Study", genome, path: Path) -> Path:
    """``path``: a BED of the ``prepare.length`` windows centred on every rDHS (the training windows)."""
    from ..intervals import centred_windows, read_regions

    rdhs = study.inputs["rdhs"]
    files = rdhs if isinstance(rdhs, list) else [rdhs]
    tables = [read_regions(f, genome, on_missing="drop", on_off_end="drop") for f in files]
    regions = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    windows = centred_windows(regions, study.config.prepare.length, genome)
    path.parent.mkdir(parents=True, exist_ok=True)
    windows[["chrom", "start", "end", "name"]].to_csv(path, sep="\t", header=False, index=False)
    return path


def score_study_variants(study: "Study") -> dict[str, Any]:
    """Run the stage (see the module docstring); returns counts for the stage marker."""
    from ..genome import open_genome
    from ..variants import score_variants

    settings = study.config.variants
    out = variants_dir(study)
    decision = study.runner.decisions.get("variants")
    if (out / "scores").is_dir() and (decision is None or decision.action != "resume"):
        import shutil

        shutil.rmtree(out / "scores")  # the study's own folder, left by a run whose marker is gone
    out.mkdir(parents=True, exist_ok=True)
    genome = open_genome(study.inputs["genome"])
    regions = _element_windows(study, genome, out / "windows.bed") if settings.windows == "elements" else None
    cells = list(study.config.cells)
    result = score_variants(vcf_path(study), genome, [study.finetuned(c) for c in cells], out / "scores",
                            names=cells, regions=regions, rc_average=settings.rc_average, null=settings.null_snvs,
                            seed=study.config.seed, motifs=motif_source(study),
                            motif_threshold=settings.motif_threshold,
                            explain=settings.explain, batch_size=settings.batch_size, device=study.config.device,
                            shared_reference=settings.shared_reference)
    table = pd.read_csv(out / "scores" / "variants.tsv.gz", sep="\t", keep_default_na=False, na_values=["NA"],
                        dtype={"chrom": str, "motifs_lost": str, "id": str})
    truth_file = study.inputs.get("variants_truth") if not settings.vcf else None
    truth = read_truth(truth_file) if truth_file and Path(truth_file).is_file() else None
    per_cell = {cell: truth_metrics(table, truth, cell, settings.top) for cell in cells}
    write_json(out / "summary.json", {"vcf": str(vcf_path(study)), "windows": settings.windows, "top": settings.top,
                                      "counts": result["counts"], "cells": per_cell,
                                      "figures": _figures(out / "scores", result["files"])})
    return {"variants": result["variants"], "counts": result["counts"]}


def _figures(folder: Path, files: dict[str, Any]) -> list[list[str]]:
    figures = []
    if files.get("top_figure"):
        figures.append([str(Path(files["top_figure"]).relative_to(folder.parent)),
                        "Largest effects: delta_logit of the top variants in every cell line"])
    for path in files.get("explain", []):
        figures.append([str(Path(path).relative_to(folder.parent)), "REF (top) and ALT (bottom) attributions"])
    return figures


def read_truth(path: str | Path) -> pd.DataFrame:
    """``variants_truth.tsv`` (empty cells as empty strings)."""
    return pd.read_csv(path, sep="\t", keep_default_na=False, dtype={"chrom": str, "pos": np.int64})


def truth_metrics(table: pd.DataFrame, truth: pd.DataFrame | None, cell: str, top: int) -> dict[str, Any]:
    """One cell line's entry of ``summary.json``'s ``variants`` (see the module docstring).

    Args:
        table: ``variants.tsv.gz`` rows (one per variant and model; ``model`` is the cell line).
        truth: ``variants_truth.tsv`` rows, or ``None`` (then only ``top``).
        cell: the cell line (its model's name); top: entries of ``top``, and driver SNVs of the share.
    """
    from ..evaluation.metrics import auroc

    rows = table[(table["model"] == cell) & table["delta_logit"].notna()].copy()
    if truth is not None:
        keys = ["chrom", "pos", "ref", "alt"]
        labels = truth.drop_duplicates(keys)[keys + [c for c in ("class", "cell", "tf", "shared_with") if c in truth]]
        rows = rows.merge(labels, on=keys, how="left")
    else:
        rows["class"], rows["cell"], rows["tf"] = "", "", ""
    rows = rows.fillna({"class": "", "cell": "", "tf": "", "motifs_lost": "", "shared_with": ""})
    rows["effect"] = rows["delta_logit"].abs()
    entry: dict[str, Any] = {}
    if truth is not None:
        own = rows[rows["cell"] == cell]
        driver, neutral = own[own["class"] == "driver"], own[own["class"] == "nonmotif"]
        entry["n_driver"], entry["n_neutral"] = int(len(driver)), int(len(neutral))

        def against_neutral(group: pd.DataFrame) -> float | None:
            """AUROC of ``|delta_logit|``, the SNVs of ``group`` against the non-motif ones."""
            if not (len(group) and len(neutral)):
                return None
            return auroc(np.r_[np.ones(len(group)), np.zeros(len(neutral))], np.r_[group["effect"], neutral["effect"]])

        entry["auroc_driver_vs_neutral"] = against_neutral(driver)
        specific = driver[driver["shared_with"] == ""] if "shared_with" in driver else None
        entry["n_specific_driver"] = None if specific is None else int(len(specific))
        entry["auroc_specific_driver_vs_neutral"] = None if specific is None else against_neutral(specific)
        entry["auroc_by_tf"] = {str(tf): against_neutral(g) for tf, g in driver.groupby("tf", sort=True)} \
            if len(neutral) else {}
        strongest = driver.nlargest(top, "effect")
        entry["planted_tf_in_motifs_lost_share"] = (
            float(np.mean([_names_tf(lost, tf) for lost, tf in zip(strongest["motifs_lost"], strongest["tf"])]))
            if len(strongest) else None)
    entry["top"] = [_top_entry(row) for _, row in rows.nlargest(top, "effect").iterrows()]
    return entry


def _names_tf(motifs_lost: str, tf: str) -> bool:
    """Whether ``tf`` is one of the ``TF:MOTIF_ID:SCORE`` entries of ``motifs_lost``."""
    names = {entry.rsplit(":", 2)[0].lower() for entry in str(motifs_lost).split("|") if entry}
    return tf.lower() in names


def _top_entry(row: pd.Series) -> dict[str, Any]:
    entry = {}
    for key in TOP_COLUMNS:
        if key not in row:
            continue
        value = row[key]
        if key == "motifs_lost":
            value = "|".join(str(value).split("|")[:SHOWN_MOTIFS]) if value else ""
        elif isinstance(value, (np.integer, np.floating)):
            value = value.item()
        entry[key] = None if isinstance(value, float) and not np.isfinite(value) else value
    return entry


def report_section(study: "Study", summary: dict[str, Any]):
    """The report's section: AUROC per line, the top variants, the figures (``None`` without the stage)."""
    from ..report import Section

    info_path = variants_dir(study) / "summary.json"
    if not info_path.is_file():
        return None
    info = json.loads(info_path.read_text())
    counts = ", ".join(f"{k} {v}" for k, v in info.get("counts", {}).items())
    window = ("the training window of the rDHS holding it" if info.get("windows") == "elements"
              else "a window centred on it")
    section = Section("Variant effects", paragraphs=[
        f"Every variant of {Path(info['vcf']).name} scored by each cell line's fine-tuned model in {window} "
        f"({counts}): delta_logit = logit(p_alt) - logit(p_ref), natural log; negative where the ALT "
        "allele lowers the predicted accessibility. motifs_lost names JASPAR sites the ALT allele breaks."])
    rows = []
    for cell, entry in info["cells"].items():
        if entry.get("auroc_driver_vs_neutral") is not None:
            by_tf = ", ".join(f"{tf} {value:.2f}" for tf, value in entry.get("auroc_by_tf", {}).items())
            rows.append({"cell line": cell, "AUROC driver vs non-motif": entry["auroc_driver_vs_neutral"],
                         "driver SNVs": entry["n_driver"], "non-motif SNVs": entry["n_neutral"],
                         "AUROC line-specific drivers": entry.get("auroc_specific_driver_vs_neutral"),
                         "AUROC per planted TF": by_tf,
                         "planted TF in motifs_lost (top)": entry["planted_tf_in_motifs_lost_share"]})
    if rows:
        section.paragraphs.append(
            "Synthetic truth: SNVs at the most informative base of a planted driver site of the line's own "
            "elements against SNVs at non-motif bases of the same elements; AUROC of |delta_logit| (all planted "
            "drivers; the drivers whose JASPAR family drives no other line; and per TF), and the share of the "
            f"{info.get('top', '')} strongest driver SNVs whose "
            "planted TF is among motifs_lost.")
        section.tables.append(("Driver-breaking vs non-motif SNVs", pd.DataFrame(rows)))
    for cell, entry in info["cells"].items():
        if entry.get("top"):
            section.tables.append((f"{cell}: largest effects", pd.DataFrame(entry["top"])))
    for name, caption in info.get("figures", []):
        section.figures.append((caption, variants_dir(study) / name))
    return section
