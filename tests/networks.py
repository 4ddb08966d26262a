"""Untrained networks for tests whose point is not training: :func:`random_network`."""
from __future__ import annotations

import torch

from chromtransfer.models import build_model


def random_network(head: str = "finetune", width: float = 0.25, dtype=torch.float64, seed: int = 0, **kwargs):
    """``build_model(head, width, **kwargs)`` seeded by ``seed``, with non-trivial BatchNorm
    statistics and affine parameters (so eval mode matters), in ``dtype`` and eval mode."""
    torch.manual_seed(seed)
    model = build_model(head, width=width, **kwargs)
    generator = torch.Generator().manual_seed(seed + 1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) * 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return model.to(dtype).eval()
