"""In-silico saturation mutagenesis (ISM): every single-base substitution, exactly and fast.

For each sequence, each position ``j`` and each base ``b`` other than the reference base,
``delta[j, b] = f(mutant) - f(reference)``, where ``f`` is the model output chosen by ``target``
(:func:`~chromtransfer.interpret.attribution.target_output`: post-sigmoid probability by default,
or the logit; one softmax unit of a multi-class model). Results are ``(N, L, 4)`` float32 arrays,
channel order A, C, G, T:

* the reference base's entry is 0;
* at an N position (code 4, an all-zero one-hot column) all four bases are substitutions, so all
  four entries are filled (the change from "no base" to that base).

The per-base summary (:func:`ism_scores`) is the paper's ISM delta score: the **largest change**
over the alternative bases (3 at A/C/G/T, 4 at N), the delta of largest absolute value with its
sign: negative means that some substitution of this base lowers the output most, i.e. the base
supports the prediction. (``summary="mean"`` gives the mean of the alternative deltas instead.)
Site-level enrichment takes the minimum of this score over a site's bases.

Two implementations with identical results:

* :func:`naive_ism` runs the whole network on every mutant (batched, mutants made per batch on the
  device; nothing is materialised for the whole set). It is the reference.
* :func:`ism` exploits the network's limited receptive field. A substitution at position ``i``
  changes a convolution's output only within the kernel's reach of the changed input, so every
  intermediate activation map of a mutant equals the reference map outside a window around ``i``
  that grows layer by layer (202 positions at the last conv layer of the published network:
  ``[i - 103, i + 98]``; the even kernels' 'same' padding is asymmetric). Reference maps of every
  layer are computed once per sequence; for each mutant only the changed window is recomputed,
  layer by layer: each convolution's input is the mutant window of the previous layer extended by
  ``k - 1`` reference columns on each side (zeros beyond the sequence ends, which is exactly the
  'same' padding), run as a 'valid' convolution. Columns of a window that fall outside the sequence
  are set to zero after every layer, so windows that cross a sequence end reproduce the per-layer
  zero padding exactly. Global average pooling then needs only the changed columns:
  ``pooled = pooled_ref + sum(window_mut - window_ref) / L``, and the head (eval mode) gives the
  output. Mutants (consecutive positions x alternative bases of one sequence) are batched on the
  device; window columns that lie outside the sequence for every mutant of a batch are dropped.
  Windows are kept positions-major (channels-last), the layout the convolutions run fastest in.

  Cost: about 75 M multiply-adds per mutant against 329 M for a full 600 bp forward pass (4.4x
  fewer; the windows average ~140 of 600 columns, weighted by each layer's cost), less near the
  sequence ends; longer sequences gain proportionally more.

The network structure is read from the model's modules (:class:`~chromtransfer.models.Body`:
stem, ``block1``, ``stage2`` (concatenated), ``block3``, ``stage4``, ``conv_out``,
``last_conv``/``last_relu``); the model code itself is not modified. Everything runs in eval mode
(BatchNorm uses running statistics, dropout is the identity).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..encoding import N_CODE, one_hot
from ..models import Body, ConvUnit, IdentityBlock, ProjectionBlock, same_padding
from .attribution import eval_mode, prepare_run, target_output

#: Bytes of reference activations kept at once (bounds the number of sequences per chunk).
REFERENCE_BUDGET_BYTES = 256 * 1024 ** 2


# ---------------------------------------------------------------------------------------------
# geometry


def _conv_reach(conv: nn.Conv1d) -> tuple[int, int]:
    """(left, right): output ``j`` reads input ``[j - left, j + right]`` ('same' padding)."""
    if conv.stride != (1,) or conv.dilation != (1,) or conv.groups != 1:
        raise TypeError("ISM's windowed computation needs stride 1, dilation 1, groups 1 convolutions")
    return same_padding(conv.kernel_size[0])


def _chain(*reaches: tuple[int, int]) -> tuple[int, int]:
    return sum(r[0] for r in reaches), sum(r[1] for r in reaches)


def _widest(*reaches: tuple[int, int]) -> tuple[int, int]:
    return max(r[0] for r in reaches), max(r[1] for r in reaches)


def _unit_reach(unit: ConvUnit) -> tuple[int, int]:
    return _conv_reach(unit.conv)


def _block_reach(block: nn.Module) -> tuple[int, int]:
    main = _chain(_unit_reach(block.unit1), _unit_reach(block.unit2))
    if isinstance(block, ProjectionBlock):
        return _widest(main, _unit_reach(block.shortcut))
    return _widest(main, (0, 0))


def receptive_field(body: Body) -> tuple[int, int]:
    """(left, right) of the body's last conv layer: its output ``j`` reads input ``[j - left, j + right]``.

    A substitution at ``i`` therefore changes the last feature map on ``[i - right, i + left]``;
    the receptive field is ``left + right + 1`` (202 bp, (98, 103), for the published network).
    """
    _check_body(body)
    reaches = [_unit_reach(body.stem), _block_reach(body.block1)]
    reaches += [_block_reach(b) for b in body.stage2]
    reaches += [_block_reach(body.block3)]
    reaches += [_block_reach(b) for b in body.stage4]
    reaches += [_unit_reach(body.conv_out), _conv_reach(body.last_conv)]
    return _chain(*reaches)


def _check_body(body: nn.Module) -> None:
    if not isinstance(body, Body):
        raise TypeError(f"fast ISM needs a chromtransfer Body, got {type(body).__name__}; use naive_ism")
    for block in body.stage2:
        if not isinstance(block, IdentityBlock):
            raise TypeError("unexpected block type in stage2")
    for block in body.stage4:
        if not isinstance(block, IdentityBlock):
            raise TypeError("unexpected block type in stage4")
    if not isinstance(body.block1, ProjectionBlock) or not isinstance(body.block3, ProjectionBlock):
        raise TypeError("unexpected block type in block1/block3")


# ---------------------------------------------------------------------------------------------
# reference activations (full length, once per sequence)


def _reference_maps(body: Body, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every activation map the windowed pass needs, ``(S, C, L)`` each, for one-hot ``x``.

    Mirrors :meth:`Body.feature_map` operation for operation (same modules, same order), so
    ``maps["last"]`` equals ``body.feature_map(x)``.
    """
    maps: dict[str, torch.Tensor] = {}
    h = maps["stem"] = body.stem(x)
    block = body.block1
    mid = maps["block1.mid"] = block.unit1(h)
    short = maps["block1.short"] = block.shortcut(h)
    h = maps["block1"] = block.unit2(mid) + short
    outputs = []
    for j, block in enumerate(body.stage2):
        mid = maps[f"stage2.{j}.mid"] = block.unit1(h)
        h = maps[f"stage2.{j}"] = block.unit2(mid) + h
        outputs.append(h)
    h = maps["stage2"] = torch.cat(outputs, dim=1)
    block = body.block3
    mid = maps["block3.mid"] = block.unit1(h)
    short = maps["block3.short"] = block.shortcut(h)
    h = maps["block3"] = block.unit2(mid) + short
    for j, block in enumerate(body.stage4):
        mid = maps[f"stage4.{j}.mid"] = block.unit1(h)
        h = maps[f"stage4.{j}"] = block.unit2(mid) + h
    h = maps["conv_out"] = body.conv_out(h)
    maps["last"] = body.last_relu(body.last_conv(h))
    return maps


