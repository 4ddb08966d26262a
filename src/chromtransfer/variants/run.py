"""``score_variants``: cell-type-specific variant effects from a VCF, written in resumable chunks.

Scores, per variant and cell-line model (``p`` = the model's probability that the window is
accessible; ensembles and strands averaged first, see :mod:`.scoring`):

    p_ref, p_alt   probability of the REF and of the ALT window
    delta_p        p_alt - p_ref
    delta_logit    logit(p_alt) - logit(p_ref) (natural log; probabilities clipped to
                   [1e-7, 1 - 1e-7]): the log of the odds ratio ALT : REF. Positive: the ALT allele
                   raises the predicted accessibility in that cell line; +0.69 doubles the odds.
    specificity    (2+ models) delta_logit of the line minus the mean delta_logit of the others:
                   positive where the ALT allele opens chromatin in this line more than elsewhere.
    null_z, null_p (``null`` > 0) z-score of delta_logit against ``null`` random SNVs drawn from
                   the same elements (``regions``) or from the scored variants' windows, scored by
                   the same models; ``null_p`` is the two-sided empirical p
                   ``(1 + #{|d0 - m| >= |d - m|}) / (null + 1)`` with ``m`` the null mean.

The table ``variants.tsv.gz`` has one row per variant (ALT allele) and model, in file order, with
the columns :data:`BASE_COLUMNS`, then ``specificity`` (2+ models), ``null_z`` and ``null_p``
(with a null), then ``motifs_lost`` and ``motifs_gained`` (:mod:`.annotate`):

    variant        running number of the variant in the file (0-based, after the split)
    chrom, pos     as in the VCF (chromosome spelling as written, 1-based POS)
    id, ref, alt   VCF ID; the alleles as scored (swapped for ``flipped``)
    kind           snv, mnv, insertion or deletion
    status         scored, flipped, duplicate, ref_mismatch, unsupported_allele, outside_regions
                   (only scored, flipped and duplicate rows have scores; NA elsewhere)
    duplicate_of   ``variant`` of the first copy for a duplicate (whose values it repeats), else -1
    window_chrom, window_start, window_end   the REF window (genome spelling, 0-based half-open;
                   it may reach past a chromosome end, where its bases are N)
    element        the element's name with ``regions``, else empty
    model          the cell-line model's name
    p_ref ... null_p   the scores above

See :mod:`.output` for the folder and :mod:`.vcfout` for the annotated VCF.

Work is done in chunks of ``chunk_size`` variants, each written atomically and recorded in the
manifest: memory stays bounded by one chunk, and a killed run started again with the same
arguments skips the finished chunks. The inputs (file hashes) and options are part of the manifest;
a run with different ones stops with a message instead of reusing chunks.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..artifacts import file_sha256, provenance, write_json
from ..errors import ChromTransferError, InputError
from ..progress import Progress, progress_bar
from ..runtime import restores_torch_threads
from . import output
from .null import NullDistribution, draw_null_snvs
from .output import _claim_output_folder
from .scoring import CellModel, WindowBatch, load_cell_models, score_windows, snv_code
from .vcf import SCORED, Variant, VariantPlan, iter_variants, plan_variants
from .windows import Elements, alt_window

__all__ = ["BASE_COLUMNS", "score_variants"]

FORMAT = "chromtransfer-variants"
BASE_COLUMNS = ["variant", "chrom", "pos", "id", "ref", "alt", "kind", "status", "duplicate_of",
                "window_chrom", "window_start", "window_end", "element", "model",
                "p_ref", "p_alt", "delta_p", "delta_logit"]
_EPS = 1e-7
TOP_FIGURE_VARIANTS = 20


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


# ---------------------------------------------------------------------------------------------
# inputs


def _fingerprint(vcf: Path, genome, cells: Sequence[CellModel], regions: Path | None,
                 motif_source: str | None, options: dict) -> dict[str, Any]:
    stat = Path(genome.path).stat()
    return {
        "vcf": {"path": str(vcf.resolve()), "sha256": file_sha256(vcf)},
        "genome": {"path": str(Path(genome.path).resolve()), "size": stat.st_size, "mtime": int(stat.st_mtime)},
        "models": [{"name": c.name, "path": str(c.path.resolve()),
                    "members": [file_sha256(Path(p) / "model.safetensors") for p in c.member_paths]}
                   for c in cells],
        "regions": None if regions is None else {"path": str(regions.resolve()), "sha256": file_sha256(regions)},
        "motifs": motif_source,
        "options": options,
    }


def _load_scanner(motifs: str | os.PathLike | None, threshold: float):
    """``(scanner or None, description)``: JASPAR 2022 by default, a motif file, or none."""
    if motifs is None or str(motifs).lower() == "none":
        return None, None
    from ..interpret.jaspar import load_jaspar, read_motif_file
    from .annotate import MotifBands

    text = str(motifs)
    if text.upper().startswith("JASPAR"):
        return MotifBands(load_jaspar(text.upper()), threshold=threshold), text.upper()
    path = Path(text)
    if not path.is_file():
        raise InputError(path, "motif file not found", fix="give a MEME or JASPAR motif file, JASPAR2022 or none")
    return MotifBands(read_motif_file(path), threshold=threshold), f"{path.resolve()}:{file_sha256(path)}"


# ---------------------------------------------------------------------------------------------
# windows of one chunk


def _place(variants: Sequence[Variant], genome, cells: Sequence[CellModel],
           elements: Elements | None) -> tuple[WindowBatch, np.ndarray, np.ndarray, np.ndarray, list]:
    """Put variants into windows: ``(batch, window chrom idx, window start, window end, names)``."""
    length = cells[0].length
    keys: dict[tuple, int] = {}
    starts, ends, chroms, names = [], [], [], []
    rows, offsets = [], []
    for v in variants:
        if elements is None:
            start, end, name = v.pos - length // 2, v.pos - length // 2 + length, ""
        else:
            e = elements.find(v.genome_chrom, v.pos, v.pos + len(v.ref))
            start, end, name = int(elements.start[e]), int(elements.end[e]), str(elements.name[e])
        key = (v.genome_chrom, start, end)
        row = keys.get(key)
        if row is None:
            row = keys[key] = len(keys)
            chroms.append(v.genome_chrom)
            starts.append(start)
            ends.append(end)
            names.append(name)
        rows.append(row)
        offsets.append(v.pos - start)
    windows: list[np.ndarray] = [None] * len(keys)  # type: ignore[list-item]
    chroms_a = np.asarray(chroms, dtype=object)
    starts_a, ends_a = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    for width in np.unique(ends_a - starts_a):
        sel = np.flatnonzero(ends_a - starts_a == width)
        codes = genome.fetch_many(chroms_a[sel], starts_a[sel], length=int(width), pad=True)
        for i, w in enumerate(sel):
            windows[w] = codes[i]
    row_a = np.asarray(rows, dtype=np.int64)
    snv_alt = np.full(len(variants), -1, dtype=np.int64)
    alt_codes: list = [None] * len(variants)
    for i, v in enumerate(variants):
        if v.kind == "snv":
            snv_alt[i] = snv_code(v.alt)
        else:
            r = row_a[i]
            alt_codes[i] = alt_window(genome, v.genome_chrom, int(starts_a[r]), int(ends_a[r] - starts_a[r]),
                                      windows[r], v.pos, v.ref, v.alt)
    batch = WindowBatch(windows, row_a, np.asarray(offsets, dtype=np.int64), snv_alt, alt_codes)
    return batch, chroms_a, starts_a, ends_a, names


# ---------------------------------------------------------------------------------------------
# one chunk


class _ChunkScorer:
    def __init__(self, genome, cells, elements, scanner, null: NullDistribution | None, duplicate_of: np.ndarray, *,
                 rc_average: bool, batch_size: int, device, shared_reference: bool = True,
                 precision: str = "float32"):
        self.genome, self.cells, self.elements, self.scanner, self.null = genome, cells, elements, scanner, null
        self.duplicate_of = duplicate_of  # (n_variants,) first copy of each duplicate, else -1
        self.rc_average, self.batch_size, self.device = rc_average, batch_size, device
        self.shared_reference, self.precision = shared_reference, precision

    def probabilities(self, variants: Sequence[Variant]):
        batch, chroms, starts, ends, names = _place(variants, self.genome, self.cells, self.elements)
        p_ref, p_alt = score_windows(self.cells, batch, rc_average=self.rc_average, batch_size=self.batch_size,
                                     device=self.device, shared_reference=self.shared_reference,
                                     precision=self.precision)
        return p_ref, p_alt, batch, chroms, starts, ends, names

    def table(self, variants: Sequence[Variant], first_copies: "_FirstCopies") -> pd.DataFrame:
        """The chunk's rows (every variant x model); ``first_copies`` receives/gives duplicates' values."""
        n, m = len(variants), len(self.cells)
        p_ref = np.full((n, m), np.nan)
        p_alt = np.full((n, m), np.nan)
        lost = [""] * n
        gained = [""] * n
        w_chrom = [""] * n
        w_start = np.full(n, -1, dtype=np.int64)
        w_end = np.full(n, -1, dtype=np.int64)
        element = [""] * n
        todo = [i for i, v in enumerate(variants) if v.status in SCORED]
        if todo:
            chosen = [variants[i] for i in todo]
            pr, pa, batch, chroms, starts, ends, names = self.probabilities(chosen)
            p_ref[todo], p_alt[todo] = pr, pa
            if self.scanner is not None:
                ml, mg = _motif_changes(self.scanner, self.genome, chosen)
            else:
                ml = mg = [""] * len(chosen)
            for j, i in enumerate(todo):
                r = batch.row[j]
                w_chrom[i], w_start[i], w_end[i], element[i] = chroms[r], starts[r], ends[r], names[r]
                lost[i], gained[i] = ml[j], mg[j]
        duplicate_of = self.duplicate_of[[v.index for v in variants]]
        frame = self._frame(variants, p_ref, p_alt, lost, gained, w_chrom, w_start, w_end, element, duplicate_of)
        return _copy_duplicates(frame, variants, first_copies, m)

    def _frame(self, variants, p_ref, p_alt, lost, gained, w_chrom, w_start, w_end, element, duplicate_of):
        n, m = p_ref.shape
        d_logit = logit(p_alt) - logit(p_ref)
        scored = np.isfinite(p_ref[:, 0])
        d_logit[~scored] = np.nan
        rep = lambda values: np.repeat(np.asarray(values, dtype=object), m)  # noqa: E731
        columns: dict[str, Any] = {
            "variant": np.repeat([v.index for v in variants], m),
            "chrom": rep([v.chrom for v in variants]),
            "pos": np.repeat([v.pos + 1 for v in variants], m),
            "id": rep([v.vcf_id for v in variants]),
            "ref": rep([v.ref for v in variants]),
            "alt": rep([v.alt for v in variants]),
            "kind": rep([v.kind for v in variants]),
            "status": rep([v.status for v in variants]),
            "duplicate_of": np.repeat(duplicate_of, m),
            "window_chrom": rep(w_chrom),
            "window_start": np.repeat(w_start, m),
            "window_end": np.repeat(w_end, m),
            "element": rep(element),
            "model": np.tile(np.asarray([c.name for c in self.cells], dtype=object), n),
            "p_ref": p_ref.ravel(),
            "p_alt": p_alt.ravel(),
            "delta_p": (p_alt - p_ref).ravel(),
            "delta_logit": d_logit.ravel(),
        }
        if m > 1:
            others = (d_logit.sum(axis=1, keepdims=True) - d_logit) / (m - 1)
            columns["specificity"] = (d_logit - others).ravel()
        if self.null is not None:
            columns["null_z"] = self.null.z(d_logit).ravel()
            columns["null_p"] = self.null.p(d_logit).ravel()
        columns["motifs_lost"] = rep(lost)
        columns["motifs_gained"] = rep(gained)
        return pd.DataFrame(columns)


#: Columns a duplicate takes from its first copy.
_COPIED = ["window_chrom", "window_start", "window_end", "element", "p_ref", "p_alt", "delta_p", "delta_logit",
           "specificity", "null_z", "null_p", "motifs_lost", "motifs_gained"]


class _FirstCopies:
    """Values of first copies that later duplicates repeat, each kept until its last duplicate."""

    def __init__(self, duplicate_of: np.ndarray):
        duplicates = np.flatnonzero(duplicate_of >= 0)
        self.remaining: dict[int, int] = {}
        for first in duplicate_of[duplicates].tolist():
            self.remaining[first] = self.remaining.get(first, 0) + 1
        self.values: dict[int, dict] = {}

    def __contains__(self, index: int) -> bool:
        return index in self.remaining

    def keep(self, index: int, values: dict) -> None:
        self.values[index] = values

    def take(self, first: int) -> dict | None:
        """The first copy's values for one of its duplicates (forgotten after the last one)."""
        values = self.values.get(first)
        self.passed(first)
        return values

    def passed(self, first: int) -> None:
        left = self.remaining.get(first, 0) - 1
        if left > 0:
            self.remaining[first] = left
        else:
            self.remaining.pop(first, None)
            self.values.pop(first, None)


