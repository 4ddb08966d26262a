"""Recompute a network's BatchNorm moving statistics with dropout off (``--recalibrate-bn``).

The network puts Dropout before the next unit's BatchNorm (Conv -> ReLU -> BN -> Dropout, as
published). During training every BatchNorm sees dropped-out inputs, scaled by ``1 / (1 - p)``,
whose variance is larger than that of the same inputs at evaluation, when dropout is the
identity; the moving variances learnt in training are then too large for evaluation and the
scores shift (the variance shift of Li et al. 2019). Recalibrating runs one pass over the
training rows with every Dropout in eval mode and every BatchNorm in training mode, its moving
mean and variance reset and accumulated as plain averages over the batches (PyTorch's
``momentum=None``), so the statistics are those the evaluation-time network produces. Weights
are unchanged; only the BatchNorm buffers move.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from ..encoding import one_hot


def batchnorm_modules(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer of ``model``."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def recalibrate_batchnorm(model: nn.Module, codes: np.ndarray, rows: np.ndarray, *, batch_size: int = 128,
                          device: str | torch.device = "cpu") -> dict[str, Any]:
    """Reset and recompute the BatchNorm moving statistics of ``model`` in place, dropout off.

    Args:
        model: a network mapping one-hot ``(B, 4, L)`` to logits; left in eval mode on ``device``.
        codes: ``(N, L)`` uint8 codes (a store's ``sequences``, memmap or array).
        rows: the rows to pass (sorted ``int64``; the training rows of the run).
        batch_size: rows per forward pass (the training batch size; a last batch of one row is
            folded into the one before, BatchNorm needs two).
        device: where the pass runs.

    Returns:
        the record kept in ``model.json``: ``rows``, ``batch_size``, ``batches``, ``layers``,
        ``seconds``, ``dropout: "off"``, ``averaging: "cumulative"``.
    """
    layers = batchnorm_modules(model)
    if not layers:
        raise ValueError("the model has no BatchNorm layer to recalibrate")
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) < 2:
        raise ValueError("recalibrating BatchNorm needs at least 2 rows")
    started = time.perf_counter()
    model.to(device).eval()
    dtype = next(model.parameters()).dtype
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average over the batches of this pass
        layer.train()
    bounds = list(range(0, len(rows), batch_size)) + [len(rows)]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < 2:
        bounds.pop(-2)
    try:
        with torch.no_grad():
            for begin, end in zip(bounds[:-1], bounds[1:]):
                batch = np.ascontiguousarray(codes[rows[begin:end]], dtype=np.uint8)
                model(one_hot(torch.from_numpy(batch).to(device), dtype))
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.eval()
    return {"rows": int(len(rows)), "batch_size": int(batch_size), "batches": len(bounds) - 1,
            "layers": len(layers), "dropout": "off", "averaging": "cumulative",
            "seconds": round(time.perf_counter() - started, 3)}
