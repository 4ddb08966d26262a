"""The study's outputs a person reads: ``summary.json`` and ``report.html``.

``summary.json`` (schema in the README)::

    {"name": ..., "config": PATH, "settings": {the config, every default filled},
     "cells": {CELL: {"finetuned": {auroc, auprc, average_precision, f1_negative,
       f1_positive, f1_overall, f1_macro, brier, ece}, "baseline": {...}, "kmer": {...},
       "pretrained": {...},
       "top_tfs": [...], "top_families": [{"tf", "D", "fdr", "members"}], "planted_tfs": [...],
       "planted_in_top5": bool, "de_novo": [{"pattern", "seqlets", "best_match", "q", "family"}],
       "de_novo_planted_in_top3": bool,
       "variants": {"auroc_driver_vs_neutral", "n_driver", "n_neutral", "auroc_specific_driver_vs_neutral",
         "n_specific_driver", "auroc_by_tf",
         "planted_tf_in_motifs_lost_share", "top": [{chrom, pos, ref, alt, delta_logit, ...}]}}},
     "multiclass": {CELL: {"auroc": x, "auprc": x, "average_precision": x}},
     "bootstrap": [{"fraction": f, "n_train": n, "f1_overall_mean": x, "f1_overall_sd": x, ...}],
     "comparison": {...}, "data": {STORE: {...counts...}}, "timings": {STAGE: seconds}}
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..artifacts import provenance, write_json
from ..report import Section, write_report

if TYPE_CHECKING:
    from .study import Study

MODEL_KINDS = (("finetuned", "fine-tuned"), ("baseline", "binary baseline"), ("kmer", "k-mer composition"),
               ("pretrained", "pre-trained only"))


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _kept_epochs(run_dirs: dict[str, Path]) -> dict[str, int]:
    """Label -> the epoch whose weights each finished run exported (from its ``run.json``)."""
    kept = {}
    for label, run_dir in run_dirs.items():
        document = _read_json(Path(run_dir) / "run.json") or {}
        epoch = document.get("result", {}).get("exported", {}).get("epoch")
        if isinstance(epoch, int) and epoch > 0:
            kept[label] = epoch
    return kept


def build_summary(study: "Study") -> dict[str, Any]:
    out = study.out
    summary: dict[str, Any] = {"name": study.config.name, "config": str(study.config.path),
                               "settings": study.config.filled(), "cells": {},
                               "multiclass": {}, "bootstrap": [], "data": {}, "timings": {}}
    for cell in study.config.cells:
        entry = _read_json(out / "evaluation" / cell / "headline.json") or {}
        interpretation = _read_json(out / "interpret" / cell / "summary.json") or {}
        entry.update({k: v for k, v in interpretation.items() if k in ("top_tfs", "top_families", "planted_tfs",
                                                                               "planted_in_top5")})
        variants = (_read_json(out / "variants" / "summary.json") or {}).get("cells", {}).get(cell)
        if variants is not None:
            entry["variants"] = variants
        de_novo = _read_json(out / "interpret" / cell / "de_novo.json")
        if de_novo is not None:
            entry["de_novo"] = de_novo.get("de_novo", [])
            if "de_novo_planted_in_top3" in de_novo:
                entry["de_novo_planted_in_top3"] = de_novo["de_novo_planted_in_top3"]
        summary["cells"][cell] = entry
    summary["multiclass"] = _read_json(out / "evaluation" / "multiclass" / "per_cell.json") or {}
    table_path = out / "bootstrap" / "bootstrap_table.tsv"
    if table_path.exists():
        table = pd.read_csv(table_path, sep="\t")
        summary["bootstrap"] = table.to_dict(orient="records")
        summary["bootstrap_cell"] = study.config.bootstrap.cell
    comparison = _read_json(out / "interpret" / "compare" / "summary.json")
    if comparison:
        summary["comparison"] = comparison
    de_novo = _read_json(out / "interpret" / "compare" / "de_novo.json")
    if de_novo:
        summary.setdefault("comparison", {})["de_novo"] = {k: v for k, v in de_novo.items() if k.startswith("only_in_")}
    from ..datasets.store import open_store
    from ..datasets.summary import store_summary

    for store_dir in sorted((out / "data").glob("*")) if (out / "data").exists() else []:
        if (store_dir / "manifest.json").exists():
            s = store_summary(open_store(store_dir))
            summary["data"][store_dir.name] = {k: s[k] for k in ("task", "rows", "positives", "negatives",
                                                                  "splits", "by_split_class", "length",
                                                                  "composition")}
    summary["timings"] = study.runner.timings()
    summary["timings"]["total"] = round(sum(summary["timings"].values()), 3)
    summary["provenance"] = provenance()
    return _clean(summary)


def write_outputs(study: "Study") -> dict[str, Any]:
    """Write ``summary.json`` and ``report.html`` into the study folder; returns the summary."""
    summary = build_summary(study)
    write_json(study.out / "summary.json", summary)
    write_report(study.out / "report.html", f"chromtransfer study: {study.config.name}",
                 report_sections(study, summary),
                 intro="Pre-training on open chromatin against genomic background, fine-tuning on "
                       "cell-type specific regions, comparison with the same network trained from "
                       "scratch and with a multi-class model, and interpretation of the models.")
    return summary


def report_sections(study: "Study", summary: dict[str, Any]) -> list[Section]:
    from .. import plots

    out = study.out
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    sections = []

    data_rows = []
    for name, d in summary["data"].items():
        row = {"data set": name, "task": d["task"], "rows": d["rows"], "train": d["splits"].get("train"),
               "test": d["splits"].get("test")}
        if d["task"] == "binary":
            row.update({"positives": d["positives"], "negatives": d["negatives"]})
        data_rows.append(row)
    data = Section("Data", paragraphs=[f"Windows of {next(iter(summary['data'].values()))['length']} bp; "
                                       "test rows come from the held-out chromosomes."] if data_rows else [])
    if data_rows:
        data.tables.append(("Rows per data set and split", pd.DataFrame(data_rows)))
    sections.append(data)

    curves = Section("Learning curves",
                     paragraphs=["Training (dashed) and validation (solid) loss per epoch; the triangle marks "
                                 "the epoch whose weights were kept (the lowest validation loss, or the last "
                                 "epoch for a run that keeps its last weights)."])
    csvs = {"pre-training": study.pretrained / "learning_curve.csv"}
    if csvs["pre-training"].exists():
        curves.figures.append(("Pre-training", plots.learning_curves(
            csvs, figures / "learning_pretrain.png", title="Pre-trained model",
            kept_epochs=_kept_epochs({"pre-training": study.pretrained}))))
    for cell in study.config.cells:
        runs = {"fine-tuned": study.finetuned(cell)[0] / "learning_curve.csv"}
        if study.baselines(cell):
            runs["baseline"] = study.baselines(cell)[0] / "learning_curve.csv"
        runs = {k: v for k, v in runs.items() if v.exists()}
        if runs:
            kept = _kept_epochs({k: v.parent for k, v in runs.items()})
            curves.figures.append((f"{cell}: fine-tuned vs binary baseline (fold {study.config.folds[0]})",
                                   plots.learning_curves(runs, figures / f"learning_{cell}.png", title=cell,
                                                         kept_epochs=kept)))
    sections.append(curves)

    rows = []
    for cell, entry in summary["cells"].items():
        for kind, label in MODEL_KINDS:
            if kind in entry:
                rows.append({"cell line": cell, "model": label, **{k: entry[kind].get(k) for k in
                             ("auroc", "auprc", "f1_negative", "f1_positive", "f1_overall", "f1_macro",
                              "brier", "ece")}})
        if cell in summary["multiclass"]:
            rows.append({"cell line": cell, "model": "multi-class", "auroc": summary["multiclass"][cell].get("auroc"),
                         "auprc": summary["multiclass"][cell].get("auprc")})
    metrics = Section("Test-set performance",
                      paragraphs=["F1 at threshold 0.5 per class, their class-size weighted average "
                                  "(overall, as the paper reports it) and their plain mean (macro); AUROC, "
                                  "AUPRC (area under the interpolated precision-recall curve, as R's PRROC "
                                  "computes it), Brier score and expected calibration error (10 equal-width "
                                  "bins). Fine-tuned rows are the average of the fold models. The k-mer "
                                  "composition row is a logistic regression on canonical k-mer frequencies "
                                  "(README: the composition baseline): a network that does not beat it has "
                                  "learnt no more than composition."])
    if rows:
        metrics.tables.append(("Every model side by side", pd.DataFrame(rows)))
    sections.append(metrics)

    calibration = Section("Calibration and ROC curves")
    for cell in study.config.cells:
        cal, roc = {}, {}
        for kind, label in MODEL_KINDS:
            base = out / "evaluation" / cell / kind
            for name, store_in in (("calibration.tsv", cal), ("roc.tsv", roc)):
                if (base / name).exists():
                    table = pd.read_csv(base / name, sep="\t")
                    chosen = "ensemble" if (table["model"] == "ensemble").any() else table["model"].iloc[0]
                    store_in[label] = table[table["model"] == chosen]
        if cal:
            calibration.figures.append((f"{cell}: calibration on the test set",
                                        plots.calibration_curves(cal, figures / f"calibration_{cell}.png",
                                                                 title=f"{cell} calibration")))
        if roc:
            aucs = {label: summary["cells"][cell].get(kind, {}).get("auroc") for kind, label in MODEL_KINDS}
            calibration.figures.append((f"{cell}: ROC curves on the test set",
                                        plots.roc_curves(roc, figures / f"roc_{cell}.png", title=f"{cell} ROC",
                                                         aucs={k: v for k, v in aucs.items() if v is not None})))
    sections.append(calibration)

    boot = Section("Bootstrap of training-set size")
    if summary["bootstrap"]:
        table = pd.DataFrame(summary["bootstrap"])
        keep = [c for c in ("percent", "n_sequences", "n_train", "replicates", "f1_negative_mean", "f1_negative_sd",
                            "f1_positive_mean", "f1_positive_sd", "f1_overall_mean", "f1_overall_sd") if c in table]
        boot.paragraphs.append(f"{summary.get('bootstrap_cell')}: fine-tuning on label-stratified random "
                               "subsamples of the whole training set (n_sequences; its validation-fold rows "
                               "validate, n_train train); test F1 (overall: class-size weighted) mean and "
                               "standard deviation over replicates (Table 1 of the paper).")
        boot.tables.append(("Test F1 by share of the training data", table[keep]))
        boot.figures.append(("Test F1 against training-set size", out / "bootstrap" / "bootstrap_f1.png"))
    sections.append(boot)

    sections.extend(_interpretation_sections(study, summary))
    sections.extend(_de_novo_sections(study))
    from .variant_effects import report_section

    variants = report_section(study, summary)
    if variants is not None:
        sections.append(variants)

    timings = Section("Run time")
    if summary["timings"]:
        timings.tables.append(("Seconds per stage (including earlier invocations of a resumed study)",
                               pd.DataFrame([{"stage": k, "seconds": v} for k, v in summary["timings"].items()])))
    sections.append(timings)
    return sections


def _family_text(family: dict[str, Any], shown: int = 3) -> str:
    """``HEAD (D +0.60, with M1, M2, M3 ...)`` for one entry of ``top_families``."""
    others = family["members"][1:]
    text = f"{family['tf']} (D {family['D']:+.2f}"
    if others:
        text += ", with " + ", ".join(others[:shown]) + (" ..." if len(others) > shown else "")
    return text + ")"


def _interpretation_sections(study: "Study", summary: dict[str, Any]) -> list[Section]:
    from ..interpret.enrich import SCORE_LABELS

    sections = []
    for cell in study.interpret_cells:
        base = study.out / "interpret" / cell
        info = _read_json(base / "summary.json")
        if not info:
            continue
        section = Section(f"Interpretation: {cell}")
        top = info.get("top_tfs") or []
        method = info.get("method", "grad_x_input")
        site_score = f"{'minimum' if method == 'ism' else 'maximum'} {SCORE_LABELS.get(method, method)}"
        section.paragraphs.append(
            f"TFs ranked by the two-sample Kolmogorov-Smirnov D of their sites' {site_score} "
            f"(of the model's {info.get('target', 'probability')}) "
            "against all other TFs' non-overlapping sites (Benjamini-Hochberg FDR). "
            f"Significant TFs, best first: {', '.join(top[:15]) or 'none'}.")
        convergence = info.get("convergence")
        if convergence:
            section.paragraphs.append(
                f"DeepLIFT/SHAP against {info.get('references')} dinucleotide shuffles per window: the "
                f"contributions add up to the output difference within tolerance for "
                f"{convergence['within_tolerance']} of {convergence['sequences']} windows (largest |delta| "
                f"{convergence['max_abs']:.2g}).")
        families = info.get("top_families") or []
        if families:
            section.paragraphs.append(
                "The same ranking by family (a TF whose sites mostly lie on a better-ranked TF's sites is one "
                "signal with it): " + "; ".join(_family_text(f) for f in families[:8]) + ".")
        if info.get("note"):
            section.paragraphs.append(f"Nothing to rank: {info['note']}.")
        if info.get("planted_tfs"):
            section.paragraphs.append(f"Planted drivers of this synthetic cell type: {', '.join(info['planted_tfs'])}.")
        for name, caption in info.get("tables", []):
            path = base / name
            if path.exists():
                section.tables.append((caption, pd.read_csv(path, sep="\t").head(15)))
        for name, caption in info.get("figures", []):
            section.figures.append((caption, base / name))
        sections.append(section)
    compare = _read_json(study.out / "interpret" / "compare" / "summary.json")
    if compare:
        section = Section(f"Interpretation: {' vs '.join(compare.get('cells', []))}")
        base = study.out / "interpret" / "compare"
        if compare.get("regions"):
            regions = ("the union of both fine-tuned models' positive predictions (p > 0.5)"
                       if compare.get("region_set", "predicted") == "predicted" else
                       "the union of both lines' labelled positives")
            rule = ("significant in either model's own test (FDR), the D of the per-site difference giving "
                    "the direction (the authors' rule)" if compare.get("significance", "either") == "either"
                    else "significant by the difference test's own FDR")
            section.paragraphs.append(f"{compare['regions']} windows: {regions}. A TF counts as {rule}.")
        for name, caption in compare.get("tables", []):
            if (base / name).exists():
                section.tables.append((caption, pd.read_csv(base / name, sep="\t").head(15)))
        for name, caption in compare.get("figures", []):
            section.figures.append((caption, base / name))
        sections.append(section)
    return sections


def _de_novo_sections(study: "Study", logos: int = 6) -> list[Section]:
    """One section per line with de novo motifs: the patterns, their JASPAR matches and logos."""
    sections = []
    for cell in study.interpret_cells:
        base = study.out / "interpret" / cell
        info = _read_json(base / "de_novo.json")
        if not info:
            continue
        section = Section(f"De novo motifs: {cell}")
        section.paragraphs.append(
            "TF-MoDISco patterns of the fine-tuned model's contributions "
            f"({info.get('source', 'attributions')}), matched to JASPAR 2022 by TOMTOM; q: Benjamini-Hochberg "
            "over the database, family: JASPAR's TF family of the best match. pos_*: patterns that raise the "
            "prediction, neg_*: patterns that lower it, each by decreasing seqlet count.")
        if info.get("note"):
            section.paragraphs.append(info["note"])
        if "de_novo_planted_in_top3" in info:
            section.paragraphs.append("A pattern matching a planted driver (q < 0.05, the planted matrix or its "
                                      "JASPAR family) is among the 3 positive patterns with the most seqlets: "
                                      f"{'yes' if info['de_novo_planted_in_top3'] else 'no'}.")
        if "only_in_finetuned" in info:
            section.paragraphs.append("Patterns of the fine-tuned model without a match among the pre-trained "
                                      f"model's: {', '.join(info['only_in_finetuned']) or 'none'}; of the "
                                      f"pre-trained model only: {', '.join(info['only_in_pretrained']) or 'none'}.")
        table_path = base / "motifs" / "patterns.tsv"
        if table_path.exists():
            table = pd.read_csv(table_path, sep="\t", keep_default_na=False)
            columns = ["pattern", "seqlets", "consensus", "tf", "best_match", "q", "family"]
            section.tables.append(("Patterns and their best JASPAR match", table[columns].head(20)))
            for row in table[table["cwm_logo"] != ""].head(logos).itertuples():
                match = f", best match {row.tf} (q {float(row.q):.2g})" if row.tf else ""
                section.figures.append((f"{cell} {row.pattern}: {row.seqlets} seqlets{match}", base / "motifs" / row.cwm_logo))
        sections.append(section)
    compare = _read_json(study.out / "interpret" / "compare" / "de_novo.json")
    if compare and compare.get("cells"):
        cell_a, cell_b = compare["cells"]
        section = Section(f"De novo motifs: {cell_a} vs {cell_b}")
        if compare.get("note"):
            section.paragraphs.append(compare["note"])
        else:
            section.paragraphs.append(
                f"Patterns of each line's fine-tuned model without a TOMTOM match (q < 0.05) among the other "
                f"line's: {cell_a} only: {', '.join(compare.get(f'only_in_{cell_a}', [])) or 'none'}; "
                f"{cell_b} only: {', '.join(compare.get(f'only_in_{cell_b}', [])) or 'none'}.")
        path = study.out / "interpret" / "compare" / "motifs" / "comparison.tsv"
        if path.exists():
            section.tables.append(("Each pattern's best match in the other line", pd.read_csv(path, sep="\t")))
        sections.append(section)
    return sections
