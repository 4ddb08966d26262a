"""Figures: one function per figure, each saving one file (PNG, or SVG/PDF by the suffix) and
returning its path.

* :func:`roc_curves`, :func:`pr_curves`, :func:`calibration_curves`: several models (or classes)
  on one axes, from the curve-point tables of :mod:`chromtransfer.evaluation`.
* :func:`learning_curves`: training and validation loss per epoch from ``learning_curve.csv``
  files of training runs.
* :func:`bootstrap_f1`: mean +- sd of test F1 against the fraction of training data used.

Style: Okabe & Ito's colour-blind safe palette, labelled axes with units, legends, 200 dpi by
default. Figures are :class:`matplotlib.figure.Figure` objects rendered by the Agg canvas, never
``pyplot``: importing or calling this module changes no global matplotlib state (backend, rcParams).
Files are written under a temporary name and renamed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .artifacts import atomic_path
from .errors import InputError

#: Okabe & Ito (2008) colour-blind safe palette, in the order lines get them.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
#: Curves with these labels are drawn in black and thicker (the average of several models).
EMPHASISED = ("ensemble",)
DEFAULT_DPI = 200
_FONT = {"axes": 10, "ticks": 9, "legend": 8, "title": 11}


def _figure(width: float = 4.8, height: float = 4.2, rows: int = 1, height_ratios=None):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    if rows == 1:
        return fig, fig.add_subplot(1, 1, 1)
    axes = fig.subplots(rows, 1, sharex=True, gridspec_kw={"height_ratios": height_ratios})
    return fig, axes


def _style(ax, xlabel: str, ylabel: str, title: str | None = None) -> None:
    ax.set_xlabel(xlabel, fontsize=_FONT["axes"])
    ax.set_ylabel(ylabel, fontsize=_FONT["axes"])
    ax.tick_params(labelsize=_FONT["ticks"])
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    if title:
        ax.set_title(title, fontsize=_FONT["title"])


def _colours(labels) -> dict[str, str]:
    colours, i = {}, 0
    for label in labels:
        if str(label) in EMPHASISED:
            colours[label] = "#000000"
        else:
            colours[label] = PALETTE[i % (len(PALETTE) - 1)]  # black is kept for the ensemble
            i += 1
    return colours


def _line_kwargs(label: str) -> dict[str, Any]:
    return {"linewidth": 2.2 if str(label) in EMPHASISED else 1.5, "zorder": 3 if str(label) in EMPHASISED else 2}


def _save(fig, path: str | os.PathLike, dpi: int) -> Path:
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    return path


def _legend(ax, loc: str) -> None:
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc=loc, fontsize=_FONT["legend"], frameon=False)


def _require(table: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in table]
    if missing:
        raise ValueError(f"{what} needs columns {', '.join(columns)}; missing {', '.join(missing)}")


def roc_curves(curves: Mapping[str, pd.DataFrame], path: str | os.PathLike, *,
               aucs: Mapping[str, float] | None = None, title: str | None = "ROC curves",
               dpi: int = DEFAULT_DPI) -> Path:
    """ROC curves of several models on one axes.

    Args:
        curves: label -> table with columns ``fpr`` and ``tpr`` (as from
            :func:`chromtransfer.evaluation.roc_points`); empty tables are skipped.
        path: output file; the format follows the suffix (``.png``, ``.svg``, ``.pdf``).
        aucs: label -> AUROC, shown in the legend.
    """
    fig, ax = _figure()
    colours = _colours(curves)
    ax.plot([0, 1], [0, 1], linestyle="--", color="#999999", linewidth=1, label="chance")
    for label, table in curves.items():
        _require(table, ("fpr", "tpr"), "roc_curves")
        if table.empty:
            continue
        text = f"{label} (AUROC {aucs[label]:.3f})" if aucs and label in aucs else str(label)
        ax.plot(table["fpr"], table["tpr"], color=colours[label], label=text, **_line_kwargs(label))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    _style(ax, "False positive rate (fraction of negatives)", "True positive rate (fraction of positives)", title)
    _legend(ax, "lower right")
    return _save(fig, path, dpi)


def pr_curves(curves: Mapping[str, pd.DataFrame], path: str | os.PathLike, *,
              aucs: Mapping[str, float] | None = None, prevalence: float | None = None,
              title: str | None = "Precision-recall curves", dpi: int = DEFAULT_DPI) -> Path:
    """Precision-recall curves of several models on one axes.

    Args:
        curves: label -> table with columns ``recall`` and ``precision`` (as from
            :func:`chromtransfer.evaluation.pr_points`).
        aucs: label -> AUPRC (interpolated PR area, :func:`~chromtransfer.evaluation.metrics.auprc`), shown in the legend.
        prevalence: fraction of positives; drawn as the precision of a random classifier.
    """
    fig, ax = _figure()
    colours = _colours(curves)
    if prevalence is not None and np.isfinite(prevalence):
        ax.axhline(prevalence, linestyle="--", color="#999999", linewidth=1,
                   label=f"chance (prevalence {prevalence:.2f})")
    for label, table in curves.items():
        _require(table, ("recall", "precision"), "pr_curves")
        if table.empty:
            continue
        text = f"{label} (AUPRC {aucs[label]:.3f})" if aucs and label in aucs else str(label)
        ax.step(table["recall"], table["precision"], where="post", color=colours[label], label=text,
                **_line_kwargs(label))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    _style(ax, "Recall (fraction of positives found)", "Precision (fraction of predicted positives)", title)
    _legend(ax, "lower left")
    return _save(fig, path, dpi)


def calibration_curves(curves: Mapping[str, pd.DataFrame], path: str | os.PathLike, *,
                       title: str | None = "Calibration (reliability) curves", dpi: int = DEFAULT_DPI) -> Path:
    """Observed fraction of positives against mean predicted probability per bin, several models
    on one axes; with a ``count`` column, a lower panel shows how many rows fall in each bin.

    Args:
        curves: label -> table with columns ``mean_predicted``, ``fraction_positive`` and
            optionally ``count``, ``bin_lower``, ``bin_upper`` (as from
            :func:`chromtransfer.evaluation.calibration_points`).
    """
    with_counts = all("count" in t for t in curves.values()) and len(curves) > 0
    if with_counts:
        fig, (ax, ax_counts) = _figure(4.8, 5.4, rows=2, height_ratios=(3, 1))
    else:
        fig, ax = _figure()
        ax_counts = None
    colours = _colours(curves)
    ax.plot([0, 1], [0, 1], linestyle="--", color="#999999", linewidth=1, label="perfectly calibrated")
    for label, table in curves.items():
        _require(table, ("mean_predicted", "fraction_positive"), "calibration_curves")
        if table.empty:
            continue
        ax.plot(table["mean_predicted"], table["fraction_positive"], marker="o", markersize=3.5,
                color=colours[label], label=str(label), **_line_kwargs(label))
        if ax_counts is not None:
            centres = ((table["bin_lower"] + table["bin_upper"]) / 2 if "bin_lower" in table
                       else table["mean_predicted"])
            ax_counts.plot(centres, table["count"], marker="o", markersize=3, color=colours[label],
                           linewidth=1.2)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.01, 1.01)
    _style(ax, "" if ax_counts is not None else "Mean predicted probability",
           "Observed fraction of positives", title)
    _legend(ax, "upper left")
    if ax_counts is not None:
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax_counts.set_yscale("log")
        ax_counts.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax_counts.yaxis.set_minor_formatter(NullFormatter())
        _style(ax_counts, "Mean predicted probability (bin)", "Rows per bin")
    return _save(fig, path, dpi)


def learning_curves(csv_paths: Mapping[str, str | os.PathLike], path: str | os.PathLike, *,
                    title: str | None = "Learning curves", ylabel: str = "Cross-entropy loss (nats)",
                    kept_epochs: Mapping[str, int] | None = None, dpi: int = DEFAULT_DPI) -> Path:
    """Training (dashed) and validation (solid) loss per epoch of one or more training runs.

    Args:
        csv_paths: label -> ``learning_curve.csv`` with columns ``epoch``, ``train_loss``,
            ``val_loss`` (others are ignored).
        kept_epochs: label -> the (1-based) epoch whose weights became the model, marked with a
            triangle; labels without one mark the epoch of the lowest validation loss.

    Raises:
        InputError: a file is missing, unreadable or lacks a column.
    """
    fig, ax = _figure(5.6, 4.0)
    colours = _colours(csv_paths)
    for label, csv in csv_paths.items():
        table = _read_table(csv, ("epoch", "train_loss", "val_loss"))
        colour = colours[label]
        ax.plot(table["epoch"], table["train_loss"], linestyle="--", color=colour, linewidth=1.4,
                label=f"{label} training")
        valid = table.dropna(subset=["val_loss"])
        ax.plot(valid["epoch"], valid["val_loss"], linestyle="-", color=colour, linewidth=1.6,
                label=f"{label} validation")
        kept = (kept_epochs or {}).get(label)
        marked = valid[valid["epoch"] == kept] if kept is not None else valid.nsmallest(1, "val_loss")
        if not marked.empty:
            ax.plot(marked["epoch"].iloc[:1], marked["val_loss"].iloc[:1], marker="v", color=colour, markersize=6,
                    linestyle="none")
    ax.xaxis.get_major_locator().set_params(integer=True)
    _style(ax, "Epoch", ylabel, title)
    _legend(ax, "upper right")
    return _save(fig, path, dpi)


def _read_table(path, columns) -> pd.DataFrame:
    path = Path(path)
    try:
        table = pd.read_csv(path, sep=None, engine="python")
    except FileNotFoundError as exc:
        raise InputError(path, "no such file", fix="give the learning_curve.csv of a training run") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a readable table ({exc})") from exc
    missing = [c for c in columns if c not in table]
    if missing:
        raise InputError(path, f"missing column {missing[0]!r} (columns: {', '.join(map(str, table.columns))})",
                         fix=f"the table needs columns {', '.join(columns)}")
    for column in columns:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() & table[column].notna()
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise InputError(path, f"column {column!r}: {table[column][bad].iloc[0]!r} is not a number", line=line)
        table[column] = values
    return table


BOOTSTRAP_METRICS = (("f1_overall", "overall"), ("f1_negative", "negative class"), ("f1_positive", "positive class"))


def bootstrap_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd per training fraction of a per-replicate bootstrap table.

    ``table`` has a ``fraction`` column (share of the training set, 0-1) or ``percent``
    (0-100), and one or more of ``f1_overall``, ``f1_negative``, ``f1_positive`` (one row per
    replicate). Returns one row per fraction: ``percent``, ``n`` (replicates), and
    ``<metric>_mean`` / ``<metric>_sd`` (sample sd, ddof 1; NaN for one replicate).
    A table that already holds ``<metric>_mean`` columns is returned with ``percent`` added.
    """
    table = table.copy()
    if "percent" not in table:
        if "fraction" not in table:
            raise ValueError("the bootstrap table needs a 'fraction' (0-1) or 'percent' (0-100) column")
        table["percent"] = table["fraction"].astype(float) * 100.0
    metrics = [m for m, _ in BOOTSTRAP_METRICS if m in table or f"{m}_mean" in table]
    if not metrics:
        raise ValueError("the bootstrap table needs f1_overall, f1_negative or f1_positive columns")
    if any(f"{m}_mean" in table for m in metrics):
        return table.sort_values("percent").reset_index(drop=True)
    grouped = table.groupby("percent", sort=True)
    summary = pd.DataFrame({"n": grouped.size()})
    for m in metrics:
        summary[f"{m}_mean"] = grouped[m].mean()
        summary[f"{m}_sd"] = grouped[m].std(ddof=1)
    return summary.reset_index()


