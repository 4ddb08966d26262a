"""Figures of the TF enrichment analysis (matplotlib, no pyplot state, PNG at 200 dpi).

* :func:`plot_d_ranking`: the signed KS D of the top and bottom TFs as horizontal bars
  (significant positive red, significant negative blue, not significant grey).
* :func:`plot_ecdfs`: empirical CDFs of the site scores of selected TFs against their non-overlap
  backgrounds (the paper's Figure 3D-F style).
* :func:`plot_d_scatter`: D of model A against D of model B, labelled with the TFs whose
  difference test is strongest.
* :func:`example_logos`: attribution logos of the regions holding the best-scoring site of each
  top TF (see :mod:`chromtransfer.interpret.logos`).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import atomic_path
from .enrich import overlap_mask
from .logos import logo_figure

__all__ = ["example_logos", "plot_d_ranking", "plot_d_scatter", "plot_ecdfs", "save_figure"]

_POS, _NEG, _NS = "#C0392B", "#2E5EAA", "#9E9E9E"


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=fig.dpi)
    return path


def _colors(table: pd.DataFrame) -> list[str]:
    return [(_POS if d > 0 else _NEG) if sig else _NS for d, sig in zip(table["D"], table["significant"])]


def plot_d_ranking(table: pd.DataFrame, top: int = 20, title: str = "TF importance (signed KS D)",
                   label: str = "tf"):
    """Horizontal bars of D for the ``top`` highest and ``top`` lowest TFs of ``table``."""
    from matplotlib.figure import Figure

    ranked = table.sort_values("D", ascending=False, kind="stable")
    shown = ranked if len(ranked) <= 2 * top else pd.concat([ranked.head(top), ranked.tail(top)])
    shown = shown.iloc[::-1]
    fig = Figure(figsize=(5.2, max(2.5, 0.17 * len(shown) + 1.0)), dpi=200, constrained_layout=True)
    ax = fig.subplots()
    y = np.arange(len(shown))
    ax.barh(y, shown["D"], color=_colors(shown), height=0.75)
    ax.set_yticks(y)
    ax.set_yticklabels(shown[label].astype(str), fontsize=6)
    ax.axvline(0, color="black", linewidth=0.6)
    if len(ranked) > 2 * top:
        ax.axhline(top - 0.5, color="#444444", linewidth=0.5, linestyle=":")
    ax.set_xlabel("signed Kolmogorov-Smirnov D", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(title, fontsize=9)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=_POS, label="higher (FDR sig.)"), Patch(color=_NEG, label="lower (FDR sig.)"),
                       Patch(color=_NS, label="not significant")], fontsize=6, frameon=False, loc="lower right")
    return fig


def _ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.sort(values)
    return x, np.arange(1, x.size + 1) / x.size


def plot_ecdfs(scored: pd.DataFrame, table: pd.DataFrame, tfs: list[str], score_column: str = "site_score",
               group_by: str = "tf", xlabel: str = "site score (max gradient x input)"):
    """ECDF panels: each TF's site scores against its non-overlap background."""
    from matplotlib.figure import Figure

    key = "tf" if group_by == "tf" else "motif_id"
    tfs = [t for t in tfs if t in set(table[key])][:9]
    n = max(1, len(tfs))
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(2.6 * cols, 2.3 * rows), dpi=200, constrained_layout=True)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    region = pd.factorize(scored["region"].astype(str))[0].astype(np.int64)
    start = scored["site_start"].to_numpy(np.int64)
    end = scored["site_end"].to_numpy(np.int64)
    groups = scored[key].astype(str).to_numpy()
    values = scored[score_column].to_numpy(np.float64)
    stats = table.set_index(key)
    for ax, tf in zip(axes, tfs):
        member = groups == tf
        background = ~member & ~overlap_mask(region, start, end, member)
        bx, by = _ecdf(values[background])
        tx, ty = _ecdf(values[member])
        ax.step(bx, by, where="post", color="#555555", linewidth=1.0, label=f"other TFs (n={background.sum()})")
        color = _POS if stats.loc[tf, "D"] > 0 else _NEG
        ax.step(tx, ty, where="post", color=color, linewidth=1.3, label=f"{tf} (n={member.sum()})")
        ax.set_title(f"{tf}  D={stats.loc[tf, 'D']:+.3f}  FDR={stats.loc[tf, 'fdr']:.1e}", fontsize=7)
        ax.set_xlabel(xlabel, fontsize=7)
        ax.set_ylabel("cumulative fraction", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5.5, frameon=False, loc="lower right")
        for spine in ("top", "right"):
            ax.spines[spine].set_visible(False)
    for ax in axes[len(tfs):]:
        ax.set_visible(False)
    return fig


