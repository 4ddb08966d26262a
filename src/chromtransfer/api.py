"""The Python API: load a model, predict, attribute, scan motifs and rank TFs in memory.

Used as ``import chromtransfer as ct`` (the package re-exports these names lazily); documented
with runnable examples in ``docs/api.md``. Every function takes any sequence input that
:func:`chromtransfer.sequence_input.as_sequences` reads (DNA strings, a FASTA path, a BED path
with ``genome=``, codes ``(N, L)``, one-hot ``(N, 4, L)``). No function changes a process-wide
setting for longer than the call: ``threads=`` is restored on return, and only
:func:`set_cpu_defaults` sets anything for the rest of the process.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .errors import ChromTransferError
from .interpret.attributions import Attributions, load_attributions  # the one attribution class
from .runtime import set_cpu_defaults  # the only process-wide setting, by explicit call
from .runtime import torch_threads as _threads
from .sequence_input import SequenceSet, as_sequences

__all__ = ["Attributions", "attribute", "compare_tfs", "discover_motifs", "load_attributions", "load_model", "metrics",
           "predict", "rank_tfs", "scan_motifs", "set_cpu_defaults"]


def _resolve_device(device):
    """``"auto" | "cpu" | "cuda" | "cuda:1"`` -> :class:`torch.device` (:mod:`chromtransfer.devices`;
    imported here, on use, so that importing the API does not import torch)."""
    from .devices import resolve_device

    return resolve_device(device)


# ------------------------------------------------------------------------------------ models
def load_model(path: str | os.PathLike, device: str = "cpu"):
    """Load a model folder for prediction and attribution, in eval mode.

    Args:
        path: a training run folder, a model imported with ``chromtransfer import-keras``, or a
            ``--fold all`` run folder (its fold models become one
            :class:`~chromtransfer.ensemble.ModelEnsemble` that averages their probabilities, as
            ``chromtransfer evaluate`` does).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.

    Returns:
        a :class:`torch.nn.Module` on one-hot ``(N, 4, L)`` returning logits ``(N, n_outputs)``:
        a :class:`~chromtransfer.models.ChromTransferNet` (its ``document`` attribute holds
        ``model.json``) or a :class:`~chromtransfer.ensemble.ModelEnsemble`.
    """
    from pathlib import Path

    from .ensemble import is_fold_run, load_fold_ensemble
    from .modelio import CONFIG_FILE
    from .modelio import load_model as load_model_folder

    dev = _resolve_device(device)
    if not (Path(path) / CONFIG_FILE).is_file() and is_fold_run(path):
        return load_fold_ensemble(path, device=dev)
    return load_model_folder(path, device=dev)


def _members(model) -> list:
    from .ensemble import ModelEnsemble

    return list(model.members) if isinstance(model, ModelEnsemble) else [model]


def _probabilities(model, sequences: SequenceSet, *, batch_size: int, device, rc_average: bool,
                   precision: str | None = None) -> np.ndarray:
    """Mean over the model's members of :mod:`chromtransfer.inference`'s batched probabilities."""
    from .inference import predict_codes, predict_sequences

    results = []
    for member in _members(model):
        if sequences.equal_length:
            p = predict_codes(member, sequences.codes, batch_size=batch_size, device=device, rc_average=rc_average,
                              precision=precision)
        else:
            p = predict_sequences(member, sequences.codes, batch_size=batch_size, device=device,
                                  rc_average=rc_average, precision=precision)
        results.append(np.asarray(p, dtype=np.float64))
    return np.mean(results, axis=0).astype(np.float32)


def predict(model, x, *, genome=None, window: int | None = None, rc_average: bool = False,
            batch_size: int = 1024, device: str = "auto", threads: int | None = None,
            precision: str = "float32"):
    """The model's probabilities for sequences of any lengths.

    Args:
        model: from :func:`load_model` (a single model or a fold ensemble).
        x: DNA strings, a FASTA path, a BED path (with ``genome``), uint8 codes ``(N, L)`` or
            one-hot ``(N, 4, L)`` (NumPy or torch).
        genome: genome FASTA/.2bit path or :class:`~chromtransfer.genome.Genome`, for BED input.
        window: BED input only: score the ``window`` bp centred on each region.
        rc_average: average each probability with that of the reverse complement.
        batch_size: sequences per forward pass.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
        threads: torch CPU threads during this call (restored afterwards).
        precision: ``"float32"`` or ``"bf16"`` (:mod:`chromtransfer.precision`: faster on GPUs
            and CPUs with native bf16, probabilities within ~1e-2 of float32).

    Returns:
        for in-memory input, a ``float32`` array ``(N, n_outputs)`` (binary: ``n_outputs == 1``,
        the sigmoid probability; multi-class: softmax probabilities in the order of
        ``model.config.classes``). For a FASTA or BED path, a :class:`pandas.DataFrame` with
        ``name``, then ``score`` or one column per class, then ``n_fraction`` (share of N bases),
        as ``chromtransfer predict`` writes it.
    """
    from .inference import n_fractions, prediction_table
    from .precision import resolve_precision

    precision = resolve_precision(precision)
    sequences = as_sequences(x, genome=genome, window=window)
    with _threads(threads):
        probs = _probabilities(model, sequences, batch_size=batch_size, device=_resolve_device(device),
                               rc_average=rc_average, precision=precision)
    if sequences.names is None:
        return probs
    return prediction_table(sequences.names, probs, model, n_fractions(sequences.codes))


# ------------------------------------------------------------------------------------ attributions
def attribute(model, x, *, method: str = "grad_x_input", target: str = "probability",
              class_name: str | int | None = None, select: str = "all", threshold: float = 0.5,
              genome=None, window: int | None = None, batch_size: int = 128, device: str = "auto",
              threads: int | None = None, references: int | None = None, seed: int = 0,
              precision: str = "float32") -> Attributions:
    """Per-base attribution scores of equal-length sequences.

    Args:
        model: from :func:`load_model`; a fold ensemble supports ``grad_x_input`` (of the
            ensemble's averaged output).
        x: any input :func:`predict` takes; all sequences of one length (BED: use ``window``).
        method: ``"grad_x_input"`` (gradient x input), ``"ism"`` (saturation mutagenesis; the
            per-base score is the largest change) or ``"deeplift_shap"`` (DeepLIFT/SHAP
            contributions against dinucleotide-shuffled references).
        references, seed: ``deeplift_shap``: shuffled references per sequence (default 20) and
            their seed.
        target: ``"probability"`` (as the paper) or ``"logit"``.
        class_name: the class of a multi-class model (name or index); ``None`` for binary models.
        select: ``"all"`` rows, or ``"predicted-positive"`` (probability above ``threshold``).
        genome, window: for BED input, as in :func:`predict`.
        batch_size, device, threads, precision: as in :func:`predict` (bf16: attributions under
            bf16 autocast, returned as float32).

    Returns:
        :class:`Attributions` with ``scores`` ``(N, L)`` float32, ``codes`` ``(N, L)`` uint8,
        ``names`` ``(N,)`` (``seq0, ...`` for in-memory input) and ``method``; besides:
        ``ism`` ``(N, L, 4)`` (method ``ism``, else ``None``), ``hypothetical`` ``(N, L, 4)``
        (the gradients, or DeepLIFT/SHAP's hypothetical contributions), ``convergence_delta``
        ``(N,)`` (``deeplift_shap``; its summary in ``manifest["deeplift_shap"]``, and a
        ``ConvergenceWarning`` above the tolerance), ``prediction`` ``(N,)``,
        ``chrom``/``start``/``end``/``strand`` ``(N,)`` (``""``/-1 without coordinates) and
        ``target``. Save with :meth:`Attributions.save`; enrichment takes it as is.
    """
    from .ensemble import ModelEnsemble
    from .interpret.pipeline import attribute as attribute_inputs
    from .interpret.pipeline import output_unit

    if isinstance(model, ModelEnsemble) and method in ("ism", "deeplift_shap"):
        label = {"ism": "ISM", "deeplift_shap": "DeepLIFT/SHAP"}[method]
        raise ChromTransferError(f"{label} runs on one model: attribute each fold model (model.members[k]) "
                                 "or use method='grad_x_input' for the ensemble")
    if references is not None and method != "deeplift_shap":
        raise ChromTransferError("references applies to method='deeplift_shap' only")
    sequences = as_sequences(x, genome=genome, window=window)
    inputs = _attribution_inputs(sequences)
    class_index, _label = output_unit(model, class_name)
    with _threads(threads):
        return attribute_inputs(model, inputs, method=method, target=target, class_index=class_index,
                                select=select, threshold=threshold, batch_size=batch_size,
                                device=_resolve_device(device), references=references, seed=seed,
                                precision=precision)


def _attribution_inputs(sequences: SequenceSet):
    from .interpret.pipeline import AttributionInputs

    codes = sequences.matrix("attribution")
    n = len(codes)
    has_coordinates = sequences.chrom is not None
    return AttributionInputs(
        codes=codes,
        names=np.asarray(sequences.display_names(), dtype=str),
        chrom=np.asarray(sequences.chrom, dtype=str) if has_coordinates else np.full(n, ""),
        start=np.asarray(sequences.start, dtype=np.int64) if has_coordinates else np.full(n, -1, np.int64),
        end=np.asarray(sequences.end, dtype=np.int64) if has_coordinates else np.full(n, -1, np.int64),
        strand=np.full(n, "+"),
        source={"kind": sequences.source, "rows": n},
    )


# ------------------------------------------------------------------------------------ motifs
def _motifs(motifs):
    from .interpret.jaspar import load_jaspar, read_motif_file

    if isinstance(motifs, (list, tuple)):
        return list(motifs)
    text = str(motifs)
    if text.upper().startswith("JASPAR") and not os.path.exists(text):
        return load_jaspar(release=text)
    return read_motif_file(motifs)


def scan_motifs(x, motifs="JASPAR2022", *, pvalue: float = 1e-5, genome=None, window: int | None = None,
                background="uniform") -> pd.DataFrame:
    """Motif sites (FIMO's scores and p-values, both strands) in sequences.

    Args:
        x: any input :func:`predict` takes, or :class:`Attributions` (their sequences and names,
            so the sites match them for :func:`rank_tfs`).
        motifs: a bundled JASPAR release (``"JASPAR2022"``, CORE vertebrates, offline), a MEME or
            JASPAR motif file path, or a list of :class:`~chromtransfer.interpret.pwm.Motif`.
        pvalue: report sites with p-value below this (the paper: 1e-5).
        genome, window: for BED input, as in :func:`predict`.
        background: ``"uniform"``, ``"nrdb"`` or four numbers (A, C, G, T).

    Returns:
        one row per site, columns ``region, region_index, chrom, start, end, site_start,
        site_end, strand, motif_id, tf, score, pvalue, sequence`` (``site_start``/``site_end``:
        0-based, half-open, within the sequence).
    """
    from .encoding import N_CODE
    from .interpret.motifs import MotifScanner, SequenceChunk

    if isinstance(x, Attributions):
        sequences = SequenceSet(np.asarray(x.codes, dtype=np.uint8), names=list(x.names), source="attributions")
    else:
        sequences = as_sequences(x, genome=genome, window=window)
    codes = sequences.codes
    lengths = np.array([len(c) for c in codes], dtype=np.int64)
    if not sequences.equal_length:  # pad with N: a window holding N is never a site
        padded = np.full((len(codes), int(lengths.max())), N_CODE, dtype=np.uint8)
        for i, c in enumerate(codes):
            padded[i, :len(c)] = c
        codes = padded
    n = len(codes)
    has_coordinates = sequences.chrom is not None
    meta = pd.DataFrame({
        "region": np.asarray(sequences.display_names(), dtype=object),
        "region_index": np.arange(n, dtype=np.int64),
        "chrom": np.asarray(sequences.chrom, dtype=object) if has_coordinates else np.full(n, "", dtype=object),
        "start": np.asarray(sequences.start, np.int64) if has_coordinates else np.full(n, -1, np.int64),
        "end": np.asarray(sequences.end, np.int64) if has_coordinates else np.full(n, -1, np.int64),
        "strand": np.full(n, "+", dtype=object),
        "length": lengths,
    })
    scanner = MotifScanner(_motifs(motifs), background=background, threshold=pvalue)
    return next(scanner.iter_tables([SequenceChunk(codes, meta)]))


# ------------------------------------------------------------------------------------ TF ranking
def rank_tfs(attributions: Attributions, sites: pd.DataFrame, *, group_by: str = "tf", min_sites: int = 100,
             fdr: float = 0.001, aggregate: str = "auto") -> pd.DataFrame:
    """Rank TFs by how their motif sites score (signed KS test against the other sites).

    Args:
        attributions: from :func:`attribute` or :func:`load_attributions`.
        sites: from :func:`scan_motifs` (or a site table read from disk), matched by region name.
        group_by: ``"tf"`` (a TF's matrices together) or ``"motif"`` (each matrix on its own).
        min_sites: groups with fewer sites are not tested.
        fdr: Benjamini-Hochberg significance level.
        aggregate: a site's score from its bases: ``"auto"`` (max for gradient x input, min for
            ISM), ``"max"`` or ``"min"``.

    Returns:
        one row per tested group, highest ``D`` first (columns as ``chromtransfer enrich`` writes
        them: the group, site counts, signed ``D``, ``pvalue``, ``fdr``, ``significant``,
        ``family``).
    """
    from .interpret.enrich import run_enrichment

    return run_enrichment(sites, attributions, group_by=group_by, min_sites=min_sites, fdr=fdr,
                          aggregate=aggregate).a


def compare_tfs(a: Attributions, b: Attributions, sites: pd.DataFrame, *, group_by: str = "tf",
                min_sites: int = 100, fdr: float = 0.001, aggregate: str = "auto",
                significance: str = "either") -> pd.DataFrame:
    """Compare two models' TF rankings on the regions both attributed (matched by name).

    The test also runs on the per-site differences ``score_b - score_a`` (positive ``D``: the
    TF gains importance in model B). ``significance``: ``"either"`` (significant in either
    model's own test, as the paper) or ``"difference"`` (the difference test's FDR).

    Returns:
        one row per tested group with both models' ``D`` and the difference test's statistics.
    """
    from .interpret.enrich import run_enrichment

    return run_enrichment(sites, a, b, group_by=group_by, min_sites=min_sites, fdr=fdr, aggregate=aggregate,
                          significance=significance).comparison


# ------------------------------------------------------------------------------------ metrics
def discover_motifs(attributions: Attributions, motifs="JASPAR2022", *, window: int | None = None,
                    max_seqlets: int = 20000, min_seqlets: int = 20, leiden_runs: int = 10):
    """De novo motifs (TF-MoDISco patterns) of attributions, matched to a motif database by TOMTOM.

    Args:
        attributions: from :func:`attribute` or :func:`load_attributions`, any method: the
            hypothetical contributions where saved, else ISM (mean-centred per position), else
            the scores at the present bases (:mod:`chromtransfer.interpret.discover`).
        motifs: ``"JASPAR2022"`` (bundled), a MEME/JASPAR file, or a list of motifs.
        window: central bases given to TF-MoDISco (default: the whole sequence; windows under
            100 bp get a proportionally shorter seqlet core and flanks).
        max_seqlets: most seqlets clustered per sign; min_seqlets: the fewest of a pattern.
        leiden_runs: Leiden clusterings per round.

    Returns:
        a :class:`~chromtransfer.interpret.discover.DiscoveryResult`: ``.table()`` (one row per
        pattern with its seqlet count and best match, q-value and JASPAR family), ``.matches``,
        ``.patterns`` (PPM, CWM and seqlet positions of each).
    """
    from .interpret.discover import discover_motifs as discover

    return discover(attributions, _motifs(motifs), window=window, max_seqlets=max_seqlets, min_seqlets=min_seqlets,
                    leiden_runs=leiden_runs)


def metrics(y, p, *, threshold: float = 0.5, classes: Sequence[str] | None = None) -> dict[str, Any]:
    """Metrics of predictions, as ``chromtransfer evaluate`` reports them.

    Args:
        y: ``(N,)`` labels: 0/1 (binary) or class indices (multi-class).
        p: ``(N,)`` or ``(N, 1)`` probabilities (binary), or ``(N, C)`` class probabilities.
        threshold: binary rows are positive when ``p > threshold``.
        classes: the ``C`` class names of multi-class input (default ``class0, ...``).

    Returns:
        binary: ``auroc``, ``auprc``, ``average_precision``, F1 scores, ``brier``, ``ece`` ...;
        multi-class: ``accuracy``, ``f1_macro``, ``auroc_macro``, ``auprc_macro``, ``per_class``.
    """
    from .evaluation.metrics import binary_metrics, multiclass_metrics

    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] > 1:
        names = list(classes) if classes is not None else [f"class{i}" for i in range(p.shape[1])]
        return multiclass_metrics(np.asarray(y), p, names)
    return binary_metrics(np.asarray(y), p.reshape(-1), threshold)
