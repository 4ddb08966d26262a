"""Evaluate saved models on a split of a dataset store: predictions, metrics, curves, figures.

:func:`evaluate_models` predicts the rows of one split with each model, averages the models'
probabilities into an ensemble when several are given (e.g. the three cross-validation folds),
and writes into ``out``::

    predictions.tsv     name, label, model, score: one row per sequence and model (the
                        ensemble's rows last), the columns of ``chromtransfer predict`` plus
                        label and model, so ``chromtransfer metrics predictions.tsv --score
                        score --label label --group model`` reproduces metrics.tsv
                        (multi-class: label is the class name and one column per class
                        replaces score)
    metrics.tsv         one row per model and one for the ensemble
    metrics.json        the same metrics, the inputs and the settings
    roc.tsv, pr.tsv, calibration.tsv      curve points (columns model[, class], ...)
    roc.png, pr.png, calibration.png      the curves (binary: every model on one axes;
                                          multi-class: one-vs-rest, one curve per class of the
                                          ensemble, or of the single model)

All models must solve the same task (binary, or multi-class with the same classes) and match the
store's task; otherwise a :class:`~chromtransfer.errors.ChromTransferError` says which differ.
``out`` is claimed as an evaluation folder (:func:`~chromtransfer.artifacts.claim_output_dir`);
``metrics.json`` is written last.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..artifacts import atomic_path, check_output_dir, claim_output_dir, provenance, write_json
from ..errors import ArtifactError, ChromTransferError
from .calibration import DEFAULT_BINS, calibration_points
from .metrics import (
    DEFAULT_F1_AVERAGE,
    DegenerateMetricWarning,
    flatten_multiclass,
    multiclass_metrics,
    pr_points,
    roc_points,
)
from .tables import metrics_row

ENSEMBLE = "ensemble"
EVALUATION_KIND = "evaluation"


def _is_placeholder(classes: Sequence[str]) -> bool:
    return all(c == f"class{i}" for i, c in enumerate(classes))


def _describe(name: str, config: dict[str, Any]) -> str:
    if config.get("head") == "multiclass":
        return f"{name} (multi-class, {config.get('n_outputs')} classes)"
    return f"{name} (binary, head {config.get('head')})"


def check_models(documents: dict[str, dict[str, Any]], store_task: str, store_classes: Sequence[str]) -> str:
    """Check that the models share one task and fit the store; return ``"binary"`` or
    ``"multiclass"``. ``documents`` maps model names to their ``model.json`` contents."""
    configs = {name: doc["config"] for name, doc in documents.items()}
    kinds = {name: ("multiclass" if c.get("head") == "multiclass" else "binary") for name, c in configs.items()}
    signatures = {name: (kinds[name], int(c.get("n_outputs", 1)),
                         tuple(c.get("classes", ())) if kinds[name] == "multiclass" else ())
                  for name, c in configs.items()}
    if len(set(signatures.values())) > 1:
        listing = "; ".join(_describe(n, configs[n]) for n in configs)
        raise ChromTransferError(
            f"the models solve different tasks and cannot be evaluated together: {listing} "
            "(evaluate each task with its own 'chromtransfer evaluate')")
    kind, n_outputs, classes = next(iter(signatures.values()))
    if kind != store_task:
        raise ChromTransferError(
            f"the models are {kind} but the dataset store is {store_task} "
            "(give the store the models were trained for)")
    if kind == "multiclass":
        if n_outputs != len(store_classes):
            raise ChromTransferError(
                f"the models have {n_outputs} outputs but the store has {len(store_classes)} classes "
                f"({', '.join(store_classes)})")
        if not _is_placeholder(classes) and list(classes) != list(store_classes):
            raise ChromTransferError(
                f"the models' classes ({', '.join(classes)}) differ from the store's "
                f"({', '.join(store_classes)}); give the store the models were trained for")
    return kind


def model_names(model_dirs: Sequence[str | os.PathLike]) -> list[str]:
    """Short unique labels for model directories: the directory name, or ``parent/name`` when
    names repeat (``fold0/model``, ``fold1/model``), then a numeric suffix if still needed."""
    paths = [Path(d).resolve() for d in model_dirs]
    names = [p.name for p in paths]
    if len(set(names)) < len(names):
        names = [f"{p.parent.name}/{p.name}" for p in paths]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        base = name if name != ENSEMBLE else f"{name}_model"
        count = seen.get(base, 0)
        seen[base] = count + 1
        unique.append(base if count == 0 else f"{base}_{count + 1}")
    return unique


def _subset(array: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of a (memory-mapped) array: a view for a contiguous range, else a copy."""
    if idx.size and idx[-1] - idx[0] + 1 == idx.size and np.all(np.diff(idx) == 1):
        return array[idx[0]: idx[-1] + 1]
    return array[idx]


