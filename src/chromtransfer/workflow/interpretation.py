"""Interpretation stages of the study: which TFs each fine-tuned model relies on.

``interpret_cell``: the fine-tuned model's positive predictions (p > 0.5, training and test rows of
the cell line's store, as the paper; for ISM only its true positives, as the paper) are attributed
(gradient x input by default, or ISM) with the fine-tuned and with the pre-trained model; JASPAR sites are scanned on the same windows; each TF is
ranked by the KS test of its sites' scores (fine-tuned model), and fine-tuned vs pre-trained by the
same test on the per-site differences. ``compare_cells``: the two cell lines' fine-tuned models on
the union of both models' positive predictions (``interpret.compare_regions: predicted``, the
paper's 62,689 HepG2/K562 windows; ``labelled``: the union of the labelled positives), a TF being
significant when it is in either model's own test (``interpret.compare_significance: either``, the
authors' rule; ``difference``: the difference test's FDR). Each stage writes ``summary.json`` in
its folder for the report.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..artifacts import write_json

if TYPE_CHECKING:
    from ..interpret.attributions import Attributions
    from .study import Study

#: ``interpret.compare_regions``: the windows two cell lines' models are compared on.
COMPARE_REGIONS = ("predicted", "labelled")


def _settings(study: "Study") -> dict[str, Any]:
    """The interpretation settings of the config (every default filled by the schema)."""
    return study.config.interpret.model_dump(include={"method", "references", "target", "pvalue", "min_sites", "fdr",
                                                      "family_overlap", "batch_size", "top", "compare_regions",
                                                      "compare_significance"})


def _test_options(settings: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of :func:`~chromtransfer.interpret.enrich.run_enrichment` set by the study."""
    options = {k: settings[k] for k in ("min_sites", "fdr", "family_overlap")}
    options["significance"] = settings["compare_significance"]
    return options


def _scanner(study: "Study", settings: dict[str, Any]):
    from ..interpret.jaspar import load_jaspar, load_motifs
    from ..interpret.motifs import MotifScanner

    motif_file = study.config.interpret.motifs
    motifs = load_motifs(study.config.resolve(motif_file)) if motif_file else load_jaspar()
    return MotifScanner(motifs, threshold=settings["pvalue"], device=study.config.device)


def _scan(study: "Study", settings: dict[str, Any], codes: np.ndarray, names: np.ndarray, out: Path):
    from ..interpret.scan_io import chunks_from_arrays, read_sites, write_sites

    write_sites(_scanner(study, settings), chunks_from_arrays(codes, names), out, overwrite=True)
    return read_sites(out)


def _attribute_rows(study: "Study", model_dir: Path, inputs, settings, out: Path, select: str) -> "Attributions":
    from ..interpret.pipeline import attribute
    from ..modelio import load_model

    model = load_model(model_dir)
    deeplift = settings["method"] == "deeplift_shap"
    result = attribute(model, inputs, method=settings["method"], target=settings["target"], select=select,
                       batch_size=settings["batch_size"], device=study.config.device, model_path=str(model_dir),
                       references=settings["references"] if deeplift else None, seed=study.config.seed,
                       precision=study.config.precision)
    manifest = {"model": str(model_dir), "method": settings["method"], "target": settings["target"], "select": select}
    if deeplift:
        manifest["deeplift_shap"] = result.manifest["deeplift_shap"]
    result.save(out, manifest, bigwig=False, overwrite=True)
    return result


def _truth(study: "Study") -> dict[str, Any] | None:
    path = study.inputs.get("truth")
    return json.loads(Path(path).read_text()) if path and Path(path).exists() else None


def _significant(table, key: str = "tf", sign: int = 0) -> list[str]:
    """Significant TFs, highest D first; ``sign`` 1 / -1 keeps only positive / negative D."""
    chosen = table["significant"].astype(bool) & ((table["D"] * sign > 0) if sign else True)
    ranked = table[chosen].sort_values("D", ascending=False)
    return [str(v) for v in ranked[key]]


