"""The ChromTransfer network (docs/method.md section 3), layer for layer, in PyTorch.

Inputs are one-hot tensors of shape ``(N, 4, L)`` (channel order A, C, G, T; any length L); the
network returns **logits**: shape ``(N, 1)`` for the binary heads, ``(N, n_classes)`` for the
multi-class heads. :func:`probabilities` applies the sigmoid (softmax).

Heads (``HEADS``; hidden Dense units, BatchNorm after each hidden Dense or not):

| head              | hidden   | BN  | output    | total parameters (Keras count) |
|-------------------|----------|-----|-----------|--------------------------------|
| ``pretrain``      | 512, 128 | yes | 1 sigmoid | 655,777                        |
| ``finetune``      | 1024, 32 | no  | 1 sigmoid | 653,537 (the published models) |
| ``finetune-bn``   | 1024, 32 | yes | 1 sigmoid | 657,761 (the paper's text)     |
| ``multiclass``    | 512, 128 | yes | 7 softmax | 656,551 (the authors' model config)|
| ``multiclass-1024`` | 1024, 32 | no | 7 softmax | 653,735 (the paper's text, without BN) |

Exactness notes (each one changes the outputs when wrong):

* a *conv unit* is Conv1d -> ReLU -> BatchNorm -> Dropout (ReLU **before** BatchNorm);
* "same" padding of an even kernel k pads (k-1)//2 zeros on the left and k//2 on the right, as
  TensorFlow does; the padding is explicit (:class:`SamePadConv1d`);
* BatchNorm epsilon 1e-3 and Keras momentum 0.99 (PyTorch momentum 0.01);
* the three identity blocks of stage 2 are concatenated in the order of their outputs (96 channels);
* global average pooling includes N positions.

Keras counts BatchNorm moving statistics as parameters; :func:`count_parameters` reports both the
Keras total and the trainable count. ``width`` < 1 gives a narrow variant of the same topology for
fast tests; the default (1.0) is the published network.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .accel import kernels

HEADS = ("pretrain", "finetune", "finetune-bn", "multiclass", "multiclass-1024")
#: Heads that end in a softmax over classes.
MULTICLASS_HEADS = ("multiclass", "multiclass-1024")
#: Heads with BatchNorm after each hidden Dense.
BATCHNORM_HEADS = ("pretrain", "finetune-bn", "multiclass")
#: Published hidden Dense units of each head (``multiclass``: the authors'
#: ``multiclass-baseline/train/model.config.multi-class.json``).
HEAD_UNITS = {"pretrain": (512, 128), "finetune": (1024, 32), "finetune-bn": (1024, 32),
              "multiclass": (512, 128), "multiclass-1024": (1024, 32)}
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # Keras momentum 0.99
DROPOUT = 0.1


@dataclass
class ModelConfig:
    """Everything needed to rebuild the network (stored as JSON beside the weights).

    Attributes:
        head: one of ``HEADS``.
        n_outputs: output units: 1 for binary heads, the number of classes for the multi-class
            heads (``MULTICLASS_HEADS``).
        width: multiplier on every convolution's filter count (1.0 = the published network).
        head_units: hidden Dense sizes; ``None`` takes the published ones for the head.
        dropout: dropout rate after every conv unit and hidden Dense.
    """

    head: str = "pretrain"
    n_outputs: int = 1
    width: float = 1.0
    head_units: tuple[int, ...] | None = None
    dropout: float = DROPOUT
    classes: list[str] = field(default_factory=lambda: ["negative", "positive"])

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; choose one of {', '.join(HEADS)}")
        if self.head_units is None:
            self.head_units = HEAD_UNITS[self.head]
        self.head_units = tuple(int(u) for u in self.head_units)
        if self.multiclass and self.n_outputs < 2:
            self.n_outputs = 7
        if self.multiclass and len(self.classes) != self.n_outputs:
            self.classes = [f"class{i}" for i in range(self.n_outputs)]

    @property
    def multiclass(self) -> bool:
        """Whether the head ends in a softmax over ``n_outputs`` classes."""
        return self.head in MULTICLASS_HEADS

    @property
    def head_batchnorm(self) -> bool:
        return self.head in BATCHNORM_HEADS

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["head_units"] = list(self.head_units)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if known.get("head") == "multiclass" and list(known.get("head_units") or ()) == [1024, 32]:
            # model.json written while the multiclass head was the 1024/32 one without BatchNorm
            known["head"] = "multiclass-1024"
        if known.get("head_units") is not None:
            known["head_units"] = tuple(known["head_units"])
        return cls(**known)


def same_padding(kernel_size: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding for stride 1: (left, right) = ((k-1)//2, k-1-(k-1)//2)."""
    left = (kernel_size - 1) // 2
    return left, kernel_size - 1 - left


