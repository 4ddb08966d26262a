"""Gradient x input attributions, batched on the device (docs/method.md section 6).

For a sequence with one-hot input ``x`` (``(4, L)``) and a scalar model output ``f(x)``, the score
of base ``j`` is ``sum_c x[c, j] * df/dx[c, j]``: the partial derivative with respect to the
reference base's channel. Positions holding N (an all-zero column) score 0. No normalisation.

The output ``f`` (the *target*) is chosen by :func:`target_output`:

* ``"probability"`` (default, as the paper): the post-sigmoid output of a binary model, or the
  softmax probability of one class of a multi-class model;
* ``"logit"``: the pre-sigmoid (pre-softmax) output unit.

The model runs in inference mode (``model.eval()``: BatchNorm uses its running statistics, dropout
is the identity); its training flag is restored afterwards. Sequences stay on the CPU as uint8
codes and are one-hot encoded per batch on the device.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, NamedTuple

import numpy as np
import torch

from ..devices import resolve_device
from ..encoding import one_hot
from ..inference import model_dtype

TARGETS = ("probability", "logit")


def check_target(model: torch.nn.Module, target: str, class_index: int | None) -> int:
    """Validate ``target`` and the output unit; return the unit's column in the logits.

    Binary models have one output unit (``class_index`` must be ``None`` or 0). Multi-class models
    need ``class_index`` in ``0..n_classes-1``.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")
    multiclass = bool(getattr(model, "multiclass", False))
    n_outputs = int(getattr(getattr(model, "config", None), "n_outputs", 1) or 1)
    if multiclass:
        if class_index is None:
            raise ValueError("a multi-class model needs the output class (class_index / --class)")
        if not 0 <= int(class_index) < n_outputs:
            raise ValueError(f"class index {class_index} out of range 0..{n_outputs - 1}")
        return int(class_index)
    if class_index not in (None, 0):
        raise ValueError(f"a binary model has one output unit; class index {class_index} is invalid")
    return 0


def target_output(logits: torch.Tensor, target: str, multiclass: bool, unit: int) -> torch.Tensor:
    """The scalar output per sequence, ``(B,)``, from logits ``(B, n_outputs)``.

    ``probability``: sigmoid of the single logit (binary) or softmax probability of column ``unit``
    (multi-class); ``logit``: column ``unit`` of the logits.
    """
    if target == "logit":
        return logits[:, unit]
    if multiclass:
        return torch.softmax(logits, dim=-1)[:, unit]
    return torch.sigmoid(logits[:, unit])


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``model`` in eval mode for the block and restore its training flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def place_model(model: torch.nn.Module, device: str | torch.device | None) -> torch.device:
    """Move ``model`` to ``device`` (``None``: leave it where it is) and return its device."""
    if device is None:
        for parameter in model.parameters():
            return parameter.device
        return torch.device("cpu")
    dev = resolve_device(device)
    model.to(dev)
    return dev


def _as_codes(codes: np.ndarray) -> np.ndarray:
    if isinstance(codes, torch.Tensor):
        codes = codes.cpu().numpy()
    if not isinstance(codes, np.memmap):
        codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must have shape (N, L), got {codes.shape}")
    return codes


class RunSetup(NamedTuple):
    """What every attribution method needs before its first batch (see :func:`prepare_run`)."""

    codes: np.ndarray  # (N, L) uint8
    unit: int | None  # the output unit attributed (see check_target)
    multiclass: bool
    device: torch.device
    dtype: torch.dtype  # the model's floating dtype


def prepare_run(model: torch.nn.Module, codes: np.ndarray, target: str, class_index: int | None,
                batch_size: int, device: str | torch.device | None) -> RunSetup:
    """Check the arguments shared by the attribution methods and place the model on ``device``."""
    codes = _as_codes(codes)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    unit = check_target(model, target, class_index)
    multiclass = bool(getattr(model, "multiclass", False))
    dev = place_model(model, device)
    return RunSetup(codes, unit, multiclass, dev, model_dtype(model))


def input_gradients(model: torch.nn.Module, codes: np.ndarray, *, target: str = "probability",
                    class_index: int | None = None, batch_size: int = 128,
                    device: str | torch.device | None = None) -> np.ndarray:
    """The gradient of the target output with respect to each one-hot channel of each base.

    Arguments as :func:`grad_x_input`. Returns ``float32`` ``(N, L, 4)`` (A, C, G, T): ``d f / d x``
    at every channel. Its value at the present base is the gradient x input score; as a whole it is
    gradient x input's *hypothetical* contribution of each base (read by motif discovery).
    """
    codes, unit, multiclass, dev, dtype = prepare_run(model, codes, target, class_index, batch_size, device)
    gradients = np.zeros((*codes.shape, 4), dtype=np.float32)
    with eval_mode(model), torch.enable_grad():
        for start in range(0, codes.shape[0], batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(codes[start:start + batch_size])).to(dev)
            x = one_hot(batch, dtype).requires_grad_(True)
            out = target_output(model(x), target, multiclass, unit)
            (gradient,) = torch.autograd.grad(out.sum(), x)
            gradients[start:start + len(batch)] = gradient.detach().float().transpose(1, 2).cpu().numpy()
    return gradients


def at_present_base(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``(N, L)``: the value of ``values`` ``(N, L, 4)`` at each position's base (0 at N)."""
    codes = np.asarray(codes)
    known = codes < 4
    picked = np.take_along_axis(values, np.where(known, codes, 0)[..., None].astype(np.int64), axis=-1)[..., 0]
    return np.where(known, picked, 0).astype(np.float32)


def grad_x_input(model: torch.nn.Module, codes: np.ndarray, *, target: str = "probability",
                 class_index: int | None = None, batch_size: int = 128,
                 device: str | torch.device | None = None) -> np.ndarray:
    """Gradient x input scores for every base of every sequence.

    Args:
        model: a :class:`~chromtransfer.models.ChromTransferNet` (any module mapping one-hot
            ``(B, 4, L)`` to logits ``(B, n_outputs)`` with a ``multiclass`` flag works).
        codes: ``(N, L)`` uint8 codes (A0 C1 G2 T3, other 4), kept on the CPU.
        target: ``"probability"`` or ``"logit"`` (see :func:`target_output`).
        class_index: output class of a multi-class model (softmax unit); ``None`` for binary.
        batch_size: sequences per backward pass.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...; ``None`` keeps the model where it is.

    Returns:
        ``float32`` array ``(N, L)``: ``d f / d x`` at the reference base of each position (0 at N).
    """
    gradients = input_gradients(model, codes, target=target, class_index=class_index, batch_size=batch_size,
                                device=device)
    return at_present_base(gradients, _as_codes(codes))