def _write_tsv(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, na_rep="nan", lineterminator="\n")
    return path


def _with_notes(notes: list[str], context: str, fn: Callable[[], Any]) -> Any:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DegenerateMetricWarning)
        value = fn()
    for w in caught:
        if issubclass(w.category, DegenerateMetricWarning):
            notes.append(f"{context}: {w.message}")
    return value


def evaluate_models(
    model_dirs: Sequence[str | os.PathLike],
    store_path: str | os.PathLike,
    split: str = "test",
    out: str | os.PathLike = "evaluation",
    *,
    batch_size: int = 256,
    device: str = "auto",
    rc_average: bool = False,
    threshold: float = 0.5,
    n_bins: int = DEFAULT_BINS,
    f1_average: str = DEFAULT_F1_AVERAGE,
    names: Sequence[str] | None = None,
    echo: Callable[[str], None] | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    precision: str | None = None,
) -> dict[str, Any]:
    """Predict ``split`` of the store with each model and write the evaluation into ``out``.

    Args:
        model_dirs: model (or training run) directories readable by
            :func:`chromtransfer.modelio.load_model`.
        store_path: a dataset store (:mod:`chromtransfer.datasets.store`).
        split: ``test``, ``train``, ``all`` (:meth:`Store.indices`).
        out: output directory, claimed as an evaluation folder (a folder holding anything else
            is refused; a complete evaluation is replaced only with ``overwrite``, and then only
            its own files).
        batch_size, device, rc_average, precision: passed to
            :func:`chromtransfer.inference.predict_codes` (precision: ``float32`` or ``bf16``).
        threshold: binary predictions are positive when the probability exceeds it.
        n_bins: equal-width bins of the calibration curve and the ECE.
        f1_average: ``macro`` or ``weighted`` overall F1 (:func:`~.metrics.overall_f1`).
        names: labels of the models in tables and figures (default: :func:`model_names`).
        echo: called with one progress line per model.
        progress: called with the number of sequences of each finished batch (all models).

    Returns:
        the content of ``metrics.json``: ``task``, ``split``, ``rows``, ``models`` (name, path),
        ``metrics`` (name -> metrics dict; binary: :func:`~.tables.metrics_row`, multi-class:
        :func:`~.metrics.multiclass_metrics`), ``notes``, ``files`` (name -> path) and settings.
    """
    from ..datasets.store import open_store
    from ..devices import resolve_device
    from ..inference import predict_codes
    from ..modelio import load_model, read_model_document
    from ..precision import resolve_precision

    if not model_dirs:
        raise ChromTransferError("no model given (pass at least one --model)")
    precision = resolve_precision(precision)
    check_output_dir(out, EVALUATION_KIND, overwrite=overwrite)
    echo = echo or (lambda _line: None)
    names = list(names) if names is not None else model_names(model_dirs)
    if len(names) != len(model_dirs) or len(set(names)) != len(names):
        raise ChromTransferError("model names must be unique, one per model")
    store = open_store(store_path)
    documents = {name: read_model_document(d) for name, d in zip(names, model_dirs)}
    task = check_models(documents, store.task, store.classes)
    try:
        idx = store.indices(split)
    except ValueError as exc:
        raise ChromTransferError(f"{exc}") from exc
    if idx.size == 0:
        raise ArtifactError(f"{store.path}: the {split!r} split has no rows; choose another --split (or "
                            "rebuild the store with --test-chroms naming chromosomes with windows)")
    codes = _subset(store.sequences, idx)
    labels = np.asarray(store.labels[idx], dtype=np.int64)
    row_names = store.regions["name"].to_numpy()[idx]
    dev = resolve_device(device)

    probabilities: dict[str, np.ndarray] = {}
    for name, directory in zip(names, model_dirs):
        model = load_model(directory, device=dev)
        probabilities[name] = np.asarray(
            predict_codes(model, codes, batch_size=batch_size, device=dev, rc_average=rc_average,
                          progress=progress, precision=precision),
            dtype=np.float64)
        del model
        echo(f"predicted {idx.size} {split} rows with {name}")
    if len(names) > 1:
        probabilities[ENSEMBLE] = np.mean([probabilities[n] for n in names], axis=0)
    out = claim_output_dir(out, EVALUATION_KIND, overwrite=overwrite)
    settings = {"threshold": threshold, "n_bins": n_bins, "f1_average": f1_average, "rc_average": rc_average,
                "batch_size": batch_size, "device": str(dev), "precision": precision}
    if task == "binary":
        result = _evaluate_binary(out, row_names, labels, probabilities, settings)
    else:
        result = _evaluate_multiclass(out, row_names, labels, probabilities, store.classes, settings)
    document = {
        "task": task,
        "split": split,
        "store": str(Path(store_path).resolve()),
        "rows": int(idx.size),
        "classes": store.classes,
        "models": [{"name": n, "path": str(Path(d).resolve())} for n, d in zip(names, model_dirs)],
        "ensemble": ENSEMBLE if len(names) > 1 else None,
        "settings": settings,
        **result,
        "provenance": provenance(),
    }
    document["files"]["metrics.json"] = str(out / "metrics.json")
    write_json(out / "metrics.json", _json_safe(document))
    return document


