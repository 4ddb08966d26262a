"""DeepLIFT/SHAP contributions against dinucleotide-shuffled references (docs/method.md section 6).

For a sequence ``x`` (one-hot ``(4, L)``), ``R`` references ``r_1..r_R`` (dinucleotide shuffles of
``x``) and the attributed output ``f`` (:func:`~.attribution.target_output`: the logit, or the
sigmoid / softmax probability, here as a module so its DeepLIFT rule applies), DeepLIFT's rescale
rule gives multipliers ``m_k`` ``(4, L)`` for each pair ``(x, r_k)``. The *hypothetical*
contribution of base ``b`` at position ``j`` is the mean over references of
``sum_c (e_b - r_k)[c, j] * m_k[c, j]``: what base ``b`` would contribute there. The *projected*
contribution (the per-base score) is the hypothetical contribution of the base present (0 at N).
By construction the projected contributions sum to ``f(x) - mean_k f(r_k)``; the difference is the
**convergence delta** of the sequence, non-zero only through float rounding when every
non-linearity follows the rules, and large when one does not (a ReLU called as a function, a fused
kernel): :func:`convergence_summary` and :func:`within_tolerance` check it against
``|delta| <= CONVERGENCE_ATOL + CONVERGENCE_RTOL * |f(x) - mean_k f(r_k)|``.

The implementation is tangermeme's ``deep_lift_shap`` (its rescale rule per module call, its
dinucleotide shuffle) on the DeepLIFT-safe copy of the network (:func:`.plain_network.plain_network`).
tangermeme rather than captum: it batches example-reference pairs instead of replicating each
batch for every reference (captum's DeepLiftShap memory, captum issue 1179), keeps one activation
cache per call of a module (a module used twice still gets its own rule per use), computes the
hypothetical contributions itself, and seeds each reference, so results do not depend on batching.
References are drawn per sequence with the seed ``seed`` (the same sequence gets the same shuffles
in any batch, at any row); the first and last base stay in place, and so do N bases
(:func:`dinucleotide_references`).
"""
from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from ..encoding import one_hot
from .attribution import eval_mode, place_model, prepare_run
from .plain_network import plain_network

__all__ = ["CONVERGENCE_ATOL", "CONVERGENCE_RTOL", "ConvergenceWarning", "DeepLiftShap", "REFERENCES",
           "TargetOutput", "contributions", "convergence_summary", "deeplift_shap", "within_tolerance"]

#: Default number of dinucleotide-shuffled references per sequence (tangermeme's and the field's).
REFERENCES = 20
#: Convergence tolerance, in units of the attributed output (logit or probability): a sequence
#: converges when ``|delta| <= CONVERGENCE_ATOL + CONVERGENCE_RTOL * |f(x) - mean f(refs)|``.
#: The absolute part is tangermeme's own warning threshold; float32 rounding on the published
#: network gives deltas of 1e-6 to 1e-5, a ReLU outside the rules gives deltas of the order of the
#: output difference itself.
CONVERGENCE_ATOL = 1e-3
CONVERGENCE_RTOL = 1e-3


class ConvergenceWarning(UserWarning):
    """Some sequences' contributions do not add up to their output difference within tolerance."""


class DeepLiftShap(NamedTuple):
    """DeepLIFT/SHAP results of ``N`` sequences of ``L`` bases (float32 arrays)."""

    scores: np.ndarray  # (N, L) projected contributions (0 at N)
    hypothetical: np.ndarray  # (N, L, 4) hypothetical contributions, A, C, G, T
    delta: np.ndarray  # (N,) sum of scores - (f(x) - mean f(refs)): the convergence delta
    output_difference: np.ndarray  # (N,) f(x) - mean f(refs)


class TargetOutput(nn.Module):
    """The attributed output of a network as ``(B, 1)``: its logit, or its sigmoid / softmax
    probability computed by an ``nn.Sigmoid`` / ``nn.Softmax`` module (so DeepLIFT's rule for it
    applies). While ``record`` is set, each forward call's output is appended to ``outputs``."""

    def __init__(self, network: nn.Module, target: str, multiclass: bool, unit: int):
        super().__init__()
        self.network = network
        self.unit = int(unit)
        self.activation = None if target == "logit" else (nn.Softmax(dim=-1) if multiclass else nn.Sigmoid())
        self.record = False
        self.outputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(x)
        if self.activation is not None:
            out = self.activation(out)
        out = out[:, self.unit:self.unit + 1]
        if self.record:
            self.outputs.append(out.detach())
        return out


