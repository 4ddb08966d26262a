"""The study configuration (``chromtransfer run CONFIG.yaml``): one typed schema, read and checked.

A study config is YAML; every section is optional except ``inputs`` and ``cells``. Paths are
relative to the config file's folder. See ``configs/paper.yaml`` (the paper's settings) and
``configs/demo.yaml`` (the bundled synthetic data at laptop size) for complete, commented examples;
``chromtransfer run --show-schema`` (and the README) lists every key with its type, default and
meaning, rendered from the models below by :func:`~chromtransfer.workflow.config_schema.schema_table`.

The models (pydantic v2, strict) are the one description of a config: they refuse unknown keys
anywhere, take booleans only as ``true``/``false`` (``"no"`` is an error, not true), check types
and ranges, and fill every default, so the study reads typed attributes and ``summary.json``
records the filled config (:meth:`StudyConfig.filled`). :func:`load_config` turns the first problem
into one :class:`~chromtransfer.errors.InputError` line with the config's line number, before any
stage runs. The training keys are those of :class:`~chromtransfer.training.presets.TrainSettings`
(their types and descriptions included) less the ones the study sets itself; their ranges are
checked by :func:`~chromtransfer.training.presets.resolve`, whose filled values the config records.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, create_model

from ..bootstrap import PAPER_FRACTIONS
from ..datasets.finetune import MULTICLASS_SETS
from ..datasets.pretrain import DISTANCE_FROM
from ..datasets.splits import FOLD_SCHEMES
from ..datasets.synthetic import SIZES
from ..errors import InputError
from ..evaluation.metrics import DEFAULT_F1_AVERAGE, F1_AVERAGES
from ..interpret.attribution import TARGETS
from ..interpret.enrich import COMPARISON_SIGNIFICANCE, FAMILY_OVERLAP
from ..interpret.pipeline import METHODS
from ..kmer import DEFAULT_K
from ..kmer.features import MAX_K, KmerSpec
from ..models import HEADS
from ..precision import INFERENCE_PRECISIONS
from ..training import presets
from .interpretation import COMPARE_REGIONS
from .variant_effects import VARIANT_WINDOWS

SCHEMA_HINT = "see 'chromtransfer run --show-schema'"


def _as_list(value: Any) -> Any:
    """One path or name, or a comma-separated string, as a list (lists pass unchanged)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _as_text(value: Any) -> Any:
    """``precision: 32`` (a YAML number) as the text ``"32"``."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Names = Annotated[list[str], BeforeValidator(_as_list)]
Fraction = Annotated[float, Field(gt=0, le=1)]


class Section(BaseModel):
    """A config section: unknown keys refused, values of exactly the declared types."""

    model_config = ConfigDict(strict=True, extra="forbid")


# -- inputs ---------------------------------------------------------------------------------------
class Synthetic(Section):
    size: Literal[tuple(SIZES)] = Field("small", description="data set size (tiny, small, demo, medium)")
    seed: Optional[int] = Field(None, ge=0, description="random seed of the synthetic data (default: the study's seed)")
    strength: float = Field(3.0, gt=0, description="exponent on the motif probabilities when planting instances")


#: The cell-type label inputs, of which a config names one.
LABEL_INPUTS = ("labels_csv", "label_matrix", "cell_table", "signal_matrix")


class Inputs(Section):
    synthetic: Optional[Synthetic] = Field(None, description="make the bundled synthetic data instead of reading files")
    genome: Optional[str] = Field(None, description="genome FASTA (plain, gzip or bgzip) or 2bit")
    rdhs: Optional[Names] = Field(None, description="open-chromatin regions (BED) of pre-training (default with "
                                                    "cell_table: the table's rDHS windows)")
    exclude_positives: Optional[Names] = Field(None, description="regions removed from the pre-training positives")
    blacklist: Optional[Names] = Field(None, description="regions no background window may overlap")
    labels_csv: Optional[Names] = Field(None, description="folder (or files) of published per-cell label CSVs")
    label_matrix: Optional[str] = Field(None, description="TSV of regions x cell lines (1/0)")
    cell_table: Optional[str] = Field(None, description="TSV of regions x cell lines holding the published label "
                                                        "names (CELL, CELL_NEG, Negative or empty)")
    signal_matrix: Optional[str] = Field(None, description="TSV of regions x replicate signal columns")

    def label_source(self) -> dict[str, Any]:
        """The one cell-type label input given, as ``{key: value}``."""
        for key in LABEL_INPUTS:
            if getattr(self, key):
                return {key: getattr(self, key)}
        return {}

    def files(self) -> dict[str, list[str]]:
        """The user's input paths per key (as written in the config)."""
        named = {k: getattr(self, k) for k in ("genome", "rdhs", "exclude_positives", "blacklist", *LABEL_INPUTS)}
        return {k: ([v] if isinstance(v, str) else list(v)) for k, v in named.items() if v}


