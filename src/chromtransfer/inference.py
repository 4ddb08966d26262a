"""Batched prediction: uint8 codes on the CPU in, probabilities out.

The contract (docs/design.md): sequences stay compact as ``(N, L)`` uint8 codes (a NumPy array or a
read-only memmap) on the CPU; each batch is copied to the device and one-hot encoded there, so a
data set is never held as float32 one-hot. The model runs in eval mode under
:func:`torch.inference_mode`.

* :func:`predict_codes` — equal-length sequences, ``(N, L)`` codes -> ``(N, n_outputs)``.
* :func:`predict_sequences` — sequences of any lengths (a list of ``(L_i,)`` code vectors), grouped
  by length so every batch is rectangular; the result keeps the input order.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .devices import resolve_device
from .encoding import COMPLEMENT_CODE, N_CODE, one_hot
from .models import probabilities

_COMPLEMENT = torch.from_numpy(COMPLEMENT_CODE).long()


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    """The floating dtype of the model's parameters (float32 for a model without parameters)."""
    for p in model.parameters():
        return p.dtype
    return torch.float32


def _widened(logits: torch.Tensor) -> torch.Tensor:
    """Logits of a 16-bit computation as float32 (sigmoid/softmax run in float32); others as given."""
    return logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits


def _reverse_complement(codes: torch.Tensor) -> torch.Tensor:
    """Reverse complement of a ``(N, L)`` code batch on its own device (N stays N)."""
    table = _COMPLEMENT.to(codes.device)
    return table[codes.long().clamp(max=N_CODE)].flip(-1).to(codes.dtype)


def predict_codes(model: torch.nn.Module, codes: np.ndarray, *, batch_size: int = 1024,
                  device: str | torch.device = "auto", rc_average: bool = False,
                  fast: bool = True, progress: Callable[[int], None] | None = None,
                  precision: str | None = None) -> np.ndarray:
    """Probabilities for equal-length sequences.

    Args:
        model: a :class:`~chromtransfer.models.ChromTransferNet` (its ``multiclass`` flag picks
            softmax over sigmoid); moved to ``device`` (and left there), run in eval mode, its
            train/eval mode restored afterwards. Its parameter dtype (float32 or float64) is the
            arithmetic precision.
        codes: ``(N, L)`` uint8 codes (A0 C1 G2 T3 other 4), NumPy array or memmap, kept on the CPU.
        batch_size: sequences per forward pass.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or a :class:`torch.device`.
        rc_average: average each probability with that of the reverse complement sequence.
        fast: on the CPU in float32, run an inference-only copy of the model
            (:func:`chromtransfer.accel.fast.codes_runner`: the same probabilities to float32 rounding,
            several times faster); ``False`` runs the model itself.
        progress: called with the number of sequences of each finished batch.
        precision: ``"float32"`` (``None``, the default) or ``"bf16"``
            (:mod:`chromtransfer.precision`: on the CPU the fused model with a bf16 body, elsewhere
            bf16 autocast; the sigmoid/softmax always in float32).

    Returns:
        ``float32`` array ``(N, n_outputs)``: sigmoid probabilities (binary heads, n_outputs = 1)
        or softmax probabilities (multi-class head).
    """
    from .precision import autocast, resolve_precision

    precision = resolve_precision(precision)
    if not isinstance(codes, np.ndarray):
        codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must have shape (N, L), got {codes.shape}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes must be integer base codes (uint8), got dtype {codes.dtype}")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    dev = resolve_device(device)
    was_training = model.training
    model = model.to(dev).eval()
    dtype = model_dtype(model)
    multiclass = bool(getattr(model, "multiclass", False))
    n_outputs = int(getattr(getattr(model, "config", None), "n_outputs", 0) or 0)
    if codes.shape[0] == 0:
        return np.zeros((0, n_outputs or 1), dtype=np.float32)
    out: list[np.ndarray] = []
    runner = None
    if fast:
        from .accel.fast import codes_runner

        runner = codes_runner(model, dev, precision=precision)
    if runner is None:
        def forward(b: torch.Tensor) -> torch.Tensor:
            with autocast(dev, precision):
                return _widened(model(one_hot(b, dtype)))
    else:
        forward = runner
    try:
        with torch.inference_mode():
            for start in range(0, codes.shape[0], batch_size):
                batch = torch.from_numpy(np.require(codes[start:start + batch_size], np.uint8, ["C", "W"]))
                batch = batch.to(dev, non_blocking=True)
                prob = probabilities(forward(batch), multiclass)
                if rc_average:
                    rc = probabilities(forward(_reverse_complement(batch)), multiclass)
                    prob = (prob + rc) / 2
                out.append(prob.float().cpu().numpy())
                if progress is not None:
                    progress(int(batch.shape[0]))
    finally:
        model.train(was_training)
    return np.concatenate(out, axis=0)


