"""Process-wide CPU settings, changed only when a caller asks: :func:`set_cpu_defaults`.

No library function of chromtransfer changes these behind the caller's back; the command line
calls :func:`set_cpu_defaults` once at start-up and again with ``--threads``.
"""
from __future__ import annotations

import os
import sys

__all__ = ["set_cpu_defaults"]

#: OpenMP's wait policy: idle threads sleep instead of spinning, which made training about 5x
#: faster on a busy 2-core machine (benchmarks/README.md).
WAIT_POLICY = "PASSIVE"


def set_cpu_defaults(threads: int | None = None) -> bool:
    """Set the OpenMP wait policy and, with ``threads``, torch's CPU thread count.

    * ``OMP_WAIT_POLICY`` becomes ``PASSIVE`` unless the environment already sets it. OpenMP reads
      it once, when torch is first imported: called after ``import torch`` the variable is set
      but has no effect in this process (only in processes started later, such as data-loader
      or DDP workers). Call it first thing in a script or notebook to benefit.
    * ``threads`` (``None``: leave as is) is passed to :func:`torch.set_num_threads`: the threads
      of torch's CPU kernels and of the fused CPU inference workers (:mod:`chromtransfer.accel`
      follows ``torch.get_num_threads()``).

    Returns whether the wait policy takes effect in this process (torch not yet imported).
    Raises :class:`ValueError` for ``threads`` below 1.
    """
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    effective = "torch" not in sys.modules
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))
    return effective
