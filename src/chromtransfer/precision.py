"""The one rule that turns a precision option (``--precision``, ``precision=``) into arithmetic.

Inference (predict, evaluate, attribute, ISM, variants, tracks, the study's scoring stages):

* ``"float32"`` (also ``"32"``, ``"fp32"``; the default): float32 weights, activations and sums;
* ``"bf16"`` (also ``"bfloat16"``): bf16 weights and activations, float32 accumulation inside
  every convolution and matrix product, BatchNorm arithmetic, pooling, the dense head and the
  sigmoid/softmax in float32. On the CPU the fused channels-last model
  (:mod:`chromtransfer.accel.fast`) holds its convolution weights and activations in bf16 itself,
  so the worker threads of :func:`~chromtransfer.accel.fast.forward_in_chunks` run bf16 too
  (``torch.autocast`` is thread-local and would not reach them); elsewhere (CUDA, gradients,
  ISM) the computation runs under ``torch.autocast(device, torch.bfloat16)``
  (:func:`autocast`).

Training: ``"32"`` (Lightning ``32-true``), ``"bf16"`` (``bf16-mixed``: bf16 autocast, float32
weights, optimizer state and loss) and ``"64"`` (``64-true``, for exactness tests), on the CPU
and on GPUs (:func:`lightning_precision`).

When to choose which (measured figures: benchmarks/README.md): bf16 pays on hardware that
multiplies bf16 faster than float32 (every recent NVIDIA GPU; CPUs with ``avx512_bf16`` or AMX,
e.g. AMD Zen 4/5, Intel Sapphire Rapids and later). On CPUs without it (``grep -o
'avx512_bf16\\|amx' /proc/cpuinfo`` prints nothing) oneDNN emulates bf16 and it is several times
slower than float32: keep float32 there. Accuracy: predictions move by at most ~1e-2 in
probability (the contract the benchmarks check on real data), so use float32 where exact
reproduction of published numbers matters.

Errors are :class:`~chromtransfer.errors.ChromTransferError` (one line on the command line).
"""
from __future__ import annotations

import contextlib

import torch

from .errors import ChromTransferError

__all__ = ["INFERENCE_PRECISIONS", "autocast", "compute_dtype", "cpu_has_native_bf16", "lightning_precision",
           "resolve_precision"]

#: The inference precisions, by their canonical names.
INFERENCE_PRECISIONS = ("float32", "bf16")
_ALIASES = {"float32": "float32", "fp32": "float32", "32": "float32", "32-true": "float32",
            "bf16": "bf16", "bfloat16": "bf16", "bf16-mixed": "bf16"}
_LIGHTNING = {"32": "32-true", "bf16": "bf16-mixed", "64": "64-true"}


def resolve_precision(spec: str | None = None) -> str:
    """The canonical inference precision (``"float32"`` or ``"bf16"``) that ``spec`` names.

    ``None`` is float32. Upper case and spaces aside, anything other than the names in the module
    docstring is an error naming the accepted values.
    """
    if spec is None:
        return "float32"
    name = str(spec).strip().lower()
    if name not in _ALIASES:
        raise ChromTransferError(f"unknown precision {spec!r} (use float32 or bf16)")
    return _ALIASES[name]


def compute_dtype(precision: str | None) -> torch.dtype:
    """The dtype of weights and activations under ``precision`` (float32 or bfloat16)."""
    return torch.bfloat16 if resolve_precision(precision) == "bf16" else torch.float32


def autocast(device: torch.device | str, precision: str | None):
    """A context that runs the model's operations at ``precision`` on ``device``'s type.

    ``torch.autocast(device_type, torch.bfloat16)`` for bf16 (convolutions and matrix products in
    bf16 with float32 accumulation; reductions, BatchNorm and the output functions in float32);
    nothing for float32. Thread-local: it covers work done in the calling thread only.
    """
    if resolve_precision(precision) != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def lightning_precision(precision: str) -> str:
    """Lightning's ``Trainer(precision=...)`` for a training precision ``"32"``, ``"bf16"`` or ``"64"``."""
    try:
        return _LIGHTNING[str(precision)]
    except KeyError:
        raise ChromTransferError(f"unknown training precision {precision!r} "
                                 f"(use {', '.join(_LIGHTNING)})") from None


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (``avx512_bf16`` or AMX in /proc/cpuinfo).

    Where it does not, oneDNN emulates bf16 (several times slower than float32). False where
    /proc/cpuinfo cannot be read.
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False
