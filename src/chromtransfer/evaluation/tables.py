"""Metrics from any table of predictions: ours (``predictions.tsv``) or another tool's.

:func:`read_predictions` reads a CSV or TSV file (plain or compressed; pandas infers gzip, bz2,
xz and zip from the name) and returns a clean table of scores, 0/1 labels and optional groups;
:func:`metrics_by_group` computes :func:`~.metrics.binary_metrics` per group.

Labels may be written as ``0``/``1`` (also ``0.0``/``1.0``), ``True``/``False`` (any case), or as
arbitrary strings together with ``positive_label``, the value that marks a positive row. Every
problem in the file stops with one :class:`~chromtransfer.errors.InputError` naming the file, the
column and, for a bad value, its line number (line 1 is the first line of the file, the header
included).
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from .metrics import DEFAULT_F1_AVERAGE, DegenerateMetricWarning, binary_metrics

SEPARATORS = {"auto": None, "tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "space": " "}
_TRUE = {"1", "1.0", "true"}
_FALSE = {"0", "0.0", "false"}

#: Columns of :func:`metrics_by_group` after the group column.
METRIC_COLUMNS = ("n", "n_positive", "auroc", "auprc", "average_precision", "f1_negative",
                  "f1_positive", "f1_overall", "f1_macro", "precision", "recall", "brier", "ece")


def _first_line(path: Path) -> str:
    openers = {".gz": gzip.open, ".bgz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
    opener = openers.get(path.suffix.lower(), open)
    try:
        with opener(path, "rt", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    return line
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise InputError(path, f"cannot read the file ({exc})",
                         fix="give a CSV or TSV file, optionally gzip-compressed") from exc
    return ""


def resolve_separator(path: str | os.PathLike, sep: str = "auto") -> str:
    """The field separator: ``sep`` itself, a name (``tab``, ``comma``, ``semicolon``, ``space``),
    or for ``auto`` a tab when the first non-empty line holds one, else a comma."""
    if sep in SEPARATORS and SEPARATORS[sep] is not None:
        return SEPARATORS[sep]
    if sep != "auto":
        if len(sep) != 1:
            raise InputError(path, f"separator {sep!r} is not a single character",
                             fix="use --sep auto, tab, comma, semicolon, space or one character")
        return sep
    return "\t" if "\t" in _first_line(Path(path)) else ","


def read_predictions(
    path: str | os.PathLike,
    score: str,
    label: str,
    *,
    group: str | None = None,
    positive_label: str | None = None,
    sep: str = "auto",
    header: bool = True,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read a predictions table into columns ``score`` (float64), ``label`` (int8 0/1),
    ``group`` (str, when ``group`` is given) and ``line`` (the line number in the file).

    Args:
        path: CSV/TSV file, optionally compressed.
        score, label, group: column names (with ``header=False`` and no ``columns``, the
            1-based column numbers as text: ``"1"``, ``"2"``, ...).
        positive_label: the label value of positive rows; without it labels must be 0/1 or
            True/False.
        sep: ``auto`` or a separator (see :func:`resolve_separator`).
        header: whether the first line holds column names.
        columns: names for the columns (the file's header line, if any, is skipped).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file", fix="check the path of the predictions table")
    separator = resolve_separator(path, sep)
    try:
        frame = pd.read_csv(path, sep=separator, header=0 if header else None, dtype=str,
                            keep_default_na=False, na_filter=False, skip_blank_lines=False,
                            engine="c")
    except pd.errors.EmptyDataError as exc:
        raise InputError(path, "the file is empty", fix="give a table with one row per prediction") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise InputError(path, f"not a readable {'tab' if separator == chr(9) else repr(separator)}-separated "
                         f"table ({str(exc).strip().splitlines()[-1]})",
                         fix="check --sep and that every line has the same number of fields") from exc
    offset = 2 if header else 1
    frame["__line__"] = np.arange(len(frame)) + offset
    data_columns = [c for c in frame.columns if c != "__line__"]
    if columns is not None:
        columns = [c.strip() for c in columns]
        if len(columns) != len(data_columns):
            raise InputError(path, f"--columns names {len(columns)} columns but the file has {len(data_columns)}",
                             fix="give one name per field")
        frame.columns = list(columns) + ["__line__"]
    elif not header:
        frame.columns = [str(i + 1) for i in range(len(data_columns))] + ["__line__"]
    else:
        frame.columns = [str(c).strip() for c in data_columns] + ["__line__"]
    names = [c for c in frame.columns if c != "__line__"]
    # Blank lines (every field empty) are skipped; their line numbers still count.
    cells = frame[names]
    blank = (cells == "").all(axis=1) | cells.isna().all(axis=1)
    frame = frame.loc[~blank]
    if frame.empty:
        raise InputError(path, "the table has no rows", fix="give a table with one row per prediction")
    for option, column in (("--score", score), ("--label", label), ("--group", group)):
        if column is not None and column not in names:
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            hint = "" if not header or columns is not None else "; for a file without a header line give --no-header"
            raise InputError(path, f"no column {column!r} (columns: {shown})",
                             fix=f"name one of them with {option}{hint}")
    out = pd.DataFrame({
        "score": _parse_scores(path, frame, score),
        "label": _parse_labels(path, frame, label, positive_label),
        "line": frame["__line__"].to_numpy(),
    })
    if group is not None:
        out.insert(2, "group", frame[group].astype(str).str.strip().to_numpy())
    return out.reset_index(drop=True)


def _parse_scores(path: Path, frame: pd.DataFrame, column: str) -> np.ndarray:
    raw = frame[column].astype(str).str.strip()
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(path, f"column {column!r}: {raw.iloc[i]!r} is not a finite number",
                         line=int(frame["__line__"].iloc[i]), fix="scores must be numbers such as 0.73")
    return values


def _parse_labels(path: Path, frame: pd.DataFrame, column: str, positive_label: str | None) -> np.ndarray:
    raw = frame[column].astype(str).str.strip()
    empty = (raw == "").to_numpy()
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise InputError(path, f"column {column!r}: empty label", line=int(frame["__line__"].iloc[i]),
                         fix="every row needs a label")
    if positive_label is not None:
        positive = (raw == str(positive_label).strip()).to_numpy()
        if not positive.any():
            seen = ", ".join(repr(v) for v in raw.unique()[:6])
            raise InputError(path, f"column {column!r}: no row has the positive label {positive_label!r} "
                             f"(values: {seen})", fix="give one of these values to --positive-label")
        return positive.astype(np.int8)
    lower = raw.str.lower()
    is_true = lower.isin(_TRUE).to_numpy()
    is_false = lower.isin(_FALSE).to_numpy()
    bad = ~(is_true | is_false)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(path, f"column {column!r}: label {raw.iloc[i]!r} is not 0/1 or True/False",
                         line=int(frame["__line__"].iloc[i]),
                         fix="for string labels give --positive-label VALUE")
    return is_true.astype(np.int8)


def metrics_row(y_true: Any, score: Any, threshold: float = 0.5, n_bins: int = 10,
                f1_average: str = DEFAULT_F1_AVERAGE) -> dict[str, Any]:
    """:func:`binary_metrics`, keyed in ``METRIC_COLUMNS`` order."""
    values = binary_metrics(y_true, score, threshold, n_bins=n_bins, f1_average=f1_average)
    return {key: values[key] for key in METRIC_COLUMNS}


def metrics_by_group(table: pd.DataFrame, *, threshold: float = 0.5, n_bins: int = 10,
                     f1_average: str = DEFAULT_F1_AVERAGE,
                     group_name: str = "group") -> tuple[pd.DataFrame, list[str]]:
    """Metrics of a table from :func:`read_predictions`, one row per group (groups in order of
    first appearance; one row for the whole table without a ``group`` column).

    Returns the metrics table (``group_name`` column first when grouped, then
    ``METRIC_COLUMNS``) and the notes of metrics that were undefined (``"<group>: <why>"``).
    """
    notes: list[str] = []
    rows = []
    parts = table.groupby("group", sort=False) if "group" in table else [(None, table)]
    for key, part in parts:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DegenerateMetricWarning)
            row = metrics_row(part["label"].to_numpy(), part["score"].to_numpy(), threshold, n_bins,
                              f1_average)
        for w in caught:
            if issubclass(w.category, DegenerateMetricWarning):
                notes.append(f"{key}: {w.message}" if key is not None else str(w.message))
        rows.append(({group_name: key} if key is not None else {}) | row)
    return pd.DataFrame(rows), notes
