"""Fast inference for :class:`~chromtransfer.models.ChromTransferNet` on the CPU.

:func:`fuse_for_inference` turns a trained model into an inference-only module that computes the
same logits (float32 differences ~1e-6; the test suite holds it to 1e-5) with less work per
sequence:

* every activation lives in channels-last memory ``(N, C, 1, L)`` (positions outer, channels
  inner), the layout of oneDNN's direct convolution, so no layout conversion runs around any
  convolution;
* convolution and its ReLU run as one oneDNN call (a fused post-op) where PyTorch exposes it
  (``torch.ops.mkldnn._convolution_pointwise``; checked once against the plain operations, else
  the plain ones are used);
* TensorFlow's asymmetric 'same' padding of an even kernel k needs no padded copy of the input:
  the convolution pads k//2 on both sides and its first output position is dropped (a view; the
  BatchNorm pass that follows writes a contiguous tensor). The older rewrite, an odd kernel with
  a leading zero tap (``FuseOptions(trim_even=False)``), does k + 1 multiply-adds per output
  instead of k; the trimmed one measured ~2 % faster over the whole network;
* optionally (off by default: measured slower here, the wider output costs more than the
  second pass over the input saves), the two convolutions of a projection block that read the
  same input with the same kernel (main path and shortcut) run as one with both filter banks;
* BatchNorm of the dense head is folded into the following Dense layer (exact algebra);
* the model runs on any device, but these choices target oneDNN on the CPU;
* ``dtype=torch.bfloat16`` (``--precision bf16``, :mod:`chromtransfer.precision`): the body's
  convolution weights, biases and activations are bf16 (oneDNN's bf16 convolutions accumulate in
  float32); BatchNorm's scale and shift stay float32 and its pass computes in float32, rounding
  only its result to bf16,
  the pooled features are averaged in float32 and the dense head runs in float32. The model
  itself holds bf16, so no autocast is needed and the worker threads of
  :func:`forward_in_chunks` run bf16 like the calling thread.

BatchNorm of the body is **not** folded into the convolutions. The network applies ReLU before
BatchNorm (conv -> ReLU -> BN), so BN cannot enter its own convolution, only the next one
(``W * BN(r) = (W s) * r + W t``); but the next convolution zero-pads its input, and a padded
zero is not BN of anything, so the folded bias ``W t`` is right only away from the sequence
edges. The exact fold needs a per-position bias at the first and last ``k // 2`` positions of
every layer, added before the next ReLU, i.e. the ReLU can no longer be fused into the
convolution, or the edge columns must be recomputed: more work than it saves, since the affine
BN pass is only ~7 % of the fused model's time (profile: chunks of 32, one thread; the
convolutions take ~87 %). Padding with the value that BN maps to zero (``-t / s``) would keep the
fold exact but needs a padded copy of every activation, the cost the pass already has. BN
therefore stays one affine pass (``y * scale + shift``, with the residual add where there is one)
per conv unit. Where activations do not need zero padding, the fold is done: the head's
BatchNorm layers are folded into the following Dense layers.

:func:`forward_in_chunks` runs a module over a large batch in cache-sized chunks on several
worker threads, each running single-threaded kernels; this keeps activations in the CPU caches
and balances work between cores dynamically, which matters on a shared machine.
"""
from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..models import Body, ChromTransferNet, ConvUnit, IdentityBlock, ProjectionBlock, residual_trunk, same_padding
from .kernels import conv_relu_channels_last, pointwise_conv_available

__all__ = ["FuseOptions", "FusedNet", "codes_runner", "fuse_for_inference", "forward_in_chunks",
           "one_hot_nlc"]


@dataclass(frozen=True)
class FuseOptions:
    """Switches of :func:`fuse_for_inference` (for measuring each one; defaults are the fastest
    measured on a 2-core AVX-512 CPU, see ``benchmarks/bench_throughput.py --levers``).

    Attributes:
        pointwise: fuse each convolution with its ReLU in one oneDNN call (CPU only).
        trim_even: run even kernels without the zero tap of :func:`_odd_kernel`, on a one
            position longer output whose first position is dropped (:func:`_trimmed_kernel`).
        merge_siblings: run a projection block's main-path and shortcut convolutions as one.
        fold_head_bn: fold the head's BatchNorm layers into the following Dense layers.
    """

    pointwise: bool = True
    trim_even: bool = True
    merge_siblings: bool = False
    fold_head_bn: bool = True