class SamePadConv1d(nn.Conv1d):
    """Conv1d with TensorFlow 'same' padding (stride 1).

    Odd kernels pad symmetrically inside the convolution; even kernels get one more zero on the
    right, applied explicitly (PyTorch's own ``padding='same'`` is slower for even kernels).

    On the CPU in float32 the convolution runs as a 2-D convolution over ``(N, C, 1, L)`` in
    channels-last memory (positions outer, channels inner), the layout oneDNN's direct
    convolution works in, so no layout conversion runs around each convolution. The result is
    returned as an ``(N, C, L)`` view of that memory (strides ``(L*C, 1, C)``): elementwise
    operations and the next convolution keep the layout; anything that needs ``.view`` on it
    should call ``.contiguous()`` first. The arithmetic is the same convolution (results agree
    with the plain ``(N, C, L)`` path to float32 rounding, ~1e-6).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        left, right = same_padding(kernel_size)
        super().__init__(in_channels, out_channels, kernel_size, padding=left if left == right else 0)
        self.explicit_padding = (left, right) if left != right else None
        nn.init.kaiming_normal_(self.weight, nonlinearity="relu")  # He-normal, as Keras' he_normal
        nn.init.zeros_(self.bias)

    def channels_last_input(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """``x`` as channels-last ``(N, C, 1, L')`` (explicitly padded for even kernels) and the
        symmetric padding left for the convolution itself."""
        x4 = x.unsqueeze(2)  # (N, C, 1, L); a no-copy view when x is already channels-last
        if not x4.is_contiguous(memory_format=torch.channels_last):
            x4 = x4.contiguous(memory_format=torch.channels_last)
        if self.explicit_padding is not None:
            return F.pad(x4, self.explicit_padding), 0  # keeps channels-last
        return x4, self.padding[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if kernels.cpu_fast_path(x, self):
            x4, pad = self.channels_last_input(x)
            weight4 = self.weight.unsqueeze(2)
            if torch.is_grad_enabled() and (x4.requires_grad or self.weight.requires_grad):
                y = kernels.ConvChannelsLast.apply(x4, weight4, self.bias, pad)
            else:
                y = F.conv2d(x4, weight4, self.bias, padding=(0, pad))
            return y.squeeze(2)
        if self.explicit_padding is not None:
            x = F.pad(x, self.explicit_padding)
        return super().forward(x)


class ConvUnit(nn.Module):
    """Conv1d -> ReLU -> BatchNorm -> Dropout; ``(N, C_in, L) -> (N, C_out, L)``.

    On the CPU fast path (see :class:`SamePadConv1d`), BatchNorm runs on the ``(N*L, C)`` view of
    the channels-last activations (statistics over batch and positions, exactly as over
    ``(N, C, L)``; in training through :class:`~chromtransfer.accel.kernels.BatchNormRows`,
    several times faster than PyTorch's kernel for strided 3-D input and as accurate as its
    ``(N, C, L)`` kernel), together with training-mode dropout (mask from
    :func:`~chromtransfer.accel.kernels.dropout_scale`), and the convolution and its ReLU run as
    one operation (:class:`~chromtransfer.accel.kernels.ConvReLUChannelsLast`; oneDNN's fused
    post-op). When a hook is registered on any of the unit's modules, those modules are called as
    usual on ``(N, C, L)`` tensors instead, so hooks always see the documented calls and shapes;
    so is a BatchNorm subclass with its own forward (the synchronised BatchNorm of multi-process
    training).
    """

    #: the convolution's class (a subclass may swap it, see chromtransfer.interpret.plain_network)
    conv_class: type[nn.Conv1d] = SamePadConv1d

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dropout: float = DROPOUT):
        super().__init__()
        self.conv = self.conv_class(in_channels, out_channels, kernel_size)
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm1d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        if (not (kernels.cpu_fast_path(x, conv) and x.shape[-1] > 0) or kernels.hooked(conv)
                or kernels.hooked(self.relu)):
            return self._module_path(x)
        x4, pad = conv.channels_last_input(x)
        weight4 = conv.weight.unsqueeze(2)
        if torch.is_grad_enabled() and (x4.requires_grad or conv.weight.requires_grad):
            y = kernels.ConvReLUChannelsLast.apply(x4, weight4, conv.bias, pad)
        else:
            y = kernels.conv_relu_channels_last(x4, weight4, conv.bias, pad).squeeze(2)
        if kernels.hooked(self.bn) or kernels.hooked(self.dropout) or type(self.bn) is not nn.BatchNorm1d:
            # hooks, or a BatchNorm with its own forward (multi-process synced): module calls
            return self.dropout(self.bn(y))
        n, c, length = y.shape
        z = kernels.batch_norm_rows(self.bn, y.transpose(1, 2).reshape(n * length, c), self.dropout)
        return z.view(n, length, c).transpose(1, 2)

    def _module_path(self, x: torch.Tensor) -> torch.Tensor:
        """Every module called in turn (the reference path; what hooks observe)."""
        return self.dropout(self.bn(self.relu(self.conv(x))))


class ProjectionBlock(nn.Module):
    """Residual block with a conv-unit shortcut: ``unit2(unit1(x)) + shortcut(x)``."""

    unit_class: type[nn.Module] = ConvUnit

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dropout: float = DROPOUT):
        super().__init__()
        self.unit1 = self.unit_class(in_channels, out_channels, kernel_size, dropout)
        self.unit2 = self.unit_class(out_channels, out_channels, kernel_size, dropout)
        self.shortcut = self.unit_class(in_channels, out_channels, kernel_size, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unit2(self.unit1(x)) + self.shortcut(x)


class IdentityBlock(nn.Module):
    """Residual block with an identity shortcut: ``unit2(unit1(x)) + x``."""

    unit_class: type[nn.Module] = ConvUnit

    def __init__(self, channels: int, kernel_size: int, dropout: float = DROPOUT):
        super().__init__()
        self.unit1 = self.unit_class(channels, channels, kernel_size, dropout)
        self.unit2 = self.unit_class(channels, channels, kernel_size, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unit2(self.unit1(x)) + x


def _scaled(filters: int, width: float) -> int:
    return max(1, int(round(filters * width)))


def residual_trunk(body: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The network's residual graph from the stem through stage 4, for any module that has the
    :class:`Body` attributes ``stem``, ``block1``, ``stage2``, ``block3``, ``stage4``.

    Stage 2's three block outputs are concatenated in order along channels (96 channels at full
    width) into block 3. Returns stage 4's output; the caller adds ``conv_out`` and the last conv.
    """
    x = body.block1(body.stem(x))
    stage2 = []
    for block in body.stage2:
        x = block(x)
        stage2.append(x)
    x = body.block3(torch.cat(stage2, dim=1))
    for block in body.stage4:
        x = block(x)
    return x


class Body(nn.Module):
    """The convolutional body through global average pooling: ``(N, 4, L) -> (N, F)``.

    F = 64 for the published width. Receptive field 202 bp. The layer plan lives here alone; a
    subclass may swap the building blocks' classes (the DeepLIFT-safe copy,
    :class:`chromtransfer.interpret.plain_network.PlainBody`), keeping the parameter names.
    """

    unit_class: type[nn.Module] = ConvUnit
    projection_class: type[nn.Module] = ProjectionBlock
    identity_class: type[nn.Module] = IdentityBlock
    conv_class: type[nn.Conv1d] = SamePadConv1d

    def __init__(self, width: float = 1.0, dropout: float = DROPOUT):
        super().__init__()
        c64, c32 = _scaled(64, width), _scaled(32, width)
        self.stem = self.unit_class(4, c64, 25, dropout)
        self.block1 = self.projection_class(c64, c32, 20, dropout)
        self.stage2 = nn.ModuleList([self.identity_class(c32, 15, dropout) for _ in range(3)])
        self.block3 = self.projection_class(3 * c32, c64, 10, dropout)
        self.stage4 = nn.ModuleList([self.identity_class(c64, 5, dropout) for _ in range(3)])
        self.conv_out = self.unit_class(c64, c64, 10, dropout)
        self.last_conv = self.conv_class(c64, c64, 5)
        self.last_relu = nn.ReLU()
        self.out_features = c64

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last conv layer's activations, ``(N, F, L)`` (before pooling)."""
        x = residual_trunk(self, x)
        return self.last_relu(self.last_conv(self.conv_out(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=-1)


class Head(nn.Module):
    """Dense head: hidden Dense -> ReLU [-> BatchNorm] -> Dropout, then the output Dense (logits)."""

    def __init__(self, in_features: int, units: tuple[int, ...], n_outputs: int, batchnorm: bool,
                 dropout: float = DROPOUT):
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_features
        for size in units:
            dense = nn.Linear(previous, size)
            nn.init.xavier_uniform_(dense.weight)  # Keras' glorot_uniform
            nn.init.zeros_(dense.bias)
            layers += [dense, nn.ReLU()]
            if batchnorm:
                layers.append(nn.BatchNorm1d(size, eps=BN_EPS, momentum=BN_MOMENTUM))
            layers.append(nn.Dropout(dropout))
            previous = size
        self.hidden = nn.Sequential(*layers)
        self.output = nn.Linear(previous, n_outputs)
        nn.init.xavier_uniform_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.output(self.hidden(features))


class ChromTransferNet(nn.Module):
    """Body plus head. ``forward`` maps one-hot ``(N, 4, L)`` to logits ``(N, n_outputs)``."""

    def __init__(self, config: ModelConfig | None = None, **kwargs: Any):
        super().__init__()
        self.config = config or ModelConfig(**kwargs)
        self.body = Body(self.config.width, self.config.dropout)
        self.head = Head(self.body.out_features, self.config.head_units, self.config.n_outputs,
                         self.config.head_batchnorm, self.config.dropout)

    @property
    def multiclass(self) -> bool:
        return self.config.multiclass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Sigmoid (binary) or softmax (multi-class) of the logits."""
        return probabilities(self(x), self.multiclass)

    def conv_kernels(self) -> list[torch.Tensor]:
        """The kernels that carry the L2 penalty (every conv but the last one, as the authors' code)."""
        return [m.weight for m in self.body.modules()
                if isinstance(m, SamePadConv1d) and m is not self.body.last_conv]


def probabilities(logits: torch.Tensor, multiclass: bool) -> torch.Tensor:
    return torch.softmax(logits, dim=-1) if multiclass else torch.sigmoid(logits)


def build_model(head: str = "pretrain", **kwargs: Any) -> ChromTransferNet:
    """Build a freshly initialised network with the given head (see :class:`ModelConfig`)."""
    return ChromTransferNet(ModelConfig(head=head, **kwargs))


def transfer_body(source: ChromTransferNet, head: str = "finetune", **kwargs: Any) -> ChromTransferNet:
    """A new model whose whole body (weights and BatchNorm statistics) is copied from ``source``.

    The head is new and freshly initialised. ``width`` follows the source model.
    """
    kwargs.setdefault("width", source.config.width)
    kwargs.setdefault("dropout", source.config.dropout)
    model = build_model(head, **kwargs)
    model.body.load_state_dict(source.body.state_dict())
    return model


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameter counts in Keras' convention and PyTorch's.

    Returns ``total`` (weights plus BatchNorm moving mean and variance, as Keras counts),
    ``trainable`` (parameters with ``requires_grad``) and ``non_trainable`` (the rest of ``total``).
    """
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    moving = sum(m.running_mean.numel() + m.running_var.numel()
                 for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    total = params + moving
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}


def layer_table(model: ChromTransferNet, length: int = 600) -> list[dict[str, Any]]:
    """One row per weighted layer: name, type, output shape for a ``length`` bp input, parameters.

    Parameters are counted as Keras does (BatchNorm rows include the moving statistics).
    """
    rows: list[dict[str, Any]] = []
    hooks = []

    def hook(name: str):
        def record(module: nn.Module, inputs, output) -> None:
            n = sum(p.numel() for p in module.parameters(recurse=False))
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                n += module.running_mean.numel() + module.running_var.numel()
            shape = tuple(output.shape[1:])
            detail = ""
            if isinstance(module, nn.Conv1d):
                detail = f"k={module.kernel_size[0]} pad={same_padding(module.kernel_size[0])}"
            rows.append({"name": name, "type": type(module).__name__, "output": shape,
                         "parameters": n, "detail": detail})
        return record

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv1d, nn.Linear, nn.modules.batchnorm._BatchNorm)):
            hooks.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 4, length))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def l2_penalty(model: ChromTransferNet, weight: float) -> torch.Tensor:
    """Keras kernel_regularizer L2: ``weight * sum(kernel ** 2)`` over the conv kernels."""
    return weight * sum((w ** 2).sum() for w in model.conv_kernels())
