"""The composition model: a logistic regression on canonical k-mer frequencies, as a torch module.

:class:`KmerModel` takes what the networks take, one-hot ``(B, 4, L)``, and returns logits
``(B, 1)``, so prediction, evaluation, ensembles and ISM use it unchanged. Its forward pass::

    f = kmer_frequencies(codes(x))              (B, n_features)
    logit = ((f - mean) / scale) @ coef + intercept

Saved like a network (:mod:`chromtransfer.modelio`), without pickle::

    model.safetensors   mean, scale, coef (n_features,) float64 and intercept (1,) float64
    model.json          format chromtransfer-model, architecture chromtransfer-kmer,
                        config {kind "kmer", k, span, n_features, classes, n_outputs 1, C, ...}

The k-mer counts are not differentiable in the input (a one-hot base is read as its code), so
gradient attributions refuse the model; ISM scores it like any model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .features import KmerSpec, kmer_frequencies

ARCHITECTURE = "chromtransfer-kmer"
KIND = "kmer"
#: The tensors of ``model.safetensors``.
TENSORS = ("mean", "scale", "coef", "intercept")


@dataclass
class KmerConfig:
    """What a k-mer model is (``model.json``'s ``config``).

    Attributes:
        k, span: the features (:class:`~chromtransfer.kmer.features.KmerSpec`).
        n_features: canonical features (length of ``coef``).
        C: inverse L2 strength of the logistic regression (scikit-learn's ``C``).
        classes: the store's class names (binary: negative, positive).
        n_outputs: always 1 (one sigmoid output).
        kind: ``"kmer"``.
    """

    k: int
    span: int | None = None
    n_features: int = 0
    C: float = 1.0
    classes: list[str] = field(default_factory=lambda: ["negative", "positive"])
    n_outputs: int = 1
    kind: str = KIND

    @property
    def spec(self) -> KmerSpec:
        return KmerSpec(self.k, self.span)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> "KmerConfig":
        known = {k: v for k, v in document.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class KmerModel(nn.Module):
    """Logistic regression on canonical k-mer frequencies; one-hot ``(B, 4, L)`` -> logits ``(B, 1)``.

    Attributes:
        config: the :class:`KmerConfig`.
        multiclass: ``False`` (one sigmoid output).
        supports_gradients: ``False``: the features are counts of the bases read from the input.
        architecture: ``model.json``'s architecture name.
    """

    multiclass = False
    supports_gradients = False
    architecture = ARCHITECTURE

    def __init__(self, config: KmerConfig, mean: torch.Tensor, scale: torch.Tensor, coef: torch.Tensor,
                 intercept: torch.Tensor):
        super().__init__()
        self.config = config
        self.spec = config.spec
        if not mean.shape == scale.shape == coef.shape == (self.spec.n_features,):
            raise ValueError(f"expected {self.spec.n_features} features, got mean {tuple(mean.shape)}, "
                             f"scale {tuple(scale.shape)}, coef {tuple(coef.shape)}")
        self.register_buffer("mean", mean.double())
        self.register_buffer("scale", scale.double())
        self.register_buffer("coef", coef.double())
        self.register_buffer("intercept", intercept.double().reshape(1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Frequencies ``(B, n_features)`` of one-hot ``x`` ``(B, 4, L)`` (an all-zero column is N)."""
        codes = x.argmax(dim=1)
        codes = torch.where(x.amax(dim=1) > 0, codes, torch.full_like(codes, 4))
        return kmer_frequencies(codes, self.spec, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (self.features(x) - self.mean) / self.scale
        return (z @ self.coef + self.intercept).unsqueeze(1).to(x.dtype)

    def describe(self) -> list[str]:
        """Lines for ``chromtransfer info model``: the features, C and the strongest k-mers."""
        c = self.config
        gaps = f", gapped within {c.span} bp" if c.span else ""
        lines = [f"k-mer composition model: canonical {c.k}-mers{gaps}, {c.n_features} features, "
                 f"L2 logistic regression C {c.C:g}"]
        top = getattr(self, "document", {}).get("training", {}).get("result", {}).get("top_features", {})
        for side in ("positive", "negative"):
            if top.get(side):
                lines.append(f"most {side}: " + ", ".join(f"{name} {w:+.3g}" for name, w in top[side][:5]))
        return lines

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors saved in ``model.safetensors``."""
        return {name: getattr(self, name).detach().cpu().contiguous() for name in TENSORS}

    @classmethod
    def from_tensors(cls, config: KmerConfig, tensors: dict[str, torch.Tensor]) -> "KmerModel":
        missing = [name for name in TENSORS if name not in tensors]
        if missing:
            raise KeyError(", ".join(missing))
        return cls(config, *(tensors[name] for name in TENSORS))
