"""DNA sequence encodings: text <-> uint8 codes <-> one-hot, and reverse complements.

The contract used everywhere in chromtransfer:

* **codes**: ``numpy.uint8`` (or ``torch.uint8``) arrays of shape ``(N, L)`` or ``(L,)`` with
  A=0, C=1, G=2, T=3 and 4 for any other character (N, IUPAC ambiguity codes, gaps).
  Lower-case (soft-masked) bases encode like upper case. This is the on-disk and in-memory form:
  one byte per base.
* **one-hot**: ``float`` tensors of shape ``(N, 4, L)`` (PyTorch's channels-first layout, channel
  order A, C, G, T). Code 4 becomes an all-zero column. One-hot is made per batch, on the device
  that runs the model, never for a whole data set.
"""
from __future__ import annotations

import numpy as np

ALPHABET = "ACGT"
N_CODE = 4

#: ASCII byte -> code (A=0 C=1 G=2 T=3, either case; anything else N_CODE), ``(256,)`` uint8.
ENCODE_TABLE = np.full(256, N_CODE, dtype=np.uint8)
for _i, _base in enumerate(ALPHABET):
    ENCODE_TABLE[ord(_base)] = _i
    ENCODE_TABLE[ord(_base.lower())] = _i
#: Code -> ASCII letter (``A C G T N``), ``(5,)`` uint8.
DECODE_TABLE = np.frombuffer(b"ACGTN", dtype=np.uint8)
#: Code -> code of the complementary base (N stays N), ``(5,)`` uint8.
COMPLEMENT_CODE = np.array([3, 2, 1, 0, N_CODE], dtype=np.uint8)

#: Characters accepted in FASTA sequence lines: IUPAC nucleotide codes, gaps, either case.
VALID_FASTA_CHARACTERS = frozenset("ACGTUNRYSWKMBDHVacgtunryswkmbdhv-.*")


def encode(sequence: str | bytes) -> np.ndarray:
    """Encode one sequence as codes, shape ``(L,)`` uint8 (A=0 C=1 G=2 T=3, other=4)."""
    raw = sequence.encode("ascii", errors="replace") if isinstance(sequence, str) else sequence
    return ENCODE_TABLE[np.frombuffer(raw, dtype=np.uint8)]


def encode_many(sequences: list[str], length: int | None = None) -> np.ndarray:
    """Encode equal-length sequences as a ``(N, L)`` uint8 code matrix.

    Raises ``ValueError`` when lengths differ (or differ from ``length`` when given).
    """
    if length is None:
        length = len(sequences[0]) if sequences else 0
    out = np.empty((len(sequences), length), dtype=np.uint8)
    for i, seq in enumerate(sequences):
        if len(seq) != length:
            raise ValueError(f"sequence {i} has length {len(seq)}, expected {length}")
        out[i] = encode(seq)
    return out


def decode(codes: np.ndarray) -> str:
    """Decode a ``(L,)`` code vector to an upper-case string (code 4 -> 'N')."""
    return DECODE_TABLE[np.minimum(np.asarray(codes, dtype=np.uint8), N_CODE)].tobytes().decode()


def reverse_complement_codes(codes):
    """Reverse complement of codes ``(..., L)`` (a NumPy array or a torch tensor, on its own
    device); N stays N."""
    if isinstance(codes, np.ndarray):
        return COMPLEMENT_CODE[np.minimum(codes, N_CODE)][..., ::-1]
    import torch

    table = torch.as_tensor(COMPLEMENT_CODE, device=codes.device)
    return table[codes.clamp(max=N_CODE).long()].to(codes.dtype).flip(-1)


def one_hot(codes, dtype=None):
    """One-hot encode a code batch on its own device.

    Args:
        codes: ``torch.Tensor`` of integer codes, shape ``(N, L)``.
        dtype: floating dtype of the result (default ``torch.float32``).

    Returns:
        ``torch.Tensor`` of shape ``(N, 4, L)``; channel order A, C, G, T; code 4 -> zeros.
    """
    import torch

    dtype = dtype or torch.float32
    channels = torch.arange(4, device=codes.device, dtype=codes.dtype).view(1, 4, 1)
    return (codes.unsqueeze(1) == channels).to(dtype)


def one_hot_numpy(codes: np.ndarray, channels_last: bool = False) -> np.ndarray:
    """NumPy one-hot of ``(N, L)`` codes: ``(N, 4, L)`` float32, or ``(N, L, 4)`` if channels_last."""
    eye = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), dtype=np.float32)])
    out = eye[np.minimum(codes, N_CODE)]
    return out if channels_last else np.moveaxis(out, -1, -2)


def codes_from_one_hot(x: np.ndarray, channels_last: bool = True) -> np.ndarray:
    """Inverse of one-hot: ``(N, L, 4)`` (or ``(N, 4, L)``) 0/1 array to ``(N, L)`` codes."""
    x = np.asarray(x)
    if not channels_last:
        x = np.moveaxis(x, -2, -1)
    codes = x.argmax(-1).astype(np.uint8)
    codes[x.sum(-1) == 0] = N_CODE
    return codes
