"""Read a legacy Keras 2 HDF5 model (``.h5``) into one flat layer graph (only ``h5py`` needed).

The reader (:func:`read_keras_h5`): the ``model_config`` JSON gives the layer graph; nested
   Functional sub-models (the published fine-tuned files hold the whole body as one layer) are
   inlined, so the result is one flat graph of :class:`KerasLayer` nodes. Weights are read from
   ``model_weights/<layer>`` by the ``weight_names`` attribute **in order**, and each weight is
   identified by the last component of its name (``kernel``, ``bias``, ``gamma``, ``beta``,
   ``moving_mean``, ``moving_variance``); the variable prefixes are not trusted (in the 2022 files
   they differ from the layer names). A nested sub-model stores its weights as one list: the
   trainable weights of its sub-layers in config order, then the non-trainable ones; a frozen
   sub-layer (or a frozen sub-model) puts all of its weights into the second half. The extra
   ``model_weights/top_level_model_weights`` group of recent writers is ignored.

:mod:`chromtransfer.keras_import` matches the graph onto the network and converts the weights.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError

__all__ = ["FUNCTIONAL_CLASSES", "KerasGraph", "KerasLayer", "KerasLayoutError", "read_keras_h5"]

FUNCTIONAL_CLASSES = frozenset({"Functional", "Model"})


@dataclass
class KerasLayer:
    """One node of the flattened Keras graph.

    Attributes:
        name: unique name; sub-layers of a nested model are ``"<model>/<layer>"``.
        class_name: Keras class (``Conv1D``, ``BatchNormalization``, ``Dense``, ...).
        config: the layer's Keras config dict.
        inputs: names of the nodes that feed this one, in call order.
        weights: weight arrays by role (``kernel``, ``bias``, ``gamma``, ...), float32 as stored.
        trainable: the effective Keras ``trainable`` flag (a frozen parent freezes its children).
    """

    name: str
    class_name: str
    config: dict[str, Any]
    inputs: list[str] = field(default_factory=list)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    trainable: bool = True


@dataclass
class KerasGraph:
    """A Keras model file read into one flat graph (layers in topological order)."""

    path: Path
    layers: dict[str, KerasLayer]
    input: str
    output: str
    keras_version: str
    backend: str
    nested: bool

    def parameter_counts(self) -> dict[str, int]:
        """Keras' own counts: ``total`` (every stored weight), ``trainable``, ``non_trainable``."""
        total = trainable = 0
        for layer in self.layers.values():
            for role, array in layer.weights.items():
                total += array.size
                if layer.trainable and role not in ("moving_mean", "moving_variance"):
                    trainable += array.size
        return {"total": total, "trainable": trainable, "non_trainable": total - trainable}


class KerasLayoutError(Exception):
    """A layout problem of a Keras file; the readers turn it into one ArtifactError naming the file."""


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------

def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value.item())
    return str(value)


def _attr_list(group, name: str) -> list[str]:
    """A list-of-strings attribute; Keras splits big ones into ``name0``, ``name1``, ..."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{name}{chunk}"])
            chunk += 1
        if chunk == 0:
            raise KerasLayoutError(f"group '{group.name}' has no '{name}' attribute")
    return [_text(v) for v in values]


def _refs(node: Any) -> list[tuple[str, int, int]]:
    """Producer references ``(layer, node_index, tensor_index)`` of one inbound node.

    Understands Keras 2's ``[[name, node, tensor, kwargs], ...]`` and Keras 3's
    ``{"args": [...keras_history...], "kwargs": {...}}``.
    """
    found: list[tuple[str, int, int]] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            history = item.get("config", {}).get("keras_history") if item.get("class_name") == "__keras_tensor__" else None
            if history is not None:
                found.append((str(history[0]), int(history[1]), int(history[2])))
                return
            for value in item.values():
                walk(value)
        elif isinstance(item, (list, tuple)):
            if len(item) >= 3 and isinstance(item[0], str) and isinstance(item[1], int) and isinstance(item[2], int):
                found.append((item[0], item[1], item[2]))
                return
            for value in item:
                walk(value)

    walk(node)
    return found


def _weight_slots(layer_cfg: dict[str, Any], prefix: str, parent_trainable: bool
                  ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The ``(layer name, role)`` slots of a layer's weights: (trainable, non-trainable) lists.

    This is the order in which Keras lists ``layer.weights`` (trainable then non-trainable); a
    frozen layer lists everything as non-trainable, a frozen model each child's weights in turn.
    """
    cls = layer_cfg["class_name"]
    cfg = layer_cfg.get("config", {})
    name = prefix + layer_cfg.get("name", cfg.get("name", ""))
    trainable = parent_trainable and bool(cfg.get("trainable", True))
    if cls in FUNCTIONAL_CLASSES:
        train: list[tuple[str, str]] = []
        frozen: list[tuple[str, str]] = []
        for child in cfg.get("layers", []):
            t, n = _weight_slots(child, name + "/", trainable)
            if trainable:
                train += t
                frozen += n
            else:
                frozen += t + n
        return train, frozen
    if cls in ("Conv1D", "Dense"):
        roles = ["kernel"] + (["bias"] if cfg.get("use_bias", True) else [])
        slots = [(name, r) for r in roles]
        return (slots, []) if trainable else ([], slots)
    if cls == "BatchNormalization":
        learned = (["gamma"] if cfg.get("scale", True) else []) + (["beta"] if cfg.get("center", True) else [])
        moving = ["moving_mean", "moving_variance"]
        if trainable:
            return [(name, r) for r in learned], [(name, r) for r in moving]
        return [], [(name, r) for r in learned + moving]
    return [], []


