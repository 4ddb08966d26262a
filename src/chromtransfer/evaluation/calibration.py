"""Calibration of predicted probabilities: reliability curve and expected calibration error.

Both use ``n_bins`` equal-width bins on [0, 1] (default 10) with scikit-learn's binning rule
(``sklearn.calibration.calibration_curve(strategy="uniform")``): with edges
``e_0 = 0 < e_1 < ... < e_B = 1``, bin ``i`` holds the probabilities ``e_i < p <= e_{i+1}`` and the
first bin also holds ``p = 0``. Empty bins are left out of the curve and weigh nothing in the ECE.

The expected calibration error (Naeini et al. 2015) is the row-weighted mean gap between the
observed fraction of positives and the mean predicted probability over the bins::

    ECE = sum_i (n_i / N) * | fraction_positive_i - mean_predicted_i |
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from .metrics import DegenerateMetricWarning, check_binary

DEFAULT_BINS = 10


def _bins(prob: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    if prob.size and (prob.min() < 0.0 or prob.max() > 1.0):
        raise ValueError("probabilities must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return edges, np.searchsorted(edges[1:-1], prob)  # the rule calibration_curve uses


def calibration_points(y_true: Any, prob: Any, n_bins: int = DEFAULT_BINS) -> pd.DataFrame:
    """The reliability (calibration) curve of binary predictions.

    Args:
        y_true: ``(N,)`` 0/1 labels.
        prob: ``(N,)`` predicted probabilities of the positive class, in [0, 1].
        n_bins: equal-width bins on [0, 1].

    Returns:
        one row per non-empty bin, by rising probability: ``bin_lower``, ``bin_upper``,
        ``mean_predicted`` and ``fraction_positive`` (from ``calibration_curve``), ``count`` (rows).
    """
    from sklearn.calibration import calibration_curve

    y, p = check_binary(y_true, prob)
    edges, ids = _bins(p, n_bins)
    counts = np.bincount(ids, minlength=n_bins)
    occupied = np.flatnonzero(counts)
    if y.size == 0:
        return pd.DataFrame({"bin_lower": [], "bin_upper": [], "mean_predicted": [],
                             "fraction_positive": [], "count": []})
    # calibration_curve refuses a single label value unless told which one is positive.
    fraction, mean = calibration_curve(y, p, n_bins=n_bins, strategy="uniform", pos_label=1)
    if len(mean) != len(occupied):  # scikit-learn changed its binning rule: counts would misalign
        raise RuntimeError("calibration_curve binning differs from chromtransfer's; please report this")
    return pd.DataFrame({
        "bin_lower": edges[occupied], "bin_upper": edges[occupied + 1],
        "mean_predicted": mean, "fraction_positive": fraction, "count": counts[occupied],
    })


def expected_calibration_error(y_true: Any, prob: Any, n_bins: int = DEFAULT_BINS) -> float:
    """ECE of binary predictions over ``n_bins`` equal-width bins (module docstring); NaN and a
    :class:`DegenerateMetricWarning` when there are no rows."""
    y, p = check_binary(y_true, prob)
    if y.size == 0:
        warnings.warn("ECE undefined without rows; reported as NaN", DegenerateMetricWarning, stacklevel=2)
        return math.nan
    _, ids = _bins(p, n_bins)
    counts = np.bincount(ids, minlength=n_bins).astype(np.float64)
    positives = np.bincount(ids, weights=y.astype(np.float64), minlength=n_bins)
    prob_sums = np.bincount(ids, weights=p, minlength=n_bins)
    occupied = counts > 0
    gaps = np.abs(positives[occupied] - prob_sums[occupied]) / counts[occupied]
    return float(np.sum(counts[occupied] / y.size * gaps))