def _copy_duplicates(frame: pd.DataFrame, variants: Sequence[Variant], first_copies: _FirstCopies,
                     m: int) -> pd.DataFrame:
    """Record first copies' values (``m`` rows per variant) and give them to their duplicates."""
    columns = [c for c in _COPIED if c in frame.columns]
    firsts = [i for i, v in enumerate(variants) if v.status in SCORED and v.index in first_copies]
    duplicates = [i for i, v in enumerate(variants) if v.status == "duplicate"]
    if not firsts and not duplicates:
        return frame
    arrays = {c: frame[c].to_numpy(copy=True) for c in columns}
    for i in firsts:
        first_copies.keep(variants[i].index, {c: arrays[c][i * m:(i + 1) * m].copy() for c in columns})
    source = frame["duplicate_of"].to_numpy()
    for i in duplicates:
        values = first_copies.take(int(source[i * m]))
        if values is not None:
            for c in columns:
                arrays[c][i * m:(i + 1) * m] = values[c]
    for c in columns:
        frame[c] = arrays[c]
    return frame


def _motif_changes(scanner, genome, variants: Sequence[Variant]):
    from .annotate import motif_changes

    return motif_changes(scanner, genome, [v.genome_chrom for v in variants], [v.pos for v in variants],
                         [v.ref for v in variants], [v.alt for v in variants])