def _evaluate_binary(out: Path, row_names, labels, probabilities, settings) -> dict[str, Any]:
    from .. import plots

    scores = {name: p[:, 0] for name, p in probabilities.items()}
    notes: list[str] = []
    predictions = _long_predictions(row_names, labels, {name: s[:, None] for name, s in scores.items()}, ["score"])
    metrics = {name: _with_notes(notes, name, lambda s=s: metrics_row(
        labels, s, settings["threshold"], settings["n_bins"], settings["f1_average"]))
        for name, s in scores.items()}
    roc = {name: _with_notes(notes, name, lambda s=s: roc_points(labels, s)) for name, s in scores.items()}
    pr = {name: _with_notes(notes, name, lambda s=s: pr_points(labels, s)) for name, s in scores.items()}
    calibration = {name: calibration_points(labels, s, settings["n_bins"]) for name, s in scores.items()}
    files = {
        "predictions.tsv": _write_tsv(predictions, out / "predictions.tsv"),
        "metrics.tsv": _write_tsv(pd.DataFrame([{"model": n} | m for n, m in metrics.items()]),
                                  out / "metrics.tsv"),
        "roc.tsv": _write_tsv(_long(roc), out / "roc.tsv"),
        "pr.tsv": _write_tsv(_long(pr), out / "pr.tsv"),
        "calibration.tsv": _write_tsv(_long(calibration), out / "calibration.tsv"),
        "roc.png": plots.roc_curves(roc, out / "roc.png", aucs={n: m["auroc"] for n, m in metrics.items()}),
        "pr.png": plots.pr_curves(pr, out / "pr.png", aucs={n: m["auprc"] for n, m in metrics.items()},
                                  prevalence=float(labels.mean())),
        "calibration.png": plots.calibration_curves(calibration, out / "calibration.png"),
    }
    return {"metrics": metrics, "notes": list(dict.fromkeys(notes)), "files": {k: str(v) for k, v in files.items()}}


