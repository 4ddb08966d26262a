"""The one rule that turns a device option (``--device``, ``device=``) into a :class:`torch.device`.

The rule, for every command and library call:

* ``"auto"`` -> ``cuda`` (the current CUDA device) when PyTorch sees a CUDA GPU, else ``cpu``;
* ``"cpu"`` -> the CPU;
* ``"cuda"`` or ``"cuda:N"`` -> that GPU; an error when PyTorch sees no CUDA GPU, or fewer than
  ``N + 1``;
* a :class:`torch.device` is returned as given;
* anything else (upper case and spaces aside) is an error naming the accepted values.

Errors are :class:`~chromtransfer.errors.ChromTransferError` (one line on the command line).
"""
from __future__ import annotations

import torch

from .errors import ChromTransferError

__all__ = ["resolve_device"]


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """The :class:`torch.device` that ``spec`` names under the module's rule."""
    if isinstance(spec, torch.device):
        return spec
    name = str(spec).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ChromTransferError(f"unknown device {spec!r} (use auto, cpu, cuda or cuda:N)") from None
        if not torch.cuda.is_available():
            raise ChromTransferError(f"device {spec!r} requested but CUDA is not available on this machine "
                                     "(use --device cpu or --device auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ChromTransferError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA GPU(s) are "
                                     "visible (count from cuda:0)")
        return device
    raise ChromTransferError(f"unknown device {spec!r} (use auto, cpu, cuda or cuda:N)")