def _role(weight_name: str) -> str:
    """``'model/conv1d_21/kernel:0'`` -> ``'kernel'``."""
    return weight_name.rsplit("/", 1)[-1].split(":", 1)[0]


def _read_weights(group, weight_names: list[str]) -> list[tuple[str, np.ndarray]]:
    out = []
    for wname in weight_names:
        if wname not in group:
            raise KerasLayoutError(f"weight '{wname}' listed in weight_names of '{group.name}' is missing")
        out.append((_role(wname), np.asarray(group[wname][()])))
    return out


def _flatten(layers_cfg: list[dict[str, Any]], prefix: str, aliases: dict[str, str],
             out: dict[str, KerasLayer], weights_group, parent_trainable: bool, top_level: bool) -> None:
    """Inline ``layers_cfg`` (a Functional config's layer list) into ``out``.

    ``aliases`` maps scoped names of input layers and nested models to the node that carries their
    value.
    """
    for layer_cfg in layers_cfg:
        cls = layer_cfg.get("class_name")
        cfg = layer_cfg.get("config", {})
        lname = layer_cfg.get("name", cfg.get("name"))
        if not lname or not cls:
            raise KerasLayoutError("a layer in model_config has no name or class")
        scoped = prefix + lname
        inbound = layer_cfg.get("inbound_nodes", [])
        if len(inbound) > 1:
            raise KerasLayoutError(f"layer '{scoped}' is called {len(inbound)} times (shared layers are not "
                        "part of the ChromTransfer architecture)")
        refs = _refs(inbound[0]) if inbound else []
        for ref in refs:
            if ref[2] != 0:
                raise KerasLayoutError(f"layer '{scoped}' reads output {ref[2]} of '{ref[0]}' (multi-output layers are not supported)")
            if prefix + ref[0] not in aliases:
                raise KerasLayoutError(f"layer '{scoped}' reads '{ref[0]}', which is not defined before it")
        inputs = [aliases[prefix + r[0]] for r in refs]
        trainable = parent_trainable and bool(cfg.get("trainable", True))
        if cls == "InputLayer":
            if scoped not in aliases:  # an outer input: a node of its own
                out[scoped] = KerasLayer(scoped, cls, cfg, [], {}, trainable)
                aliases[scoped] = scoped
            continue
        if cls in FUNCTIONAL_CLASSES:
            sub_inputs = _as_ref_list(cfg.get("input_layers"))
            sub_outputs = _as_ref_list(cfg.get("output_layers"))
            if len(sub_inputs) != len(inputs) or len(sub_outputs) != 1:
                raise KerasLayoutError(f"nested model '{scoped}' has {len(sub_inputs)} inputs and "
                            f"{len(sub_outputs)} outputs but is called with {len(inputs)} (expected 1 and 1)")
            sub_aliases = dict(aliases)
            for ref, producer in zip(sub_inputs, inputs):
                sub_aliases[f"{scoped}/{ref if isinstance(ref, str) else ref[0]}"] = producer
            sub_out: dict[str, KerasLayer] = {}
            _flatten(cfg.get("layers", []), scoped + "/", sub_aliases, sub_out, None, trainable, False)
            if top_level:
                _assign_nested_weights(weights_group, lname, layer_cfg, scoped, sub_out, parent_trainable)
            out.update(sub_out)
            out_ref = sub_outputs[0] if isinstance(sub_outputs[0], str) else sub_outputs[0][0]
            if f"{scoped}/{out_ref}" not in sub_aliases:
                raise KerasLayoutError(f"nested model '{scoped}' names an unknown output layer '{out_ref}'")
            aliases[scoped] = sub_aliases[f"{scoped}/{out_ref}"]
            continue
        out[scoped] = KerasLayer(scoped, cls, cfg, inputs, {}, trainable)
        aliases[scoped] = scoped
        if top_level and weights_group is not None:
            if lname not in weights_group:
                slots = _weight_slots(layer_cfg, "", True)
                if slots[0] or slots[1]:
                    raise KerasLayoutError(f"no weights stored for layer '{lname}'")
                continue
            names = _attr_list(weights_group[lname], "weight_names")
            weights = _read_weights(weights_group[lname], names)
            roles = [r for r, _ in weights]
            if len(set(roles)) != len(roles):
                raise KerasLayoutError(f"layer '{lname}' lists a weight twice ({', '.join(roles)})")
            expected = [r for _, r in sum(_weight_slots(layer_cfg, "", True), [])]
            if sorted(roles) != sorted(expected):
                raise KerasLayoutError(f"layer '{lname}' ({cls}) stores weights {roles}, expected {expected}")
            out[scoped].weights = dict(weights)


