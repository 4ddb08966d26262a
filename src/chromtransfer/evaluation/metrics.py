"""Classification metrics over NumPy arrays (docs/method.md section 5), built on scikit-learn.

The defaults compute what the ChromTransfer paper reports (docs/fidelity.md):

* ``f1_overall`` is the class-size weighted mean of the two per-class F1 scores
  (``f1_average="weighted"``, scikit-learn's ``average="weighted"``); the plain mean is kept as
  ``f1_macro``. The paper's K562 fine-tuned model has per-class F1 0.91 / 0.62 and overall 0.86,
  which only the weighted mean gives (the macro mean is 0.77).
* ``auprc`` (:func:`auprc`) is the area under the precision-recall curve with the continuous
  interpolation of Davis & Goadrich (2006) as generalised by Keilwagen, Grosse & Grau (2014): R's
  ``PRROC::pr.curve(...)$auc.integral``, the published AUPRC (``table.auROC.csv``). Average
  precision, scikit-learn's step-wise area, is kept as ``average_precision``
  (:func:`average_precision`).

Binary tasks (:func:`binary_metrics`): per-class F1 at a probability threshold (negative and
positive class), the overall and macro F1 (:func:`overall_f1`); AUROC; AUPRC and average
precision; precision and recall of the positive class; Brier score; expected calibration error
(:mod:`.calibration`).

Multi-class tasks (:func:`multiclass_metrics`): one-vs-rest AUROC, AUPRC and average precision
per class and their macro averages, accuracy and macro F1 of the arg-max prediction.

Degenerate inputs never raise: a metric that is undefined for the data (AUROC and AUPRC with only
one class present, Brier score of scores outside [0, 1]) is ``NaN`` and a
:class:`DegenerateMetricWarning` says why. Malformed inputs (mismatched lengths, labels other than
0/1, non-finite scores) raise ``ValueError``.

Convention: a row is predicted positive when ``score > threshold`` (a score of exactly 0.5 is
negative), as scikit-learn's classifiers' ``predict`` does.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd

#: How ``f1_overall`` averages the per-class F1 by default (see :func:`overall_f1`).
DEFAULT_F1_AVERAGE = "weighted"
#: How ``f1_overall`` combines the per-class F1 scores (:func:`overall_f1`).
F1_AVERAGES = ("weighted", "macro")

#: Keys of :func:`binary_metrics`, in the order tables print them.
BINARY_KEYS = ("auroc", "auprc", "average_precision", "f1_negative", "f1_positive", "f1_overall",
               "f1_macro", "precision", "recall", "brier", "ece", "n", "n_positive")


class DegenerateMetricWarning(UserWarning):
    """A metric is undefined for the given data and was reported as NaN."""


def _note(message: str) -> None:
    warnings.warn(message, DegenerateMetricWarning, stacklevel=3)


def check_binary(y_true: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert to ``(N,)`` int8 labels in {0, 1} and ``(N,)`` float64 scores."""
    y = np.asarray(y_true)
    s = np.asarray(score, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(f"y_true and score must be 1-D, got shapes {y.shape} and {s.shape}")
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.shape[0]} values but score has {s.shape[0]}")
    if y.dtype == bool:
        y = y.astype(np.int8)
    elif y.size:
        if not np.issubdtype(y.dtype, np.number) or not np.isin(y, (0, 1)).all():
            bad = [v for v in np.unique(y)[:5].tolist() if v not in (0, 1)]
            raise ValueError(f"binary labels must be 0 or 1, found {bad}")
        y = y.astype(np.int8)
    else:
        y = y.astype(np.int8)
    if not np.isfinite(s).all():
        raise ValueError(f"scores must be finite; {int((~np.isfinite(s)).sum())} are NaN or infinite")
    return y, s


def _both_classes(y: np.ndarray, what: str) -> bool:
    n_pos = int(y.sum())
    if 0 < n_pos < y.size:
        return True
    _note(f"{what} undefined: only one class among {y.size} rows ({n_pos} positive); reported as NaN")
    return False