# ---------------------------------------------------------------------------------------------
# the run


@restores_torch_threads
def score_variants(vcf: str | os.PathLike, genome, models: Sequence[str | os.PathLike], out: str | os.PathLike, *,
                   names: Sequence[str] | None = None, regions: str | os.PathLike | None = None, on_ref_mismatch: str = "error",
                   rc_average: bool = False, null: int = 0, seed: int = 0,
                   motifs: str | os.PathLike | None = "JASPAR2022", motif_threshold: float = 1e-5,
                   explain: int = 0, length: int | None = None, batch_size: int = 256,
                   chunk_size: int = 10000, device: str = "auto", threads: int | None = None,
                   shared_reference: bool = True, precision: str = "float32",
                   progress: bool = False, echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Score every variant of ``vcf`` with every cell-line model and write the results into ``out``.

    Args:
        vcf: VCF/BCF file (plain, bgzip or gzip).
        genome: genome FASTA/2bit path or :class:`~chromtransfer.genome.Genome`.
        models: model or ``--fold all`` run directories, one per cell line (or a list of fold
            model directories per cell line, averaged).
        names: the cell lines' names in the outputs (default: the model folders' names).
        out: output folder (see :mod:`chromtransfer.variants.output`).
        regions: BED of elements: variants are scored in the element that holds them.
        on_ref_mismatch: ``error``, ``skip`` or ``flip`` (see :mod:`chromtransfer.variants.vcf`).
        rc_average: average each probability with the reverse-complement window's.
        null: number of random SNVs of the empirical null (0: none); seed: their random seed.
        motifs: ``JASPAR2022`` (bundled), a MEME/JASPAR motif file, or ``None``/``"none"``.
        motif_threshold: p-value threshold of a motif site.
        explain: attribution figures (ref/alt logos) of this many top variants.
        length: window length (default: the models' training length, 600 bp when unknown).
        batch_size: windows (or substitutions) per forward pass.
        chunk_size: variants per chunk file.
        device: ``auto``, ``cpu`` or ``cuda``; threads: torch CPU threads during the call (restored
            after it; ``None``: unchanged).
        shared_reference: SNVs sharing a window reuse its reference pass and recompute only the
            changed base's receptive field (:func:`~.scoring.score_windows`; pays off with many
            SNVs per window of 600 bp or more); ``False``: two full passes per variant (faster
            for a few SNVs per short window). The scores agree within 1e-5 either way.
        precision: ``float32`` or ``bf16`` (:mod:`chromtransfer.precision`).
        progress: show variants/s on stderr (when it is a terminal).
        echo: where to send short status lines (``None``: silent).

    Returns:
        The manifest's summary: counts per status, models, files, timing.
    """
    from ..devices import resolve_device
    from ..genome import open_genome
    from ..precision import resolve_precision

    say = echo or (lambda line: None)
    vcf = Path(vcf)
    out = Path(out)
    if on_ref_mismatch not in ("error", "skip", "flip"):
        raise ChromTransferError(f"--on-ref-mismatch must be error, skip or flip, not {on_ref_mismatch!r}")
    if null < 0 or explain < 0 or chunk_size < 1 or batch_size < 1:
        raise ChromTransferError("--null and --explain must be >= 0, --chunk-size and --batch-size >= 1")
    if not models:
        raise ChromTransferError("give at least one --model")
    precision = resolve_precision(precision)
    genome = open_genome(genome)
    dev = resolve_device(device)
    cells = load_cell_models(list(models), dev, names=names, length=length)
    if len({c.length for c in cells}) > 1 and regions is None:
        raise ChromTransferError(
            "the models were trained on windows of different lengths "
            f"({', '.join(f'{c.name}: {c.length}' for c in cells)}); give --length")
    elements = Elements.read(regions, genome) if regions is not None else None
    scanner, motif_source = _load_scanner(motifs, motif_threshold)
    plan = plan_variants(vcf, genome, on_ref_mismatch=on_ref_mismatch, elements=elements)
    options = {"on_ref_mismatch": on_ref_mismatch, "rc_average": bool(rc_average), "null": int(null),
               "seed": int(seed), "motif_threshold": float(motif_threshold), "length": cells[0].length,
               "chunk_size": int(chunk_size), **({} if precision == "float32" else {"precision": precision})}
    fingerprint = _fingerprint(vcf, genome, cells, Path(regions) if regions else None, motif_source, options)
    existed = _claim_output_folder(out)
    manifest_path = out / output.MANIFEST
    manifest = _previous_manifest(manifest_path, fingerprint) if existed else None
    n_chunks = max(1, math.ceil(len(plan) / chunk_size))
    if manifest is None:
        manifest = {"format": FORMAT, "status": "running", "fingerprint": fingerprint, "n_variants": len(plan),
                    "n_chunks": n_chunks, "chunks_done": [], "provenance": provenance()}
        write_json(manifest_path, manifest)
    elif manifest.get("status") == "complete":
        say(f"{out}: already complete for these inputs and options")
        return manifest["summary"]
    else:
        say(f"{out}: resuming, {len(manifest['chunks_done'])} of {n_chunks} chunks done")

    started = time.perf_counter()
    null_model = None
    if null:
        null_model = _null_distribution(out, plan, genome, cells, elements, null, seed, rc_average, batch_size, dev,
                                        shared_reference, precision)
    scorer = _ChunkScorer(genome, cells, elements, scanner, null_model, plan.duplicate_of,
                          rc_average=rc_average, batch_size=batch_size, device=dev,
                          shared_reference=shared_reference, precision=precision)
    first_copies = _FirstCopies(plan.duplicate_of)
    done = set(manifest["chunks_done"])
    _recall_first_copies(out, done, first_copies, plan, chunk_size)
    resumed = sum(min(chunk_size, len(plan) - k * chunk_size) for k in range(n_chunks) if _chunk_written(out, k, done))
    chunk: list[Variant] = []
    k = 0
    scored_now = 0
    with progress_bar(len(plan), "variants", quiet=not progress, unit="variant", initial=resumed) as meter:
        for variant in iter_variants(vcf, genome, on_ref_mismatch=on_ref_mismatch, plan=plan):
            chunk.append(variant)
            if len(chunk) == chunk_size:
                scored_now += _run_chunk(out, k, chunk, done, scorer, first_copies, manifest, manifest_path, meter)
                chunk, k = [], k + 1
        if chunk or k == 0:
            scored_now += _run_chunk(out, k, chunk, done, scorer, first_copies, manifest, manifest_path, meter)
    elapsed = time.perf_counter() - started
    files = _finish(out, vcf, plan, cells, n_chunks, genome, explain, rc_average, batch_size, dev, elements)
    summary = {
        "variants": len(plan), "records": plan.records, "counts": plan.counts,
        "models": [{"name": c.name, "path": str(c.path), "members": len(c.members), "length": c.length}
                   for c in cells],
        "null": None if null_model is None else {
            "n": int(null_model.n), "mean": dict(zip([c.name for c in cells], null_model.mean.tolist())),
            "sd": dict(zip([c.name for c in cells], null_model.sd.tolist()))},
        "scored_this_run": scored_now, "seconds_this_run": round(elapsed, 3),
        "variants_per_s": round(scored_now / elapsed, 2) if elapsed > 0 and scored_now else None,
        "files": files,
    }
    manifest.update(status="complete", summary=summary)
    manifest["chunks_done"] = list(range(n_chunks))
    write_json(manifest_path, manifest)
    output.remove_chunks(out, n_chunks)
    return summary


def _previous_manifest(path: Path, fingerprint: dict) -> dict | None:
    """The earlier run's manifest when its inputs and options equal ``fingerprint``; raises if not."""
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    old = manifest.get("fingerprint", {})
    changed = [k for k in fingerprint if old.get(k) != fingerprint[k]]
    if changed:
        raise ChromTransferError(
            f"{path.parent}: holds a variants run with other inputs or options (changed: {', '.join(changed)}); "
            "give a new --out folder, or delete this one to start again")
    return manifest


