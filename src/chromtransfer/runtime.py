"""Process-wide CPU settings, changed only when a caller asks: :func:`set_cpu_defaults`.

No library function of chromtransfer changes these behind the caller's back; the command line
calls :func:`set_cpu_defaults` once at start-up and again with ``--threads``. A library call that
takes ``threads=`` runs inside :func:`torch_threads`, which restores the previous count.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import Callable, Iterator, TypeVar

__all__ = ["limit_heap_fragmentation", "restores_torch_threads", "set_cpu_defaults", "torch_threads"]

_Function = TypeVar("_Function", bound=Callable)

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


def limit_heap_fragmentation() -> None:
    """Serve allocations of 4 MiB and more with ``mmap`` (glibc ``mallopt(M_MMAP_THRESHOLD)``).

    The windowed passes allocate many large temporaries of varying sizes; glibc's default raises
    its mmap threshold as such blocks are freed, after which they come from the heap, which then
    fragments: the peak resident size crept up chunk after chunk (0.78 GB after 20,000 variants of
    the published network, 1.2 GB after 200,000). With a fixed 4 MiB threshold the large blocks go
    back to the system when freed (0.55 GB after 20,000, the same speed). Process-wide, so
    :func:`~chromtransfer.variants.score_variants` leaves it to its caller: the ``variants`` command calls it, and a
    notebook scoring a large VCF may. A no-op outside glibc.
    """
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-3, 4 * 1024 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` torch CPU threads inside the block and the previous count after it
    (``None``: leave the count as it is)."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    set_cpu_defaults(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def restores_torch_threads(function: _Function) -> _Function:
    """Run ``function`` inside :func:`torch_threads` of its keyword argument ``threads``."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with torch_threads(kwargs.get("threads")):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]

