"""Attribution logos: the sequence of a region drawn with letters scaled by per-base importance.

:func:`draw_matrix_logo` draws a position matrix the same way (four stacked letters per position:
the motif logos of de novo patterns).

Each position shows its own base (A green, C blue, G orange, T red) with height equal to the
position's attribution score; negative scores are drawn below the axis, upside down (the
convention of logomaker's ``flip_below``). Letters are glyph outlines from matplotlib's
:class:`~matplotlib.textpath.TextPath`, stretched to fill a unit-wide box, so no extra dependency is
needed. Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from ..encoding import ALPHABET

__all__ = ["BASE_COLORS", "draw_logo", "draw_matrix_logo", "logo_figure"]

BASE_COLORS = {"A": "#109648", "C": "#255C99", "G": "#F7B32B", "T": "#D62839"}


@lru_cache(maxsize=8)
def _glyph(letter: str):
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    path = TextPath((0, 0), letter, size=1, prop=FontProperties(family="DejaVu Sans", weight="bold"))
    return path, path.get_extents()


def draw_logo(ax, codes: np.ndarray, scores: np.ndarray, x0: int = 0, width: float = 0.92) -> None:
    """Draw one letter per position on ``ax``: base ``codes[i]`` with height ``scores[i]``.

    Args:
        ax: a matplotlib axes.
        codes: ``(L,)`` uint8 codes (4 = N: nothing drawn).
        scores: ``(L,)`` per-base scores (same units as the y axis).
        x0: x coordinate of the first position (e.g. its offset in the region).
        width: letter width as a fraction of one position.
    """
    from matplotlib.patches import PathPatch
    from matplotlib.transforms import Affine2D

    codes = np.asarray(codes)
    scores = np.asarray(scores, dtype=np.float64)
    for i, (code, value) in enumerate(zip(codes, scores)):
        if code > 3 or value == 0 or not np.isfinite(value):
            continue
        letter = ALPHABET[int(code)]
        path, box = _glyph(letter)
        x = x0 + i + (1 - width) / 2
        transform = (Affine2D().translate(-box.x0, -box.y0)
                     .scale(width / box.width, abs(value) / box.height))
        if value < 0:
            transform = transform.scale(1, -1)
        transform = transform.translate(x, 0)
        ax.add_patch(PathPatch(transform.transform_path(path), facecolor=BASE_COLORS[letter], edgecolor="none"))
    ax.set_xlim(x0, x0 + len(codes))
    low = min(0.0, float(np.nanmin(scores))) if scores.size else 0.0
    high = max(0.0, float(np.nanmax(scores))) if scores.size else 1.0
    pad = 0.08 * ((high - low) or 1.0)
    ax.set_ylim(low - pad, high + pad)
    ax.axhline(0, color="black", linewidth=0.6)


def draw_matrix_logo(ax, matrix: np.ndarray, width: float = 0.92, smallest: float = 1e-3) -> None:
    """Stacked letters of a ``(w, 4)`` matrix (A, C, G, T): at each position every base with
    height ``|matrix[i, b]|``, positive values stacked up from 0 and negative ones down (upside
    down), the smallest nearest the axis; letters under ``smallest`` x the largest are left out.

    Args:
        ax: a matplotlib axes; x runs from 0 to ``w``.
        matrix: e.g. a contribution weight matrix, or frequencies x information content (bits).
    """
    from matplotlib.patches import PathPatch
    from matplotlib.transforms import Affine2D

    matrix = np.nan_to_num(np.asarray(matrix, dtype=np.float64))
    floor = smallest * (float(np.abs(matrix).max()) if matrix.size else 0.0)
    high = low = 0.0
    for i, row in enumerate(matrix):
        up = down = 0.0
        for base in np.argsort(np.abs(row), kind="stable"):
            value = float(row[base])
            if abs(value) <= floor or value == 0:
                continue
            letter = ALPHABET[int(base)]
            path, box = _glyph(letter)
            transform = Affine2D().translate(-box.x0, -box.y0).scale(width / box.width, abs(value) / box.height)
            if value > 0:
                transform = transform.translate(i + (1 - width) / 2, up)
                up += value
            else:
                transform = transform.scale(1, -1).translate(i + (1 - width) / 2, down)
                down += value
            ax.add_patch(PathPatch(transform.transform_path(path), facecolor=BASE_COLORS[letter], edgecolor="none"))
        high, low = max(high, up), min(low, down)
    ax.set_xlim(0, len(matrix))
    pad = 0.05 * ((high - low) or 1.0)
    ax.set_ylim(low - (pad if low < 0 else 0.0), high + pad)
    ax.axhline(0, color="black", linewidth=0.5)


def logo_figure(codes: np.ndarray, scores: np.ndarray, title: str = "", sites: Sequence[tuple] = (),
                window: tuple[int, int] | None = None, ylabel: str = "gradient x input"):
    """A figure: an overview track of the whole region and a logo of ``window``.

    Args:
        codes: ``(L,)`` codes of the region; scores: ``(L,)`` per-base scores.
        title: figure title.
        sites: ``(start, end, label)`` motif sites to outline (coordinates within the region; an
            empty label draws the outline only).
        window: ``(start, end)`` of the logo panel (default: the whole region).
        ylabel: y-axis label.

    Returns:
        A :class:`matplotlib.figure.Figure`.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    codes = np.asarray(codes)
    scores = np.asarray(scores, dtype=np.float64)
    length = codes.shape[0]
    lo, hi = window if window is not None else (0, length)
    lo, hi = max(0, int(lo)), min(length, int(hi))
    fig = Figure(figsize=(max(6.0, 0.11 * (hi - lo) + 1.5), 4.2), dpi=200, constrained_layout=True)
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1, 2.2]})
    x = np.arange(length)
    top.fill_between(x, scores, step="mid", color="#555555", linewidth=0)
    top.axvspan(lo, hi, color="#F7B32B", alpha=0.25, linewidth=0)
    top.set_xlim(0, length)
    top.set_ylabel("score", fontsize=8)
    top.set_xlabel("position in region (bp)", fontsize=8)
    top.tick_params(labelsize=7)
    draw_logo(bottom, codes[lo:hi], scores[lo:hi], x0=lo)
    ymin, ymax = bottom.get_ylim()
    for start, end, label in sites:
        if end <= lo or start >= hi:
            continue
        bottom.add_patch(Rectangle((start, ymin), end - start, ymax - ymin, fill=False, edgecolor="black",
                                   linewidth=0.8, linestyle="--"))
        if label:
            bottom.text((start + end) / 2, ymax, label, ha="center", va="bottom", fontsize=8)
        top.axvspan(start, end, color="black", alpha=0.15, linewidth=0)
    bottom.set_ylim(ymin, ymax + 0.12 * (ymax - ymin))
    bottom.set_ylabel(ylabel, fontsize=8)
    bottom.set_xlabel("position in region (bp)", fontsize=8)
    bottom.tick_params(labelsize=7)
    for spine in ("top", "right"):
        top.spines[spine].set_visible(False)
        bottom.spines[spine].set_visible(False)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