def interpret_cell(study: "Study", cell: str) -> dict[str, Any]:
    from ..interpret.attributions import load_attributions
    from ..interpret.enrich import family_heads, run_enrichment, write_enrichment
    from ..interpret.pipeline import inputs_from_attributions, inputs_from_store

    settings = _settings(study)
    out = study.out / "interpret" / cell
    out.mkdir(parents=True, exist_ok=True)
    finetuned = study.finetuned(cell)[0]
    inputs = inputs_from_store(study.store(cell), split="all")
    if settings["method"] == "ism":  # the paper's ISM: true positives only (predicted and labelled)
        from ..datasets.store import open_store

        inputs = inputs.subset(np.flatnonzero(np.asarray(open_store(study.store(cell)).labels) == 1))
    result = _attribute_rows(study, finetuned, inputs, settings, out / "finetuned", "predicted-positive")
    selected = inputs_from_attributions(result)
    truth = _truth(study)
    planted = _planted(truth, cell) if truth else []
    if len(selected) == 0:
        return _empty(out, cell, settings, planted, "the fine-tuned model predicts no window positive (p > 0.5)")
    _attribute_rows(study, study.pretrained, selected, settings, out / "pretrained", "all")
    sites = _scan(study, settings, selected.codes, selected.names, out / "sites.tsv")
    if len(sites) == 0:
        return _empty(out, cell, settings, planted, f"no motif site with p < {settings['pvalue']:g} in the windows")
    attr_ft = load_attributions(out / "finetuned")
    attr_pt = load_attributions(out / "pretrained")
    single = run_enrichment(sites, attr_ft, **_test_options(settings))
    write_enrichment(single, out / "enrichment", attr_ft, top=settings["top"], overwrite=True)
    paired = run_enrichment(sites, attr_pt, attr_ft, **_test_options(settings))
    write_enrichment(paired, out / "vs_pretrained", attr_pt, attr_ft, top=settings["top"], overwrite=True)
    top = _significant(single.a)
    families = family_heads(single.a)
    info: dict[str, Any] = {
        "cell": cell, "regions": int(len(selected)), "sites": int(len(sites)), "method": settings["method"],
        "target": settings["target"], "top_tfs": top, "top_families": families,
        "gained_vs_pretrained": _significant(paired.comparison, sign=1) if paired.comparison is not None else [],
        "lost_vs_pretrained": (_significant(paired.comparison, sign=-1)[::-1]
                               if paired.comparison is not None else []),
        "tables": [["enrichment/enrichment.tsv", "KS ranking of TFs, fine-tuned model (best first)"],
                   ["vs_pretrained/comparison.tsv", "Fine-tuned minus pre-trained: per-site difference test"]],
        "figures": [["enrichment/d_ranking.png", f"{cell}: TFs ranked by signed KS D (fine-tuned model)"],
                    ["enrichment/ecdf_top.png", f"{cell}: site-score ECDFs of the top TFs against the background"],
                    ["vs_pretrained/d_scatter.png", f"{cell}: D of the pre-trained vs the fine-tuned model"]],
    }
    logos = sorted((out / "enrichment").glob("logo_*.png"))[:2]
    info["figures"] += [[str(p.relative_to(out)), f"{cell}: attribution logo of an example region"] for p in logos]
    if settings["method"] == "deeplift_shap":
        info["references"] = settings["references"]
        info["convergence"] = result.manifest["deeplift_shap"]["convergence"]
    if truth:
        info["planted_tfs"] = planted
        info["planted_in_top5"] = planted_in_top(planted, families, 5)
    write_json(out / "summary.json", info)
    return {k: info[k] for k in ("regions", "sites", "top_tfs")}


def planted_in_top(planted: list[str], families: list[dict[str, Any]], top: int = 5) -> bool:
    """Whether a planted driver is among the ``top`` best significant families (as their head or a
    member: near-identical JASPAR matrices cannot be told apart by their sites). JASPAR spells some
    names in mouse case (Spi1, Nfe2l2): names compare case-insensitively."""
    wanted = {p.lower() for p in planted}
    return any(wanted & {m.lower() for m in family["members"]} for family in families[:top])


def _empty(out: Path, cell: str, settings: dict[str, Any], planted: list[str], reason: str) -> dict[str, Any]:
    """Record an interpretation with nothing to rank (the report says why)."""
    info = {"cell": cell, "regions": 0, "sites": 0, "method": settings["method"], "top_tfs": [],
            "note": reason, "tables": [], "figures": []}
    if planted:
        info["planted_tfs"] = planted
        info["planted_in_top5"] = False
    write_json(out / "summary.json", info)
    return {"regions": 0, "sites": 0, "top_tfs": [], "note": reason}