# -- prepare --------------------------------------------------------------------------------------
class PreparePretrain(Section):
    neg_ratio: Optional[float] = Field(None, gt=0, description="negatives per positive (default: every background tile)")
    min_distance: Optional[int] = Field(None, ge=0, description="override of prepare.min_distance for pre-training")
    gc_match: bool = Field(False, description="draw negatives with the positives' GC distribution (needs neg_ratio)")
    use_summit: bool = Field(False, description="centre narrowPeak windows on the summit")
    drop_missing_chroms: bool = Field(False, description="drop positives on chromosomes the genome lacks")
    distance_from: Literal[DISTANCE_FROM] = Field("region", description="background tiles keep min_distance from "
                                                  "each region itself (the paper) or from its window")


class PrepareFinetune(Section):
    neg_ratio: float = Field(3.0, gt=0, description="negatives per positive for matrix inputs")
    background: Optional[int] = Field(None, ge=0, description="genomic background windows (default: a tenth of "
                                                              "the set's rows, at most 1000)")
    min_distance: Optional[int] = Field(None, ge=0, description="override of prepare.min_distance for fine-tuning")
    threshold: float = Field(1.64, description="signal-matrix z-score above which a region is open")
    pseudocount: float = Field(0.0, ge=0, description="signal-matrix pseudocount before the log")
    gc_match: bool = Field(False, description="draw negatives and background windows with the positives' GC "
                                              "distribution")


def _overrides(model: type[Section], name: str, base: str) -> type[Section]:
    """A copy of ``model`` whose keys all default to ``None``: the value of the ``base`` section."""
    options = {}
    for key, info in model.model_fields.items():
        kind = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        options[key] = (Optional[kind], Field(None, description=f"{info.description} (default: as {base})"))
    return create_model(name, __base__=Section, **options)


MulticlassPrepare = create_model(
    "MulticlassPrepare", __base__=_overrides(PrepareFinetune, "MulticlassPrepareOverrides", "prepare.finetune"),
    multiclass_set=(Literal[MULTICLASS_SETS], Field("authors", description="each line's positives plus the "
                                                    "genomic background (the authors'), or also the negative rDHSs "
                                                    "(union)")))
#: ``multiclass.protocol``: the authors' (one model on every training row, the last weights) or
#: one model per fold with the best validation epoch, like the binary models.
MULTICLASS_PROTOCOLS = ("authors", "folds")


class Prepare(Section):
    length: int = Field(600, ge=1, description="window length (bp), centred on each region")
    test_chroms: Names = Field(["chr2", "chr3"], min_length=1, description="chromosomes of the test split")
    folds: int = Field(3, ge=1, description="cross-validation folds of the training rows")
    fold_scheme: Literal[FOLD_SCHEMES] = Field("rows", description="how rows are assigned to folds")
    exclude_chroms: Names = Field([], description="chromosomes left out entirely")
    max_n_fraction: float = Field(0.1, ge=0, le=1, description="windows with a larger share of N are dropped")
    min_distance: int = Field(300, ge=0, description="background windows lie at least this far (bp) from every region")
    exclude_cell_positives: bool = Field(True, description="remove the cell lines' open windows from pre-training")
    cells_considered: Optional[Names] = Field(None, description="cell lines of the label input that count "
                                                                "(default: all)")
    pretrain: PreparePretrain = Field(default_factory=PreparePretrain, description="pre-training store")
    finetune: PrepareFinetune = Field(default_factory=PrepareFinetune, description="fine-tuning stores")

    def common(self) -> dict[str, Any]:
        """The options every store shares (keyword arguments of ``prepare_pretrain``/``prepare_finetune``)."""
        return {k: getattr(self, k) for k in ("length", "test_chroms", "folds", "fold_scheme", "exclude_chroms",
                                               "max_n_fraction", "min_distance")}