def dinucleotide_references(x: torch.Tensor, references: int, seed: int) -> torch.Tensor:
    """``references`` dinucleotide shuffles of each one-hot sequence of ``x`` ``(B, 4, L)``:
    ``(B, references, 4, L)`` on the CPU, each sequence shuffled with ``seed`` whatever its batch.

    N bases (all-zero columns) stay in place: the known bases around them are shuffled as one
    sequence, so an N position holds no difference from its references and contributes nothing
    (it scores 0, as in the other methods). A sequence of fewer than 3 known bases is its own
    reference.
    """
    from tangermeme.ersatz import dinucleotide_shuffle

    x = x.cpu()
    known = x.sum(dim=1) > 0  # (B, L)
    out = torch.zeros((len(x), references, *x.shape[1:]), dtype=x.dtype)
    complete = known.all(dim=1)
    if complete.any():
        out[complete] = dinucleotide_shuffle(x[complete], n=references, random_state=[int(seed)] * int(complete.sum()))
    for i in torch.nonzero(~complete).flatten().tolist():
        keep = known[i]
        if int(keep.sum()) < 3:
            out[i][:, :, keep] = x[i][:, keep]
        else:
            out[i][:, :, keep] = dinucleotide_shuffle(x[i:i + 1][:, :, keep], n=references,
                                                      random_state=[int(seed)])[0]
    return out


