"""Several models of one task as one: the cross-validation folds of a ``--fold all`` run.

:class:`ModelEnsemble` averages the members' probabilities, as ``chromtransfer evaluate`` does when
given several models. It is a plain :class:`torch.nn.Module` on one-hot ``(N, 4, L)`` input; its
``forward`` returns the logits *of the averaged probability* (binary: ``logit(mean p)``;
multi-class: ``log(mean p)``), so ``sigmoid``/``softmax`` of its output is the ensemble's
probability and gradient-based tools (gradient x input, captum, tangermeme) see the ensemble.

A ``--fold all`` run folder (:mod:`chromtransfer.training.engine`) holds one run per fold,
``RUN/fold0``, ``RUN/fold1``, ..., and ``RUN/folds.json`` (``{"status": "complete", "folds":
["fold0", ...]}``) once every fold is complete; :func:`load_fold_ensemble` reads it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from .errors import ArtifactError, ChromTransferError
from .models import probabilities
from .training.rundir import FOLDS_FILE


class ModelEnsemble(nn.Module):
    """Average of several models' probabilities.

    Args:
        members: models mapping one-hot ``(B, 4, L)`` to logits ``(B, n_outputs)``, all binary or
            all multi-class with the same classes.
        names: a label per member (default ``model0``, ``model1``, ...).

    Attributes:
        members: the models (:class:`torch.nn.ModuleList`).
        names: their labels.
        config: the first member's :class:`~chromtransfer.models.ModelConfig` (task, classes).
    """

    def __init__(self, members: Sequence[nn.Module], names: Sequence[str] | None = None):
        super().__init__()
        if not members:
            raise ChromTransferError("an ensemble needs at least one model")
        signatures = {(bool(getattr(m, "multiclass", False)),
                       tuple(getattr(getattr(m, "config", None), "classes", ()) or ())) for m in members}
        if len(signatures) > 1:
            raise ChromTransferError("the ensemble's models solve different tasks (binary and multi-class, "
                                     "or other classes); combine models of one task")
        self.members = nn.ModuleList(members)
        self.names = list(names) if names is not None else [f"model{i}" for i in range(len(members))]
        if len(self.names) != len(members):
            raise ChromTransferError(f"{len(self.names)} names for {len(members)} models")
        self.config = getattr(members[0], "config", None)

    @property
    def multiclass(self) -> bool:
        """Whether the members end in a softmax (multi-class) rather than a sigmoid."""
        return bool(getattr(self.members[0], "multiclass", False))

    def mean_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """The members' mean probability, ``(B, n_outputs)``, for one-hot ``x`` ``(B, 4, L)``."""
        return torch.stack([probabilities(m(x), self.multiclass) for m in self.members]).mean(dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_outputs)`` of the mean probability (clamped one machine epsilon away from
        0 and 1, so that the logit stays finite)."""
        p = self.mean_probabilities(x)
        eps = torch.finfo(p.dtype).eps
        p = p.clamp(eps, 1 - eps)
        return torch.log(p) if self.multiclass else torch.logit(p)


def is_fold_run(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` looks like a ``--fold all`` run (``folds.json`` or ``fold0/``)."""
    directory = Path(directory)
    return (directory / FOLDS_FILE).is_file() or (directory / "fold0").is_dir()


def fold_model_dirs(directory: str | os.PathLike) -> list[Path]:
    """The fold run folders of a complete ``--fold all`` run, in fold order.

    Raises :class:`~chromtransfer.errors.ArtifactError` (with the fix) when the run is unfinished.
    """
    directory = Path(directory)
    path = directory / FOLDS_FILE
    if not path.is_file():
        raise ArtifactError(f"{directory}: the --fold all run is unfinished ({FOLDS_FILE} is missing; "
                            "finish it with 'chromtransfer train ... --fold all --resume')")
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if document.get("status") != "complete" or not document.get("folds"):
        raise ArtifactError(f"{path}: the --fold all run is not complete (finish it with --resume)")
    return [directory / name for name in document["folds"]]


def load_fold_ensemble(directory: str | os.PathLike, device: str | torch.device = "cpu") -> ModelEnsemble:
    """Load every fold model of a ``--fold all`` run as one :class:`ModelEnsemble` (eval mode)."""
    from .modelio import load_model

    paths = fold_model_dirs(directory)
    return ModelEnsemble([load_model(p, device=device) for p in paths], names=[p.name for p in paths]).eval()