def _evaluate_multiclass(out: Path, row_names, labels, probabilities, classes, settings) -> dict[str, Any]:
    from .. import plots

    notes: list[str] = []
    predictions = _long_predictions(row_names, np.asarray(classes, dtype=object)[labels], probabilities,
                                    [str(c) for c in classes])
    metrics = {name: _with_notes(notes, name, lambda p=p: multiclass_metrics(labels, p, classes))
               for name, p in probabilities.items()}
    roc, pr, calibration = {}, {}, {}
    for name, p in probabilities.items():
        for j, cls in enumerate(classes):
            members = (labels == j).astype(np.int8)
            roc[(name, cls)] = _with_notes(notes, f"{name} {cls}", lambda: roc_points(members, p[:, j]))
            pr[(name, cls)] = _with_notes(notes, f"{name} {cls}", lambda: pr_points(members, p[:, j]))
            calibration[(name, cls)] = calibration_points(members, np.clip(p[:, j], 0.0, 1.0), settings["n_bins"])
    primary = ENSEMBLE if ENSEMBLE in probabilities else next(iter(probabilities))
    per_class = metrics[primary]["per_class"]
    pick = lambda curves: {cls: curves[(primary, cls)] for cls in classes}  # noqa: E731
    files = {
        "predictions.tsv": _write_tsv(predictions, out / "predictions.tsv"),
        "metrics.tsv": _write_tsv(pd.DataFrame([{"model": n} | flatten_multiclass(m) for n, m in metrics.items()]),
                                  out / "metrics.tsv"),
        "roc.tsv": _write_tsv(_long(roc, ("model", "class")), out / "roc.tsv"),
        "pr.tsv": _write_tsv(_long(pr, ("model", "class")), out / "pr.tsv"),
        "calibration.tsv": _write_tsv(_long(calibration, ("model", "class")), out / "calibration.tsv"),
        "roc.png": plots.roc_curves(pick(roc), out / "roc.png", aucs={c: v["auroc"] for c, v in per_class.items()},
                                    title=f"One-vs-rest ROC curves ({primary})"),
        "pr.png": plots.pr_curves(pick(pr), out / "pr.png", aucs={c: v["auprc"] for c, v in per_class.items()},
                                  title=f"One-vs-rest precision-recall curves ({primary})"),
        "calibration.png": plots.calibration_curves(pick(calibration), out / "calibration.png",
                                                    title=f"One-vs-rest calibration ({primary})"),
    }
    return {"metrics": metrics, "notes": list(dict.fromkeys(notes)), "files": {k: str(v) for k, v in files.items()}}


def _long_predictions(row_names, labels, probabilities: dict[str, np.ndarray], columns: list[str]) -> pd.DataFrame:
    """``name, label, model`` and the probability ``columns``: one block of rows per model."""
    blocks = []
    for name, p in probabilities.items():
        block = pd.DataFrame({"name": row_names, "label": labels, "model": name})
        for j, column in enumerate(columns):
            block[column] = p[:, j]
        blocks.append(block)
    return pd.concat(blocks, ignore_index=True)


def _long(curves: dict[Any, pd.DataFrame], keys: Sequence[str] = ("model",)) -> pd.DataFrame:
    parts = []
    for key, table in curves.items():
        key = key if isinstance(key, tuple) else (key,)
        part = table.copy()
        for column, value in reversed(list(zip(keys, key))):
            part.insert(0, column, value)
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(keys))


def _json_safe(obj: Any) -> Any:
    """NaN and infinities become null (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)) and not math.isfinite(float(obj)):
        return None
    return obj
