"""Process handling of training: the device and the number of processes, which process writes,
Lightning's chatter, and waiting for the processes a launcher started (DDP, docs/scaling.md).
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import subprocess
import warnings
from typing import Any, Iterator

from ..errors import ChromTransferError
from .presets import parse_devices

__all__ = ["CHILD_EXIT_TIMEOUT_S", "is_primary", "quiet_lightning", "quiet_lightning_process", "remember_launched",
           "resolve_process_count", "training_device"]

log = logging.getLogger("chromtransfer.training")


def training_device(spec: str) -> str:
    """``--device`` under :func:`chromtransfer.devices.resolve_device`'s rule, as the run records it:
    ``cpu``, ``cuda``, or ``cuda:N`` (that one GPU; one process per node)."""
    from ..devices import resolve_device

    return str(resolve_device(spec))


def is_primary() -> bool:
    """Whether this process is global rank 0 (see :func:`chromtransfer.training.distributed.is_primary`)."""
    from .distributed import is_primary as primary  # imports torch: only when a run starts

    return primary()


def resolve_process_count(device: str, devices: int | str) -> int:
    """Processes per node: ``--devices`` as given, or for ``auto`` every visible GPU (1 on the CPU)."""
    import torch

    try:
        count = parse_devices(devices)
    except ValueError as exc:
        raise ChromTransferError(str(exc)) from exc
    if ":" in device:  # one chosen GPU
        if count not in (None, 1):
            raise ChromTransferError(f"--device {device} names one GPU: use --devices 1 (or --device cuda "
                                     f"with --devices {count})")
        return 1
    if count is None:
        return max(1, torch.cuda.device_count()) if device == "cuda" else 1
    if device == "cuda" and count > torch.cuda.device_count():
        raise ChromTransferError(f"--devices {count}: only {torch.cuda.device_count()} CUDA GPU(s) are "
                                 "visible on this node; use --devices auto or a smaller number")
    return count


#: Lightning warnings that do not apply to these runs: the loaders read in the main process on
#: purpose, the run directory is reused on resume, epochs can be shorter than the logging interval,
#: the samplers are ours, and epoch metrics are reduced over the DDP processes before logging.
_HARMLESS_WARNINGS = (r".*does not have many workers.*",
                      r".*exists and is not empty.*",
                      r".*is smaller than the logging interval.*",
                      r".*sampler.*set_epoch.*",
                      r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
                      r".*when logging on epoch level in distributed setting.*")
_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning")


def quiet_lightning_process() -> None:
    """Apply :func:`quiet_lightning`'s settings for the rest of this process's life.

    For processes that exist only to train (those ``ddp_spawn`` spawns), called from a callback.
    """
    for name in _LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in _HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's informational chatter (device tables, tips) and known-harmless warnings."""
    loggers = [logging.getLogger(name) for name in _LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for message in _HARMLESS_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


#: How long rank 0, at exit, waits for the processes it launched to end.
CHILD_EXIT_TIMEOUT_S = 120
_LAUNCHED: list[subprocess.Popen] = []


def remember_launched(processes: list[Any]) -> None:
    """Have this process, when it exits, wait for the training processes its launcher started.

    Lightning's script launcher starts the other processes of a node once, at the first ``fit``;
    they re-run the same command or script and follow it call by call (``--fold all`` trains every
    fold with them), so they can only be waited for at the very end. Waiting there makes
    ``chromtransfer train`` return only once every process of the run has finished.
    """
    new = [p for p in processes if isinstance(p, subprocess.Popen) and p not in _LAUNCHED]
    if new and not _LAUNCHED:
        atexit.register(_wait_for_launched)
    _LAUNCHED.extend(new)


def _wait_for_launched() -> None:
    for process in _LAUNCHED:
        try:
            process.wait(timeout=CHILD_EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("training process %s did not exit; stopping it", process.pid)
            process.kill()