def _null_distribution(out: Path, plan, genome, cells, elements, n: int, seed: int, rc_average: bool,
                       batch_size: int, dev, shared_reference: bool = True,
                       precision: str = "float32") -> NullDistribution:
    path = out / output.NULL
    names = [c.name for c in cells]
    if path.is_file():
        table = pd.read_csv(path, sep="\t")
        return NullDistribution(table[[f"delta_logit_{c}" for c in names]].to_numpy(np.float64))
    variants = draw_null_snvs(plan, genome, elements, cells[0].length, n, seed)
    if len(variants) < 2:
        raise ChromTransferError("the null needs at least two random SNVs, and none could be drawn "
                                 "(no scorable variants or elements without A/C/G/T bases)")
    batch, *_ = _place(variants, genome, cells, elements)
    p_ref, p_alt = score_windows(cells, batch, rc_average=rc_average, batch_size=batch_size, device=dev,
                                 shared_reference=shared_reference, precision=precision)
    deltas = logit(p_alt) - logit(p_ref)
    table = pd.DataFrame({"chrom": [v.chrom for v in variants], "pos": [v.pos + 1 for v in variants],
                          "ref": [v.ref for v in variants], "alt": [v.alt for v in variants]})
    for c, name in enumerate(names):
        table[f"delta_logit_{name}"] = deltas[:, c]
    output.write_table(path, table, float_format="%.17g")  # read back exactly by a resumed run
    return NullDistribution(deltas)


