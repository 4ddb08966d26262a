"""The study configuration (``chromtransfer run CONFIG.yaml``): reading and validation.

A study config is YAML; every section is optional except ``inputs`` and ``cells``. Paths are
relative to the config file's folder. See ``configs/paper.yaml`` (the paper's settings) and
``configs/demo.yaml`` (the bundled synthetic data at laptop size) for complete, commented examples.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

SECTIONS = {"name", "seed", "device", "inputs", "prepare", "cells", "folds", "train", "evaluate",
            "multiclass", "bootstrap", "interpret"}
INPUT_KEYS = {"synthetic", "genome", "rdhs", "exclude_positives", "blacklist", "labels_csv",
              "label_matrix", "signal_matrix"}


@dataclass
class StudyConfig:
    path: Path
    name: str
    seed: int
    device: str
    inputs: dict[str, Any]
    prepare: dict[str, Any]
    cells: list[str]
    folds: list[int]
    train: dict[str, dict[str, Any]]
    evaluate: dict[str, Any]
    multiclass: dict[str, Any]
    bootstrap: dict[str, Any]
    interpret: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    def resolve(self, value: str | os.PathLike) -> str:
        """A path from the config, relative to the config file's folder."""
        path = Path(os.path.expanduser(str(value)))
        return str(path if path.is_absolute() else (self.path.parent / path).resolve())


def load_config(path: str | os.PathLike) -> StudyConfig:
    """Read and validate a study config; bad content raises one :class:`InputError` line."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such study config", fix="give the path of a YAML file such as configs/demo.yaml")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise InputError(path, f"not valid YAML ({getattr(exc, 'problem', exc)})",
                         line=None if line is None else line + 1, fix="fix the YAML syntax") from exc
    if not isinstance(raw, dict):
        raise InputError(path, "a study config is a YAML mapping of sections", fix="see configs/demo.yaml")
    unknown = set(raw) - SECTIONS
    if unknown:
        raise InputError(path, f"unknown section(s) {', '.join(sorted(unknown))}",
                         fix=f"sections are {', '.join(sorted(SECTIONS))}")
    inputs = _mapping(path, raw, "inputs", required=True)
    bad_inputs = set(inputs) - INPUT_KEYS
    if bad_inputs:
        raise InputError(path, f"unknown key(s) in inputs: {', '.join(sorted(bad_inputs))}",
                         fix=f"inputs keys are {', '.join(sorted(INPUT_KEYS))}")
    if "synthetic" not in inputs:
        for key in ("genome", "rdhs"):
            if key not in inputs:
                raise InputError(path, f"inputs.{key} is missing", fix="name the file, or use inputs.synthetic")
        if not any(k in inputs for k in ("labels_csv", "label_matrix", "signal_matrix")):
            raise InputError(path, "inputs need one of labels_csv, label_matrix, signal_matrix",
                             fix="name the cell-type label input")
    cells = raw.get("cells")
    if not isinstance(cells, list) or not cells or not all(isinstance(c, str) for c in cells):
        raise InputError(path, "cells must be a non-empty list of cell-line names", fix="e.g. cells: [HepG2, K562]")
    folds = raw.get("folds", [0])
    if not isinstance(folds, list) or not all(isinstance(k, int) and k >= 0 for k in folds) or not folds:
        raise InputError(path, "folds must be a list of fold numbers", fix="e.g. folds: [0, 1, 2]")
    train = _mapping(path, raw, "train")
    bad_presets = set(train) - {"pretrain", "finetune", "baseline", "multiclass", "common"}
    if bad_presets:
        raise InputError(path, f"unknown train preset(s) {', '.join(sorted(bad_presets))}",
                         fix="train keys are pretrain, finetune, baseline, multiclass, common")
    for preset, options in train.items():
        if not isinstance(options, dict):
            raise InputError(path, f"train.{preset} must be a mapping of settings", fix="e.g. max_epochs: 10")
    interpret = _mapping(path, raw, "interpret")
    _check_interpret(path, interpret)
    return StudyConfig(
        path=path.resolve(), name=str(raw.get("name", path.stem)), seed=int(raw.get("seed", 0)),
        device=str(raw.get("device", "auto")), inputs=inputs, prepare=_mapping(path, raw, "prepare"),
        cells=list(cells), folds=list(folds), train=train, evaluate=_mapping(path, raw, "evaluate"),
        multiclass=_mapping(path, raw, "multiclass"), bootstrap=_mapping(path, raw, "bootstrap"),
        interpret=interpret, raw=raw,
    )


def _check_interpret(path: Path, interpret: dict[str, Any]) -> None:
    """Reject interpretation settings that would only fail after the models are trained."""
    from ..interpret.attribution import TARGETS
    from ..interpret.enrich import FAMILY_OVERLAP
    from ..interpret.pipeline import METHODS

    for key, allowed in (("method", METHODS), ("target", TARGETS)):
        if key in interpret and interpret[key] not in allowed:
            raise InputError(path, f"interpret.{key} is {interpret[key]!r}", fix=f"use one of {', '.join(allowed)}")
    overlap = interpret.get("family_overlap", FAMILY_OVERLAP)
    if not isinstance(overlap, (int, float)) or not 0 < overlap <= 1:
        raise InputError(path, f"interpret.family_overlap is {overlap!r}", fix="use a fraction in (0, 1], e.g. 0.5")


def _mapping(path: Path, raw: dict, key: str, required: bool = False) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        if required:
            raise InputError(path, f"section {key!r} is missing", fix="see configs/demo.yaml")
        return {}
    if not isinstance(value, dict):
        raise InputError(path, f"section {key!r} must be a mapping", fix="see configs/demo.yaml")
    return dict(value)