def auroc(y_true: Any, score: Any) -> float:
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``); NaN with one class only."""
    from sklearn.metrics import roc_auc_score

    y, s = check_binary(y_true, score)
    if not _both_classes(y, "AUROC"):
        return math.nan
    return float(roc_auc_score(y, s))


def average_precision(y_true: Any, score: Any) -> float:
    """Average precision (``sklearn.metrics.average_precision_score``): sum over thresholds of
    precision times the recall increment. NaN with one class only."""
    from sklearn.metrics import average_precision_score

    y, s = check_binary(y_true, score)
    if not _both_classes(y, "average precision"):
        return math.nan
    return float(average_precision_score(y, s))


def auprc(y_true: Any, score: Any) -> float:
    """Area under the PR curve with continuous interpolation between operating points (the
    paper's AUPRC).

    Between two consecutive distinct thresholds the true positives grow from ``a`` to ``b`` and
    the false positives from ``fa`` to ``fb``; the interpolated curve lets the false positives
    grow linearly with the true positives (Davis & Goadrich 2006; Keilwagen et al. 2014), so
    precision is ``(a + x) / (a + x + fa + h x)`` with ``h = (fb - fa) / (b - a)`` for ``x`` in
    ``[0, b - a]``. Its integral has a closed form (a logarithm), summed here over all segments and
    divided by the number of positives. Equals R's ``PRROC::pr.curve(...)$auc.integral``. The first
    segment starts at zero true and false positives; tied scores form one operating point (one
    segment). NaN with one class only.

    PRROC also returns ``auc.davis.goadrich``, the same interpolation evaluated at whole true
    positives (a sum instead of the integral); the published table matches ``auc.integral``
    (within 1e-6 on all six cell lines, tests/test_published_auroc.py).

    This is hand-written because scikit-learn offers only the step-wise average precision and the
    trapezoidal rule (``auc(recall, precision)``), which both differ from the published values.
    """
    y, s = check_binary(y_true, score)
    if not _both_classes(y, "AUPRC"):
        return math.nan
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order].astype(np.float64)
    last_of_tie = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tp = np.r_[0.0, np.cumsum(y_sorted)[last_of_tie]]
    fp = np.r_[0.0, np.cumsum(1.0 - y_sorted)[last_of_tie]]
    a, fa = tp[:-1], fp[:-1]
    steps = tp[1:] - a
    keep = steps > 0  # thresholds that add no true positive add no area
    a, fa, n = a[keep], fa[keep], steps[keep]
    h = (fp[1:][keep] - fa) / n
    k = 1.0 + h
    c = a + fa
    area = n / k
    inner = c > 0  # c == 0 only at the very first segment, where precision is constant 1/k
    area[inner] += (a[inner] * h[inner] - fa[inner]) / k[inner] ** 2 * np.log1p(k[inner] * n[inner] / c[inner])
    return float(area.sum() / tp[-1])


def f1_per_class(y_true: Any, score: Any, threshold: float = 0.5) -> tuple[float, float]:
    """F1 of the negative and of the positive class for predictions ``score > threshold``.

    A class that is neither present nor predicted has an undefined F1 (NaN).
    """
    from sklearn.metrics import f1_score

    y, s = check_binary(y_true, score)
    if y.size == 0:
        return math.nan, math.nan
    pred = (s > threshold).astype(np.int8)
    f1 = f1_score(y, pred, labels=[0, 1], average=None, zero_division=np.nan)
    return float(f1[0]), float(f1[1])


def overall_f1(f1_negative: float, f1_positive: float, n_negative: int, n_positive: int,
               average: str = DEFAULT_F1_AVERAGE) -> float:
    """Combine the per-class F1 scores into one.

    ``"macro"``: their plain mean (NaN when either is undefined). ``"weighted"``: their mean
    weighted by the number of true rows of each class, as scikit-learn's ``average="weighted"``
    (a class without rows weighs nothing). The paper's "overall F1" is the weighted one: its K562
    fine-tuned model has per-class F1 0.91 and 0.62 and overall 0.86 (Results), which the
    published predictions reproduce with ``"weighted"`` (macro gives 0.77).
    """
    if average == "macro":
        return (f1_negative + f1_positive) / 2.0
    if average == "weighted":
        total = n_negative + n_positive
        if total == 0:
            return math.nan
        parts = [(f, n) for f, n in ((f1_negative, n_negative), (f1_positive, n_positive)) if n > 0]
        return float(sum(f * n for f, n in parts) / total)
    raise ValueError(f"unknown F1 average {average!r}: use 'macro' or 'weighted'")


def binary_metrics(y_true: Any, score: Any, threshold: float = 0.5, *, n_bins: int = 10,
                   f1_average: str = DEFAULT_F1_AVERAGE) -> dict[str, Any]:
    """All binary-task metrics of one set of predictions.

    Args:
        y_true: ``(N,)`` labels, 0/1 or bool.
        score: ``(N,)`` predicted probabilities of the positive class (any real scores work for
            AUROC, AUPRC and F1; Brier score and ECE need probabilities in [0, 1] and are NaN
            otherwise).
        threshold: a row is predicted positive when ``score > threshold``.
        n_bins: equal-width bins on [0, 1] for the expected calibration error.
        f1_average: how ``f1_overall`` combines the two per-class F1 (:func:`overall_f1`).

    Returns:
        dict with exactly the keys of ``BINARY_KEYS``: ``auroc``, ``auprc`` (interpolated PR
        area, :func:`auprc`), ``average_precision``, ``f1_negative``, ``f1_positive``,
        ``f1_overall`` (their weighted mean, or as ``f1_average`` says), ``f1_macro`` (their mean),
        ``precision`` and ``recall`` (positive class; NaN when undefined, e.g. precision with no
        predicted positives), ``brier``, ``ece``, ``n`` (rows), ``n_positive``.
    """
    from sklearn.metrics import brier_score_loss, precision_score, recall_score

    from .calibration import expected_calibration_error

    y, s = check_binary(y_true, score)
    result: dict[str, Any] = {key: math.nan for key in BINARY_KEYS}
    result["n"] = int(y.size)
    result["n_positive"] = int(y.sum())
    if y.size == 0:
        _note("no rows: every metric is NaN")
        return result
    if 0 < result["n_positive"] < y.size:
        result["auroc"] = auroc(y, s)
        result["auprc"] = auprc(y, s)
        result["average_precision"] = average_precision(y, s)
    else:
        _note(f"AUROC and AUPRC undefined: only one class among {y.size} rows "
              f"({result['n_positive']} positive); reported as NaN")
    f1_neg, f1_pos = f1_per_class(y, s, threshold)
    result["f1_negative"], result["f1_positive"] = f1_neg, f1_pos
    result["f1_overall"] = overall_f1(f1_neg, f1_pos, y.size - result["n_positive"], result["n_positive"],
                                      f1_average)
    result["f1_macro"] = overall_f1(f1_neg, f1_pos, y.size - result["n_positive"], result["n_positive"],
                                    "macro")
    pred = (s > threshold).astype(np.int8)
    result["precision"] = float(precision_score(y, pred, zero_division=np.nan))
    result["recall"] = float(recall_score(y, pred, zero_division=np.nan))
    if s.min() < 0.0 or s.max() > 1.0:
        _note("Brier score and ECE need probabilities in [0, 1]; the scores are not, reported as NaN")
    else:
        result["brier"] = float(brier_score_loss(y, s, pos_label=1))
        result["ece"] = expected_calibration_error(y, s, n_bins=n_bins)
    return result


def multiclass_metrics(y_true_int: Any, prob_matrix: Any, classes: Sequence[str]) -> dict[str, Any]:
    """One-vs-rest metrics of a multi-class model.

    Args:
        y_true_int: ``(N,)`` class indices in ``0..C-1``.
        prob_matrix: ``(N, C)`` class probabilities (rows summing to 1, e.g. softmax outputs).
        classes: the ``C`` class names, in column order.

    Returns:
        dict with ``n``, ``accuracy`` and ``f1_macro`` of the arg-max prediction, ``auroc_macro``,
        ``auprc_macro`` and ``average_precision_macro`` (means over the classes whose one-vs-rest
        metric is defined) and ``per_class``: ``{class: {"auroc", "auprc", "average_precision",
        "n_positive"}}`` where each class's score is its own probability column and its positives
        are the rows of that class (``auprc`` the interpolated area of :func:`auprc`).
    """
    from sklearn.metrics import accuracy_score, f1_score

    y = np.asarray(y_true_int)
    p = np.asarray(prob_matrix, dtype=np.float64)
    classes = [str(c) for c in classes]
    if p.ndim != 2 or p.shape[1] != len(classes):
        raise ValueError(f"prob_matrix must have shape (N, {len(classes)}), got {p.shape}")
    if y.ndim != 1 or y.shape[0] != p.shape[0]:
        raise ValueError(f"y_true_int must have shape ({p.shape[0]},), got {y.shape}")
    if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= len(classes)):
        raise ValueError(f"class indices must be integers in 0..{len(classes) - 1}")
    if not np.isfinite(p).all():
        raise ValueError("probabilities must be finite")
    per_class: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(classes):
        members = (y == index).astype(np.int8)
        defined = 0 < members.sum() < members.size
        per_class[name] = {
            "auroc": auroc(members, p[:, index]) if defined else math.nan,
            "auprc": auprc(members, p[:, index]) if defined else math.nan,
            "average_precision": average_precision(members, p[:, index]) if defined else math.nan,
            "n_positive": int(members.sum()),
        }
        if not defined:
            _note(f"one-vs-rest AUROC/AUPRC of class {name!r} undefined: {int(members.sum())} of "
                  f"{members.size} rows belong to it; reported as NaN and left out of the macro average")
    aurocs = [v["auroc"] for v in per_class.values() if not math.isnan(v["auroc"])]
    auprcs = [v["auprc"] for v in per_class.values() if not math.isnan(v["auprc"])]
    aps = [v["average_precision"] for v in per_class.values() if not math.isnan(v["average_precision"])]
    pred = p.argmax(axis=1) if y.size else np.zeros(0, dtype=int)
    return {
        "n": int(y.size),
        "accuracy": float(accuracy_score(y, pred)) if y.size else math.nan,
        "f1_macro": float(f1_score(y, pred, labels=list(range(len(classes))), average="macro",
                                   zero_division=0)) if y.size else math.nan,
        "auroc_macro": float(np.mean(aurocs)) if aurocs else math.nan,
        "auprc_macro": float(np.mean(auprcs)) if auprcs else math.nan,
        "average_precision_macro": float(np.mean(aps)) if aps else math.nan,
        "per_class": per_class,
    }


def flatten_multiclass(metrics: dict[str, Any]) -> dict[str, Any]:
    """One flat row of :func:`multiclass_metrics`: ``auroc_<class>``, ``auprc_<class>``, ..."""
    row = {k: v for k, v in metrics.items() if k != "per_class"}
    for name, values in metrics["per_class"].items():
        row[f"auroc_{name}"] = values["auroc"]
        row[f"auprc_{name}"] = values["auprc"]
        row[f"average_precision_{name}"] = values["average_precision"]
        row[f"n_{name}"] = values["n_positive"]
    return row


def roc_points(y_true: Any, score: Any) -> pd.DataFrame:
    """ROC curve points (``sklearn.metrics.roc_curve``, collinear points dropped).

    Returns a table with columns ``fpr``, ``tpr``, ``threshold`` (the first threshold is +inf:
    nothing predicted positive); empty with one class only.
    """
    from sklearn.metrics import roc_curve

    y, s = check_binary(y_true, score)
    if not _both_classes(y, "ROC curve"):
        return pd.DataFrame({"fpr": [], "tpr": [], "threshold": []})
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=True)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thresholds})


def pr_points(y_true: Any, score: Any) -> pd.DataFrame:
    """Precision-recall curve points (``sklearn.metrics.precision_recall_curve``), by falling
    threshold. Columns ``recall``, ``precision``, ``threshold`` (NaN for the end point at recall 0,
    precision 1); empty with one class only."""
    from sklearn.metrics import precision_recall_curve

    y, s = check_binary(y_true, score)
    if not _both_classes(y, "PR curve"):
        return pd.DataFrame({"recall": [], "precision": [], "threshold": []})
    precision, recall, thresholds = precision_recall_curve(y, s)
    return pd.DataFrame({"recall": recall[::-1], "precision": precision[::-1],
                         "threshold": np.r_[np.nan, thresholds[::-1]]})
