"""Composition features: counts of (gapped) k-mers with both strands merged.

A *pattern* is a set of ``k`` informative offsets within a span of ``k`` to ``span`` bases whose
first and last offsets are informative (a contiguous k-mer is the pattern ``0..k-1``). For
``span == k`` the patterns are the plain k-mers; for ``span > k`` they are the gapped k-mers of
gkm-SVM (Ghandi et al. 2014): every way of keeping ``k`` of ``l = span`` positions, counted once per
distinct shape (a shape with leading gaps is a shorter shape shifted, so only shapes that start and
end on an informative base are kept).

Feature ``(pattern, word)`` counts the positions where the sequence reads ``word`` on the pattern's
offsets. Its reverse complement partner is ``(mirrored pattern, reverse complement of word)``; the
two are merged into one *canonical* feature, so a sequence and its reverse complement have the
same features exactly. Positions touching an N base (code 4 and above) are not counted.

Counts are divided by the number of counted positions of the sequence (frequencies), so sequences
of any length score on the same scale.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import combinations

import numpy as np
import torch

#: The largest k (the issue's limit: 4**6 = 4,096 words).
MAX_K = 6
#: The most canonical features a spec may have (a dense float32 row of them per sequence).
MAX_FEATURES = 20_000


@dataclass(frozen=True)
class KmerSpec:
    """Which composition features a model counts.

    Attributes:
        k: informative bases per feature, 1..:data:`MAX_K`.
        span: the widest pattern in bases (``None`` or ``k``: contiguous k-mers; larger: gapped
            k-mers with ``span - k`` gaps at most).
    """

    k: int
    span: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= int(self.k) <= MAX_K:
            raise ValueError(f"k must lie in 1..{MAX_K}, not {self.k}")
        if self.span is not None and int(self.span) < int(self.k):
            raise ValueError(f"the gapped span ({self.span}) must be at least k ({self.k})")
        if self.n_features > MAX_FEATURES:
            raise ValueError(f"k {self.k} with span {self.span} gives {self.n_features:,} features (at most "
                             f"{MAX_FEATURES:,}); use a smaller k or span")

    @property
    def width(self) -> int:
        """The widest pattern in bases."""
        return int(self.span or self.k)

    @cached_property
    def patterns(self) -> tuple[tuple[int, ...], ...]:
        """The informative offsets of every pattern, shortest span first."""
        k, found = int(self.k), []
        for width in range(k, self.width + 1):
            if k == 1:
                if width == 1:
                    found.append((0,))
                continue
            for inner in combinations(range(1, width - 1), k - 2):
                found.append((0, *inner, width - 1))
        return tuple(found)

    @cached_property
    def canonical_index(self) -> np.ndarray:
        """``(n_patterns * 4**k,)`` int64: the canonical feature of every (pattern, word) pair."""
        k, n_words = int(self.k), 4 ** int(self.k)
        position = {p: i for i, p in enumerate(self.patterns)}
        digits = (np.arange(n_words)[:, None] // 4 ** np.arange(k - 1, -1, -1)[None, :]) % 4
        rc_words = ((3 - digits[:, ::-1]) * 4 ** np.arange(k - 1, -1, -1)[None, :]).sum(axis=1)
        raw = np.arange(len(self.patterns) * n_words)
        partner = np.empty_like(raw)
        for i, pattern in enumerate(self.patterns):
            width = pattern[-1]
            mirrored = position[tuple(width - o for o in reversed(pattern))]
            partner[i * n_words:(i + 1) * n_words] = mirrored * n_words + rc_words
        representative = np.minimum(raw, partner)
        _, index = np.unique(representative, return_inverse=True)
        return index.astype(np.int64)

    @property
    def n_features(self) -> int:
        """Number of canonical features."""
        return int(self.canonical_index.max()) + 1

    def names(self) -> list[str]:
        """A readable name per canonical feature: the smaller of the word and its partner, gaps as ``.``."""
        k, n_words = int(self.k), 4 ** int(self.k)
        names: list[str | None] = [None] * self.n_features
        for i, pattern in enumerate(self.patterns):
            for word in range(n_words):
                j = int(self.canonical_index[i * n_words + word])
                if names[j] is None:
                    letters = ["."] * (pattern[-1] + 1)
                    for pos, offset in enumerate(pattern):
                        letters[offset] = "ACGT"[(word // 4 ** (k - 1 - pos)) % 4]
                    names[j] = "".join(letters)
        return [str(n) for n in names]

    def to_dict(self) -> dict[str, int | None]:
        return {"k": int(self.k), "span": None if self.span is None else int(self.span)}


def kmer_frequencies(codes: torch.Tensor, spec: KmerSpec, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Canonical (gapped) k-mer frequencies of a code batch, on its own device.

    Args:
        codes: ``(B, L)`` integer codes (A0 C1 G2 T3, N 4 and above).
        spec: the features to count.
        dtype: floating dtype of the result.

    Returns:
        ``(B, spec.n_features)``: each feature's count divided by the sequence's number of counted
        positions (all zeros for a sequence with none, e.g. shorter than ``k`` or all N).
    """
    codes = codes.long()
    n, length = codes.shape
    n_words = 4 ** int(spec.k)
    n_raw = len(spec.patterns) * n_words
    counts = torch.zeros((n, n_raw + 1), dtype=dtype, device=codes.device)  # last column: not counted
    valid_base = codes < 4
    clean = torch.where(valid_base, codes, torch.zeros_like(codes))
    for i, pattern in enumerate(spec.patterns):
        positions = length - pattern[-1]
        if positions <= 0:
            continue
        word = torch.zeros((n, positions), dtype=torch.long, device=codes.device)
        valid = torch.ones((n, positions), dtype=torch.bool, device=codes.device)
        for offset in pattern:
            word = word * 4 + clean[:, offset:offset + positions]
            valid &= valid_base[:, offset:offset + positions]
        index = torch.where(valid, word + i * n_words, torch.full_like(word, n_raw))
        counts.scatter_add_(1, index, torch.ones_like(index, dtype=dtype))
    canonical = torch.as_tensor(spec.canonical_index, device=codes.device)
    merged = torch.zeros((n, spec.n_features), dtype=dtype, device=codes.device)
    merged.index_add_(1, canonical, counts[:, :n_raw])
    total = merged.sum(dim=1, keepdim=True).clamp_min(1)
    return merged / total


def feature_matrix(codes: np.ndarray, spec: KmerSpec, batch_size: int = 4096) -> np.ndarray:
    """:func:`kmer_frequencies` of ``(N, L)`` uint8 codes (a NumPy array or memmap) in batches,
    ``(N, spec.n_features)`` float32 on the CPU."""
    out = np.zeros((codes.shape[0], spec.n_features), dtype=np.float32)
    for start in range(0, codes.shape[0], batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(codes[start:start + batch_size], dtype=np.uint8))
        out[start:start + len(batch)] = kmer_frequencies(batch, spec).numpy()
    return out