def _planted(truth: dict[str, Any], cell: str) -> list[str]:
    cells = truth.get("cells", {})
    for name, tfs in cells.items():
        if name.lower() == cell.lower():
            return list(tfs)
    return []


def compare_cells(study: "Study", cell_a: str, cell_b: str) -> dict[str, Any]:
    """Fine-tuned models of two cell lines on the same windows: the union of both models' positive
    predictions (p > 0.5, training and test rows of each line's store), or of both lines'
    labelled positives (``interpret.compare_regions``)."""
    from ..interpret.attributions import load_attributions
    from ..interpret.enrich import run_enrichment, write_enrichment
    from ..interpret.pipeline import AttributionInputs, inputs_from_store, predict_unit
    from ..modelio import load_model

    settings = _settings(study)
    if settings["compare_regions"] not in COMPARE_REGIONS:
        from ..errors import InputError

        raise InputError(study.config.path, f"interpret.compare_regions is {settings['compare_regions']!r}",
                         fix=f"use one of {', '.join(COMPARE_REGIONS)}")
    out = study.out / "interpret" / "compare"
    out.mkdir(parents=True, exist_ok=True)
    from ..datasets.store import open_store

    parts = []
    for cell in (cell_a, cell_b):
        inputs = inputs_from_store(study.store(cell), split="all")
        if settings["compare_regions"] == "predicted":
            model = load_model(study.finetuned(cell)[0])
            probability = predict_unit(model, inputs, None, batch_size=max(settings["batch_size"], 256),
                                       device=study.config.device, precision=study.config.precision)
            chosen = np.flatnonzero(probability > 0.5)
        else:
            chosen = np.flatnonzero(np.asarray(open_store(study.store(cell)).labels) == 1)
        parts.append(inputs.subset(chosen))
    names = np.concatenate([p.names for p in parts])
    _, first = np.unique(names, return_index=True)
    first = np.sort(first)
    merged = AttributionInputs(np.concatenate([p.codes for p in parts])[first], names[first],
                               np.concatenate([p.chrom for p in parts])[first],
                               np.concatenate([p.start for p in parts])[first],
                               np.concatenate([p.end for p in parts])[first],
                               np.concatenate([p.strand for p in parts])[first])
    if len(merged) == 0:
        write_json(out / "summary.json", {"cells": [cell_a, cell_b], "regions": 0, "note": "no positive windows",
                                          "region_set": settings["compare_regions"], "tables": [], "figures": []})
        return {"regions": 0}
    _attribute_rows(study, study.finetuned(cell_a)[0], merged, settings, out / cell_a, "all")
    _attribute_rows(study, study.finetuned(cell_b)[0], merged, settings, out / cell_b, "all")
    sites = _scan(study, settings, merged.codes, merged.names, out / "sites.tsv")
    attr_a, attr_b = load_attributions(out / cell_a), load_attributions(out / cell_b)
    paired = run_enrichment(sites, attr_a, attr_b, **_test_options(settings))
    write_enrichment(paired, out / "enrichment", attr_a, attr_b, top=settings["top"], overwrite=True)
    comparison = paired.comparison
    info = {
        "cells": [cell_a, cell_b], "regions": int(len(merged)), "sites": int(len(sites)),
        "region_set": settings["compare_regions"], "significance": settings["compare_significance"],
        "more_important_in_b": _significant(comparison, sign=1) if comparison is not None else [],
        "more_important_in_a": _significant(comparison, sign=-1)[::-1] if comparison is not None else [],
        "tables": [["enrichment/comparison.tsv",
                    f"{cell_b} minus {cell_a}: per-site difference test, with each model's D"]],
        "figures": [["enrichment/d_scatter.png", f"D of the {cell_a} model vs the {cell_b} model"],
                    ["enrichment/d_ranking_difference.png", f"TFs ranked by D of the difference ({cell_b} - {cell_a})"]],
    }
    write_json(out / "summary.json", info)
    return {"regions": info["regions"], "sites": info["sites"]}