# -- train: the keys of TrainSettings ------------------------------------------------------------
#: TrainSettings fields the study sets itself (per stage), so a config may not.
STUDY_SET_TRAIN_KEYS = ("preset", "store", "out", "init", "fold", "resume", "overwrite", "quiet",
                        "train_fraction", "subsample_seed")
#: Allowed values of the TrainSettings fields that take one of a few words.
TRAIN_CHOICES = {"precision": presets.PRECISIONS, "class_weights": presets.CLASS_WEIGHTS,
                 "export": presets.EXPORTS, "strategy": presets.STRATEGIES, "device": presets.DEVICES,
                 "head": HEADS}
TRAIN_SECTIONS = ("common",) + presets.PRESET_NAMES


def _docstring_attributes(cls: type) -> dict[str, str]:
    """``name: description`` of a Google-style ``Attributes:`` section (grouped names shared)."""
    text = (cls.__doc__ or "").split("Attributes:", 1)[-1]
    described: dict[str, str] = {}
    current: list[str] = []
    for line in text.splitlines():
        match = re.match(r"^ {8}([a-z0-9_, ]+): (.*)$", line)
        if match:
            current = [n.strip() for n in match.group(1).split(",")]
            for name in current:
                described[name] = match.group(2).strip()
        elif line.startswith(" " * 12) and current:
            for name in current:
                described[name] += " " + line.strip()
    return {name: re.sub(r":data:`([^`]+)`", r"\1", text).replace("``", "`") for name, text in described.items()}


def _train_options_model() -> type[Section]:
    hints = typing.get_type_hints(presets.TrainSettings)
    described = {**_docstring_attributes(presets.TrainSettings), **_docstring_attributes(presets.Preset)}
    options: dict[str, Any] = {}
    for f in dataclasses.fields(presets.TrainSettings):
        if f.name in STUDY_SET_TRAIN_KEYS:
            continue
        kind = hints[f.name]
        if f.name in TRAIN_CHOICES:
            kind = Literal[tuple(TRAIN_CHOICES[f.name])]
            if f.name == "precision":
                kind = Annotated[kind, BeforeValidator(_as_text)]
        description = described.get(f.name, "")
        if f.name in ("device", "seed"):
            description += " (default: the study's)"
        options[f.name] = (Optional[kind], Field(None, description=description))
    return create_model("TrainOptions", __base__=Section, **options)


TrainOptions = _train_options_model()
TRAIN_KEYS = tuple(TrainOptions.model_fields)
Train = create_model("Train", __base__=Section, **{
    name: (TrainOptions, Field(default_factory=TrainOptions,
                               description="settings of every preset" if name == "common" else f"the {name} preset"))
    for name in TRAIN_SECTIONS})


# -- evaluate, multiclass, bootstrap, interpret -------------------------------------------------
class Evaluate(Section):
    batch_size: int = Field(256, ge=1, description="sequences per prediction batch")
    rc_average: bool = Field(False, description="average each window's score with its reverse complement's")
    f1_average: Literal[F1_AVERAGES] = Field(DEFAULT_F1_AVERAGE, description="how f1_overall combines the two classes")


class Multiclass(Section):
    enabled: bool = Field(True, description="train and evaluate the multi-class baseline")
    protocol: Literal[MULTICLASS_PROTOCOLS] = Field("authors", description="one model on every training row, "
                                                    "the last weights (authors), or one model per fold (folds)")
    prepare: MulticlassPrepare = Field(default_factory=MulticlassPrepare,
                                       description="overrides of prepare.finetune for the multi-class store")


class Bootstrap(Section):
    enabled: bool = Field(True, description="run the analysis (a config without the section does not)")
    cell: Optional[str] = Field(None, description="cell line (default: the first of cells)")
    fractions: list[Fraction] = Field(list(PAPER_FRACTIONS), min_length=1, description="shares of the training rows, "
                                                                                       "each in (0, 1]")
    replicates: int = Field(10, ge=1, description="subsamples per fraction")


#: Models trained beside the fine-tuned one for every cell line: the network from scratch and the
#: k-mer composition model.
BASELINES = ("binary", "kmer")


class Kmer(Section):
    k: int = Field(DEFAULT_K, ge=1, le=MAX_K, description="k-mer length of the composition baseline")
    gapped: Optional[int] = Field(None, ge=1, description="gapped k-mers: k informative bases within at most this "
                                                          "span (default: contiguous k-mers)")
    class_weights: Literal[presets.CLASS_WEIGHTS] = Field("balanced", description="class weights of the logistic "
                                                          "regression, as the networks'")


