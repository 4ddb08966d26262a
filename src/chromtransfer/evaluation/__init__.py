"""Evaluation: metrics, calibration, metrics of prediction tables, evaluation of saved models.

* :mod:`.metrics` — binary and multi-class metrics and curve points (pure functions).
* :mod:`.calibration` — reliability curve and expected calibration error.
* :mod:`.tables` — read any predictions table and compute the metrics per group.
* :mod:`.evaluate` — predict a dataset store's split with saved models, write tables and figures.
"""
from .calibration import calibration_points, expected_calibration_error
from .metrics import (
    BINARY_KEYS,
    DegenerateMetricWarning,
    auprc,
    auroc,
    average_precision,
    binary_metrics,
    f1_per_class,
    multiclass_metrics,
    pr_points,
    roc_points,
)

__all__ = [
    "BINARY_KEYS", "DegenerateMetricWarning", "auprc", "auroc", "average_precision", "binary_metrics",
    "calibration_points", "expected_calibration_error", "f1_per_class", "multiclass_metrics",
    "pr_points", "roc_points", "evaluate_models",
]


def __getattr__(name: str):
    if name == "evaluate_models":  # imports torch: only on use
        from .evaluate import evaluate_models

        return evaluate_models
    raise AttributeError(name)