def predict_sequences(model: torch.nn.Module, sequences: Sequence[np.ndarray], *,
                      batch_size: int = 1024, device: str | torch.device = "auto",
                      rc_average: bool = False, progress: Callable[[int], None] | None = None,
                      precision: str | None = None) -> np.ndarray:
    """Probabilities for sequences of any lengths, in input order.

    Sequences are grouped by length and each group goes through :func:`predict_codes`; the
    network's global average pooling makes the output length-independent in shape.

    Args:
        sequences: ``(L_i,)`` uint8 code vectors (lengths may differ; each at least 1).
        batch_size, device, rc_average, progress, precision: as for :func:`predict_codes`.

    Returns:
        ``float32`` array ``(len(sequences), n_outputs)``.
    """
    groups: dict[int, list[int]] = defaultdict(list)
    for i, seq in enumerate(sequences):
        if np.ndim(seq) != 1:
            raise ValueError(f"sequence {i} must be a 1-D code vector, got shape {np.shape(seq)}")
        if len(seq) == 0:
            raise ValueError(f"sequence {i} is empty")
        groups[len(seq)].append(i)
    n_outputs = int(getattr(getattr(model, "config", None), "n_outputs", 1) or 1)
    result = np.zeros((len(sequences), n_outputs), dtype=np.float32)
    for length, members in groups.items():
        block = np.empty((len(members), length), dtype=np.uint8)
        for row, i in enumerate(members):
            block[row] = sequences[i]
        result[members] = predict_codes(model, block, batch_size=batch_size, device=device,
                                        rc_average=rc_average, progress=progress, precision=precision)
    return result


# --------------------------------------------------------------------------------------------
# files in, table out (used by ``chromtransfer predict``)
# --------------------------------------------------------------------------------------------

def prediction_columns(model: torch.nn.Module) -> list[str]:
    """Output column names: ``["score"]`` for binary heads, the class names for multi-class."""
    config = getattr(model, "config", None)
    if getattr(model, "multiclass", False):
        return [str(c) for c in config.classes]
    return ["score"]


#: Default of ``--max-n-fraction`` in ``predict`` and ``attribute``: sequences with a larger
#: share of N (non-ACGT) bases are flagged; the network has learnt nothing about such input.
MAX_N_FRACTION = 0.5


def n_fractions(sequences: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Share of N (code 4 and above) bases of each sequence, ``(N,)`` float32 (an empty one: 1)."""
    if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
        if sequences.shape[1] == 0:
            return np.ones(sequences.shape[0], dtype=np.float32)
        return (sequences >= N_CODE).mean(axis=1, dtype=np.float64).astype(np.float32)
    return np.array([(np.asarray(s) >= N_CODE).mean() if len(s) else 1.0 for s in sequences], dtype=np.float32)


def prediction_table(names: Sequence[str], probs: np.ndarray, model: torch.nn.Module,
                     n_fraction: np.ndarray | None = None):
    """A :class:`pandas.DataFrame` with ``name`` first, then ``score`` (binary) or one column per
    class (multi-class) holding the probabilities ``probs`` ``(N, n_outputs)``, then
    ``n_fraction`` (share of N bases of each sequence) when given."""
    import pandas as pd

    columns = prediction_columns(model)
    if probs.shape[1] != len(columns):
        raise ValueError(f"{probs.shape[1]} outputs but {len(columns)} column names")
    table = pd.DataFrame({"name": list(names)})
    for j, column in enumerate(columns):
        table[column] = probs[:, j]
    if n_fraction is not None:
        table["n_fraction"] = np.round(np.asarray(n_fraction, dtype=np.float64), 4)
    return table


def predict_fasta(model: torch.nn.Module, path, *, batch_size: int = 1024,
                  device: str | torch.device = "auto", rc_average: bool = False,
                  progress: Callable[[int], None] | None = None, precision: str | None = None):
    """Predict every record of a FASTA file (any lengths); returns :func:`prediction_table`'s frame
    with the record names and their ``n_fraction``."""
    from .fasta import read_fasta

    records = read_fasta(path)
    if not records:
        from .errors import InputError

        raise InputError(path, "no FASTA records found", fix="give a FASTA file with '>name' lines")
    codes = [r.codes for r in records]
    probs = predict_sequences(model, codes, batch_size=batch_size, device=device,
                              rc_average=rc_average, progress=progress, precision=precision)
    return prediction_table([r.name for r in records], probs, model, n_fractions(codes))


def predict_regions(model: torch.nn.Module, regions_path, genome_path, *, window: int | None = None,
                    batch_size: int = 1024, device: str | torch.device = "auto", rc_average: bool = False,
                    progress: Callable[[int], None] | None = None, precision: str | None = None):
    """Predict the regions of a BED (or region TSV) file on a genome.

    Each region is scored as given (any lengths), or, with ``window``, on the ``window`` bp centred
    on its midpoint. Rows are named ``chrom:start-end`` with the file's own chromosome spelling and
    coordinates. Chromosome aliases (``chr20`` <-> ``20``) are resolved by the genome; a region on a
    chromosome the genome lacks, or running off its end, stops with the BED line number.
    """
    from .genome import Genome
    from .intervals import named_windows

    genome = Genome(genome_path)
    names, regions = named_windows(regions_path, genome, window)
    chroms = regions["chrom"].to_numpy(dtype=object)
    starts = regions["start"].to_numpy(np.int64)
    ends = regions["end"].to_numpy(np.int64)
    lengths = ends - starts
    n_outputs = len(prediction_columns(model))
    probs = np.zeros((len(regions), n_outputs), dtype=np.float32)
    n_frac = np.zeros(len(regions), dtype=np.float32)
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        codes = genome.fetch_many(chroms[rows], starts[rows], ends[rows])
        n_frac[rows] = n_fractions(codes)
        probs[rows] = predict_codes(model, codes, batch_size=batch_size, device=device, rc_average=rc_average,
                                    progress=progress, precision=precision)
    return prediction_table(names, probs, model, n_frac)


def write_table(table, path) -> None:
    """Write a prediction table as TSV with a header, atomically (temporary file, then rename).

    Probabilities are written with 9 significant digits (float32 round-trips exactly)."""
    from .artifacts import atomic_path

    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.9g")