def _recall_first_copies(out: Path, done: set, first_copies: _FirstCopies, plan: VariantPlan,
                         chunk_size: int) -> None:
    """After a restart: count off the duplicates in finished chunks, and read back the values of
    first copies (from finished chunks) that duplicates in unfinished chunks still need."""
    if not first_copies.remaining or not done:
        return
    duplicates = np.flatnonzero(plan.duplicate_of >= 0)
    finished = np.isin(duplicates // chunk_size, sorted(done))
    for first in plan.duplicate_of[duplicates[finished]].tolist():
        first_copies.passed(first)
    wanted = set(first_copies.remaining)
    for k in sorted(done):
        table = output.read_chunk(out, k)
        columns = [c for c in _COPIED if c in table.columns]
        rows = table[table["variant"].isin(wanted)]
        for index, group in rows.groupby("variant", sort=False):
            first_copies.keep(int(index), {c: group[c].to_numpy() for c in columns})


def _chunk_written(out: Path, k: int, done: set[int]) -> bool:
    """Whether an earlier run finished chunk ``k`` (recorded done, and its file is there)."""
    return k in done and output.chunk_path(out, k).is_file()


def _run_chunk(out, k, chunk, done, scorer, first_copies, manifest, manifest_path, meter: Progress) -> int:
    """Score chunk ``k`` unless an earlier run wrote it; returns the variants scored now."""
    if _chunk_written(out, k, done):
        return 0
    table = scorer.table(chunk, first_copies)
    _write_chunk(out, k, table)
    done.add(k)
    manifest["chunks_done"] = sorted(done)
    write_json(manifest_path, manifest)
    meter(len(chunk))
    return sum(v.status in SCORED for v in chunk)


def _write_chunk(out: Path, k: int, table: pd.DataFrame) -> None:
    output.write_chunk(out, k, table)


def _finish(out: Path, vcf: Path, plan, cells, n_chunks: int, genome, explain: int, rc_average: bool,
            batch_size: int, dev, elements) -> dict[str, str]:
    from .figures import explain_figures, top_variants_figure
    from .vcfout import column_of, float_fields, write_annotated_vcf

    files = {"table": str(output.assemble_table(out, n_chunks))}
    names = [c.name for c in cells]
    m = len(names)
    fields = float_fields(output.read_chunk(out, 0).columns)

    def per_variant(k: int) -> dict:
        """One chunk as plain lists, one entry per variant (the VCF writer takes a few at a time)."""
        table = output.read_chunk(out, k)
        values: dict = {key: table[column].to_numpy(object)[::m].tolist() for key, column in
                        (("status", "status"), ("lost", "motifs_lost"), ("gained", "motifs_gained"))}
        for c, name in enumerate(names):
            for f in fields:
                values[(name, f)] = table[column_of(f)].to_numpy(np.float64)[c::m].tolist()
        return values

    chunks = (per_variant(k) for k in range(n_chunks))
    state: dict = {"values": None, "at": 0, "size": 0}

    def next_alleles(count: int) -> dict:
        parts = []
        while count:
            if state["values"] is None or state["at"] >= state["size"]:
                state["values"], state["at"] = next(chunks), 0
                state["size"] = len(state["values"]["status"])
            take = min(count, state["size"] - state["at"])
            lo = state["at"]
            parts.append({key: value[lo:lo + take] for key, value in state["values"].items()})
            state["at"] += take
            count -= take
        if len(parts) == 1:
            return parts[0]
        return {key: [x for part in parts for x in part[key]] for key in parts[0]}

    files["vcf"] = str(write_annotated_vcf(out / output.VCF, vcf, names, fields, next_alleles))
    top = output.top_variants(out, n_chunks, max(TOP_FIGURE_VARIANTS, explain))
    if len(top):
        files["top_figure"] = str(top_variants_figure(top, out / "top_variants.png", TOP_FIGURE_VARIANTS))
    if explain and len(top):
        files["explain"] = [str(p) for p in explain_figures(top, explain, cells, genome, out / "explain",
                                                             rc_average=rc_average, device=dev)]
    if (out / output.NULL).is_file():
        files["null"] = str(out / output.NULL)
    return files