class Discover(Section):
    enabled: bool = Field(False, description="de novo motifs (TF-MoDISco matched to JASPAR by TOMTOM) of each "
                                              "interpreted cell's fine-tuned and pre-trained models, and of the "
                                              "two compared cells (needs the 'motifs' extra)")
    window: Optional[int] = Field(None, ge=20, description="central bases given to TF-MoDISco (default: the "
                                                           "whole window)")
    max_seqlets: int = Field(20000, ge=1, description="most seqlets clustered per sign")
    min_seqlets: int = Field(20, ge=2, description="fewest seqlets of a pattern")
    leiden_runs: int = Field(10, ge=1, description="Leiden clusterings per round")
    pretrained: bool = Field(True, description="also the pre-trained model's patterns, and which patterns only "
                                               "the fine-tuned model has")


class Interpret(Section):
    enabled: bool = Field(True, description="run the interpretation (a config without the section does not)")
    cells: Optional[list[str]] = Field(None, description="cell lines to interpret (default: all of cells)")
    compare: Optional[list[str]] = Field(None, min_length=2, max_length=2,
                                         description="two cell lines compared (default: the first two interpreted)")
    method: Literal[METHODS] = Field("grad_x_input", description="attribution method")
    references: int = Field(20, ge=1, description="deeplift_shap: dinucleotide-shuffled references per sequence "
                                                  "(seeded by seed)")
    target: Literal[TARGETS] = Field("probability", description="attributed model output")
    pvalue: Fraction = Field(1e-5, description="motif-site p-value threshold")
    min_sites: int = Field(100, ge=1, description="TFs with fewer sites are not tested")
    fdr: Fraction = Field(0.001, description="Benjamini-Hochberg FDR of a significant TF")
    family_overlap: Fraction = Field(FAMILY_OVERLAP, description="share of a TF's sites on a better TF's sites "
                                                                 "that makes it one family")
    batch_size: int = Field(128, ge=1, description="sequences per attribution batch (deeplift_shap: "
                                                   "sequence-reference pairs)")
    top: int = Field(20, ge=1, description="TFs shown in the figures")
    motifs: Optional[str] = Field(None, description="motif file (default: the bundled JASPAR 2022 core vertebrates)")
    compare_regions: Literal[COMPARE_REGIONS] = Field("predicted", description="windows two cell lines are compared "
                                                      "on: the union of both models' positive predictions, or the "
                                                      "labelled positives")
    compare_significance: Literal[COMPARISON_SIGNIFICANCE] = Field(
        "either", description="a TF is significant in a comparison when it is in either model's own test "
                              "(the authors'), or by the difference test")
    discover: Discover = Field(default_factory=Discover, description="de novo motifs")


class Variants(Section):
    enabled: bool = Field(True, description="score variants with the fine-tuned models (a config without the "
                                            "section does not)")
    vcf: Optional[str] = Field(None, description="VCF/BCF to score (default: the synthetic data's "
                                                 "variants.vcf.gz; needed with input files)")
    windows: Literal[VARIANT_WINDOWS] = Field("elements", description="elements: each variant in the window of "
                                              "prepare.length centred on the rDHS holding it (the models' "
                                              "training windows); centred: a window centred on the variant")
    null_snvs: int = Field(200, ge=0, description="random SNVs of the same windows as the empirical null (0: none)")
    rc_average: bool = Field(False, description="average each probability with the reverse complement's")
    motif_threshold: Fraction = Field(1e-5, description="motif-site p-value threshold of motifs_lost/gained")
    explain: int = Field(3, ge=0, description="REF/ALT attribution figures of this many top variants")
    top: int = Field(10, ge=1, description="top variants per cell line in summary.json and the report")
    batch_size: int = Field(256, ge=1, description="windows per forward pass")
    shared_reference: bool = Field(False, description="SNVs of one window reuse its reference pass (faster with "
                                                      "hundreds of SNVs per window; the synthetic VCF has two)")


OPTIONAL_SECTIONS = ("bootstrap", "interpret", "variants")


