"""A DeepLIFT-safe copy of the network: every operation on the plain module path.

DeepLIFT (and DeepLIFT/SHAP) replaces the gradient of each non-linear *module* by a rule on the
difference from a reference (the rescale rule for ReLU), applied through module hooks. Its
contributions add up to the output difference only when every non-linearity is a module called
where the rules can see it. :class:`~chromtransfer.models.ChromTransferNet` is written for speed:
on the CPU a conv unit may run its convolution and ReLU as one fused kernel
(:class:`~chromtransfer.accel.kernels.ConvReLUChannelsLast`), where no ReLU module is called, and
residual adds are ``+`` inside ``forward``.

:func:`plain_network` returns a copy with the same weights and the same outputs (within float
rounding, ~1e-6) whose forward pass is the reference path only:

* each conv unit calls its ``Conv1d -> ReLU -> BatchNorm -> Dropout`` modules in turn, with its own
  ``nn.ReLU`` (one ReLU module per use; none is shared);
* convolutions never take the channels-last CPU kernels (:class:`PlainConv1d`);
* residual adds are :class:`Add` modules (linear: DeepLIFT passes multipliers through unchanged,
  but as modules they are visible to hooks and to the module tree);
* the head is the original :class:`~chromtransfer.models.Head` (Linear, ReLU, BatchNorm, Dropout
  modules).

In eval mode BatchNorm, Dropout, convolutions, concatenation and average pooling are linear, so the
ReLUs (and a final sigmoid/softmax module, see :mod:`.deeplift`) are the only non-linearities the
rules must handle. The published architecture (:mod:`chromtransfer.models`) is unchanged; the
copy's parameter names are the original's, and its state dict is loaded strictly.
"""
from __future__ import annotations

import torch
from torch import nn

from ..models import Body, ChromTransferNet, ConvUnit, Head, IdentityBlock, ProjectionBlock, SamePadConv1d

__all__ = ["Add", "PlainConv1d", "PlainNet", "plain_network"]


class Add(nn.Module):
    """``a + b`` as a module (a residual add)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class PlainConv1d(SamePadConv1d):
    """:class:`~chromtransfer.models.SamePadConv1d` (TensorFlow 'same' padding) without the
    channels-last CPU path: ``(N, C_in, L) -> (N, C_out, L)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.explicit_padding is not None:
            x = nn.functional.pad(x, self.explicit_padding)
        return nn.Conv1d.forward(self, x)


class PlainConvUnit(ConvUnit):
    """Conv1d -> ReLU -> BatchNorm -> Dropout, each module called in turn."""

    conv_class = PlainConv1d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._module_path(x)


class PlainProjectionBlock(ProjectionBlock):
    """``add(unit2(unit1(x)), shortcut(x))``."""

    unit_class = PlainConvUnit

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add = Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add(self.unit2(self.unit1(x)), self.shortcut(x))


class PlainIdentityBlock(IdentityBlock):
    """``add(unit2(unit1(x)), x)``."""

    unit_class = PlainConvUnit

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add = Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add(self.unit2(self.unit1(x)), x)


class PlainBody(Body):
    """:class:`~chromtransfer.models.Body` (its layer plan) built from the plain blocks:
    ``(N, 4, L) -> (N, F)``."""

    unit_class = PlainConvUnit
    projection_class = PlainProjectionBlock
    identity_class = PlainIdentityBlock
    conv_class = PlainConv1d


class PlainNet(nn.Module):
    """Body plus head on the plain module path; ``(N, 4, L) -> (N, n_outputs)`` logits."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.body = PlainBody(config.width, config.dropout)
        self.head = Head(self.body.out_features, config.head_units, config.n_outputs, config.head_batchnorm,
                         config.dropout)

    @property
    def multiclass(self) -> bool:
        return self.config.multiclass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def plain_network(model: ChromTransferNet) -> PlainNet:
    """A DeepLIFT-safe copy of ``model`` (see the module docstring), in eval mode, on the model's
    device and dtype; the model itself is not changed.

    Raises ``TypeError`` for anything but a :class:`~chromtransfer.models.ChromTransferNet` (a
    fold ensemble: attribute each member).
    """
    if not isinstance(model, ChromTransferNet):
        raise TypeError(f"a DeepLIFT-safe copy needs a ChromTransferNet, not {type(model).__name__} "
                        "(for a fold ensemble, attribute each member model)")
    plain = PlainNet(model.config)
    # BatchNorm epsilon and momentum as the original's (a module's own values, not the defaults)
    for source, copy in zip((m for m in model.modules() if isinstance(m, nn.BatchNorm1d)),
                            (m for m in plain.modules() if isinstance(m, nn.BatchNorm1d))):
        copy.eps, copy.momentum = source.eps, source.momentum
    plain.load_state_dict(model.state_dict(), strict=True)
    parameter = next(model.parameters())
    return plain.to(device=parameter.device, dtype=parameter.dtype).eval()
