"""Figures of a variants run: the largest effects, and REF/ALT attribution logos of top variants."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["explain_figures", "top_variants_figure"]

#: Bases either side of the variant in an attribution logo.
LOGO_FLANK = 25


def _label(row) -> str:
    ref = row["ref"] if len(row["ref"]) <= 6 else row["ref"][:5] + "…"
    alt = row["alt"] if len(row["alt"]) <= 6 else row["alt"][:5] + "…"
    return f"{row['chrom']}:{row['pos']} {ref}>{alt}"


def top_variants_figure(top: pd.DataFrame, path: Path, n: int) -> Path:
    """Horizontal bars of delta_logit per model for the ``n`` strongest variants (rows of the table)."""
    from matplotlib.figure import Figure

    order = list(dict.fromkeys(top["variant"].tolist()))[:n]
    table = top[top["variant"].isin(order)]
    models = list(dict.fromkeys(table["model"].tolist()))
    labels = [_label(table[table["variant"] == v].iloc[0]) for v in order]
    height = 0.8 / max(1, len(models))
    fig = Figure(figsize=(7.0, 1.0 + 0.32 * len(order) * max(1, min(len(models), 3))), dpi=150,
                 constrained_layout=True)
    ax = fig.subplots()
    y = np.arange(len(order))
    for j, model in enumerate(models):
        values = [table[(table["variant"] == v) & (table["model"] == model)]["delta_logit"].iloc[0] for v in order]
        ax.barh(y - 0.4 + height * (j + 0.5), values, height=height, label=model)
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_xlabel("delta_logit = logit(p_alt) - logit(p_ref)")
    ax.set_title(f"{len(order)} variants with the largest |delta_logit|", fontsize=9)
    if len(models) > 1:
        ax.legend(fontsize=7, frameon=False)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    fig.savefig(path)
    return path


def explain_figures(top: pd.DataFrame, k: int, cells: Sequence, genome, folder: Path, *,
                    rc_average: bool = False, device="cpu") -> list[Path]:
    """REF and ALT gradient x input logos (one above the other) for the ``k`` strongest variants.

    Each variant is explained with the model (cell line) of its largest |delta_logit|; attributions
    are of the probability, averaged over the model's ensemble members, on the forward strand.
    """
    from matplotlib.figure import Figure

    from ..interpret.attribution import grad_x_input
    from ..interpret.logos import draw_logo
    from .windows import alt_window

    folder.mkdir(parents=True, exist_ok=True)
    by_name = {c.name: c for c in cells}
    paths = []
    order = list(dict.fromkeys(top["variant"].tolist()))[:k]
    for rank, index in enumerate(order, start=1):
        rows = top[top["variant"] == index]
        row = rows.loc[rows["delta_logit"].abs().idxmax()]
        cell = by_name[row["model"]]
        chrom, start, end = str(row["window_chrom"]), int(row["window_start"]), int(row["window_end"])
        pos = int(row["pos"]) - 1
        ref_codes = genome.fetch_codes(chrom, start, end, pad=True)
        alt_codes = alt_window(genome, chrom, start, end - start, ref_codes, pos, row["ref"], row["alt"])
        codes = np.stack([ref_codes, alt_codes])
        scores = np.mean([grad_x_input(m, codes, device=device) for m in cell.members], axis=0)
        offset = pos - start
        lo = max(0, offset - LOGO_FLANK)
        hi = min(end - start, offset + max(len(row["ref"]), len(row["alt"])) + LOGO_FLANK)
        fig = Figure(figsize=(max(6.0, 0.16 * (hi - lo) + 1.5), 4.0), dpi=150, constrained_layout=True)
        axes = fig.subplots(2, 1, sharex=True)
        limit = float(np.abs(scores[:, lo:hi]).max()) or 1.0
        for ax, allele, panel in zip(axes, ("REF", "ALT"), range(2)):
            draw_logo(ax, codes[panel, lo:hi], scores[panel, lo:hi], x0=lo)
            ax.set_ylim(-1.1 * limit, 1.1 * limit)
            ax.axvspan(offset, offset + len(row["ref"] if panel == 0 else row["alt"]), color="#F7B32B",
                       alpha=0.25, linewidth=0)
            p = row["p_ref"] if panel == 0 else row["p_alt"]
            ax.set_ylabel(f"{allele}\np = {p:.3f}", fontsize=8)
            ax.tick_params(labelsize=7)
        axes[1].set_xlabel(f"position in the window {chrom}:{start}-{end} (bp)", fontsize=8)
        fig.suptitle(f"#{rank} {_label(row)}  {cell.name}: delta_logit {row['delta_logit']:+.3f}"
                     + (f", motifs lost {row['motifs_lost']}" if isinstance(row["motifs_lost"], str)
                        and row["motifs_lost"] else ""), fontsize=8)
        name = re.sub(r"[^0-9A-Za-z_.-]", "_", f"{rank:03d}_{row['chrom']}_{row['pos']}_{row['ref'][:10]}_{row['alt'][:10]}")
        path = folder / f"{name}.png"
        fig.savefig(path)
        paths.append(path)
    return paths