def bootstrap_f1(table: pd.DataFrame | str | os.PathLike, path: str | os.PathLike, *,
                 title: str | None = "Test F1 against training data size", dpi: int = DEFAULT_DPI) -> Path:
    """Mean +- sd of the test F1 (overall, negative and positive class) against the percentage of
    the training set used (log-scaled axis), from a bootstrap table (see :func:`bootstrap_summary`;
    a path to a CSV/TSV file is read first)."""
    if not isinstance(table, pd.DataFrame):
        table = pd.read_csv(table, sep=None, engine="python")
    summary = bootstrap_summary(table)
    fig, ax = _figure(5.6, 4.0)
    colours = _colours([m for m, _ in BOOTSTRAP_METRICS])
    offsets = {"f1_overall": 1.0, "f1_negative": 0.97, "f1_positive": 1.03}  # keep error bars apart
    for metric, name in BOOTSTRAP_METRICS:
        if f"{metric}_mean" not in summary:
            continue
        sd = summary.get(f"{metric}_sd")
        ax.errorbar(summary["percent"] * offsets[metric], summary[f"{metric}_mean"],
                    yerr=None if sd is None else sd.fillna(0.0), color=colours[metric], marker="o",
                    markersize=4, capsize=3, linewidth=2.0 if metric == "f1_overall" else 1.3,
                    label=f"F1 {name}")
    ax.set_xscale("log")
    ticks = summary["percent"].to_numpy()
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.minorticks_off()
    _style(ax, "Training data used (% of the training set)", "Test F1 (mean ± sd over replicates)", title)
    _legend(ax, "lower right")
    return _save(fig, path, dpi)
