"""Discover stages of the study: de novo motifs of the interpreted models (``interpret.discover``).

``discover_cell``: TF-MoDISco on the attributions ``interpret/<cell>`` saved (whatever
``interpret.method`` made them: hypothetical contributions, ISM or gradient x input, see
:mod:`chromtransfer.interpret.discover`), for the fine-tuned model and, with
``interpret.discover.pretrained``, the pre-trained one on the same windows; the patterns are
matched to JASPAR by TOMTOM and the two models' patterns to each other. Writes
``interpret/<cell>/motifs/`` (a ``motifs discover`` folder, fine-tuned = run A, pre-trained = run
B) and ``interpret/<cell>/de_novo.json``: the ``de_novo`` list of the summary, and with the
synthetic data's ``truth.json`` whether a pattern matching a planted driver of the line (TOMTOM
``q < 0.05`` against the planted JASPAR matrix or a matrix of one of its JASPAR families) is among
the three positive patterns with the most seqlets (``de_novo_planted_in_top3``).

``discover_compare``: the fine-tuned patterns of the two compared cell lines matched to each
other (``interpret/compare/motifs/``, ``interpret/compare/de_novo.json``): the patterns found in
one line only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifacts import write_json

if TYPE_CHECKING:
    from .study import Study

DE_NOVO_FILE = "de_novo.json"
MOTIFS_FOLDER = "motifs"


def check_available(study: "Study") -> None:
    """Stop before any stage runs when discovery is asked for and modisco-lite is missing."""
    try:
        import memelite  # noqa: F401
        import modiscolite  # noqa: F401
    except ImportError as exc:
        from ..errors import InputError

        raise InputError(study.config.path, f"interpret.discover.enabled needs {exc.name} (not installed)",
                         fix="pip install 'chromtransfer[motifs]', or set interpret.discover.enabled: false") from None


def _motifs(study: "Study"):
    from ..interpret.jaspar import load_jaspar, load_motifs

    motif_file = study.config.interpret.motifs
    return load_motifs(study.config.resolve(motif_file)) if motif_file else load_jaspar()


def _options(study: "Study") -> dict[str, Any]:
    return study.config.interpret.discover.model_dump(include={"window", "max_seqlets", "min_seqlets", "leiden_runs"})


def _planted_ids(study: "Study", cell: str) -> list[str] | None:
    """JASPAR ids of the line's planted drivers (``truth.json``), ``None`` without a truth file."""
    path = study.inputs.get("truth")
    if not path or not Path(path).exists():
        return None
    truth = json.loads(Path(path).read_text())
    ids = truth.get("motif_ids", {})
    for name, tfs in truth.get("cells", {}).items():
        if name.lower() == cell.lower():
            return [ids[tf] for tf in tfs if tf in ids]
    return []


def discover_cell(study: "Study", cell: str) -> dict[str, Any]:
    from ..interpret.attributions import load_attributions
    from ..interpret.discover import compare_patterns, discover_motifs, planted_in_top
    from ..interpret.discover_io import write_discovery

    folder = study.out / "interpret" / cell
    motifs = _motifs(study)
    info: dict[str, Any] = {"cell": cell, "de_novo": [], "tables": [], "figures": []}
    planted = _planted_ids(study, cell)
    if not (folder / "finetuned" / "manifest.json").exists():  # the interpretation found no window
        info["note"] = "no attributions to discover motifs in"
        if planted is not None:
            info["de_novo_planted_in_top3"] = False
        write_json(folder / DE_NOVO_FILE, info)
        return {"patterns": 0}
    finetuned = discover_motifs(load_attributions(folder / "finetuned"), motifs, **_options(study))
    pretrained = comparison = None
    if study.config.interpret.discover.pretrained and (folder / "pretrained" / "manifest.json").exists():
        pretrained = discover_motifs(load_attributions(folder / "pretrained"), motifs, **_options(study))
        comparison = compare_patterns(finetuned.patterns, pretrained.patterns, motifs,
                                      labels=("finetuned", "pretrained"))
    manifest = write_discovery(finetuned, folder / MOTIFS_FOLDER, inputs=str(folder / "finetuned"),
                               result_b=pretrained, inputs_b=str(folder / "pretrained") if pretrained else None,
                               comparison=comparison, labels=("finetuned", "pretrained"),
                               motifs=study.config.interpret.motifs or "JASPAR2022/CORE/vertebrates", overwrite=True)
    info.update({"de_novo": finetuned.de_novo(), "source": finetuned.source, "seconds": finetuned.seconds,
                 "note": finetuned.note,
                 "tables": [[f"{MOTIFS_FOLDER}/patterns.tsv", f"{cell}: de novo patterns of the fine-tuned model"]]})
    if pretrained is not None:
        info["pretrained"] = pretrained.de_novo()
        info["only_in_finetuned"] = manifest.get("only_in_finetuned", [])
        info["only_in_pretrained"] = manifest.get("only_in_pretrained", [])
        info["tables"].append([f"{MOTIFS_FOLDER}/comparison.tsv", f"{cell}: fine-tuned vs pre-trained patterns"])
    if planted is not None:
        info["planted_ids"] = planted
        info["de_novo_planted_in_top3"] = planted_in_top(finetuned, planted, motifs, top=3)
    write_json(folder / DE_NOVO_FILE, info)
    return {"patterns": len(finetuned.patterns), "seconds": finetuned.seconds}


def discover_compare(study: "Study", cell_a: str, cell_b: str) -> dict[str, Any]:
    from ..interpret.discover import compare_patterns
    from ..interpret.discover_io import read_discovery, write_discovery

    out = study.out / "interpret" / "compare"
    out.mkdir(parents=True, exist_ok=True)
    folders = [study.out / "interpret" / cell / MOTIFS_FOLDER for cell in (cell_a, cell_b)]
    if not all((f / "manifest.json").exists() for f in folders):
        write_json(out / DE_NOVO_FILE, {"cells": [cell_a, cell_b], "note": "a line has no de novo motifs",
                                        "tables": []})
        return {"note": "a line has no de novo motifs"}
    a, b = (read_discovery(f) for f in folders)
    motifs = _motifs(study)
    comparison = compare_patterns(a.patterns, b.patterns, motifs, labels=(cell_a, cell_b))
    manifest = write_discovery(a, out / MOTIFS_FOLDER, inputs=str(folders[0]), result_b=b, inputs_b=str(folders[1]),
                               comparison=comparison, labels=(cell_a, cell_b), figures=False,
                               motifs=study.config.interpret.motifs or "JASPAR2022/CORE/vertebrates", overwrite=True)
    info = {"cells": [cell_a, cell_b], f"only_in_{cell_a}": manifest[f"only_in_{cell_a}"],
            f"only_in_{cell_b}": manifest[f"only_in_{cell_b}"],
            "tables": [[f"{MOTIFS_FOLDER}/comparison.tsv", f"de novo patterns of {cell_a} and {cell_b} matched to "
                        "each other"]]}
    write_json(out / DE_NOVO_FILE, info)
    return {f"only_in_{cell}": len(info[f"only_in_{cell}"]) for cell in (cell_a, cell_b)}