def _pairs_block(wrapper: TargetOutput, x: torch.Tensor, refs: torch.Tensor, device: torch.device,
                 dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """One tangermeme call on the sequences ``x`` ``(S, 4, L)`` and their references ``(S, R, 4, L)``
    as a single batch of ``S * R`` pairs: hypothetical contributions ``(S, 4, L)`` and the output
    differences ``f(x) - mean f(refs)`` ``(S,)``."""
    from tangermeme.deep_lift_shap import deep_lift_shap as tangermeme_deep_lift_shap

    n, r = refs.shape[:2]
    wrapper.outputs.clear()
    wrapper.record = True
    try:
        with warnings.catch_warnings():
            # N columns fail tangermeme's one-hot check (only_warn makes it a warning; N is handled by
            # keeping it in place in the references) and its per-batch delta warnings repeat what
            # convergence_summary reports once
            warnings.simplefilter("ignore")
            hypothetical = tangermeme_deep_lift_shap(
                wrapper, x, target=0, batch_size=n * r, references=refs, hypothetical=True,
                warning_threshold=float("inf"), only_warn=True, dtype=dtype, device=device, verbose=False)
    finally:
        wrapper.record = False
    if len(wrapper.outputs) != 1 or wrapper.outputs[0].shape[0] != 2 * n * r:
        raise RuntimeError("unexpected tangermeme deep_lift_shap batching: expected one forward pass over "
                           f"{n * r} sequence-reference pairs and their references")
    out = wrapper.outputs[0][:, 0].double().cpu()
    f_x, f_refs = out[:n * r].reshape(n, r), out[n * r:].reshape(n, r)  # pair i = (i // r, i % r)
    return hypothetical.double().cpu(), f_x[:, 0] - f_refs.mean(dim=1)


def deeplift_shap(model: nn.Module, codes: np.ndarray, *, target: str = "probability", class_index: int | None = None,
                  references: int = REFERENCES, seed: int = 0, batch_size: int = 128,
                  device: str | torch.device | None = None) -> DeepLiftShap:
    """DeepLIFT/SHAP contributions of every base of every sequence (see the module docstring).

    Args:
        model: a :class:`~chromtransfer.models.ChromTransferNet`; its DeepLIFT-safe copy
            (:func:`~.plain_network.plain_network`) is attributed, the model itself is left as it was.
        codes: ``(N, L)`` uint8 codes (A0 C1 G2 T3, other 4), kept on the CPU.
        target: ``"probability"`` or ``"logit"`` (see :func:`~.attribution.target_output`).
        class_index: output class of a multi-class model; ``None`` for binary.
        references: dinucleotide shuffles per sequence.
        seed: seed of the shuffles.
        batch_size: sequence-reference pairs per pass (forward passes hold twice as many rows;
            at least one sequence's ``references`` pairs per pass).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...; ``None`` keeps the model where it is.

    Returns:
        :class:`DeepLiftShap`: ``scores`` ``(N, L)``, ``hypothetical`` ``(N, L, 4)``, ``delta``
        and ``output_difference`` ``(N,)``, float32, in units of the target.
    """
    place_model(model, device)
    with eval_mode(model):
        return contributions(plain_network(model), codes, target=target, class_index=class_index,
                             references=references, seed=seed, batch_size=batch_size, device=device)


def contributions(network: nn.Module, codes: np.ndarray, *, target: str = "probability",
                  class_index: int | None = None, references: int = REFERENCES, seed: int = 0,
                  batch_size: int = 128, device: str | torch.device | None = None) -> DeepLiftShap:
    """:func:`deeplift_shap` on ``network`` exactly as given (no DeepLIFT-safe copy is made).

    For networks already on the plain module path, and to check a network against the rules: a
    non-linearity that escapes them shows as convergence deltas above the tolerance.
    """
    if references < 1:
        raise ValueError("references must be at least 1")
    codes, unit, multiclass, dev, dtype = prepare_run(network, codes, target, class_index, batch_size, device)
    n, length = codes.shape
    scores = np.zeros((n, length), dtype=np.float32)
    hypothetical = np.zeros((n, length, 4), dtype=np.float32)
    delta = np.zeros(n, dtype=np.float32)
    difference = np.zeros(n, dtype=np.float32)
    per_pass = max(1, batch_size // references)
    with eval_mode(network):
        wrapper = TargetOutput(network, target, multiclass, unit).eval()
        for start in range(0, n, per_pass):
            block = torch.from_numpy(np.ascontiguousarray(codes[start:start + per_pass]))
            x = one_hot(block, torch.float64)
            refs = dinucleotide_references(x, references, seed)
            hyp, diff = _pairs_block(wrapper, x.to(dtype), refs.to(dtype), dev, dtype)
            projected = (hyp.double() * x).sum(dim=1)  # (S, L): the present base's value, 0 at N
            stop = start + len(block)
            scores[start:stop] = projected.numpy()
            hypothetical[start:stop] = hyp.permute(0, 2, 1).numpy()
            difference[start:stop] = diff.numpy()
            delta[start:stop] = (projected.sum(dim=1) - diff).numpy()
    return DeepLiftShap(scores, hypothetical, delta, difference)


def within_tolerance(delta: np.ndarray, output_difference: np.ndarray, *, atol: float = CONVERGENCE_ATOL,
                     rtol: float = CONVERGENCE_RTOL) -> np.ndarray:
    """``(N,)`` bool: ``|delta| <= atol + rtol * |output_difference|``."""
    return np.abs(delta) <= atol + rtol * np.abs(output_difference)


def convergence_summary(delta: np.ndarray, output_difference: np.ndarray, *, atol: float = CONVERGENCE_ATOL,
                        rtol: float = CONVERGENCE_RTOL) -> dict[str, Any]:
    """Summary statistics of the convergence deltas, for the manifest (JSON-ready)."""
    delta = np.abs(np.asarray(delta, dtype=np.float64))
    ok = within_tolerance(delta, output_difference, atol=atol, rtol=rtol)
    n = int(delta.size)

    def stat(function) -> float | None:
        return float(function(delta)) if n else None

    return {
        "definition": "|sum of contributions - (f(x) - mean f(references))| per sequence",
        "tolerance": {"atol": atol, "rtol": rtol, "rule": "|delta| <= atol + rtol * |f(x) - mean f(references)|"},
        "sequences": n,
        "within_tolerance": int(ok.sum()),
        "share_within_tolerance": float(ok.mean()) if n else None,
        "max_abs": stat(np.max),
        "median_abs": stat(np.median),
        "p99_abs": stat(lambda d: np.quantile(d, 0.99)),
        "mean_abs_output_difference": float(np.abs(output_difference).mean()) if n else None,
    }
