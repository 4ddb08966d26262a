"""Helpers for training on several processes (Lightning's DDP): ranks, collectives, synced BatchNorm.

How a run is spread over ``W = devices x num_nodes`` processes (see docs/scaling.md):

* every process builds the same global batches (:class:`~chromtransfer.training.data.EpochBatchSampler`)
  and takes its contiguous share of each (``numpy.array_split(batch, W)[rank]``); the preset's batch
  size stays the *global* batch size;
* each process scales its loss so that DDP's gradient average equals the gradient of the
  single-process loss of the global batch (:meth:`~chromtransfer.training.module.ChromTransferModule.training_step`);
* BatchNorm layers compute their batch statistics over the global batch
  (:func:`convert_sync_batchnorm`), so the network sees what one process would see;
* epoch metrics are sums reduced over all processes plus the gathered predictions.

Nothing here initialises a process group: Lightning does, inside ``Trainer.fit``. Outside one every
helper degrades to the single-process case, so the same code runs with and without DDP.
"""
from __future__ import annotations

import os

import torch
from torch import nn


def is_primary() -> bool:
    """Whether this process is (or, once the process group exists, will be) global rank 0.

    Read from the environment, because a run decides who writes ``run.json`` before Lightning
    creates the process group. Launchers announce ranks as ``RANK`` (torchrun), ``SLURM_PROCID``
    (srun, when the job step has several tasks), ``OMPI_COMM_WORLD_RANK`` / ``PMI_RANK`` (MPI), or,
    for Lightning's own launcher, ``LOCAL_RANK`` on each node plus ``NODE_RANK`` (``GROUP_RANK``).
    A process started by hand, with none of them, is rank 0.
    """
    env = os.environ
    if env.get("RANK", "").strip().isdigit():
        return int(env["RANK"]) == 0
    if int(env.get("SLURM_NTASKS", "1") or 1) > 1 and env.get("SLURM_PROCID", "").isdigit():
        return int(env["SLURM_PROCID"]) == 0
    for name in ("OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        if env.get(name, "").isdigit():
            return int(env[name]) == 0
    node = env.get("NODE_RANK", env.get("GROUP_RANK", "0")) or "0"
    return int(env.get("LOCAL_RANK", "0") or 0) == 0 and int(node) == 0


def active() -> bool:
    """Whether a torch.distributed process group of more than one process is running."""
    return (torch.distributed.is_available() and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1)


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the running process group; ``(0, 1)`` without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``values`` over all processes (``values`` itself without DDP)."""
    if not active():
        return values
    total = values.clone()
    torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
    return total


def all_gather_rows(values: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's ``values`` along dimension 0, in rank order.

    The processes may hold different numbers of rows: each pads to the longest before the
    gather and the padding is cut off afterwards. ``values`` itself without DDP.
    """
    if not active():
        return values
    world = torch.distributed.get_world_size()
    count = torch.tensor([values.shape[0]], device=values.device, dtype=torch.int64)
    counts = [torch.zeros_like(count) for _ in range(world)]
    torch.distributed.all_gather(counts, count)
    sizes = [int(c.item()) for c in counts]
    longest = max(sizes)
    padded = values.new_zeros((longest, *values.shape[1:]))
    padded[: values.shape[0]] = values
    parts = [torch.empty_like(padded) for _ in range(world)]
    torch.distributed.all_gather(parts, padded.contiguous())
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


class _SumOverProcesses(torch.autograd.Function):
    """``y = sum over processes of x``; the gradient of ``x`` is the sum of the processes' gradients of ``y``.

    (Each process's objective depends on ``y``; the gradient of the sum of the objectives with
    respect to one process's ``x`` is the all-reduced upstream gradient.)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        total = x.clone()
        torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        total = grad.clone()
        torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
        return total


class AllReduceBatchNorm(nn.BatchNorm1d):
    """BatchNorm whose training-mode statistics cover the whole global batch of all processes.

    Used where ``torch.nn.SyncBatchNorm`` cannot run: it accepts only GPU tensors, while DDP on
    the CPU (gloo) is how multi-process training is tested. The statistics are two-pass (mean,
    then mean squared deviation) through autograd-aware all-reduces, so the backward pass also
    sums the gradient contributions of every process, exactly as in one process with the whole
    batch. Inference mode, and training without a process group, is plain BatchNorm. Parameters
    and buffers have BatchNorm's names, so state dicts are interchangeable.

    Input ``(N, C)`` or ``(N, C, L)``; statistics per channel over N (and L) of all processes.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        all_reduce = _SumOverProcesses.apply
        self._check_input_dim(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        local_count = x.new_tensor([float(x.numel() // x.shape[1])])
        sums = all_reduce(torch.cat([x.sum(dims), local_count]))  # per-channel sums, then the row count
        count = sums[-1].detach()
        mean = sums[:-1] / count
        centred = x - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var.detach() * (count / (count - 1).clamp(min=1))
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def convert_sync_batchnorm(model: nn.Module, device_type: str) -> nn.Module:
    """Replace every BatchNorm of ``model`` by one synchronised over the DDP processes (in place).

    On CUDA this is ``torch.nn.SyncBatchNorm`` (fused kernels); elsewhere :class:`AllReduceBatchNorm`.
    Weights, biases, running statistics and training/eval modes are carried over.
    """
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _replace_batchnorm(model)


def _replace_batchnorm(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, AllReduceBatchNorm):
        synced = AllReduceBatchNorm(module.num_features, eps=module.eps, momentum=module.momentum,
                                    affine=module.affine, track_running_stats=module.track_running_stats)
        with torch.no_grad():
            if module.affine:
                synced.weight.copy_(module.weight)
                synced.bias.copy_(module.bias)
                synced.weight.requires_grad_(module.weight.requires_grad)
                synced.bias.requires_grad_(module.bias.requires_grad)
            if module.track_running_stats:
                synced.running_mean.copy_(module.running_mean)
                synced.running_var.copy_(module.running_var)
                synced.num_batches_tracked.copy_(module.num_batches_tracked)
        synced.train(module.training)
        return synced
    for name, child in module.named_children():
        module.add_module(name, _replace_batchnorm(child))
    return module


__all__ = ["AllReduceBatchNorm", "active", "all_gather_rows", "all_reduce_sum", "convert_sync_batchnorm",
           "is_primary", "rank_and_world"]
