"""CPU kernels behind :class:`~chromtransfer.models.SamePadConv1d` and :class:`~chromtransfer.models.ConvUnit`.

The architecture (:mod:`chromtransfer.models`) calls these on its CPU fast path: float32
``(N, C, L)`` activations kept in channels-last memory, convolutions as oneDNN 2-D convolutions
(with the ReLU fused where PyTorch exposes it), BatchNorm over the ``(N*L, C)`` rows with
cascade-summed statistics, and dropout from one uniform draw per element. Each computes what the
plain modules compute, to float32 rounding (tests/test_fast.py, tests/test_models.py).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["BatchNormRows", "ConvChannelsLast", "ConvReLUChannelsLast", "FOLD_BELOW_CHANNELS", "batch_norm_rows",
           "conv_relu_channels_last", "cpu_fast_path", "dropout_cpu", "dropout_scale", "hooked",
           "pointwise_conv_available"]


def cpu_fast_path(x: torch.Tensor, module: nn.Module) -> bool:
    """Whether a call takes the channels-last CPU implementation of :class:`SamePadConv1d`.

    Float32 ``(N, C, L)`` input on the CPU, in training, or without autograd recording (inference,
    validation). Eval-mode calls that record gradients (attributions such as gradient x input)
    keep the plain ``(N, C, L)`` kernel: its float32 rounding is smaller (mean absolute error per
    pre-activation about 4e-7 against 8e-7, measured against float64), and the gradient of a ReLU
    network at a few positions depends on which ReLUs sit within rounding distance of zero.
    Under CPU autocast (``bf16-mixed`` training, bf16 attributions) the plain modules run, so that
    autocast gives every convolution oneDNN's bf16 kernel (these float32 kernels would bypass it).
    """
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 3
            and (module.training or not torch.is_grad_enabled())
            and not torch.is_autocast_enabled("cpu"))


def hooked(module: nn.Module) -> bool:
    """Whether any forward/backward hook would observe a call of ``module``."""
    from torch.nn.modules import module as _module

    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or getattr(module, "_backward_pre_hooks", None)
                or _module._global_forward_hooks or _module._global_forward_pre_hooks
                or _module._global_backward_hooks
                or getattr(_module, "_global_backward_pre_hooks", None))


def _folded_weight_grad(grad: torch.Tensor, xpad: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Kernel gradient of a valid convolution, computed on position pairs folded into channels.

    ``grad``: ``(N, O, 1, L)`` output gradient; ``xpad``: ``(N, C, 1, L + k - 1)`` padded input,
    both channels-last. Two neighbouring positions become one position with twice the channels
    (a free view of channels-last memory), so the kernel gradient is that of a convolution with
    ``2C -> 2O`` channels and ``k // 2 + 1`` taps, which oneDNN computes about 1.7x faster than
    the ``C -> O`` one when O is 32 (there it falls back to im2col + GEMM). The folded kernel's
    gradient is then summed back onto the original taps: the same sums, regrouped.

    Returns ``(O, C, 1, k)``.
    """
    n, out_ch, _, length = grad.shape
    in_ch = xpad.shape[1]
    if length % 2:
        grad = F.pad(grad, (0, 1))  # a zero gradient at a phantom position adds nothing
        length += 1
    taps = kernel_size // 2 + 1
    need = length + 2 * (taps - 1)
    if xpad.shape[3] < need:
        xpad = F.pad(xpad, (0, need - xpad.shape[3]))
    elif xpad.shape[3] > need:
        xpad = xpad[..., :need]

    def fold(t: torch.Tensor, channels: int, positions: int) -> torch.Tensor:
        t = t.contiguous(memory_format=torch.channels_last).permute(0, 3, 2, 1)  # (N, L, 1, C)
        return t.reshape(n, positions // 2, 1, 2 * channels).permute(0, 3, 2, 1)

    g2, x2 = fold(grad, out_ch, length), fold(xpad, in_ch, need)
    shape = grad.new_empty((2 * out_ch, 2 * in_ch, 1, taps))  # only its shape is read
    dw2 = torch.ops.aten.convolution_backward(g2, x2, shape, None, [1, 1], [0, 0], [1, 1], False,
                                              [0, 0], 1, [False, True, False])[1]
    # dw2[a*O + o, b*C + c, d] belongs to tap j = 2d + b - a of the original kernel
    parts = dw2.view(2, out_ch, 2, in_ch, taps).permute(0, 2, 4, 1, 3)  # (a, b, d, O, C)
    j = torch.arange(kernel_size, device=grad.device)
    dw = parts[0, j % 2, j // 2] + parts[1, (j + 1) % 2, (j + 1) // 2]  # (k, O, C)
    return dw.permute(1, 2, 0).unsqueeze(2)


#: Output channel counts below this get their kernel gradient from :func:`_folded_weight_grad`.
FOLD_BELOW_CHANNELS = 64


def _conv_backward(ctx, grad4: torch.Tensor, x4: torch.Tensor, weight4: torch.Tensor):
    """Input, kernel and bias gradients of ``conv2d(x4, weight4, bias, padding=(0, ctx.pad))``.

    Three separate operations (oneDNN's kernel-gradient primitive is slower when it also sums
    the bias gradient); the kernel gradient of narrow layers is folded
    (:func:`_folded_weight_grad`). Gradients not asked for (``ctx.needs_input_grad``) are None.
    """
    pad = ctx.pad
    grad4 = grad4.contiguous(memory_format=torch.channels_last)
    grad_x = grad_w = grad_b = None
    backward = torch.ops.aten.convolution_backward
    if ctx.needs_input_grad[0]:
        grad_x = backward(grad4, x4, weight4, None, [1, 1], [0, pad], [1, 1], False, [0, 0], 1,
                          [True, False, False])[0]
    if ctx.needs_input_grad[1]:
        if weight4.shape[0] < FOLD_BELOW_CHANNELS:
            xpad = F.pad(x4, (pad, pad)) if pad else x4
            grad_w = _folded_weight_grad(grad4, xpad, weight4.shape[3])
        else:
            grad_w = backward(grad4, x4, weight4, None, [1, 1], [0, pad], [1, 1], False, [0, 0], 1,
                              [False, True, False])[1]
    if ctx.needs_input_grad[2]:
        grad_b = grad4.sum((0, 2, 3))
    return grad_x, grad_w, grad_b


class ConvChannelsLast(torch.autograd.Function):
    """2-D convolution over channels-last ``(N, C, 1, L)`` with the backward of
    :func:`_conv_backward`. Not twice differentiable."""

    @staticmethod
    def forward(ctx, x4, weight4, bias, pad: int):
        ctx.save_for_backward(x4, weight4)
        ctx.pad = pad
        return F.conv2d(x4, weight4, bias, padding=(0, pad))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x4, weight4 = ctx.saved_tensors
        return (*_conv_backward(ctx, grad, x4, weight4), None)


def _pointwise_available() -> bool:
    """Whether oneDNN's fused conv + ReLU (``torch.ops.mkldnn._convolution_pointwise``, used by
    PyTorch's own compiler) is callable here and equals conv2d followed by ReLU."""
    op = getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return False
    try:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(2, 8, 1, 16, generator=gen).contiguous(memory_format=torch.channels_last)
        w, b = torch.randn(4, 8, 1, 3, generator=gen), torch.randn(4, generator=gen)
        with torch.no_grad():
            got = op(x, w, b, [0, 1], [1, 1], [1, 1], 1, "relu", [], "")
            want = torch.relu(F.conv2d(x, w, b, padding=(0, 1)))
        return bool(torch.allclose(got, want, rtol=1e-5, atol=1e-5))
    except (RuntimeError, TypeError, AttributeError):
        return False


_POINTWISE: list[bool] = []


def pointwise_conv_available() -> bool:
    """Cached :func:`_pointwise_available`."""
    if not _POINTWISE:
        _POINTWISE.append(_pointwise_available())
    return _POINTWISE[0]


def conv_relu_channels_last(x4: torch.Tensor, weight4: torch.Tensor, bias: torch.Tensor | None,
                            pad: int) -> torch.Tensor:
    """``relu(conv2d(x4, weight4, bias, padding=(0, pad)))`` on channels-last CPU float32 input,
    as one oneDNN call (ReLU as a fused post-op) where available. No autograd."""
    # Under torch.compile the plain operations: the private op's shape function reports
    # contiguous strides for a channels-last result, and the compiler fuses conv + ReLU itself.
    if pointwise_conv_available() and not torch.compiler.is_compiling():
        return torch.ops.mkldnn._convolution_pointwise(x4, weight4, bias, [0, pad], [1, 1], [1, 1],
                                                       1, "relu", [], "")
    return F.conv2d(x4, weight4, bias, padding=(0, pad)).relu_()


class ConvReLUChannelsLast(torch.autograd.Function):
    """Convolution and ReLU over channels-last ``(N, C, 1, L)``, returned as ``(N, C, L)``.

    The ReLU runs inside (in place, or as oneDNN's fused post-op), so no second activation
    tensor is made; the backward masks the gradient with the kept output, then
    :func:`_conv_backward`. Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, x4, weight4, bias, pad: int):
        y4 = conv_relu_channels_last(x4, weight4, bias, pad)
        ctx.save_for_backward(x4, weight4, y4)
        ctx.pad = pad
        return y4.squeeze(2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x4, weight4, y4 = ctx.saved_tensors
        grad4 = torch.ops.aten.threshold_backward(grad.unsqueeze(2), y4, 0)
        return (*_conv_backward(ctx, grad4, x4, weight4), None)


class BatchNormRows(torch.autograd.Function):
    """Training-mode BatchNorm over the rows of ``(M, C)`` with cascade-summed statistics, and the
    dropout that follows it (a precomputed ``keep / (1 - p)`` factor, applied in place).

    PyTorch's own kernel for this layout accumulates the batch sums row after row in float32;
    its batch mean is ~10x less accurate than the ``(N, C, L)`` kernel's, and the error passes
    into every gradient (measured: BatchNorm parameter gradients of the full network off by ~2 %
    from float64, against ~0.2 % on the plain path). Here the sums are PyTorch's reductions
    (pairwise/cascade summation), the variance is ``E[z^2] - mean^2`` from such sums, and the
    backward pass centres before it sums, which brings the gradients back to the plain path's
    accuracy at a fraction of its cost.
    """

    @staticmethod
    def forward(ctx, z, weight, bias, running_mean, running_var, factor: float, eps: float,
                dropout_scale):
        rows = z.shape[0]
        mean = z.sum(0).div_(rows)
        var = (z * z).sum(0).div_(rows).sub_(mean * mean).clamp_min_(0.0)
        invstd = torch.rsqrt(var + eps)
        scale = weight * invstd
        out = torch.addcmul(bias - mean * scale, z, scale)
        if dropout_scale is not None:
            out.mul_(dropout_scale)
        if running_mean is not None:
            running_mean.mul_(1.0 - factor).add_(mean, alpha=factor)
            running_var.mul_(1.0 - factor).add_(var * (rows / (rows - 1)), alpha=factor)
        ctx.save_for_backward(z, mean, invstd, weight, dropout_scale)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        z, mean, invstd, weight, dropout_scale = ctx.saved_tensors
        if dropout_scale is not None:
            grad = grad * dropout_scale
        rows = z.shape[0]
        grad_sum = grad.sum(0)
        centred = z - mean
        dot = (centred * grad).sum(0)
        scale = weight * invstd
        k = dot * invstd * invstd / rows
        grad_z = torch.addcmul(-(grad_sum / rows) * scale, grad, scale).addcmul_(centred, -(k * scale))
        return grad_z, dot * invstd, grad_sum, None, None, None, None, None


def batch_norm_rows(bn: nn.BatchNorm1d, z: torch.Tensor, dropout: nn.Dropout) -> torch.Tensor:
    """``dropout(bn(z))`` for rows ``(M, C)``: the same semantics as the modules on ``(N, C, L)``.

    Only a plain ``nn.BatchNorm1d`` takes :class:`BatchNormRows`; anything else is called as a
    module on the rows.
    """
    scale = dropout_scale(z, dropout)
    if type(bn) is not nn.BatchNorm1d or not (bn.training and bn.affine and torch.is_grad_enabled()
                                              and z.requires_grad):
        out = bn(z)
        return out if scale is None else out * scale
    if z.shape[0] < 2:
        raise ValueError("Expected more than 1 value per channel when training, "
                         f"got input size {tuple(z.shape)}")
    factor = 0.0
    if bn.track_running_stats:
        bn.num_batches_tracked.add_(1)
        factor = (1.0 / float(bn.num_batches_tracked)) if bn.momentum is None else bn.momentum
    return BatchNormRows.apply(z, bn.weight, bn.bias,
                                bn.running_mean if bn.track_running_stats else None,
                                bn.running_var if bn.track_running_stats else None, factor, bn.eps,
                                scale)


def dropout_scale(x: torch.Tensor, module: nn.Dropout) -> torch.Tensor | None:
    """The training-mode dropout factor for ``x`` (``None`` when dropout is the identity).

    ``keep / (1 - p)`` with ``keep = uniform[0, 1) >= p`` (Keras' rule), one uniform draw per
    element from torch's default generator (so seeded runs repeat): the distribution of
    :func:`torch.nn.functional.dropout`, about twice as fast on the CPU, where drawing the
    Bernoulli mask dominates dropout's cost.
    """
    p = module.p
    if not module.training or p == 0.0:
        return None
    if p == 1.0:
        return torch.zeros_like(x)
    return torch.rand(x.shape, dtype=x.dtype, device=x.device).ge_(p).div_(1.0 - p)


def dropout_cpu(x: torch.Tensor, module: nn.Dropout) -> torch.Tensor:
    """Training-mode dropout as ``nn.Dropout`` computes it, with :func:`dropout_scale`'s mask."""
    scale = dropout_scale(x, module)
    return x if scale is None else x * scale