def _assign_nested_weights(weights_group, group_name: str, layer_cfg: dict[str, Any], scoped: str,
                           sub_out: dict[str, KerasLayer], parent_trainable: bool) -> None:
    """Distribute a nested model's single weight list over its (already inlined) sub-layers."""
    trainable, frozen = _weight_slots(layer_cfg, "", parent_trainable)
    slots = trainable + frozen
    if group_name not in weights_group:
        if slots:
            raise KerasLayoutError(f"no weights stored for nested model '{group_name}'")
        return
    names = _attr_list(weights_group[group_name], "weight_names")
    if len(names) != len(slots):
        raise KerasLayoutError(f"nested model '{group_name}' stores {len(names)} weights, its config implies {len(slots)}")
    for (owner, role), (stored_role, array) in zip(slots, _read_weights(weights_group[group_name], names)):
        if stored_role != role:
            raise KerasLayoutError(f"nested model '{group_name}': weight order differs from Keras' "
                        f"(expected {role} of '{owner}', found '{stored_role}')")
        if owner not in sub_out:
            raise KerasLayoutError(f"nested model '{group_name}' stores a {role} for '{owner}', which is not a layer")
        sub_out[owner].weights[role] = array


def read_keras_h5(path: str | os.PathLike) -> KerasGraph:
    """Read a legacy Keras 2 ``.h5`` model (``model.save(..., save_format='h5')``) into a flat graph.

    Raises:
        ArtifactError: the file is not readable HDF5 (truncated, corrupt), holds weights only, or
            its layout is not the legacy Keras model layout.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file")
    with open(path, "rb") as probe:
        if probe.read(4) == b"PK\x03\x04":
            raise ArtifactError(f"{path}: a Keras 3 '.keras' zip archive, not a legacy HDF5 model; "
                                "re-save it with model.save('model.h5') or give the original .h5 file")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ArtifactError(f"{path}: not a readable HDF5 file, it may be truncated or corrupt "
                            f"({_short(exc)}); copy the .h5 file again") from exc
    try:
        with handle:
            if "model_config" not in handle.attrs:
                raise KerasLayoutError("no 'model_config' attribute: this is not a whole Keras model saved with "
                            "model.save(...) (weights-only files cannot be imported)")
            try:
                config = json.loads(_text(handle.attrs["model_config"]))
            except json.JSONDecodeError as exc:
                raise KerasLayoutError(f"model_config is not valid JSON ({exc.msg})") from exc
            if config.get("class_name") not in FUNCTIONAL_CLASSES:
                raise KerasLayoutError(f"the model is a {config.get('class_name')!r}; only Functional models are supported")
            if "model_weights" not in handle:
                raise KerasLayoutError("no 'model_weights' group")
            weights_group = handle["model_weights"]
            keras_version = _text(handle.attrs.get("keras_version", weights_group.attrs.get("keras_version", "unknown")))
            backend = _text(handle.attrs.get("backend", weights_group.attrs.get("backend", "unknown")))
            model_cfg = config["config"]
            top_names = [lc.get("name", lc.get("config", {}).get("name")) for lc in model_cfg.get("layers", [])]
            stored = _attr_list(weights_group, "layer_names")
            if sorted(stored) != sorted(top_names):
                extra = sorted(set(stored) ^ set(top_names))[:3]
                raise KerasLayoutError(f"layer_names in model_weights do not match model_config (e.g. {extra})")
            layers: dict[str, KerasLayer] = {}
            aliases: dict[str, str] = {}
            _flatten(model_cfg.get("layers", []), "", aliases, layers, weights_group,
                     bool(model_cfg.get("trainable", True)), True)
            ins = [p if isinstance(p, str) else p[0] for p in _as_ref_list(model_cfg.get("input_layers"))]
            outs = [p if isinstance(p, str) else p[0] for p in _as_ref_list(model_cfg.get("output_layers"))]
            if len(ins) != 1 or len(outs) != 1:
                raise KerasLayoutError(f"the model has {len(ins)} inputs and {len(outs)} outputs (expected 1 and 1)")
            nested = any(lc.get("class_name") in FUNCTIONAL_CLASSES for lc in model_cfg.get("layers", []))
            return KerasGraph(path, layers, aliases[ins[0]], aliases[outs[0]], keras_version, backend, nested)
    except KerasLayoutError as exc:
        raise ArtifactError(f"{path}: unexpected Keras model layout: {exc}") from None
    except (OSError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise ArtifactError(f"{path}: cannot read the Keras model, the file may be truncated or "
                            f"corrupt ({type(exc).__name__}: {_short(exc)}); copy the .h5 file again") from exc


def _as_ref_list(value: Any) -> list:
    """``input_layers``/``output_layers`` as a list of ``[name, node, tensor]`` references (Keras
    writes a single reference unwrapped in some versions)."""
    if not value:
        return []
    if isinstance(value[0], str):  # a single [name, node, tensor]
        return [value]
    return list(value)


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]