def plot_d_scatter(comparison: pd.DataFrame, label_top: int = 12, name_a: str = "model A",
                   name_b: str = "model B", label: str = "tf"):
    """D of model A (x) against D of model B (y); TFs with the strongest difference test labelled."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 4.4), dpi=200, constrained_layout=True)
    ax = fig.subplots()
    data = comparison.dropna(subset=["D_a", "D_b"])
    colors = _colors(data)
    ax.scatter(data["D_a"], data["D_b"], s=9, c=colors, linewidths=0, alpha=0.85)
    lim = float(np.nanmax(np.abs(data[["D_a", "D_b"]].to_numpy()))) * 1.08 if len(data) else 1.0
    lim = lim or 1.0
    ax.plot([-lim, lim], [-lim, lim], color="#444444", linewidth=0.6, linestyle="--")
    ax.axhline(0, color="#BBBBBB", linewidth=0.5)
    ax.axvline(0, color="#BBBBBB", linewidth=0.5)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    by_change = data.reindex(data["D"].abs().sort_values(ascending=False).index)
    chosen = list(by_change[by_change["significant"]].index[:label_top])
    for column in ("D_a", "D_b"):  # the extremes of each model
        ordered = data[column].sort_values()
        chosen += list(ordered.index[:2]) + list(ordered.index[-2:])
    for index in dict.fromkeys(chosen):
        row = data.loc[index]
        ax.annotate(str(row[label]), (row["D_a"], row["D_b"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"D ({name_a})", fontsize=8)
    ax.set_ylabel(f"D ({name_b})", fontsize=8)
    ax.set_title("D per TF in two models (red/blue: significant, direction of B - A)", fontsize=8)
    ax.tick_params(labelsize=7)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    return fig


def example_logos(scored: pd.DataFrame, attributions, tfs: list[str], out_dir: str | os.PathLike,
                  score_column: str = "site_score", group_by: str = "tf", flank: int = 25,
                  ylabel: str = "gradient x input", highest: bool = True) -> list[Path]:
    """One logo per TF: the region holding the TF's most important site (highest score, or lowest
    with ``highest=False`` as for ISM deltas), zoomed on that site with ``flank`` bp either side.

    Needs the attributions' sequences (``codes``); returns the written paths (none without codes).
    """
    if attributions.codes is None:
        return []
    key = "tf" if group_by == "tf" else "motif_id"
    out_dir = Path(out_dir)
    paths = []
    lookup = {name: i for i, name in enumerate(attributions.names)}
    for tf in tfs:
        member = scored[scored[key].astype(str) == tf]
        if member.empty:
            continue
        best = member.loc[member[score_column].idxmax() if highest else member[score_column].idxmin()]
        row = lookup.get(str(best["region"]))
        if row is None:
            continue
        in_region = scored[(scored["region"] == best["region"]) & (scored[key].astype(str) == tf)]
        sites = [(int(r.site_start), int(r.site_end), str(r.tf) if (r.site_start == best["site_start"]
                  and r.site_end == best["site_end"]) else "") for r in in_region.itertuples()]
        window = (int(best["site_start"]) - flank, int(best["site_end"]) + flank)
        fig = logo_figure(attributions.codes[row], attributions.scores[row],
                          title=f"{tf} site in {best['region']} (site score {best[score_column]:.3g})",
                          sites=sites, window=window, ylabel=ylabel)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{tf}_{best['region']}")
        paths.append(save_figure(fig, out_dir / f"logo_{safe}.png"))
    return paths