def _padded_positions_major(maps: dict[str, torch.Tensor], pad: int) -> dict[str, torch.Tensor]:
    """Each map zero-padded by ``pad`` columns at both ends, positions-major: ``(S, L + 2 pad, C)``."""
    return {name: F.pad(m, (pad, pad)).transpose(1, 2).contiguous() for name, m in maps.items()}


# ---------------------------------------------------------------------------------------------
# the windowed (incremental) pass; activations are positions-major, (B, W, C)


@dataclass
class _Window:
    """A mutant batch's changed columns of one activation map.

    ``values`` is ``(B, W, C)`` (positions-major, the layout the convolutions run fastest in);
    column 0 of mutant ``b`` lies at sequence position ``pos[b] - lo`` (every mutant of a batch
    shares ``lo`` and ``W``).
    """

    values: torch.Tensor
    lo: int

    @property
    def width(self) -> int:
        return int(self.values.shape[1])


def _channels_last_kernel(conv: nn.Conv1d) -> torch.Tensor:
    """The conv kernel as a ``(C_out, C_in, 1, k)`` channels-last 2-D kernel."""
    return conv.weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)


class _Batch:
    """One batch of mutants of one sequence: positions ``pos`` (sorted), the helpers of the pass.

    Columns that lie outside the sequence for *every* mutant of the batch are dropped from the
    windows (they are zero padding for all of them); columns outside the sequence for some
    mutants only are zeroed per mutant by :meth:`finish`.
    """

    def __init__(self, refs: dict[str, torch.Tensor], row: int, pos: torch.Tensor, first: int,
                 last: int, length: int, pad: int, kernels: dict[int, torch.Tensor]):
        self.refs = {name: ref[row] for name, ref in refs.items()}  # (L + 2 pad, C) each
        self.pos = pos
        self.first, self.last = first, last  # smallest and largest position in the batch
        self.length = length
        self.pad = pad
        self.kernels = kernels
        self.start = pos + pad  # row of position pos in the padded references

    def gather(self, name: str, lo: int, width: int) -> torch.Tensor:
        """Reference columns ``[pos - lo, pos - lo + width)`` of map ``name``, ``(B, width, C)``."""
        if width <= 0:
            ref = self.refs[name]
            return ref.new_zeros((self.pos.shape[0], 0, ref.shape[1]))
        windows = self.refs[name].unfold(0, width, 1).transpose(1, 2)  # (positions, width, C)
        return windows[self.start - lo]

    def _sides(self, name: str, window: _Window, lo: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        left = lo - window.lo
        right = width - left - window.width
        if left < 0 or right < 0:
            raise ValueError("a window can only be widened")
        return self.gather(name, lo, left), self.gather(name, window.lo - window.width, right)

    def expand(self, window: _Window, name: str, lo: int, width: int) -> _Window:
        """``window`` widened to ``[pos - lo, pos - lo + width)`` with reference columns of ``name``."""
        left, right = self._sides(name, window, lo, width)
        return _Window(torch.cat([left, window.values, right], dim=1), lo)

    def add_into(self, target: _Window, window: _Window, name: str) -> _Window:
        """``target + window`` on ``target``'s columns (``window`` widened with map ``name``), in place."""
        left, right = self._sides(name, window, target.lo, target.width)
        a, b = left.shape[1], left.shape[1] + window.width
        values = target.values
        values[:, :a] += left
        values[:, a:b] += window.values
        values[:, b:] += right
        return target

    def finish(self, values: torch.Tensor, lo: int) -> _Window:
        """Drop columns outside the sequence for every mutant; zero those outside for some."""
        width = values.shape[1]
        keep_from = max(0, lo - self.last)  # column of position 0 for the last mutant
        keep_to = min(width, lo + self.length - self.first)  # column of position L for the first
        if keep_from > 0 or keep_to < width:
            values, lo, width = values[:, keep_from:keep_to], lo - keep_from, keep_to - keep_from
        if self.first - lo >= 0 and self.last - lo + width <= self.length:
            return _Window(values, lo)
        column = torch.arange(width, device=values.device) - lo
        position = self.pos.unsqueeze(1) + column  # (B, W)
        valid = (position >= 0) & (position < self.length)
        return _Window(values * valid.unsqueeze(-1).to(values.dtype), lo)

    def conv(self, conv: nn.Conv1d, window: _Window, name: str) -> tuple[torch.Tensor, int]:
        """The conv output on the changed columns, as a channels-last ``(B, C, 1, W')`` tensor."""
        k = conv.kernel_size[0]
        left, right = same_padding(k)
        x = self.expand(window, name, window.lo + k - 1, window.width + 2 * (k - 1)).values
        batch, width, channels = x.shape
        x = x.view(batch, 1, width, channels).permute(0, 3, 1, 2)  # (B, C, 1, W), channels-last
        return F.conv2d(x, self.kernels[id(conv)], conv.bias), window.lo + right

    @staticmethod
    def _positions_major(y: torch.Tensor) -> torch.Tensor:
        return y.permute(0, 2, 3, 1).reshape(y.shape[0], y.shape[3], y.shape[1])

    def unit(self, unit: ConvUnit, window: _Window, name: str) -> _Window:
        y, lo = self.conv(unit.conv, window, name)
        y = unit.relu(y)
        bn = unit.bn  # eval mode: running statistics, as BatchNorm1d.forward does
        y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        y = unit.dropout(y)
        return self.finish(self._positions_major(y), lo)

    def identity(self, block: IdentityBlock, window: _Window, name_in: str, name_mid: str) -> _Window:
        h = self.unit(block.unit2, self.unit(block.unit1, window, name_in), name_mid)
        return self.add_into(h, window, name_in)

    def projection(self, block: ProjectionBlock, window: _Window, name_in: str, name_mid: str,
                   name_short: str) -> _Window:
        h = self.unit(block.unit2, self.unit(block.unit1, window, name_in), name_mid)
        # unit1 and the shortcut share the kernel, so the main path's window contains the shortcut's
        return self.add_into(h, self.unit(block.shortcut, window, name_in), name_short)

    def stem(self, unit: ConvUnit, codes: torch.Tensor, alt: torch.Tensor, dtype: torch.dtype) -> _Window:
        """The stem's changed window, from the sequence's padded codes ``(L + 2 pad,)``."""
        k = unit.conv.kernel_size[0]
        width = 2 * k - 1  # the input columns that reach the k changed output columns
        window = codes.unfold(0, width, 1)[self.start - (k - 1)].clone()  # (B, 2k - 1)
        window[:, k - 1] = alt.to(window.dtype)
        x = (window.unsqueeze(-1) == torch.arange(4, device=window.device, dtype=window.dtype)).to(dtype)
        x = x.view(x.shape[0], 1, width, 4).permute(0, 3, 1, 2)
        y = F.conv2d(x, self.kernels[id(unit.conv)], unit.conv.bias)
        y = unit.relu(y)
        bn = unit.bn
        y = unit.dropout(F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                                      False, 0.0, bn.eps))
        return self.finish(self._positions_major(y), same_padding(k)[1])

    def last_features(self, body: Body, codes: torch.Tensor, alt: torch.Tensor) -> _Window:
        """The mutants' changed window of the last conv layer's output (after its ReLU)."""
        h = self.stem(body.stem, codes, alt, self.refs["stem"].dtype)
        h = self.projection(body.block1, h, "stem", "block1.mid", "block1.short")
        name_in = "block1"
        outputs = []
        for j, block in enumerate(body.stage2):
            h = self.identity(block, h, name_in, f"stage2.{j}.mid")
            name_in = f"stage2.{j}"
            outputs.append(h)
        widest = outputs[-1]
        parts = [self.expand(o, f"stage2.{j}", widest.lo, widest.width).values
                 for j, o in enumerate(outputs[:-1])]
        h = _Window(torch.cat(parts + [widest.values], dim=2), widest.lo)
        h = self.projection(body.block3, h, "stage2", "block3.mid", "block3.short")
        name_in = "block3"
        for j, block in enumerate(body.stage4):
            h = self.identity(block, h, name_in, f"stage4.{j}.mid")
            name_in = f"stage4.{j}"
        h = self.unit(body.conv_out, h, name_in)
        y, lo = self.conv(body.last_conv, h, "conv_out")
        return self.finish(self._positions_major(body.last_relu(y)), lo)


