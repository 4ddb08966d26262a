"""Single-base substitutions scored from one reference pass per window (the receptive-field trick).

A substitution at window position ``i`` changes the network's activation maps only within the
reach of ``i`` (see :mod:`chromtransfer.interpret.ism`). :func:`snv_probabilities` runs the full
network once per reference window, keeps every layer's activation map, and for each substitution
recomputes only the changed columns of every layer; global average pooling then needs only the
change of those columns. The windowed arithmetic is the ISM module's own (its ``_Batch`` pass);
here the substitutions of one batch may come from different windows (rows), which the pass
supports once the rows' padded maps are laid end to end: a window's padding (``pad`` columns of
zeros on each side, at least the pass's widest reach) keeps neighbouring rows apart.

The result equals running the whole network on the reference and on the mutated window (two
full forward passes) up to float32 rounding (below 1e-5 in probability).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..encoding import N_CODE, one_hot
from ..inference import model_dtype, predict_codes
from ..interpret import ism as _ism
from ..models import probabilities

__all__ = ["REFERENCE_BUDGET_BYTES", "snv_probabilities"]

#: Bytes of reference activation maps held at once (7 MB per 600 bp window of the published
#: network, twice that with the padded copies): bounds the windows per reference pass.
REFERENCE_BUDGET_BYTES = 48 * 1024 ** 2


def _pad_width(body: nn.Module) -> int:
    left, right = _ism.receptive_field(body)
    max_kernel = max(m.kernel_size[0] for m in body.modules() if isinstance(m, nn.Conv1d))
    return max(left, right) + max_kernel


def snv_probabilities(model: nn.Module, windows: np.ndarray, rows: np.ndarray, offsets: np.ndarray,
                      alts: np.ndarray, *, batch_size: int = 256,
                      device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of reference windows and of single-base substitutions inside them.

    Args:
        model: a binary :class:`~chromtransfer.models.ChromTransferNet` (eval mode is used).
        windows: ``(W, L)`` uint8 reference codes.
        rows: ``(n,)`` window of each substitution.
        offsets: ``(n,)`` position of each substitution in its window (0..L-1).
        alts: ``(n,)`` substituted base code (0..3).
        batch_size: substitutions per windowed pass.
        device: where the network runs.

    Returns:
        ``(p_windows (W,), p_substitutions (n,))`` float64 probabilities of the model's output unit.

    A model without a convolutional body (the k-mer composition model) scores each mutated window
    whole.
    """
    if not hasattr(model, "body"):
        return _whole_windows(model, windows, rows, offsets, alts, batch_size=batch_size, device=device)
    body = model.body
    _ism._check_body(body)
    dev = torch.device(device)
    dtype = model_dtype(model)
    windows = np.ascontiguousarray(windows, dtype=np.uint8)
    rows, offsets, alts = (np.asarray(a, dtype=np.int64) for a in (rows, offsets, alts))
    n_windows, length = windows.shape
    p_windows = np.zeros(n_windows, dtype=np.float64)
    p_subs = np.zeros(rows.shape[0], dtype=np.float64)
    if n_windows == 0:
        return p_windows, p_subs
    pad = _pad_width(body)
    stride = length + 2 * pad
    itemsize = torch.empty((), dtype=dtype).element_size()
    per_window = _ism._reference_bytes(body, length, pad, itemsize)
    chunk = max(1, min(256, REFERENCE_BUDGET_BYTES // per_window))
    # substitutions sorted by window, then by position (close positions share trimmed windows)
    order = np.lexsort((offsets, rows))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            kernels = {id(m): _ism._channels_last_kernel(m) for m in body.modules() if isinstance(m, nn.Conv1d)}
            bounds = np.searchsorted(rows[order], np.arange(0, n_windows + chunk, chunk))
            for k, w0 in enumerate(range(0, n_windows, chunk)):
                w1 = min(n_windows, w0 + chunk)
                block = torch.from_numpy(windows[w0:w1]).to(dev)
                maps = _ism._reference_maps(body, one_hot(block, dtype))
                pooled_ref = maps["last"].mean(dim=-1)
                p_windows[w0:w1] = probabilities(model.head(pooled_ref), False)[:, 0].double().cpu().numpy()
                members = order[bounds[k]:bounds[k + 1]]
                if members.size == 0:
                    continue
                refs = {name: m.reshape(-1, m.shape[-1])[None]
                        for name, m in _ism._padded_positions_major(maps, pad).items()}
                del maps
                flat_codes = F.pad(block, (pad, pad), value=N_CODE).reshape(-1)
                # within the block, batches of substitutions ordered by position
                members = members[np.argsort(offsets[members], kind="stable")]
                for b0 in range(0, members.size, batch_size):
                    sel = members[b0:b0 + batch_size]
                    local_rows = torch.from_numpy(rows[sel] - w0).to(dev)
                    pos = torch.from_numpy(offsets[sel]).to(dev)
                    batch = _ism._Batch(refs, 0, pos, int(offsets[sel].min()), int(offsets[sel].max()),
                                        length, pad, kernels)
                    batch.start = local_rows * stride + pos + pad
                    window = batch.last_features(body, flat_codes, torch.from_numpy(alts[sel]).to(dev))
                    change = window.values - batch.gather("last", window.lo, window.width)
                    pooled = pooled_ref[local_rows] + change.sum(dim=1) / length
                    p = probabilities(model.head(pooled), False)[:, 0]
                    p_subs[sel] = p.double().cpu().numpy()
    finally:
        model.train(was_training)
    return p_windows, p_subs


def _whole_windows(model: nn.Module, windows: np.ndarray, rows: np.ndarray, offsets: np.ndarray,
                   alts: np.ndarray, *, batch_size: int, device) -> tuple[np.ndarray, np.ndarray]:
    """:func:`snv_probabilities` by plain prediction of the reference and every mutated window."""
    windows = np.ascontiguousarray(windows, dtype=np.uint8)
    rows, offsets, alts = (np.asarray(a, dtype=np.int64) for a in (rows, offsets, alts))
    mutated = windows[rows].copy()
    mutated[np.arange(rows.shape[0]), offsets] = alts
    p_windows = predict_codes(model, windows, batch_size=batch_size, device=device)[:, 0]
    p_subs = predict_codes(model, mutated, batch_size=batch_size, device=device)[:, 0] if len(rows) else \
        np.zeros(0, dtype=np.float32)
    return p_windows.astype(np.float64), p_subs.astype(np.float64)
