"""Import the authors' legacy Keras 2 HDF5 models (``.h5``) into chromtransfer's model format.

Only ``h5py`` is needed (no TensorFlow). The import has three steps, each checked:

1. **Read** (:func:`~chromtransfer.keras_h5.read_keras_h5`): the layer graph of ``model_config``,
   nested sub-models inlined, weights identified by role (see :mod:`chromtransfer.keras_h5`).
2. **Match** (:func:`match_architecture`): the graph is walked backwards from the output, and every
   layer is assigned to a module of :class:`~chromtransfer.models.ChromTransferNet` by its place in
   the graph (which convolution feeds the addition and which one is the projection shortcut, which
   identity block feeds which, the order of the concatenation), never by name numbering. Layer
   settings that change the numbers are checked: 'same' padding, stride 1, dilation 1, ReLU convs,
   BatchNorm epsilon 1e-3 on the channel axis.
3. **Convert** (:func:`import_keras_model`): Conv1D kernels ``(k, in, out)`` become PyTorch
   ``(out, in, k)``; Dense kernels ``(in, out)`` become ``weight = kernel.T``; BatchNorm gamma, beta
   and moving statistics become weight, bias, running mean and variance. Every shape is checked.

Keras' inputs are channels-last ``(N, L, 4)`` one-hot in A, C, G, T order, the same channel order as
chromtransfer's ``(N, 4, L)``; no channel permutation is needed.

Any file that does not follow this layout stops with one :class:`~chromtransfer.errors.ArtifactError`
line that names the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ArtifactError
from .keras_h5 import KerasGraph, KerasLayer, KerasLayoutError, read_keras_h5

#: Keras layer classes that are the identity at inference time.
IDENTITY_CLASSES = frozenset({"Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise",
                              "AlphaDropout"})
KERAS_BN_EPSILON = 1e-3
PUBLISHED_FILTERS = 64  # stem filters of the published network (width 1.0)


class _Unsupported(KerasLayoutError):
    """Internal: a layer in its right place whose settings the network cannot reproduce (dilation,
    padding, epsilon, ...); unlike a structural mismatch this stops the graph walk at once."""


# --------------------------------------------------------------------------------------------
# matching the graph onto ChromTransferNet
# --------------------------------------------------------------------------------------------

@dataclass
class ArchitectureMatch:
    """Which Keras layers play which role, found by walking the graph.

    ``convs`` maps module paths of :class:`~chromtransfer.models.ChromTransferNet` (e.g.
    ``body.block1.shortcut``) to ``(conv layer, batchnorm layer or None)``; ``dense`` lists the
    head's ``(dense, batchnorm or None)`` pairs ending with the output layer; ``concat_order`` gives,
    for each concatenated input in Keras' order, which stage-2 block (0, 1, 2) produced it.
    """

    convs: dict[str, tuple[str, str | None]]
    dense: list[tuple[str, str | None]]
    concat_order: list[int]
    output_activation: str
    dropout: float | None


class _Matcher:
    def __init__(self, graph: KerasGraph):
        self.g = graph
        self.layers = graph.layers
        self.visited: set[str] = set()

    def layer(self, name: str) -> KerasLayer:
        return self.layers[name]

    def skip(self, name: str) -> str:
        """Follow identity-at-inference layers (Dropout) back to the node that computes the value."""
        while self.layers[name].class_name in IDENTITY_CLASSES or (
                self.layers[name].class_name == "Activation" and self.layers[name].config.get("activation") == "linear"):
            self.visited.add(name)
            name = self.single_input(name)
        return name

    def single_input(self, name: str) -> str:
        inputs = self.layers[name].inputs
        if len(inputs) != 1:
            raise KerasLayoutError(f"layer '{name}' has {len(inputs)} inputs, expected 1")
        return inputs[0]

    def expect(self, name: str, cls: str, what: str) -> KerasLayer:
        layer = self.layers[name]
        if layer.class_name != cls:
            raise KerasLayoutError(f"expected a {cls} ({what}) at layer '{name}', found {layer.class_name}")
        self.visited.add(name)
        return layer

    def check_conv(self, layer: KerasLayer, activation: str = "relu") -> None:
        c = layer.config
        if _scalar(c.get("dilation_rate", 1)) != 1:
            raise _Unsupported(f"Conv1D '{layer.name}' uses dilation_rate {c.get('dilation_rate')}; chromtransfer's "
                        "network has undilated convolutions (the published architecture), so a dilated "
                        "variant cannot be imported")
        if _scalar(c.get("strides", 1)) != 1:
            raise _Unsupported(f"Conv1D '{layer.name}' uses strides {c.get('strides')}, expected 1")
        if c.get("padding", "valid") != "same":
            raise _Unsupported(f"Conv1D '{layer.name}' uses padding '{c.get('padding')}', expected 'same'")
        if c.get("data_format", "channels_last") != "channels_last":
            raise _Unsupported(f"Conv1D '{layer.name}' uses data_format {c.get('data_format')}, expected channels_last")
        if int(c.get("groups", 1)) != 1:
            raise _Unsupported(f"Conv1D '{layer.name}' uses groups {c.get('groups')}, expected 1")
        self.check_activation(layer, activation)
        self.check_bias(layer)

    def check_activation(self, layer: KerasLayer, activation: str) -> None:
        act = layer.config.get("activation")
        act = act.get("class_name", act) if isinstance(act, dict) else act
        if str(act).lower() != activation:
            raise _Unsupported(f"layer '{layer.name}' has activation {act!r}, expected {activation!r}")

    def check_bias(self, layer: KerasLayer) -> None:
        if "bias" not in layer.weights:
            raise _Unsupported(f"layer '{layer.name}' has no bias (use_bias=False is not supported)")

    def check_bn(self, layer: KerasLayer, rank: int) -> None:
        c = layer.config
        eps = float(c.get("epsilon", KERAS_BN_EPSILON))
        if not np.isclose(eps, KERAS_BN_EPSILON, rtol=1e-6, atol=0):
            raise _Unsupported(f"BatchNormalization '{layer.name}' has epsilon {eps}, expected {KERAS_BN_EPSILON}")
        axis = c.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if axis not in (-1, rank - 1):
            raise _Unsupported(f"BatchNormalization '{layer.name}' normalises axis {c.get('axis')}, expected the channel axis")
        for role in ("gamma", "beta", "moving_mean", "moving_variance"):
            if role not in layer.weights:
                raise _Unsupported(f"BatchNormalization '{layer.name}' lacks {role} (center/scale off is not supported)")

    # -- conv units and blocks --------------------------------------------------------------

    def conv_unit(self, name: str) -> tuple[tuple[str, str], str]:
        """``name`` carries conv -> ReLU -> BN (-> Dropout): returns ((conv, bn), conv's input)."""
        bn = self.expect(self.skip(name), "BatchNormalization", "of a conv unit")
        self.check_bn(bn, 3)
        conv = self.expect(self.skip(self.single_input(bn.name)), "Conv1D", "of a conv unit")
        self.check_conv(conv)
        return (conv.name, bn.name), self.skip(self.single_input(conv.name))

    def _try(self, fn, *args):
        saved = set(self.visited)
        try:
            return fn(*args)
        except _Unsupported:
            raise
        except KerasLayoutError:
            self.visited = saved
            return None

    def _residual_add(self, name: str, what: str, attempt, failure: str):
        """Match the two-input Add ``name`` closing a residual block.

        ``attempt(main, other)`` reads the block with ``main`` as the two-unit path and ``other``
        as the shortcut (raising ``KerasLayoutError`` when it does not fit); both input orders are tried and
        exactly one must fit, otherwise ``KerasLayoutError(failure)``.
        """
        add = self.expect(self.skip(name), "Add", what)
        if len(add.inputs) != 2:
            raise KerasLayoutError(f"Add '{add.name}' has {len(add.inputs)} inputs, expected 2")
        found = []
        for main, other in (add.inputs, add.inputs[::-1]):
            result = self._try(attempt, main, other)
            if result is not None:
                found.append(result)
        if len(found) != 1:
            raise KerasLayoutError(f"Add '{add.name}' {failure}")
        return found[0]

    def identity_block(self, name: str) -> tuple[dict[str, tuple[str, str]], str]:
        """``name`` is ``unit2(unit1(x)) + x``: returns ({unit1, unit2}, x)."""
        def attempt(main, other):
            unit2, mid = self.conv_unit(main)
            unit1, x = self.conv_unit(mid)
            if x != self.skip(other):
                raise KerasLayoutError("not an identity block")
            return {"unit1": unit1, "unit2": unit2}, x
        return self._residual_add(name, "closing an identity block", attempt,
                                  "does not close an identity residual block (two conv units plus the block input)")

    def projection_block(self, name: str) -> tuple[dict[str, tuple[str, str]], str]:
        """``name`` is ``unit2(unit1(x)) + shortcut(x)``: returns ({unit1, unit2, shortcut}, x)."""
        def attempt(main, other):
            unit2, mid = self.conv_unit(main)
            unit1, x = self.conv_unit(mid)
            shortcut, xs = self.conv_unit(other)
            if x != xs:
                raise KerasLayoutError("not a projection block")
            return {"unit1": unit1, "unit2": unit2, "shortcut": shortcut}, x
        return self._residual_add(name, "closing a projection block", attempt,
                                  "does not close a residual block with a conv shortcut")

    # -- whole network ------------------------------------------------------------------------

    def match(self) -> ArchitectureMatch:
        convs: dict[str, tuple[str, str | None]] = {}
        # head, from the output back to the pooling layer
        out = self.expect(self.skip(self.g.output), "Dense", "the output layer")
        self.check_bias(out)
        act = out.config.get("activation")
        if act not in ("sigmoid", "softmax"):
            raise KerasLayoutError(f"the output Dense '{out.name}' has activation {act!r}; expected sigmoid "
                        "(binary) or softmax (multi-class)")
        dense: list[tuple[str, str | None]] = [(out.name, None)]
        x = self.skip(self.single_input(out.name))
        while self.layers[x].class_name in ("Dense", "BatchNormalization"):
            bn_name = None
            if self.layers[x].class_name == "BatchNormalization":
                bn = self.expect(x, "BatchNormalization", "after a hidden Dense")
                self.check_bn(bn, 2)
                bn_name = bn.name
                x = self.skip(self.single_input(x))
            hidden = self.expect(x, "Dense", "a hidden layer of the head")
            self.check_activation(hidden, "relu")
            self.check_bias(hidden)
            dense.insert(0, (hidden.name, bn_name))
            x = self.skip(self.single_input(x))
        gap = self.expect(x, "GlobalAveragePooling1D", "the pooling between body and head")
        if gap.config.get("keepdims", False) or gap.config.get("data_format", "channels_last") != "channels_last":
            raise KerasLayoutError(f"GlobalAveragePooling1D '{gap.name}' must pool the length axis without keepdims")
        # body, from the pooling back to the input
        last = self.expect(self.skip(self.single_input(gap.name)), "Conv1D", "last_CNN_layer before the pooling")
        self.check_conv(last)
        convs["body.last_conv"] = (last.name, None)
        unit, x = self.conv_unit(self.single_input(last.name))
        convs["body.conv_out"] = unit
        for i in (2, 1, 0):
            units, x = self.identity_block(x)
            for k, v in units.items():
                convs[f"body.stage4.{i}.{k}"] = v
        units, x = self.projection_block(x)
        for k, v in units.items():
            convs[f"body.block3.{k}"] = v
        concat = self.expect(x, "Concatenate", "joining the three stage-2 blocks")
        axis = concat.config.get("axis", -1)
        if axis not in (-1, 2) or len(concat.inputs) != 3:
            raise KerasLayoutError(f"Concatenate '{concat.name}' must join 3 inputs on the channel axis")
        blocks = {}
        for pos, name in enumerate(concat.inputs):
            blocks[self.skip(name)] = (pos,) + self.identity_block(name)
        outputs = set(blocks)
        firsts = [n for n, (_, _, x_in) in blocks.items() if x_in not in outputs]
        if len(firsts) != 1:
            raise KerasLayoutError(f"the inputs of Concatenate '{concat.name}' are not a chain of three identity blocks")
        chain = [firsts[0]]
        for _ in range(2):
            nxt = [n for n, (_, _, x_in) in blocks.items() if x_in == chain[-1]]
            if len(nxt) != 1:
                raise KerasLayoutError(f"the inputs of Concatenate '{concat.name}' are not a chain of three identity blocks")
            chain.append(nxt[0])
        concat_order = [0, 0, 0]
        for stage_index, name in enumerate(chain):
            pos, units, _ = blocks[name]
            concat_order[pos] = stage_index
            for k, v in units.items():
                convs[f"body.stage2.{stage_index}.{k}"] = v
        units, x = self.projection_block(blocks[chain[0]][2])
        for k, v in units.items():
            convs[f"body.block1.{k}"] = v
        unit, x = self.conv_unit(x)
        convs["body.stem"] = unit
        inp = self.expect(x, "InputLayer", "the model input")
        shape = inp.config.get("batch_input_shape", inp.config.get("batch_shape"))
        if shape is not None and (len(shape) != 3 or shape[-1] != 4):
            raise KerasLayoutError(f"the input '{inp.name}' has shape {shape}, expected (None, L, 4) one-hot DNA")
        unused = [n for n, layer in self.layers.items() if n not in self.visited]
        if unused:
            raise KerasLayoutError(f"layer(s) {', '.join(unused[:3])} are not part of the ChromTransfer architecture")
        rates = [float(layer.config.get("rate", 0.0)) for layer in self.layers.values() if layer.class_name == "Dropout"]
        dropout = max(set(rates), key=rates.count) if rates else None
        return ArchitectureMatch(convs, dense, concat_order, act, dropout)


def _scalar(value: Any) -> int:
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            return -1
        value = value[0]
    return int(value)


def match_architecture(graph: KerasGraph) -> ArchitectureMatch:
    """Assign every layer of ``graph`` to its role in ChromTransferNet (see the module docstring)."""
    try:
        return _Matcher(graph).match()
    except _Unsupported as exc:
        raise ArtifactError(f"{graph.path}: cannot be imported: {exc}") from None
    except KerasLayoutError as exc:
        raise ArtifactError(f"{graph.path}: not the ChromTransfer architecture: {exc}") from None


# --------------------------------------------------------------------------------------------
# conversion
# --------------------------------------------------------------------------------------------

@dataclass
class KerasImport:
    """The result of :func:`import_keras_model`."""

    model: Any  # ChromTransferNet
    graph: KerasGraph
    match: ArchitectureMatch
    head: str
    layer_map: dict[str, str]

    def metadata(self) -> dict[str, Any]:
        """What to store in model.json: the source file, its checksum, the Keras version, the map."""
        from .artifacts import file_sha256

        return {
            "imported_from": {
                "format": "keras-h5",
                "file": self.graph.path.name,
                "sha256": file_sha256(self.graph.path),
                "keras_version": self.graph.keras_version,
                "backend": self.graph.backend,
                "nested_body": self.graph.nested,
                "head": self.head,
                "keras_parameters": self.graph.parameter_counts(),
                "layer_map": self.layer_map,
            },
        }


def detect_head(match: ArchitectureMatch, graph: KerasGraph) -> str:
    """The head from the Dense layers: a multi-unit softmax -> ``multiclass`` with hidden
    BatchNorm (the authors' multi-class model: the pre-training head with 7 outputs), else
    ``multiclass-1024``; hidden BatchNorm with 512/128 units -> ``pretrain``, other units ->
    ``finetune-bn``; no BatchNorm -> ``finetune``."""
    units = [int(graph.layers[d].config["units"]) for d, _ in match.dense]
    has_bn = any(bn is not None for _, bn in match.dense[:-1])
    if units[-1] > 1 or match.output_activation == "softmax":
        return "multiclass" if has_bn else "multiclass-1024"
    if has_bn:
        return "pretrain" if tuple(units[:-1]) == (512, 128) else "finetune-bn"
    return "finetune"


def import_keras_model(path: str | os.PathLike, head: str = "auto", classes: list[str] | None = None):
    """Read a Keras ``.h5`` model and return a :class:`KerasImport` with the PyTorch network.

    Args:
        path: the legacy Keras 2 HDF5 model file.
        head: ``"auto"`` (detected from the Dense layers, see :func:`detect_head`) or one of
            :data:`~chromtransfer.models.HEADS`; a head that contradicts the file's structure (its
            BatchNorm layers or output units) is refused.
        classes: class names for a multi-class model (default ``class0..``).

    Returns:
        :class:`KerasImport`; ``.model`` is a float32 ChromTransferNet in eval mode.
    """
    import torch

    from .models import BATCHNORM_HEADS, HEADS, MULTICLASS_HEADS, ChromTransferNet, ModelConfig

    graph = read_keras_h5(path)
    match = match_architecture(graph)
    detected = detect_head(match, graph)
    has_bn = any(bn is not None for _, bn in match.dense[:-1])
    units = [int(graph.layers[d].config["units"]) for d, _ in match.dense]
    n_outputs = units[-1]
    if head == "auto":
        head = detected
    elif head not in HEADS:
        raise ArtifactError(f"unknown head {head!r}; choose auto or one of {', '.join(HEADS)}")
    wants_bn = head in BATCHNORM_HEADS
    if wants_bn != has_bn or (head in MULTICLASS_HEADS) != (detected in MULTICLASS_HEADS):
        raise ArtifactError(
            f"{graph.path}: --head {head} does not fit the file, whose head is {detected} "
            f"(hidden units {units[:-1]}, {'with' if has_bn else 'without'} BatchNorm, {n_outputs} output(s)); "
            "use --head auto")
    stem_conv = graph.layers[match.convs["body.stem"][0]]
    width = int(stem_conv.config["filters"]) / PUBLISHED_FILTERS
    cfg = ModelConfig(head=head, n_outputs=n_outputs, width=width, head_units=tuple(units[:-1]),
                      dropout=match.dropout if match.dropout is not None else ModelConfig.dropout,
                      classes=list(classes) if classes else ModelConfig().classes)
    if head in MULTICLASS_HEADS and classes and len(classes) != n_outputs:
        raise ArtifactError(f"{graph.path}: {len(classes)} class names given for {n_outputs} outputs")
    model = ChromTransferNet(cfg)
    state: dict[str, np.ndarray] = {}
    layer_map: dict[str, str] = {}

    def put_conv(module_path: str, conv_name: str, bn_name: str | None, in_perm: np.ndarray | None = None) -> None:
        conv = graph.layers[conv_name]
        kernel = conv.weights["kernel"]
        if kernel.ndim != 3:
            raise ArtifactError(f"{graph.path}: Conv1D '{conv_name}' kernel has shape {kernel.shape}, expected (k, in, out)")
        if in_perm is not None:
            kernel = kernel[:, in_perm, :]
        conv_key = module_path if bn_name is None else module_path + ".conv"
        state[conv_key + ".weight"] = np.transpose(kernel, (2, 1, 0))
        state[conv_key + ".bias"] = conv.weights["bias"]
        layer_map[conv_key] = conv_name
        if bn_name is not None:
            put_bn(module_path + ".bn", bn_name)

    def put_bn(key: str, bn_name: str) -> None:
        w = graph.layers[bn_name].weights
        state[key + ".weight"] = w["gamma"]
        state[key + ".bias"] = w["beta"]
        state[key + ".running_mean"] = w["moving_mean"]
        state[key + ".running_var"] = w["moving_variance"]
        layer_map[key] = bn_name

    # block3 reads the concatenation; our network concatenates stage 2 in block order, so permute
    # the input channels of its two first convolutions when the file concatenates differently.
    c32 = graph.layers[match.convs["body.stage2.0.unit1"][0]].config["filters"]
    perm = None
    if match.concat_order != [0, 1, 2]:
        position_of_stage = {stage: pos for pos, stage in enumerate(match.concat_order)}
        perm = np.concatenate([np.arange(c32) + c32 * position_of_stage[s] for s in range(3)])
    for module_path, (conv_name, bn_name) in match.convs.items():
        needs_perm = module_path in ("body.block3.unit1", "body.block3.shortcut")
        put_conv(module_path, conv_name, bn_name, perm if needs_perm else None)
    linears = [i for i, m in enumerate(model.head.hidden) if isinstance(m, torch.nn.Linear)]
    norms = [i for i, m in enumerate(model.head.hidden) if isinstance(m, torch.nn.BatchNorm1d)]
    for j, (dense_name, bn_name) in enumerate(match.dense[:-1]):
        key = f"head.hidden.{linears[j]}"
        state[key + ".weight"] = graph.layers[dense_name].weights["kernel"].T
        state[key + ".bias"] = graph.layers[dense_name].weights["bias"]
        layer_map[key] = dense_name
        if bn_name is not None:
            put_bn(f"head.hidden.{norms[j]}", bn_name)
    out_name = match.dense[-1][0]
    state["head.output.weight"] = graph.layers[out_name].weights["kernel"].T
    state["head.output.bias"] = graph.layers[out_name].weights["bias"]
    layer_map["head.output"] = out_name

    target = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(target) - set(state))
    if missing:
        raise ArtifactError(f"{graph.path}: no Keras weights for {', '.join(missing[:3])}")
    for key, value in state.items():
        if tuple(value.shape) != tuple(target[key].shape):
            keras_name = layer_map.get(key.rsplit(".", 1)[0], "?")
            raise ArtifactError(f"{graph.path}: Keras layer '{keras_name}' has shape {tuple(value.shape)} "
                                f"where {key} needs {tuple(target[key].shape)} (not the ChromTransfer layout)")
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()},
                          strict=False)
    model.eval()
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    layer_map = dict(sorted(layer_map.items(), key=lambda item: order.get(item[0], len(order))))
    return KerasImport(model, graph, match, head, layer_map)


def import_keras(path: str | os.PathLike, out_dir: str | os.PathLike, head: str = "auto",
                 classes: list[str] | None = None, overwrite: bool = False) -> KerasImport:
    """Import ``path`` and save it as a chromtransfer model directory ``out_dir`` (model.json +
    model.safetensors, written atomically); model.json records the source and its sha256.

    ``out_dir`` is claimed as a model folder (:mod:`chromtransfer.artifacts`): a folder holding
    anything else (a training run, a store ...) is refused, a complete model is replaced only
    with ``overwrite``.
    """
    from .artifacts import check_output_dir, claim_output_dir
    from .modelio import MODEL_KIND, save_model

    check_output_dir(out_dir, MODEL_KIND, overwrite=overwrite)
    result = import_keras_model(path, head=head, classes=classes)
    save_model(result.model, claim_output_dir(out_dir, MODEL_KIND, overwrite=overwrite), **result.metadata())
    return result
