"""The ``attribute`` stage: inputs -> selection -> per-base attributions -> an output directory.

Inputs (:class:`AttributionInputs`, equal-length sequences as uint8 codes):

* a dataset store (:func:`inputs_from_store`), one split or all rows; coordinates and strand come
  from the store's ``regions.tsv.gz``;
* regions of a genome (:func:`inputs_from_bed`): the ``window`` bp centred on each region's
  midpoint, named as in the file (4th BED column, else ``chrom:start-end``), with the file's own
  chromosome spelling;
* a FASTA file (:func:`inputs_from_fasta`): records of one length, no coordinates.

Selection: ``predicted-positive`` keeps rows whose probability (of the chosen class for a
multi-class model) is above ``threshold`` (strictly, as ``p > 0.5`` in the paper); ``all`` keeps
every row.

The result is an :class:`~.attributions.Attributions` (``.save(dir)`` writes the output directory,
:func:`~.attributions.load_attributions` reads it back).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ChromTransferError, InputError
from .attributions import METHODS, Attributions

log = logging.getLogger(__name__)

SELECTIONS = ("predicted-positive", "all")


@dataclass
class AttributionInputs:
    """Equal-length sequences to attribute, with names and (optional) genomic coordinates.

    ``codes`` may be a store's memory map with ``rows`` selecting its rows (``None``: all rows);
    it is read block by block. ``chrom`` is ``""`` and ``start``/``end`` are -1 for rows without
    coordinates. ``chrom_sizes`` (chromosome -> length) is known when a genome is at hand.
    """

    codes: np.ndarray  # (M, L) uint8, possibly a memory map
    names: np.ndarray  # (N,) str
    chrom: np.ndarray  # (N,) str
    start: np.ndarray  # (N,) int64
    end: np.ndarray  # (N,) int64
    strand: np.ndarray  # (N,) str
    source: dict[str, Any] = field(default_factory=dict)
    chrom_sizes: dict[str, int] | None = None
    rows: np.ndarray | None = None  # (N,) rows of ``codes``; None = every row

    def __len__(self) -> int:
        return int(self.codes.shape[0] if self.rows is None else len(self.rows))

    @property
    def length(self) -> int:
        return int(self.codes.shape[1])

    def block(self, begin: int, end: int) -> np.ndarray:
        """Codes of rows ``begin:end``, ``(end - begin, L)`` uint8, in memory."""
        if self.rows is None:
            return np.ascontiguousarray(self.codes[begin:end], dtype=np.uint8)
        return np.ascontiguousarray(self.codes[self.rows[begin:end]], dtype=np.uint8)

    @property
    def has_coordinates(self) -> bool:
        return bool(len(self) and ((self.chrom != "") & (self.start >= 0)).any())

    def subset(self, keep: np.ndarray) -> "AttributionInputs":
        """The rows ``keep`` (indices into this object), with their codes loaded into memory."""
        base = np.arange(self.codes.shape[0]) if self.rows is None else self.rows
        codes = np.ascontiguousarray(self.codes[base[keep]], dtype=np.uint8).reshape(len(keep), self.length)
        return AttributionInputs(codes, self.names[keep], self.chrom[keep], self.start[keep], self.end[keep],
                                 self.strand[keep], self.source, self.chrom_sizes)


def inputs_from_attributions(attributions: Attributions) -> AttributionInputs:
    """The sequences of ``attributions`` (which must hold codes) as inputs to attribute again."""
    if attributions.codes is None:
        raise ValueError("these attributions hold no sequence codes")
    arrays = attributions.arrays()
    return AttributionInputs(arrays["codes"], arrays["names"], arrays["chrom"], arrays["start"], arrays["end"],
                             arrays["strand"], dict(attributions.manifest.get("inputs") or {}),
                             attributions.chrom_sizes)


def _str_array(values) -> np.ndarray:
    return np.asarray([str(v) for v in values], dtype=str) if len(values) else np.zeros(0, dtype="<U1")


def inputs_from_store(path: str | os.PathLike, split: str = "test") -> AttributionInputs:
    """Rows of a dataset store: ``split`` is ``train``, ``test`` or ``all``."""
    from ..datasets.store import open_store

    store = open_store(path)
    try:
        rows = store.indices(split)
    except ValueError as exc:
        raise InputError(path, str(exc), fix="use --split train, test or all") from exc
    regions = store.regions.iloc[rows]
    chrom = _str_array(regions["chrom"].fillna(""))
    start = regions["start"].to_numpy(dtype=np.int64)
    sizes = None
    genome_inputs = store.manifest.get("inputs", {}).get("genome") or []
    if genome_inputs and Path(genome_inputs[0]["path"]).is_file() and (chrom != "").any():
        try:
            from ..genome import Genome

            sizes = dict(Genome(genome_inputs[0]["path"]).lengths)
        except Exception as exc:  # the genome only supplies bigWig chromosome sizes
            log.info("genome %s not usable for chromosome sizes (%s)", genome_inputs[0]["path"], exc)
    return AttributionInputs(
        codes=store.sequences,
        rows=rows,
        names=_str_array(regions["name"]),
        chrom=chrom,
        start=start,
        end=regions["end"].to_numpy(dtype=np.int64),
        strand=_str_array(regions["strand"].replace("", "+")),
        source={"kind": "store", "path": str(Path(path).resolve()), "split": split, "rows": int(len(rows))},
        chrom_sizes=sizes,
    )


def inputs_from_bed(bed: str | os.PathLike, genome_path: str | os.PathLike, window: int = 600) -> AttributionInputs:
    """The ``window`` bp centred on each region of a BED (or region TSV) file, read from a genome.

    Rows keep the file's order and chromosome spelling (exact duplicate regions are dropped); a
    region whose window runs off a chromosome end, or on a chromosome the genome lacks, stops with
    the file's line number.
    """
    from ..genome import Genome
    from ..intervals import centred_windows, read_regions

    genome = Genome(genome_path)
    regions = read_regions(bed, genome)  # exact duplicates removed (names must identify rows)
    if not len(regions):
        raise InputError(bed, "no regions found", fix="give a BED file with chrom, start, end columns")
    spelling = read_regions(bed, dedupe=False).set_index("line")["chrom"]
    windows = centred_windows(regions, window, genome, on_off_end="error")
    chroms = windows["chrom"].to_numpy(dtype=object)
    starts = windows["start"].to_numpy(np.int64)
    ends = windows["end"].to_numpy(np.int64)
    codes = genome.fetch_many(chroms, starts, ends)
    file_chrom = _str_array(spelling.loc[windows["line"].to_numpy()])
    sizes = {c: int(genome.length(c)) for c in np.unique(file_chrom)}
    return AttributionInputs(
        codes=codes,
        names=_str_array(windows["name"]),
        chrom=file_chrom,
        start=starts,
        end=ends,
        strand=np.full(len(codes), "+"),
        source={"kind": "bed", "path": str(Path(bed).resolve()), "genome": str(Path(genome_path).resolve()),
                "window": int(window), "rows": int(len(codes))},
        chrom_sizes=sizes,
    )


def inputs_from_fasta(path: str | os.PathLike) -> AttributionInputs:
    """Every record of a FASTA file; all records must have the same length."""
    from ..fasta import read_fasta

    records = read_fasta(path)
    lengths = {len(r.codes) for r in records}
    if len(lengths) > 1:
        first = records[0]
        odd = next(r for r in records if len(r.codes) != len(first.codes))
        raise InputError(path, f"record {odd.name!r} is {len(odd.codes)} bp but {first.name!r} is "
                               f"{len(first.codes)} bp", line=odd.line,
                         fix="attributions need sequences of one length (e.g. the model's 600 bp windows)")
    n = len(records)
    codes = np.stack([r.codes for r in records]).astype(np.uint8)
    return AttributionInputs(
        codes=codes,
        names=_str_array([r.name for r in records]),
        chrom=np.full(n, ""),
        start=np.full(n, -1, dtype=np.int64),
        end=np.full(n, -1, dtype=np.int64),
        strand=np.full(n, "+"),
        source={"kind": "fasta", "path": str(Path(path).resolve()), "rows": n},
    )


def output_unit(model, class_name: str | int | None) -> tuple[int | None, str]:
    """The attributed output: ``(class_index, label)``; a binary model gives ``(None, "positive")``.

    ``class_name`` selects a multi-class model's class by name (``model.config.classes``) or by
    index; a binary model has one output unit and takes no class. A model without gradients
    (the k-mer composition model) is refused here, before any input is read.
    """
    if not getattr(model, "supports_gradients", True):
        raise ChromTransferError("the k-mer composition model has no gradients or convolutions to attribute: "
                                 "attribute a network (the k-mer weights are in its model.json, "
                                 "training.result.top_features)")
    classes = [str(c) for c in getattr(model.config, "classes", [])]
    if not getattr(model, "multiclass", False):
        if class_name not in (None, ""):
            raise ChromTransferError(f"--class {class_name} given, but the model is binary "
                                     "(one output unit): drop --class")
        return None, "positive"
    if class_name in (None, ""):
        raise ChromTransferError(f"the model is multi-class: choose the output with --class "
                                 f"(one of {', '.join(classes)})")
    if str(class_name) in classes:
        return classes.index(str(class_name)), str(class_name)
    try:
        index = int(class_name)
    except ValueError:
        raise ChromTransferError(f"unknown class {class_name!r}: the model has {', '.join(classes)}") from None
    if not 0 <= index < len(classes):
        raise ChromTransferError(f"class index {index} out of range 0..{len(classes) - 1}")
    return index, classes[index]


def predict_unit(model, inputs: AttributionInputs, class_index: int | None, *, batch_size: int, device,
                 chunk: int = 65536, precision: str | None = None) -> np.ndarray:
    """Probabilities of the attributed output unit, ``(N,)`` float32 (read in blocks of ``chunk`` rows)."""
    from ..inference import predict_codes

    out = np.zeros(len(inputs), dtype=np.float32)
    column = class_index or 0
    for begin in range(0, len(inputs), chunk):
        block = inputs.block(begin, begin + chunk)
        out[begin:begin + len(block)] = predict_codes(model, block, batch_size=batch_size, device=device,
                                                      precision=precision)[:, column]
    return out


def attribute(model, inputs: AttributionInputs, *, method: str = "grad_x_input", target: str = "probability",
              class_index: int | None = None, select: str = "predicted-positive", threshold: float = 0.5,
              batch_size: int = 128, device="auto", chunk: int | None = None,
              progress: Callable[[int], None] | None = None, model_path: str | None = None,
              references: int | None = None, seed: int = 0, precision: str | None = None) -> Attributions:
    """Select rows and attribute them; returns the selected rows' :class:`~.attributions.Attributions`
    (``n_candidates``: ``len(inputs)``).

    Args:
        model: a loaded :class:`~chromtransfer.models.ChromTransferNet`.
        inputs: the candidate rows.
        method: ``grad_x_input``, ``ism`` or ``deeplift_shap``.
        target: ``probability`` or ``logit``.
        class_index: the multi-class output unit (``None`` for binary models).
        select, threshold: see the module docstring.
        batch_size: sequences per pass (gradient x input), mutants per batch (ISM) or
            sequence-reference pairs per pass (DeepLIFT/SHAP).
        chunk: sequences attributed between two ``progress(n)`` calls (``n`` sequences more;
            default 256 for gradient x input, 8 for ISM and DeepLIFT/SHAP).
        model_path: recorded as ``model`` of the result.
        references, seed: DeepLIFT/SHAP's dinucleotide-shuffled references per sequence (default
            :data:`~.deeplift.REFERENCES`) and their seed.
        precision: ``float32`` (default) or ``bf16``: the selection's predictions as
            :func:`~chromtransfer.inference.predict_codes` makes them, the attributions under
            bf16 autocast (:func:`chromtransfer.precision.autocast`; float32 results).


    Gradient x input also returns the gradients as ``hypothetical`` ``(N, L, 4)``; DeepLIFT/SHAP
    returns its hypothetical contributions, the convergence delta of every row
    (``convergence_delta``) and their summary in ``manifest["deeplift_shap"]``, and warns
    (:class:`~.deeplift.ConvergenceWarning`) when a row's delta is above the tolerance.
    """
    from ..devices import resolve_device
    from ..inference import n_fractions
    from ..precision import autocast, resolve_precision
    from .attribution import at_present_base, input_gradients
    from .deeplift import REFERENCES, deeplift_shap
    from .ism import ism, ism_scores

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    if select not in SELECTIONS:
        raise ValueError(f"unknown selection {select!r}: use one of {', '.join(SELECTIONS)}")
    references = REFERENCES if references is None else int(references)
    if method == "deeplift_shap" and references < 1:
        raise ValueError("references must be at least 1")
    precision = resolve_precision(precision)
    prediction = predict_unit(model, inputs, class_index, batch_size=max(batch_size, 256), device=device,
                              precision=precision)
    place = resolve_device(device) if device is not None else next(model.parameters()).device
    rows = np.flatnonzero(prediction > threshold) if select == "predicted-positive" else np.arange(len(inputs))
    chosen = inputs.subset(rows)
    n, length = chosen.codes.shape
    chunk = chunk or (256 if method == "grad_x_input" else 8)
    scores = np.zeros((n, length), dtype=np.float32)
    per_base = np.zeros((n, length, 4), dtype=np.float32)  # ISM deltas, or hypothetical contributions
    delta = np.zeros(n, dtype=np.float32) if method == "deeplift_shap" else None
    difference = np.zeros(n, dtype=np.float32) if method == "deeplift_shap" else None
    for begin in range(0, n, chunk):
        block = chosen.codes[begin:begin + chunk]
        rows_of_block = slice(begin, begin + len(block))
        if method == "ism":
            with autocast(place, precision):
                d = ism(model, block, target=target, class_index=class_index, batch_size=batch_size, device=device)
            per_base[rows_of_block] = d
            scores[rows_of_block] = ism_scores(d, block)
        elif method == "deeplift_shap":  # float32 always: the convergence check compares exact sums
            result = deeplift_shap(model, block, target=target, class_index=class_index, references=references,
                                   seed=seed, batch_size=batch_size, device=device)
            per_base[rows_of_block], scores[rows_of_block] = result.hypothetical, result.scores
            delta[rows_of_block], difference[rows_of_block] = result.delta, result.output_difference
        else:
            with autocast(place, precision):
                gradients = input_gradients(model, block, target=target, class_index=class_index,
                                            batch_size=batch_size, device=device)
            per_base[rows_of_block] = gradients
            scores[rows_of_block] = at_present_base(gradients, block)
        if progress is not None:
            progress(len(block))
    manifest: dict[str, Any] = {"inputs": chosen.source}
    if method == "deeplift_shap":
        manifest["deeplift_shap"] = _deeplift_manifest(delta, difference, references, seed)
    return Attributions(scores, chosen.names, method, codes=chosen.codes.astype(np.uint8),
                        ism=per_base if method == "ism" else None,
                        hypothetical=None if method == "ism" else per_base, convergence_delta=delta,
                        target=target, chrom=chosen.chrom, start=chosen.start.astype(np.int64),
                        end=chosen.end.astype(np.int64), strand=chosen.strand,
                        prediction=prediction[rows].astype(np.float32), n_fraction=n_fractions(chosen.codes),
                        model=model_path, n_candidates=len(inputs), chrom_sizes=chosen.chrom_sizes,
                        manifest=manifest)


def _deeplift_manifest(delta: np.ndarray, difference: np.ndarray, references: int, seed: int) -> dict[str, Any]:
    """The ``deeplift_shap`` entry of the manifest; warns when a row is above the tolerance."""
    import warnings

    import tangermeme

    from .deeplift import ConvergenceWarning, convergence_summary

    summary = convergence_summary(delta, difference)
    above = summary["sequences"] - summary["within_tolerance"]
    if above:
        warnings.warn(f"DeepLIFT/SHAP convergence: {above} of {summary['sequences']} sequences have contributions "
                      f"that miss f(x) - mean f(references) by more than the tolerance (largest |delta| "
                      f"{summary['max_abs']:.3g}; convergence_delta in attributions.npz): a non-linearity "
                      "escapes DeepLIFT's rules", ConvergenceWarning, stacklevel=3)
    return {"references": int(references), "reference_kind": "dinucleotide shuffles (tangermeme)",
            "seed": int(seed),
            "implementation": f"tangermeme {tangermeme.__version__} deep_lift_shap on the plain module path",
            "convergence": summary}
