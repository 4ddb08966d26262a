"""The folder of ``chromtransfer motifs discover``: writer, reader and pattern logos.

::

    patterns.tsv      one row per pattern: pattern, sign, seqlets, width, consensus, best_match,
                      tf, q, family, cwm_logo, pwm_logo (logo paths relative to the folder)
    matches.tsv       TOMTOM matches: pattern, rank, motif_id, tf, family, p, q, offset, strand
    patterns.meme     MEME minimal format, the trimmed position frequency matrix of each pattern
                      (``MOTIF pos_0 GACCATCTG``, ``nsites=`` its seqlet count)
    patterns.npz      every pattern's arrays (ppm, cwm, hcwm, trim, seqlet sites) to read back
    logos/            PATTERN.cwm.png (contribution weight matrix) and PATTERN.pwm.png
                      (information content of the frequencies), stacked letters drawn by
                      :func:`~.logos.draw_matrix_logo` (logomaker makes a text glyph per letter,
                      about 30 ms each: 10 s for one 47-position pattern on a loaded 2-core machine)
    *_b.*, logos/b_*  the same for run B, with --compare
    comparison.tsv    with --compare: each pattern of either run, its best match in the other
                      run and whether it is shared (:func:`~.discover.compare_patterns`)
    manifest.json     written last: inputs, settings, counts, the attribution source, timings

Files are written under temporary names and renamed, figures are closed as soon as they are
saved (no pyplot state: hundreds of patterns never hold hundreds of open files), and every path
in ``patterns.tsv`` and the manifest names a file that was written.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artifacts import atomic_path, claim_output_dir, provenance, read_document, write_json, write_text
from ..errors import ArtifactError
from .discover import MATCH_COLUMNS, DiscoveryResult, Pattern

__all__ = ["MOTIFS_FORMAT", "MOTIFS_KIND", "meme_text", "read_discovery", "write_discovery"]

MOTIFS_KIND = "motifs"
MOTIFS_FORMAT = "chromtransfer-motifs"
MANIFEST_FILE = "manifest.json"
LOGO_DIR = "logos"


# ----------------------------------------------------------------------------- MEME
def meme_text(patterns: list[Pattern]) -> str:
    """The trimmed frequency matrices of ``patterns`` in MEME minimal motif format."""
    lines = ["MEME version 5", "", "ALPHABET= ACGT", "", "strands: + -", "",
             "Background letter frequencies", "A 0.25 C 0.25 G 0.25 T 0.25", ""]
    for pattern in patterns:
        ppm = pattern.trimmed_ppm
        ppm = ppm / ppm.sum(axis=1, keepdims=True)
        lines += [f"MOTIF {pattern.name} {pattern.consensus}", "",
                  f"letter-probability matrix: alength= 4 w= {len(ppm)} nsites= {pattern.seqlets} E= 0"]
        lines += ["  ".join(f"{v:.6f}" for v in row) for row in ppm]
        lines.append("")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- logos
def _information(ppm: np.ndarray) -> np.ndarray:
    """Letter heights of an information-content logo: frequency x (2 - entropy) bits."""
    p = np.clip(ppm / ppm.sum(axis=1, keepdims=True), 1e-9, 1.0)
    bits = 2.0 + (p * np.log2(p)).sum(axis=1)
    return ppm * bits[:, None]


def _save_logo(matrix: np.ndarray, path: Path, title: str, ylabel: str) -> None:
    from matplotlib.figure import Figure

    from .logos import draw_matrix_logo

    fig = Figure(figsize=(max(3.0, 0.2 * len(matrix) + 1.0), 1.8), dpi=150, constrained_layout=True)
    ax = fig.subplots()
    draw_matrix_logo(ax, matrix)
    ax.set_title(title, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=7)
    ax.tick_params(labelsize=6)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=fig.dpi)
    fig.clear()


def _write_logos(patterns: list[Pattern], logos: Path, prefix: str) -> dict[str, tuple[str, str]]:
    """``pattern -> (cwm logo, pwm logo)`` paths relative to the folder."""
    written = {}
    for pattern in patterns:
        lo, hi = pattern.trim
        cwm_name, pwm_name = f"{prefix}{pattern.name}.cwm.png", f"{prefix}{pattern.name}.pwm.png"
        title = f"{prefix}{pattern.name}: {pattern.seqlets} seqlets"
        _save_logo(pattern.cwm[lo:hi], logos / cwm_name, title, "contribution")
        _save_logo(_information(pattern.trimmed_ppm), logos / pwm_name, title, "bits")
        written[pattern.name] = (f"{LOGO_DIR}/{cwm_name}", f"{LOGO_DIR}/{pwm_name}")
    return written


# ----------------------------------------------------------------------------- writer
def _write_table(table: pd.DataFrame, path: Path) -> str:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    return path.name


def _pattern_arrays(patterns: list[Pattern]) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {"names": np.array([p.name for p in patterns], dtype=str),
                                     "signs": np.array([p.sign for p in patterns], dtype=np.int64),
                                     "seqlets": np.array([p.seqlets for p in patterns], dtype=np.int64),
                                     "trim": np.array([p.trim for p in patterns], dtype=np.int64).reshape(-1, 2)}
    for i, pattern in enumerate(patterns):
        for key in ("ppm", "cwm", "hcwm", "sites"):
            arrays[f"{key}_{i}"] = np.asarray(getattr(pattern, key))
    return arrays


def _write_run(result: DiscoveryResult, out: Path, suffix: str, prefix: str, figures: bool) -> list[str]:
    logos = _write_logos(result.patterns, out / LOGO_DIR, prefix) if figures else {}
    table = result.table()
    table["cwm_logo"] = [logos.get(name, ("", ""))[0] for name in table["pattern"]]
    table["pwm_logo"] = [logos.get(name, ("", ""))[1] for name in table["pattern"]]
    files = [_write_table(table, out / f"patterns{suffix}.tsv"),
             _write_table(result.matches[MATCH_COLUMNS], out / f"matches{suffix}.tsv")]
    write_text(out / f"patterns{suffix}.meme", meme_text(result.patterns))
    with atomic_path(out / f"patterns{suffix}.npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **_pattern_arrays(result.patterns))
    return files + [f"patterns{suffix}.meme", f"patterns{suffix}.npz"]


def _run_document(result: DiscoveryResult, inputs: str | None) -> dict[str, Any]:
    return {"attributions": inputs, "method": result.method, "source": result.source,
            "sequences": result.sequences, "window": result.length, "patterns": len(result.patterns),
            "positive_patterns": sum(p.sign > 0 for p in result.patterns), "settings": result.settings,
            "seconds": result.seconds, "note": result.note}


def write_discovery(result: DiscoveryResult, out_dir: str | os.PathLike, *, inputs: str | None = None,
                    result_b: DiscoveryResult | None = None, inputs_b: str | None = None,
                    comparison: pd.DataFrame | None = None, labels: tuple[str, str] = ("a", "b"),
                    motifs: str = "JASPAR2022/CORE/vertebrates", figures: bool = True,
                    overwrite: bool = False) -> dict[str, Any]:
    """Write the folder described in the module docstring; returns the manifest.

    ``out_dir`` is claimed as a motifs folder (:func:`~chromtransfer.artifacts.claim_output_dir`):
    a complete one is replaced only with ``overwrite``, a folder holding anything else is refused.
    """
    out = claim_output_dir(out_dir, MOTIFS_KIND, overwrite=overwrite)
    logos = out / LOGO_DIR
    logos.mkdir(exist_ok=True)
    for stale in logos.glob("*.png"):  # logos of an earlier run into this folder
        stale.unlink()
    files = _write_run(result, out, "", "", figures)
    manifest: dict[str, Any] = {"format": MOTIFS_FORMAT, "format_version": 1, "motifs": motifs,
                                "a": _run_document(result, inputs), "labels": list(labels)}
    if result_b is not None:
        files += _write_run(result_b, out, "_b", "b_", figures)
        manifest["b"] = _run_document(result_b, inputs_b)
    if comparison is not None:
        files.append(_write_table(comparison, out / "comparison.tsv"))
        for label in labels:
            only = comparison[(comparison["run"] == label) & ~comparison["shared"].astype(bool)]
            manifest[f"only_in_{label}"] = [str(p) for p in only["pattern"]]
    for stale in ("patterns_b.tsv", "matches_b.tsv", "patterns_b.meme", "patterns_b.npz", "comparison.tsv"):
        if stale not in files and (out / stale).exists():  # run B of an earlier discovery into this folder
            (out / stale).unlink()
    manifest["files"] = files + ([f"{LOGO_DIR}/{p.name}" for p in sorted(logos.glob("*.png"))] if figures else [])
    manifest["provenance"] = provenance()
    write_json(out / MANIFEST_FILE, manifest)
    return manifest


# ----------------------------------------------------------------------------- reader
def _read_patterns(path: Path) -> list[Pattern]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    patterns = []
    for i, name in enumerate(arrays["names"]):
        patterns.append(Pattern(str(name), int(arrays["signs"][i]), int(arrays["seqlets"][i]), arrays[f"ppm_{i}"],
                                arrays[f"cwm_{i}"], arrays[f"hcwm_{i}"],
                                (int(arrays["trim"][i][0]), int(arrays["trim"][i][1])), arrays[f"sites_{i}"]))
    return patterns


def read_discovery(directory: str | os.PathLike, run: str = "a") -> DiscoveryResult:
    """Read run ``a`` (or ``b``) of a folder written by :func:`write_discovery`.

    Raises :class:`~chromtransfer.errors.ArtifactError` where the folder is not a complete motifs
    folder.
    """
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not path.exists():
        raise ArtifactError(f"{directory}: no motif discovery here (run 'chromtransfer motifs discover' first)")
    manifest = read_document(path, MOTIFS_FORMAT, what="chromtransfer motifs manifest",
                             fix="run 'chromtransfer motifs discover' again")
    if run not in manifest:
        raise ArtifactError(f"{directory}: holds no run {run!r}")
    suffix = "" if run == "a" else "_b"
    try:
        patterns = _read_patterns(directory / f"patterns{suffix}.npz")
        matches = pd.read_csv(directory / f"matches{suffix}.tsv", sep="\t", keep_default_na=False,
                              dtype={"family": str, "tf": str, "motif_id": str})
    except (OSError, KeyError, ValueError) as exc:
        raise ArtifactError(f"{directory}: unreadable pattern files ({exc}); run 'chromtransfer motifs discover' "
                            "again") from None
    for column in ("p", "q"):
        matches[column] = pd.to_numeric(matches[column])
    document = manifest[run]
    return DiscoveryResult(patterns, matches, document.get("source", ""), document.get("settings", {}),
                           int(document.get("sequences", 0)), int(document.get("window", 0)),
                           document.get("seconds", {}), method=document.get("method", ""),
                           note=document.get("note", ""))