class StudyConfig(Section):
    """A whole study config, every default filled (see the module docstring)."""

    name: Optional[str] = Field(None, description="study name (default: the config file's name)")
    seed: int = Field(0, ge=0, description="seed of the splits, training and subsamples")
    device: Literal[presets.DEVICES] = Field("auto", description="auto (a GPU when visible), cpu or cuda")
    precision: Literal[INFERENCE_PRECISIONS] = Field(
        "float32", description="inference arithmetic of evaluation and interpretation: float32, or bf16 (faster on "
                               "GPUs and CPUs with native bf16; probabilities within ~1e-2)")
    inputs: Inputs = Field(description="input files, or inputs.synthetic")
    prepare: Prepare = Field(default_factory=Prepare, description="dataset stores")
    cells: list[str] = Field(min_length=1, description="cell lines fine-tuned and evaluated")
    folds: list[Annotated[int, Field(ge=0)]] = Field([0], min_length=1, description="cross-validation folds trained")
    train: Train = Field(default_factory=Train, description="training settings per preset")
    baselines: list[Literal[BASELINES]] = Field(list(BASELINES), description="models trained and evaluated beside "
                                                "the fine-tuned one per cell: binary (the network from scratch), "
                                                "kmer (composition)")
    kmer: Kmer = Field(default_factory=Kmer, description="the k-mer composition baseline")
    evaluate: Evaluate = Field(default_factory=Evaluate, description="evaluation")
    multiclass: Multiclass = Field(default_factory=Multiclass, description="multi-class baseline")
    bootstrap: Bootstrap = Field(default_factory=Bootstrap, description="bootstrap of training-set size (Table 1)")
    interpret: Interpret = Field(default_factory=Interpret, description="attributions and TF ranking")
    variants: Variants = Field(default_factory=Variants, description="variant effects of the fine-tuned models")

    _path: Path = PrivateAttr(default=Path("study.yaml"))

    @property
    def path(self) -> Path:
        """The config file (absolute)."""
        return self._path

    def resolve(self, value: str | os.PathLike) -> str:
        """A path from the config, relative to the config file's folder."""
        path = Path(os.path.expanduser(str(value)))
        # lexically, from the folder the config was named in (configs/ may be a link to the package's)
        return str(path if path.is_absolute() else Path(os.path.normpath(self.path.parent / path)))

    def given_keys(self) -> set[str]:
        """The dotted keys the config sets itself (not filled by defaults); a ``train.common`` key
        counts as set for every preset (``train.finetune.lr`` when ``train.common.lr`` is given)."""
        given: set[str] = set()

        def walk(model: BaseModel, prefix: str) -> None:
            for name in model.model_fields_set:
                value = getattr(model, name)
                if isinstance(value, BaseModel):
                    walk(value, f"{prefix}{name}.")
                given.add(f"{prefix}{name}")

        walk(self, "")
        common = [key.removeprefix("train.common.") for key in given if key.startswith("train.common.")]
        given |= {f"train.{preset}.{key}" for preset in presets.PRESET_NAMES for key in common}
        return given

    def train_options(self, preset: str) -> dict[str, Any]:
        """The training settings the config gives for ``preset`` (``common`` then the preset's own)."""
        options = self.train.common.model_dump(exclude_none=True)
        options.update(getattr(self.train, preset).model_dump(exclude_none=True))
        return options

    def train_resolved(self, preset: str) -> dict[str, Any]:
        """Every training key of ``preset`` filled (the preset's published values where not given)."""
        options = self.train_options(preset)
        options.setdefault("seed", self.seed)
        options.setdefault("device", self.device)
        settings = presets.TrainSettings(preset=preset, store="", out="", **options)
        devices = presets.parse_devices(settings.devices) or 1
        resolved = presets.resolve(settings, fold=0, device="cpu", devices=devices).to_dict()
        filled = {key: resolved.get(key) for key in TRAIN_KEYS}
        for key in ("device", "devices", "num_workers", "strategy"):  # resolved only on the machine
            filled[key] = getattr(settings, key)
        return filled

    def filled(self) -> dict[str, Any]:
        """The config with every default filled, as plain JSON values (recorded in ``summary.json``)."""
        document = self.model_dump(mode="json")
        document["train"] = {"common": self.train.common.model_dump(mode="json", exclude_none=True),
                             **{p: self.train_resolved(p) for p in presets.PRESET_NAMES}}
        return document

    def flat(self, *prefixes: str, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
        """The filled config's dotted keys under ``prefixes`` (``"prepare.length": 600``), less ``exclude``."""
        items = _flatten(self.filled())
        chosen = {k: v for k, v in items.items() if any(k == p or k.startswith(p + ".") for p in prefixes)}
        return {k: v for k, v in chosen.items() if not any(k == e or k.startswith(e + ".") for e in exclude)}


def _flatten(document: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(document, dict):
        flat: dict[str, Any] = {}
        for key, value in document.items():
            flat.update(_flatten(value, f"{prefix}{key}." if isinstance(value, dict) else f"{prefix}{key}"))
            if isinstance(value, dict) and not value:
                flat[f"{prefix}{key}"] = {}
        return flat
    return {prefix.rstrip("."): document}


# -- reading -------------------------------------------------------------------------------------
def load_config(path: str | os.PathLike) -> StudyConfig:
    """Read and check a study config; the first problem raises one :class:`InputError` line.

    The line names the config file and the line of the offending key, e.g.
    ``study.yaml:41: unknown key 'min_site' under interpret (did you mean 'min_sites'?)``.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such study config", fix="give the path of a YAML file such as configs/demo.yaml")
    text = path.read_text()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise InputError(path, f"not valid YAML ({getattr(exc, 'problem', exc)})",
                         line=None if line is None else line + 1, fix="fix the YAML syntax") from exc
    if not isinstance(raw, dict):
        raise InputError(path, "a study config is a YAML mapping of sections", fix="see configs/demo.yaml")
    data = {k: v for k, v in raw.items() if v is not None or k not in StudyConfig.model_fields}
    for section in OPTIONAL_SECTIONS:  # an absent section is a stage not run
        data.setdefault(section, {"enabled": False})
    if isinstance(data.get("inputs"), dict) and "synthetic" in data["inputs"] and data["inputs"]["synthetic"] is None:
        data["inputs"] = {**data["inputs"], "synthetic": {}}
    try:
        config = StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise _first_problem(path, root, exc) from None
    config._path = Path(os.path.abspath(path))
    if config.name is None:
        config.name = path.stem
    _check_consistency(path, root, config)
    return config


def missing_inputs(config: StudyConfig) -> None:
    """Raise one :class:`InputError` line for the first input file of ``config`` that does not exist
    (checked before any stage runs; a config may be loaded and validated without its data)."""
    for key, paths in config.inputs.files().items():
        for value in paths:
            resolved = Path(config.resolve(value))
            if not resolved.exists():
                raise InputError(config.path, f"inputs.{key}: {value} not found (resolved to {resolved})",
                                 fix="fix the path (relative to the config file's folder) or provide the data")


def _first_problem(path: Path, root, exc: ValidationError) -> InputError:
    """The problem nearest the top of the file, as one :class:`InputError` line."""
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        line = _line_of(root, loc)
        problems.append((line or 0, loc, error))
    line, loc, error = min(problems, key=lambda p: p[0])
    where = _dotted(loc)
    if error["type"] == "extra_forbidden":
        key, parent = loc[-1], _dotted(loc[:-1])
        allowed = list(_model_at(loc[:-1]).model_fields) if _model_at(loc[:-1]) else []
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        under = f" under {parent}" if parent else " at the top level"
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(allowed)}"
        return InputError(path, f"unknown key {key!r}{under} ({hint})", line=line or None)
    if error["type"] == "missing":
        return InputError(path, f"{where} is missing", line=line or None, fix=SCHEMA_HINT)
    return InputError(path, f"{where} is {_shown(error['input'])}: {_expected(error)}", line=line or None,
                      fix=SCHEMA_HINT)


_EXPECTED = {"int_type": "expected a whole number", "int_parsing": "expected a whole number",
             "float_type": "expected a number", "float_parsing": "expected a number",
             "bool_type": "expected true or false (unquoted)", "string_type": "expected text",
             "list_type": "expected a list, e.g. [a, b]", "model_type": "expected a mapping of keys",
             "dict_type": "expected a mapping of keys", "model_attributes_type": "expected a mapping of keys"}


def _expected(error: dict[str, Any]) -> str:
    if error["type"] in _EXPECTED:
        return _EXPECTED[error["type"]]
    if error["type"] == "literal_error":
        return f"expected one of {error['ctx']['expected']}"
    message = error["msg"]
    return message[len("Input "):] if message.startswith("Input should") else message


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _dotted(loc: tuple) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif str(part) in _ANNOTATION_TAGS or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(part)):
            continue  # pydantic's tag of a union member or validator, not a key
        else:
            text += ("." if text else "") + str(part)
    return text


_ANNOTATION_TAGS = {"str", "int", "float", "bool", "list", "none", "function-before", "function-after", "literal"}


def _line_of(root, loc: tuple) -> int | None:
    """1-based line of the deepest YAML node on ``loc`` (the key itself for a mapping entry)."""
    import yaml

    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    line, node = key.start_mark.line + 1, value
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
    return line


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The section model at a location (``("interpret",)`` -> :class:`Interpret`)."""
    model: type[BaseModel] = StudyConfig
    for part in loc:
        info = model.model_fields.get(str(part)) if isinstance(part, str) else None
        if info is None:
            continue
        inner = _section_type(info.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _section_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section_type(arg)
        if found is not None:
            return found
    return None


def _check_consistency(path: Path, root, config: StudyConfig) -> None:
    """Checks across keys (each raised at the line of the key it names)."""
    def fail(loc: tuple, message: str, fix: str | None = None):
        raise InputError(path, message, line=_line_of(root, loc), fix=fix)

    inputs = config.inputs
    if inputs.synthetic is None:
        for key in ("genome", "rdhs"):
            if not getattr(inputs, key) and not (key == "rdhs" and inputs.cell_table):
                fail(("inputs",), f"inputs.{key} is missing", fix="name the file, or use inputs.synthetic")
        given = [key for key in LABEL_INPUTS if getattr(inputs, key)]
        if len(given) != 1:
            fail(("inputs",), f"inputs need one of {', '.join(LABEL_INPUTS)}" + (f", not {len(given)}" if given else ""),
                 fix="name the one cell-type label input")
    elif inputs.files():
        fail(("inputs",), f"inputs.synthetic with input files ({', '.join(inputs.files())})",
             fix="use either inputs.synthetic or your own files")
    if config.variants.enabled and inputs.synthetic is None and not config.variants.vcf:
        fail(("variants",), "variants.vcf is missing", fix="name the VCF to score, or set variants.enabled: false")
    if len(set(config.cells)) != len(config.cells):
        fail(("cells",), "cells names a cell line twice", fix="list each cell line once")
    if len(set(config.baselines)) != len(config.baselines):
        fail(("baselines",), "baselines names a model twice", fix="list each of binary, kmer once")
    try:
        KmerSpec(config.kmer.k, config.kmer.gapped)
    except ValueError as exc:
        fail(("kmer",), f"kmer: {exc}")
    for i, fold in enumerate(config.folds):
        if fold >= config.prepare.folds:
            fail(("folds", i), f"folds has fold {fold}, but prepare.folds is {config.prepare.folds}",
                 fix=f"use folds 0..{config.prepare.folds - 1}")
    known = set(config.cells)
    b, interpret = config.bootstrap, config.interpret
    if b.cell is None:
        b.cell = config.cells[0]
    elif b.cell not in known:
        fail(("bootstrap", "cell"), f"bootstrap.cell {b.cell!r} is not one of cells", fix=", ".join(config.cells))
    if interpret.cells is None:
        interpret.cells = list(config.cells)
    for i, cell in enumerate(interpret.cells + (interpret.compare or [])):
        if cell not in known:
            section = "cells" if i < len(interpret.cells) else "compare"
            fail(("interpret", section), f"interpret.{section} names {cell!r}, which is not one of cells",
                 fix=", ".join(config.cells))
    if interpret.compare is None and len(interpret.cells) >= 2:
        interpret.compare = interpret.cells[:2]
    if interpret.compare and interpret.compare[0] == interpret.compare[1]:
        fail(("interpret", "compare"), "interpret.compare names the same cell line twice", fix="name two cell lines")
    for preset in presets.PRESET_NAMES:
        try:
            config.train_resolved(preset)
        except ValueError as exc:
            message = str(exc)
            option = re.match(r"--([a-z0-9-]+) (.*)", message)
            key = option.group(1).replace("-", "_") if option else None
            options = config.train_options(preset)
            if key not in options:
                fail(("train", preset), f"train.{preset}: {message}", fix=SCHEMA_HINT)
            section = preset if key in getattr(config.train, preset).model_fields_set else "common"
            fail(("train", section, key), f"train.{section}.{key} is {_shown(options[key])}: {option.group(2)}",
                 fix=SCHEMA_HINT)