# ---------------------------------------------------------------------------------------------
# public functions


def _mutants(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every substitution of one sequence's codes ``(L,)``: (positions, bases), sorted by position.

    Three bases at A/C/G/T positions, four at N positions.
    """
    keep = np.asarray(codes).astype(np.int64)[:, None] != np.arange(4)
    positions, bases = np.nonzero(keep)
    return positions, bases


def _batches(n: int, batch_size: int):
    """Split ``range(n)`` into ``ceil(n / batch_size)`` batches of near-equal size."""
    if n == 0:
        return
    count = math.ceil(n / batch_size)
    size = math.ceil(n / count)
    for start in range(0, n, size):
        yield start, min(n, start + size)


def _reference_bytes(body: Body, length: int, pad: int, itemsize: int) -> int:
    channels = sum(m.out_channels for m in body.modules() if isinstance(m, nn.Conv1d))
    # every conv output is kept once, plus the block sums and the stage-2 concatenation
    return int(2 * channels * (length + 2 * pad) * itemsize)


def ism(model: nn.Module, codes: np.ndarray, *, target: str = "probability",
        class_index: int | None = None, batch_size: int = 128,
        device: str | torch.device | None = None) -> np.ndarray:
    """Saturation mutagenesis deltas, computed incrementally within the receptive field.

    Args:
        model: a :class:`~chromtransfer.models.ChromTransferNet` (any head).
        codes: ``(N, L)`` uint8 codes (A0 C1 G2 T3, other 4), kept on the CPU.
        target: ``"probability"`` or ``"logit"``.
        class_index: output class of a multi-class model; ``None`` for binary models.
        batch_size: mutants per batch on the device; a batch holds mutants of one sequence (one
            mutant's windows cost about a quarter of a 600 bp forward pass). On a GPU, larger
            batches (1024 and more) pay off.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...; ``None`` keeps the model where it is.

    Returns:
        ``float32`` array ``(N, L, 4)``: ``f(mutant) - f(reference)``; 0 at the reference base
        (see the module docstring for N positions). Equals :func:`naive_ism` up to rounding.
    """
    body = model.body
    _check_body(body)
    codes, unit_index, multiclass, dev, dtype = prepare_run(model, codes, target, class_index, batch_size, device)
    n, length = codes.shape
    result = np.zeros((n, length, 4), dtype=np.float32)
    if n == 0 or length == 0:
        return result
    left, right = receptive_field(body)
    max_kernel = max(m.kernel_size[0] for m in body.modules() if isinstance(m, nn.Conv1d))
    pad = max(left, right) + max_kernel
    itemsize = torch.empty((), dtype=dtype).element_size()
    chunk = max(1, min(64, REFERENCE_BUDGET_BYTES // _reference_bytes(body, length, pad, itemsize)))
    with eval_mode(model), torch.inference_mode():
        kernels = {id(m): _channels_last_kernel(m) for m in body.modules() if isinstance(m, nn.Conv1d)}
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            block_np = np.ascontiguousarray(codes[start:stop])
            block = torch.from_numpy(block_np).to(dev)
            maps = _reference_maps(body, one_hot(block, dtype))
            pooled_ref = maps["last"].to(dtype).mean(dim=-1)
            out_ref = target_output(_head(model, pooled_ref, dtype), target, multiclass, unit_index)
            refs = _padded_positions_major(maps, pad)
            del maps
            padded_codes = F.pad(block, (pad, pad), value=N_CODE)
            deltas = torch.zeros((stop - start, length, 4), dtype=dtype, device=dev)
            for row in range(stop - start):
                positions, bases = _mutants(block_np[row])
                pos_all = torch.from_numpy(positions).to(dev)
                alt_all = torch.from_numpy(bases).to(dev)
                for b0, b1 in _batches(len(positions), batch_size):
                    pos, alt = pos_all[b0:b1], alt_all[b0:b1]
                    batch = _Batch(refs, row, pos, int(positions[b0]), int(positions[b1 - 1]),
                                   length, pad, kernels)
                    window = batch.last_features(body, padded_codes[row], alt)
                    change = window.values.to(dtype) - batch.gather("last", window.lo, window.width).to(dtype)
                    pooled = pooled_ref[row] + change.sum(dim=1) / length
                    out = target_output(_head(model, pooled, dtype), target, multiclass, unit_index)
                    deltas[row, pos, alt] = out - out_ref[row]
            result[start:stop] = deltas.float().cpu().numpy()
    return result


def _head(model: nn.Module, pooled: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The dense head on pooled features in the model's own dtype, outside any autocast: under bf16
    autocast (``--precision bf16``) the convolutions run in bf16, but the small head and the
    differences of pooled features that ISM scores are kept in float32 (bf16's 8-bit mantissa
    would quantize the probability deltas)."""
    with torch.autocast(pooled.device.type, enabled=False):
        return model.head(pooled.to(dtype))


def naive_ism(model: nn.Module, codes: np.ndarray, *, target: str = "probability",
              class_index: int | None = None, batch_size: int = 32,
              device: str | torch.device | None = None) -> np.ndarray:
    """Saturation mutagenesis by running the whole network on every mutant (the reference).

    Same arguments and result as :func:`ism`; ``batch_size`` counts full-length mutants per
    forward pass. Mutants are made per batch on the device from the codes.
    """
    codes, unit_index, multiclass, dev, dtype = prepare_run(model, codes, target, class_index, batch_size, device)
    n, length = codes.shape
    result = np.zeros((n, length, 4), dtype=np.float32)
    with eval_mode(model), torch.inference_mode():
        for index in range(n):
            sequence = torch.from_numpy(np.ascontiguousarray(codes[index])).to(dev)
            out_ref = target_output(model(one_hot(sequence[None], dtype)), target, multiclass, unit_index)
            positions, bases = _mutants(codes[index])
            pos_all = torch.from_numpy(positions).to(dev)
            alt_all = torch.from_numpy(bases).to(dev)
            deltas = torch.zeros((length, 4), dtype=dtype, device=dev)
            for b0, b1 in _batches(len(positions), batch_size):
                pos, alt = pos_all[b0:b1], alt_all[b0:b1]
                mutant = sequence.repeat(len(pos), 1)
                mutant[torch.arange(len(pos), device=dev), pos] = alt.to(mutant.dtype)
                out = target_output(model(one_hot(mutant, dtype)), target, multiclass, unit_index)
                deltas[pos, alt] = out - out_ref[0]
            result[index] = deltas.float().cpu().numpy()
    return result


#: Per-base ISM summaries (:func:`ism_scores`).
ISM_SUMMARIES = ("largest", "mean")


def ism_scores(deltas: np.ndarray, codes: np.ndarray, summary: str = "largest") -> np.ndarray:
    """Per-base ISM summary ``(N, L)`` float32 of ``(N, L, 4)`` deltas from :func:`ism`.

    ``"largest"`` (the paper's ISM delta score): the alternative delta of largest absolute value,
    with its sign (the first of equal ones in A, C, G, T order). ``"mean"``: the mean of the
    alternative deltas. Alternatives are the 3 other bases at A/C/G/T (the reference entry is 0)
    and all 4 bases at N. Negative: mutating the base lowers the output, so the base supports
    the prediction.
    """
    deltas = np.asarray(deltas, dtype=np.float32)
    if summary == "largest":
        # the reference entry (0) can only be picked when every alternative is 0, which gives 0 too
        index = np.abs(deltas).argmax(axis=-1)
        return np.take_along_axis(deltas, index[..., None], axis=-1)[..., 0].astype(np.float32)
    if summary == "mean":
        n_alternatives = np.where(np.asarray(codes) >= N_CODE, 4, 3).astype(np.float32)
        return (deltas.sum(axis=-1) / n_alternatives).astype(np.float32)
    raise ValueError(f"unknown ISM summary {summary!r}: use one of {', '.join(ISM_SUMMARIES)}")
