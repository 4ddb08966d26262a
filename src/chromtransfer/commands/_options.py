"""Options shared by several commands: ``--overwrite``, ``--threads``, ``--quiet``."""
from __future__ import annotations

import click


def overwrite_option(what: str = "the output"):
    """``--overwrite``: replace a complete earlier result of the same command (its own files only)."""
    return click.option("--overwrite", is_flag=True,
                        help=f"Replace {what} of an earlier run of this command (only the files it writes; "
                             "a folder holding anything else is always refused).")


def threads_option(func):
    """``--threads N``: CPU threads of the computation (default: torch's, usually the core count)."""
    return click.option("--threads", type=click.IntRange(min=1), default=None,
                        help="CPU threads for the computation (default: all cores).")(func)


def quiet_option(func):
    """``-q/--quiet``: no progress bar (it is also off when standard error is not a terminal)."""
    return click.option("-q", "--quiet", is_flag=True,
                        help="No progress bar (none is shown when standard error is not a terminal).")(func)


def precision_option(func):
    """``--precision float32|bf16``: inference arithmetic (:mod:`chromtransfer.precision`)."""
    return click.option("--precision", default="float32", show_default=True,
                        help="Inference arithmetic: float32, or bf16 (bf16 weights and activations, float32 "
                             "sums; faster on GPUs and CPUs with avx512_bf16/AMX, slower elsewhere; "
                             "probabilities within ~1e-2).")(func)