@dataclass(frozen=True)
class _ConvHow:
    """How :class:`_Conv` runs its convolution (resolved from :class:`FuseOptions`)."""

    pointwise: bool
    trim: bool


def _odd_kernel(weight: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(C_out, C_in, k)`` kernel as an odd kernel with symmetric padding: ``(weight4d, pad)``.

    TensorFlow's 'same' padding of an even kernel k puts (k-1)//2 zeros left and k//2 right; a
    kernel with one leading zero tap (length k+1) and k//2 zeros on both sides gives exactly the
    same sums (the added products are 0 * x = 0).
    """
    k = weight.shape[-1]
    left, right = same_padding(k)
    if left != right:
        weight = F.pad(weight, (1, 0))
        left = right
    return weight.unsqueeze(2).contiguous(), left


def _trimmed_kernel(weight: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(C_out, C_in, k)`` kernel for a convolution whose first output position is dropped:
    ``(weight4d, pad)``.

    With k//2 zeros on both sides an even kernel k gives L + 1 outputs; output ``i + 1`` is
    TensorFlow's 'same' output ``i`` (whose window starts (k-1)//2 = k//2 - 1 positions to the
    left). Same products as TensorFlow's, no zero tap: k instead of k + 1 multiply-adds per
    output, for an output one position longer. Odd kernels are returned as they are.
    """
    return weight.unsqueeze(2).contiguous(), same_padding(weight.shape[-1])[1]


#: Activation dtypes that take oneDNN's fused convolution + ReLU.
_POINTWISE_DTYPES = (torch.float32, torch.bfloat16)


class _Conv(nn.Module):
    """Convolution over channels-last ``(N, C_in, 1, L)``, optionally followed by ReLU.

    ``trim``: an even kernel runs as :func:`_trimmed_kernel` describes, and the result is the
    view without its first position (channels-last strides kept; the next elementwise pass
    writes a contiguous tensor); else as :func:`_odd_kernel`.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, relu: bool, how: "_ConvHow"):
        super().__init__()
        self.trim = how.trim and weight.shape[-1] % 2 == 0
        w4, pad = (_trimmed_kernel if self.trim else _odd_kernel)(weight.detach())
        self.weight = nn.Parameter(w4, requires_grad=False)
        self.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
        self.pad = pad
        self.relu = relu
        self.pointwise = how.pointwise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pointwise and self.relu and x.device.type == "cpu" and x.dtype in _POINTWISE_DTYPES:
            y = conv_relu_channels_last(x, self.weight, self.bias, self.pad)
        else:
            y = F.conv2d(x, self.weight, self.bias, padding=(0, self.pad))
            y = y.relu_() if self.relu else y
        return y[..., 1:] if self.trim else y


def _bn_affine(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Inference BatchNorm as ``y * scale + shift`` (per channel)."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias.detach() - bn.running_mean * scale
    return scale, shift


class _Affine(nn.Module):
    """Per-channel ``x * scale + shift`` on ``(N, C, 1, L)``: inference BatchNorm in one pass."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale.view(1, -1, 1, 1).clone())
        self.register_buffer("shift", shift.view(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """``x * scale + shift``, plus ``add`` when given (the residual input of a block).

        With bf16 activations and float32 ``scale``/``shift`` (a bf16 body) the arithmetic is
        float32 and only the result is rounded to bf16: rounding scale and shift to bf16 doubled
        the largest probability error on a trained model (0.014 -> 0.007 with float32 ones).
        """
        if x.dtype != self.scale.dtype:
            if add is None:
                return torch.addcmul(self.shift, x, self.scale, out=torch.empty_like(x))
            return torch.addcmul(self.shift, x, self.scale).add_(add).to(x.dtype)
        if add is None:
            return torch.addcmul(self.shift, x, self.scale)
        return torch.addcmul(add + self.shift, x, self.scale)


class _Unit(nn.Module):
    """A conv unit for inference: conv + ReLU (one call), then BatchNorm as one affine pass."""

    def __init__(self, unit: ConvUnit, how: "_ConvHow"):
        super().__init__()
        self.conv = _Conv(unit.conv.weight, unit.conv.bias, True, how)
        self.bn = _Affine(*_bn_affine(unit.bn))

    def forward(self, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        return self.bn(self.conv(x), add)


class _Identity(nn.Module):
    def __init__(self, block: IdentityBlock, how: "_ConvHow"):
        super().__init__()
        self.unit1 = _Unit(block.unit1, how)
        self.unit2 = _Unit(block.unit2, how)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unit2(self.unit1(x), add=x)


class _Projection(nn.Module):
    """``unit2(unit1(x)) + shortcut(x)``; unit1 and shortcut share one convolution when merged."""

    def __init__(self, block: ProjectionBlock, how: "_ConvHow", merge: bool):
        super().__init__()
        self.merge = merge
        self.unit2 = _Unit(block.unit2, how)
        if merge:
            w = torch.cat([block.unit1.conv.weight, block.shortcut.conv.weight])
            b = torch.cat([block.unit1.conv.bias, block.shortcut.conv.bias])
            self.conv = _Conv(w, b, True, how)
            self.split = block.unit1.conv.out_channels
            self.bn1 = _Affine(*_bn_affine(block.unit1.bn))
            self.bn_short = _Affine(*_bn_affine(block.shortcut.bn))
        else:
            self.unit1 = _Unit(block.unit1, how)
            self.shortcut = _Unit(block.shortcut, how)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merge:
            both = self.conv(x)
            a = self.bn1(both[:, :self.split])
            return self.bn_short(both[:, self.split:], add=self.unit2(a))
        return self.unit2(self.unit1(x)).add_(self.shortcut(x))


class _FusedBody(nn.Module):
    def __init__(self, body: Body, options: FuseOptions, how: "_ConvHow"):
        super().__init__()
        self.stem = _Unit(body.stem, how)
        self.block1 = _Projection(body.block1, how, options.merge_siblings)
        self.stage2 = nn.ModuleList([_Identity(b, how) for b in body.stage2])
        self.block3 = _Projection(body.block3, how, options.merge_siblings)
        self.stage4 = nn.ModuleList([_Identity(b, how) for b in body.stage4])
        self.conv_out = _Unit(body.conv_out, how)
        self.last = _Conv(body.last_conv.weight, body.last_conv.bias, True, how)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 4, 1, L)`` channels-last one-hot -> pooled features ``(N, F)`` (float32 for a
        bf16 body: the mean is accumulated and returned in float32)."""
        x = residual_trunk(self, x)
        y = self.last(self.conv_out(x))
        if y.dtype in (torch.bfloat16, torch.float16):
            return y.mean(dim=(2, 3), dtype=torch.float32)
        return y.mean(dim=(2, 3))


def _fused_head(head: nn.Module, fold_bn: bool) -> nn.Sequential:
    """The head's layers without Dropout; BatchNorm after a hidden ReLU folded into the next Dense.

    ``Dense2(BN(h)) = Dense2(h * s + t) = (W2 * s) h + (W2 t + b2)``: exact, no padding involved.
    """
    layers = [m for m in list(head.hidden) + [head.output] if not isinstance(m, nn.Dropout)]
    layers = [copy.deepcopy(m) for m in layers]
    if not fold_bn:
        return nn.Sequential(*layers)
    out: list[nn.Module] = []
    pending: tuple[torch.Tensor, torch.Tensor] | None = None
    for layer in layers:
        if isinstance(layer, nn.BatchNorm1d):
            pending = _bn_affine(layer)
            continue
        if isinstance(layer, nn.Linear) and pending is not None:
            scale, shift = pending
            with torch.no_grad():
                layer.bias.add_(layer.weight @ shift)
                layer.weight.mul_(scale)
            pending = None
        out.append(layer)
    return nn.Sequential(*out)


class FusedNet(nn.Module):
    """Inference-only ChromTransfer network (see the module docstring); outputs logits.

    ``forward`` takes one-hot ``(N, 4, L)`` (any strides) like the original model;
    :meth:`forward_codes` takes uint8 codes ``(N, L)`` and builds the one-hot on their device,
    directly in channels-last order.
    """

    def __init__(self, model: ChromTransferNet, options: FuseOptions = FuseOptions()):
        super().__init__()
        how = _ConvHow(pointwise=options.pointwise and pointwise_conv_available(),
                       trim=options.trim_even)
        self.config = model.config
        self.options = options
        self.body = _FusedBody(model.body, options, how)
        self.head = _fused_head(model.head, options.fold_head_bn)
        self.eval()

    @property
    def multiclass(self) -> bool:
        return self.config.multiclass

    def train(self, mode: bool = True) -> "FusedNet":
        if mode:
            raise RuntimeError("a fused model is for inference only; train the original model")
        return super().train(False)

    @property
    def body_dtype(self) -> torch.dtype:
        """The dtype of the body's weights and activations (the head may be wider)."""
        return self.body.stem.conv.weight.dtype

    def forward_channels_last(self, x4: torch.Tensor) -> torch.Tensor:
        """Logits for a channels-last one-hot batch ``(N, 4, 1, L)``, in the head's dtype."""
        features = self.body(x4.to(self.body_dtype))
        head_dtype = self.head[0].weight.dtype
        return self.head(features.to(head_dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x4 = x.unsqueeze(2).to(self.body_dtype).contiguous(memory_format=torch.channels_last)
        return self.forward_channels_last(x4)

    def forward_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Logits for uint8 codes ``(N, L)`` (A0 C1 G2 T3, other 4 -> all-zero column)."""
        return self.forward_channels_last(one_hot_nlc(codes, self.body_dtype))


def one_hot_nlc(codes: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One-hot of ``(N, L)`` codes as a channels-last ``(N, 4, 1, L)`` tensor on the codes' device.

    Same values as :func:`chromtransfer.encoding.one_hot` (channel order A, C, G, T; code 4 ->
    zeros), laid out positions-outer so the first convolution reads it without a conversion.
    """
    channels = torch.arange(4, device=codes.device, dtype=codes.dtype)
    x = (codes.unsqueeze(-1) == channels).to(dtype)  # (N, L, 4)
    return x.unsqueeze(1).permute(0, 3, 1, 2)  # (N, 4, 1, L), channels-last strides


def fuse_for_inference(model: ChromTransferNet, options: FuseOptions = FuseOptions(),
                       body_dtype: torch.dtype | None = None) -> FusedNet:
    """An inference-only copy of ``model`` that computes the same logits faster.

    Args:
        model: a :class:`~chromtransfer.models.ChromTransferNet` (any head or width); not changed.
        options: which rewrites to apply (all by default).
        body_dtype: ``torch.bfloat16`` for a bf16 body (see the module docstring; the head keeps
            the model's dtype); ``None`` keeps the model's dtype throughout.

    Returns:
        :class:`FusedNet` in eval mode on the model's device and dtype. Logits agree with
        ``model.eval()(x)`` to float32 rounding (the test suite checks 1e-5); with a bf16 body,
        within the accuracy contract of :mod:`chromtransfer.precision`.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            fused = FusedNet(model, options)
    finally:
        model.train(was_training)
    param = next(model.parameters())
    fused = fused.to(device=param.device, dtype=param.dtype)
    if body_dtype is not None and body_dtype != param.dtype:
        for module in fused.body.modules():
            if isinstance(module, _Conv):  # BatchNorm's scale/shift stay float32 (see _Affine)
                module.to(dtype=body_dtype)
    return fused


def forward_in_chunks(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *,
                      chunk: int = 32, workers: int | None = None) -> torch.Tensor:
    """``fn`` applied to ``x`` in chunks of ``chunk`` rows, concatenated in order.

    On the CPU with ``workers`` > 1 (default: ``torch.get_num_threads()``), the chunks are shared
    out to that many threads, each running single-threaded kernels (the thread count of the
    calling thread is left as it was). Each worker takes the next chunk when done, so a core
    slowed by another process does not hold up the others; chunks of ~32 sequences keep every
    activation of a 600 bp batch within the CPU caches. Elsewhere the chunks run in turn.

    Args:
        fn: maps a ``(n, ...)`` batch to a ``(n, ...)`` result; must not keep state between calls.
        x: the batch, ``(N, ...)``.
        chunk: rows per call.
        workers: threads; ``1`` runs the chunks in the calling thread with its own thread count.

    Returns:
        ``torch.cat([fn(part) for part in x.split(chunk)])``.
    """
    parts = list(x.split(chunk))
    workers = torch.get_num_threads() if workers is None else workers
    if x.device.type != "cpu" or workers <= 1 or len(parts) <= 1:
        return torch.cat([fn(p) for p in parts]) if parts else fn(x)
    results: list[torch.Tensor | None] = [None] * len(parts)
    errors: list[BaseException] = []
    lock = threading.Lock()
    next_index = [0]
    grad_mode = torch.is_grad_enabled()
    inference = torch.is_inference_mode_enabled()

    def work() -> None:
        torch.set_num_threads(1)  # this thread's OpenMP team only
        try:
            with torch.inference_mode(inference), torch.set_grad_enabled(grad_mode):
                while True:
                    with lock:
                        i = next_index[0]
                        next_index[0] += 1
                    if i >= len(parts) or errors:
                        return
                    results[i] = fn(parts[i])
        except BaseException as exc:  # re-raised in the calling thread
            errors.append(exc)

    caller_threads = torch.get_num_threads()
    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(workers, len(parts)))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        torch.set_num_threads(caller_threads)  # also resets the process-wide defaults
    if errors:
        raise errors[0]
    return torch.cat(results)  # type: ignore[arg-type]


def codes_runner(model: nn.Module, device: torch.device | str = "cpu", *, chunk: int = 32,
                 workers: int | None = None, compile: bool = False,
                 precision: str | None = None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A fast ``codes -> logits`` function for ``model``, or ``None`` where there is none.

    On the CPU, for a float32 :class:`~chromtransfer.models.ChromTransferNet`: the fused model
    (:func:`fuse_for_inference`) run by :func:`forward_in_chunks` (``chunk`` rows per call,
    ``workers`` threads, default ``torch.get_num_threads()``). Elsewhere (CUDA, float64, other
    modules) ``None``: run the model itself. ``precision="bf16"`` (:mod:`chromtransfer.precision`)
    gives the fused model a bf16 body (bf16 weights and activations in every worker thread).

    ``compile=True`` also compiles the fused model with ``torch.compile`` (inductor, weights
    frozen as constants): about 9 % faster on a 2-core AVX-512 CPU, at the price of a C++
    compiler at run time and a minute or more of compilation for each sequence length. Every
    chunk is padded to ``chunk`` rows, so one length compiles once; the first call compiles in the
    calling thread before any worker starts.

    The returned function takes uint8 codes ``(N, L)`` on the CPU and returns logits
    ``(N, n_outputs)``; call it under :func:`torch.inference_mode`.
    """
    if torch.device(device).type != "cpu" or not isinstance(model, ChromTransferNet):
        return None
    if next(model.parameters()).dtype != torch.float32:
        return None
    from ..precision import compute_dtype

    fused = fuse_for_inference(model, body_dtype=compute_dtype(precision))
    if not compile:
        def run(codes: torch.Tensor) -> torch.Tensor:
            return forward_in_chunks(fused.forward_codes, codes, chunk=chunk, workers=workers)
        return run

    compiled = torch.compile(fused.forward_codes, options={"freezing": True})
    compiled_lengths: set[int] = set()

    def padded(part: torch.Tensor) -> torch.Tensor:
        rows = part.shape[0]
        if rows < chunk:  # N rows (code 4) up to the compiled batch size, dropped afterwards
            part = torch.cat([part, part.new_full((chunk - rows, part.shape[1]), 4)])
        return compiled(part)[:rows]

    def run_compiled(codes: torch.Tensor) -> torch.Tensor:
        if codes.shape[0] == 0:
            return fused.forward_codes(codes)
        if codes.shape[1] not in compiled_lengths:
            padded(codes[:chunk])  # compile here, not inside a worker thread
            compiled_lengths.add(codes.shape[1])
        return forward_in_chunks(padded, codes, chunk=chunk, workers=workers)

    return run_compiled
