"""The study config's keys as a table: ``chromtransfer run --show-schema`` and the README's copy.

Rendered from the pydantic models of :mod:`chromtransfer.workflow.config` (the one description of
a config), so the table cannot drift from what :func:`~chromtransfer.workflow.config.load_config`
accepts.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel

from ..training import presets
from .config import TRAIN_SECTIONS, StudyConfig, Synthetic, Train, TrainOptions, _section_type


def schema_rows() -> list[tuple[str, str, str, str]]:
    """``(key, type, default, description)`` of every config key, in schema order."""
    return list(_rows(StudyConfig, ""))


def _rows(model: type[BaseModel], prefix: str):
    for key, info in model.model_fields.items():
        dotted = f"{prefix}{key}"
        if model is Train:
            if key == "common":
                yield from _train_rows(f"{prefix}{{{','.join(TRAIN_SECTIONS)}}}.")
            continue
        inner = _section_type(info.annotation)
        if inner is not None:
            if inner is Synthetic:  # its presence is itself a choice
                yield (dotted, "mapping", "absent", info.description or "")
            yield from _rows(inner, dotted + ".")
            continue
        yield (dotted, _type_text(info.annotation), _default_text(info), info.description or "")


def _train_rows(prefix: str):
    for key, info in TrainOptions.model_fields.items():
        published = {p.name: getattr(p, key) for p in presets.PRESETS.values() if hasattr(p, key)}
        if published:
            default = "; ".join(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
                                for name, value in published.items())
        else:
            field = next(f for f in dataclasses.fields(presets.TrainSettings) if f.name == key)
            default = "the study's" if key in ("seed", "device") else (
                "-" if field.default is dataclasses.MISSING or field.default is None else _value_text(field.default))
        yield (f"{prefix}{key}", _type_text(info.annotation), default, info.description or "")


def _default_text(info) -> str:
    if info.is_required():
        return "required"
    value = info.default_factory() if info.default_factory is not None else info.default
    return "-" if value is None else _value_text(value)


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value_text(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _type_text(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _type_text(args[0])
    if origin in (Union, types.UnionType):
        parts = [_type_text(a) for a in args if a is not type(None)]
        return " or ".join(parts)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is list:
        return f"list of {_type_text(args[0])}"
    return {int: "int", float: "number", bool: "bool", str: "text"}.get(annotation, getattr(annotation, "__name__",
                                                                                          str(annotation)))


def schema_table() -> str:
    """The schema as a Markdown table (``chromtransfer run --show-schema`` and the README)."""
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for key, kind, default, description in schema_rows():
        cells = [f"`{key}`", kind, default, description]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
