"""The paper's whole study as resumable stages (``chromtransfer run CONFIG.yaml``).

Stages, in order (each skipped when its marker says it is complete and nothing that determines its
result changed since: config values, input files, the stages it reads; otherwise redone with its
dependents, see :mod:`.stages`):

1. ``inputs``: the synthetic genome and labels (``inputs.synthetic``) or the user's files;
2. ``prepare/pretrain``, ``prepare/<cell>``, ``prepare/multiclass``: dataset stores;
3. ``train/pretrain``: the cell-type agnostic model;
4. ``train/<cell>/finetune/fold<k>``, ``train/<cell>/baseline/fold<k>`` and
   ``train/<cell>/kmer/fold<k>``: fine-tuned from the pre-trained body, the same network from
   scratch and the k-mer composition model (``baselines: [binary, kmer]``, the default), for every
   cell line and fold;
5. ``train/multiclass``: the multi-class baseline, as the authors trained it (one model on every
   training row, 50 epochs, the last weights; ``multiclass.protocol: authors``, the default), or
   ``train/multiclass/fold<k>``, one model per fold like the binary models (``protocol: folds``);
6. ``evaluate/<cell>``: fine-tuned (ensemble of folds), binary baseline, k-mer and pre-trained-only models
   on the cell line's test split; ``evaluate/multiclass``;
7. ``bootstrap``: Table 1 for one cell line;
8. ``interpret/<cell>`` and ``interpret/compare``: attributions, motif sites, KS ranking of TFs;
   with ``interpret.discover.enabled`` also ``discover/<cell>`` and ``discover/compare``: de novo
   motifs in ``interpret/<cell>/motifs`` (:mod:`.discovery`);
9. ``variants``: every variant of the VCF scored by each line's fine-tuned models, checked against
   the synthetic truth (:mod:`.variant_effects`);
10. ``report``: ``summary.json`` and ``report.html`` (always rebuilt).

Directory layout under OUT: ``inputs/``, ``data/<store>``, ``models/<name>``, ``evaluation/<cell>``,
``bootstrap/``, ``interpret/<cell>``, ``variants/``, ``stages/`` (markers), ``summary.json``, ``report.html``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..artifacts import write_json
from .config import LABEL_INPUTS, StudyConfig, load_config, missing_inputs
from .stages import Stage, StageRunner

log = logging.getLogger("chromtransfer.workflow")

#: The windows open in any considered cell line, removed from pre-training (under OUT/inputs).
POSITIVES_BED = "cell_type_positives.bed"
#: The cell table's rDHS windows, the pre-training positives where no inputs.rdhs is given.
CELL_TABLE_RDHS_BED = "cell_table_rdhs.bed"
#: Training keys that choose where the work runs, not its result: left out of the fingerprints.
MACHINE_ONLY_TRAIN_KEYS = ("device", "num_workers")


class Study:
    """One study: a config, an output folder and the stage runner that walks through it."""

    def __init__(self, config: StudyConfig, out: str | Path, echo: Callable[[str], None] = print,
                 dry_run: bool = False):
        self.config = config
        self.out = Path(out).resolve()
        self.echo = echo
        self.runner = StageRunner(self.out, echo, dry_run=dry_run, given=config.given_keys())
        self.inputs: dict[str, Any] = {}

    # -- paths -------------------------------------------------------------------------------
    def store(self, name: str) -> Path:
        return self.out / "data" / name

    def model(self, *parts: str) -> Path:
        return self.out.joinpath("models", *parts)

    def finetuned(self, cell: str) -> list[Path]:
        return [self.model(cell, "finetune", f"fold{k}") for k in self.config.folds]

    def baselines(self, cell: str) -> list[Path]:
        """The binary baseline's fold runs (``[]`` when ``baselines`` leaves out ``binary``)."""
        if "binary" not in self.config.baselines:
            return []
        return [self.model(cell, "baseline", f"fold{k}") for k in self.config.folds]

    def kmer_models(self, cell: str) -> list[Path]:
        """The k-mer composition model's fold runs (``[]`` when ``baselines`` leaves out ``kmer``)."""
        if "kmer" not in self.config.baselines:
            return []
        return [self.model(cell, "kmer", f"fold{k}") for k in self.config.folds]

    def compared_models(self, cell: str) -> dict[str, list[Path]]:
        """Summary kind (:data:`~.summary.MODEL_KINDS`) -> the runs evaluated on the cell line's test rows."""
        kinds = {"finetuned": self.finetuned(cell), "baseline": self.baselines(cell),
                 "kmer": self.kmer_models(cell), "pretrained": [self.pretrained]}
        return {kind: runs for kind, runs in kinds.items() if runs}

    @property
    def pretrained(self) -> Path:
        return self.model("pretrain")

    @property
    def multiclass_enabled(self) -> bool:
        return self.config.multiclass.enabled

    def multiclass_runs(self) -> dict[str, tuple[Path, int | str | None]]:
        """Stage name -> (run directory, fold) of the multi-class model(s)."""
        if self.config.multiclass.protocol == "authors":
            return {"train/multiclass": (self.model("multiclass", "all"), "none")}
        return {f"train/multiclass/fold{k}": (self.model("multiclass", f"fold{k}"), k) for k in self.config.folds}

    # -- stages ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run every stage not up to date; returns the summary (``{}`` in a dry run)."""
        missing_inputs(self.config)
        if self.runner.dry_run:
            self.echo(f"dry run: what 'chromtransfer run' would do in {self.out} (nothing is changed)")
        for stage in self.stages():
            result = self.runner.run(stage)
            if stage.name == "inputs":
                self.inputs = result
        if self.runner.dry_run:
            self.echo("[run ] report: summary.json and report.html (always rebuilt)")
            return {}
        from .summary import write_outputs

        return write_outputs(self)

    def stages(self) -> list[Stage]:
        """Every stage of the study in order, each with what determines its result (:mod:`.stages`)."""
        cfg = self.config
        first_fold = cfg.folds[0]
        stages = [Stage("inputs", self._inputs, "input files", settings=self._input_settings(),
                        inputs=[] if cfg.inputs.synthetic else self._input_files(),
                        outputs=[self.out / "inputs"] if cfg.inputs.synthetic else [])]
        stages.append(Stage("prepare/pretrain", self._prepare_pretrain, "pre-training store",
                            settings=self._prepare_settings("pretrain"), depends=["inputs"],
                            outputs=[self.store("pretrain"), self.out / "inputs" / POSITIVES_BED,
                                     self.out / "inputs" / CELL_TABLE_RDHS_BED]))
        for cell in cfg.cells:
            stages.append(Stage(f"prepare/{cell}", lambda c=cell: self._prepare_cell(c), f"{cell} store",
                                settings={**self._prepare_settings("finetune"), "cell": cell}, depends=["inputs"],
                                outputs=[self.store(cell)]))
        if self.multiclass_enabled:
            stages.append(Stage("prepare/multiclass", self._prepare_multiclass, "multi-class store",
                                settings=self._prepare_settings("multiclass"), depends=["inputs"],
                                outputs=[self.store("multiclass")]))
        stages.append(Stage("train/pretrain", self._train_pretrain, "pre-training",
                            settings=self._train_settings("pretrain", first_fold), depends=["prepare/pretrain"],
                            outputs=[self.pretrained]))
        for cell in cfg.cells:
            for fold, run_dir in zip(cfg.folds, self.finetuned(cell)):
                stages.append(Stage(f"train/{cell}/finetune/fold{fold}",
                                    lambda c=cell, k=fold, d=run_dir: self._train_cell(c, "finetune", k, d),
                                    f"fine-tune {cell}, fold {fold}", settings=self._train_settings("finetune", fold),
                                    depends=[f"prepare/{cell}", "train/pretrain"], outputs=[run_dir]))
            for fold, run_dir in zip(cfg.folds, self.baselines(cell)):
                stages.append(Stage(f"train/{cell}/baseline/fold{fold}",
                                    lambda c=cell, k=fold, d=run_dir: self._train_cell(c, "baseline", k, d),
                                    f"binary baseline {cell}, fold {fold}",
                                    settings=self._train_settings("baseline", fold), depends=[f"prepare/{cell}"],
                                    outputs=[run_dir]))
            for fold, run_dir in zip(cfg.folds, self.kmer_models(cell)):
                stages.append(Stage(f"train/{cell}/kmer/fold{fold}",
                                    lambda c=cell, k=fold, d=run_dir: self._train_kmer(c, k, d),
                                    f"k-mer baseline {cell}, fold {fold}",
                                    settings={**cfg.flat("kmer"), "seed": cfg.seed, "fold": fold},
                                    depends=[f"prepare/{cell}"], outputs=[run_dir]))
        multiclass_runs = self.multiclass_runs() if self.multiclass_enabled else {}
        for name, (run_dir, fold) in multiclass_runs.items():
            stages.append(Stage(name, lambda d=run_dir, k=fold: self._train_multiclass(d, k),
                                "multi-class baseline" + (f", fold {fold}" if fold != "none" else ""),
                                settings={**self._train_settings("multiclass", fold),
                                          "multiclass.protocol": cfg.multiclass.protocol},
                                depends=["prepare/multiclass"], outputs=[run_dir]))
        # The precision enters the fingerprints of the scoring stages only when not the default, so
        # studies written before the key existed keep their results.
        precision = {} if cfg.precision == "float32" else {"precision": cfg.precision}
        for cell in cfg.cells:
            trained = [f"train/{cell}/{kind}/fold{k}" for kind in ("finetune", *self._baseline_stages)
                       for k in cfg.folds]
            stages.append(Stage(f"evaluate/{cell}", lambda c=cell: self._evaluate_cell(c), f"evaluate {cell}",
                                settings={**cfg.flat("evaluate"), **precision}, depends=[f"prepare/{cell}", "train/pretrain", *trained],
                                outputs=[self.out / "evaluation" / cell]))
        if self.multiclass_enabled:
            stages.append(Stage("evaluate/multiclass", self._evaluate_multiclass, "evaluate multi-class",
                                settings={**cfg.flat("evaluate"), **precision},
                                depends=["prepare/multiclass", *[f"prepare/{c}" for c in cfg.cells],
                                         *multiclass_runs],
                                outputs=[self.out / "evaluation" / "multiclass"]))
        if cfg.bootstrap.enabled:
            stages.append(Stage("bootstrap", self._bootstrap, "bootstrap of training-set size",
                                settings={**cfg.flat("bootstrap", exclude=("bootstrap.enabled",)),
                                          "evaluate.f1_average": cfg.evaluate.f1_average,
                                          **self._train_settings("finetune", first_fold)},
                                depends=[f"prepare/{cfg.bootstrap.cell}", "train/pretrain"],
                                outputs=[self.out / "bootstrap"]))
        if cfg.interpret.enabled:
            from . import interpretation

            unused = () if cfg.interpret.method == "deeplift_shap" else ("interpret.references",)
            settings = cfg.flat("interpret", exclude=("interpret.enabled", "interpret.cells", "interpret.compare",
                                                      "interpret.discover", *unused))
            if cfg.interpret.method == "deeplift_shap":
                settings["seed"] = cfg.seed  # seeds the references
            settings.update(precision)
            motifs = [cfg.resolve(cfg.interpret.motifs)] if cfg.interpret.motifs else []
            for cell in self.interpret_cells:
                stages.append(Stage(f"interpret/{cell}", lambda c=cell: interpretation.interpret_cell(self, c),
                                    f"attributions and TF ranking, {cell}", settings=settings, inputs=motifs,
                                    depends=["inputs", f"prepare/{cell}", f"train/{cell}/finetune/fold{first_fold}",
                                             "train/pretrain"],
                                    outputs=[self.out / "interpret" / cell]))
            pair = self.compare_pair
            if pair:
                stages.append(Stage("interpret/compare", lambda: interpretation.compare_cells(self, *pair),
                                    f"{pair[0]} vs {pair[1]}", settings={**settings, "interpret.compare": list(pair)},
                                    inputs=motifs,
                                    depends=[*[f"prepare/{c}" for c in pair],
                                             *[f"train/{c}/finetune/fold{first_fold}" for c in pair]],
                                    outputs=[self.out / "interpret" / "compare"]))
            if cfg.interpret.discover.enabled:
                stages += self._discover_stages(motifs)
        if cfg.variants.enabled:
            from ..datasets.synthetic import VARIANTS_VCF
            from . import variant_effects

            # the synthetic VCF is written by the inputs stage, identified when this stage starts
            vcf = [cfg.resolve(cfg.variants.vcf) if cfg.variants.vcf else self.out / "inputs" / VARIANTS_VCF]
            vcf += [cfg.resolve(cfg.interpret.motifs)] if cfg.interpret.motifs else []
            stages.append(Stage("variants", lambda: variant_effects.score_study_variants(self),
                                "variant effects of the fine-tuned models",
                                settings={**cfg.flat("variants", exclude=("variants.enabled",)),
                                          "prepare.length": cfg.prepare.length, "cells": list(cfg.cells),
                                          "seed": cfg.seed},
                                inputs=vcf,
                                depends=["inputs", *[f"train/{c}/finetune/fold{k}" for c in cfg.cells
                                                     for k in cfg.folds]],
                                outputs=[self.out / "variants"]))
        return stages

    def _discover_stages(self, motifs: list[str]) -> list[Stage]:
        """``discover/<cell>`` per interpreted cell and ``discover/compare`` (:mod:`.discovery`)."""
        from . import discovery

        discovery.check_available(self)
        cfg = self.config
        settings = {**cfg.flat("interpret.discover"), "interpret.motifs": cfg.interpret.motifs}
        stages = [Stage(f"discover/{cell}", lambda c=cell: discovery.discover_cell(self, c),
                        f"de novo motifs, {cell}", settings=settings, inputs=motifs,
                        depends=["inputs", f"interpret/{cell}"],
                        outputs=[self.out / "interpret" / cell / discovery.MOTIFS_FOLDER,
                                 self.out / "interpret" / cell / discovery.DE_NOVO_FILE])
                  for cell in self.interpret_cells]
        pair = self.compare_pair
        if pair and all(cell in self.interpret_cells for cell in pair):
            stages.append(Stage("discover/compare", lambda: discovery.discover_compare(self, *pair),
                                f"de novo motifs, {pair[0]} vs {pair[1]}",
                                settings={**settings, "interpret.compare": list(pair)}, inputs=motifs,
                                depends=["interpret/compare", *[f"discover/{c}" for c in pair]],
                                outputs=[self.out / "interpret" / "compare" / discovery.MOTIFS_FOLDER,
                                         self.out / "interpret" / "compare" / discovery.DE_NOVO_FILE]))
        return stages

    @property
    def _baseline_stages(self) -> list[str]:
        """The training-stage names of the baselines the config asks for."""
        return [{"binary": "baseline", "kmer": "kmer"}[name] for name in self.config.baselines]

    @property
    def interpret_cells(self) -> list[str]:
        return list(self.config.interpret.cells or [])

    @property
    def compare_pair(self) -> tuple[str, str] | None:
        pair = self.config.interpret.compare
        return (pair[0], pair[1]) if pair else None

    # what determines each stage's result (see .stages) -----------------------------------------
    def _input_settings(self) -> dict[str, Any]:
        if self.config.inputs.synthetic is None:
            return {}
        settings = self.config.flat("inputs.synthetic")
        if settings.get("inputs.synthetic.seed") is None:
            settings["inputs.synthetic.seed"] = self.config.seed
        return settings

    def _input_files(self) -> list[str]:
        return [self.config.resolve(p) for paths in self.config.inputs.files().values() for p in paths]

    def _prepare_settings(self, store: str) -> dict[str, Any]:
        """``prepare``'s shared keys, those of the store's own section, and the seed."""
        cfg = self.config
        own = {"pretrain": ("prepare.pretrain", "prepare.exclude_cell_positives"),
               "finetune": ("prepare.finetune", "prepare.cells_considered"),
               "multiclass": ("prepare.finetune", "prepare.cells_considered", "multiclass.prepare")}[store]
        shared = cfg.flat("prepare", exclude=("prepare.pretrain", "prepare.finetune", "prepare.cells_considered",
                                              "prepare.exclude_cell_positives"))
        return {**shared, **cfg.flat(*own), "seed": cfg.seed}

    def _train_settings(self, preset: str, fold: int) -> dict[str, Any]:
        """The preset's filled training keys (less those that only place the work) and the fold."""
        section = f"train.{preset}"
        settings = self.config.flat(section, exclude=tuple(f"{section}.{k}" for k in MACHINE_ONLY_TRAIN_KEYS))
        return {**settings, "fold": fold}

    # inputs and data --------------------------------------------------------------------------
    def _inputs(self) -> dict[str, Any]:
        cfg = self.config
        if cfg.inputs.synthetic is not None:
            from ..datasets.synthetic import make_synthetic

            options = cfg.inputs.synthetic.model_dump()
            if options["seed"] is None:
                options["seed"] = cfg.seed
            return make_synthetic(self.out / "inputs", overwrite=True, **options).as_dict()
        resolved: dict[str, Any] = {}
        for key, value in cfg.inputs.model_dump(exclude_none=True).items():
            resolved[key] = [cfg.resolve(v) for v in value] if isinstance(value, list) else cfg.resolve(value)
        return resolved

    def _label_source(self) -> dict[str, Any]:
        for key in LABEL_INPUTS:
            if self.inputs.get(key):
                return {key: self.inputs[key]}
        raise KeyError("no label input")

    def _common_prepare(self) -> dict[str, Any]:
        options = self.config.prepare.common()
        options["seed"] = self.config.seed
        return options

    def _prepare_pretrain(self) -> dict[str, Any]:
        from ..datasets.pretrain import prepare_pretrain

        options = self._common_prepare()
        options.update(_given(self.config.prepare.pretrain.model_dump(), keep_none=("neg_ratio",)))
        exclude = self.inputs.get("exclude_positives")
        if exclude is None and self.config.prepare.exclude_cell_positives:
            exclude = self._cell_positive_regions()
        positives = self.inputs.get("rdhs") or self._cell_table_regions()
        path = prepare_pretrain(self.inputs["genome"], positives, self.store("pretrain"),
                                exclude_positives=exclude, blacklist=self.inputs.get("blacklist"), overwrite=True,
                                **options)
        return {"store": str(path)}

    def _cell_positive_regions(self) -> str | None:
        """A BED of the windows open in any considered cell line (removed from pre-training)."""
        from ..genome import open_genome

        source = self._label_source()
        genome = open_genome(self.inputs["genome"])
        if "label_matrix" in source:
            from ..datasets.labels import read_label_matrix

            regions, opened, _ = read_label_matrix(source["label_matrix"], genome)
        elif "signal_matrix" in source:
            from ..datasets.labels import read_signal_matrix

            regions, opened, *_ = read_signal_matrix(source["signal_matrix"], genome)
        elif "cell_table" in source:
            from ..datasets.labels import read_cell_table

            regions, opened, _ = read_cell_table(source["cell_table"], genome)
        else:
            return None  # published label files: their positives are excluded by inputs.exclude_positives
        keep = np.asarray(opened).any(axis=1)
        path = self.out / "inputs" / POSITIVES_BED
        path.parent.mkdir(parents=True, exist_ok=True)
        regions.loc[keep, ["chrom", "start", "end"]].to_csv(path, sep="\t", header=False, index=False)
        return str(path)

    def _cell_table_regions(self) -> str:
        """A BED of every rDHS window of the cell table (the pre-training positives where
        ``inputs.rdhs`` is not given; the cell lines' own positives are then removed by
        ``prepare.exclude_cell_positives``)."""
        from ..datasets.labels import read_cell_table
        from ..genome import open_genome

        regions, _, _ = read_cell_table(self.inputs["cell_table"], open_genome(self.inputs["genome"]))
        path = self.out / "inputs" / CELL_TABLE_RDHS_BED
        path.parent.mkdir(parents=True, exist_ok=True)
        regions[["chrom", "start", "end"]].to_csv(path, sep="\t", header=False, index=False)
        return str(path)

    def _prepare_cell(self, cell: str) -> dict[str, Any]:
        from ..datasets.finetune import prepare_finetune

        options = self._common_prepare()
        options.update(_given(self.config.prepare.finetune.model_dump(), keep_none=("background",)))
        path = prepare_finetune(self.inputs["genome"], self.store(cell), cell=cell, cells=self._cells_considered(),
                                blacklist=self.inputs.get("blacklist"), overwrite=True, **self._label_source(),
                                **options)
        return {"store": str(path)}

    def _cells_considered(self):
        return self.config.prepare.cells_considered

    def _prepare_multiclass(self) -> dict[str, Any]:
        from ..datasets.finetune import prepare_finetune

        options = self._common_prepare()
        options.update(_given(self.config.prepare.finetune.model_dump(), keep_none=("background",)))
        options.update(self.config.multiclass.prepare.model_dump(exclude_none=True))
        path = prepare_finetune(self.inputs["genome"], self.store("multiclass"), task="multiclass",
                                cells=self._cells_considered(), blacklist=self.inputs.get("blacklist"),
                                overwrite=True, **self._label_source(), **options)
        return {"store": str(path)}

    # training ----------------------------------------------------------------------------------
    def train_options(self, preset: str) -> dict[str, Any]:
        options = self.config.train_options(preset)
        options.setdefault("device", self.config.device)
        options.setdefault("seed", self.config.seed)
        options.setdefault("quiet", True)
        return options

    def _train(self, preset: str, store: Path, out: Path, fold: int | str | None, init: Path | None = None,
               **defaults: Any) -> dict:
        from ..training import train_model

        options = {**defaults, **self.train_options(preset)}
        run = train_model(preset=preset, store=str(store), out=str(out), fold=fold,
                          init=None if init is None else str(init), resume=True, **options)
        return {"run": str(run)}

    def _train_pretrain(self) -> dict[str, Any]:
        return self._train("pretrain", self.store("pretrain"), self.pretrained, self.config.folds[0])

    def _train_cell(self, cell: str, preset: str, fold: int, run_dir: Path) -> dict[str, Any]:
        init = self.pretrained if preset == "finetune" else None
        return self._train(preset, self.store(cell), run_dir, fold, init)

    def _train_kmer(self, cell: str, fold: int, run_dir: Path) -> dict[str, Any]:
        from ..kmer import train_kmer

        k = self.config.kmer
        run = train_kmer(self.store(cell), run_dir, k=k.k, span=k.gapped, fold=fold, seed=self.config.seed,
                         class_weights=k.class_weights, resume=True)
        return {"run": str(run)}

    def _train_multiclass(self, run_dir: Path, fold: int | str) -> dict[str, Any]:
        # per fold: the binary models' protocol (best validation epoch) unless the config says otherwise
        extra = {} if fold == "none" else {"export": "best"}
        return self._train("multiclass", self.store("multiclass"), run_dir, fold, **extra)

    # evaluation --------------------------------------------------------------------------------
    def _evaluate_options(self) -> dict[str, Any]:
        options = self.config.evaluate.model_dump()
        options["device"] = self.config.device
        options["precision"] = self.config.precision
        options["echo"] = lambda *_: None
        return options

    def _evaluate_cell(self, cell: str) -> dict[str, Any]:
        from ..evaluation.evaluate import evaluate_models

        base = self.out / "evaluation" / cell
        results = {}
        for kind, models in self.compared_models(cell).items():
            metrics = evaluate_models(models, self.store(cell), "test", base / kind, overwrite=True,
                                      **self._evaluate_options())
            results[kind] = _headline(metrics)
        write_json(base / "headline.json", results)
        return results

    def _evaluate_multiclass(self) -> dict[str, Any]:
        """Per cell line, the AUROC of the multi-class model's probability of that line on the line's
        own binary test set (the paper's comparison), plus the 7-class evaluation."""
        from ..datasets.store import open_store
        from ..evaluation.evaluate import evaluate_models
        from ..evaluation.metrics import auprc, auroc, average_precision
        from ..inference import predict_codes
        from ..modelio import load_model

        models = [run_dir for run_dir, _ in self.multiclass_runs().values()]
        evaluate_models(models, self.store("multiclass"), "test", self.out / "evaluation" / "multiclass",
                        overwrite=True, **self._evaluate_options())
        loaded = [load_model(m) for m in models]
        classes = [c.lower() for c in loaded[0].config.classes]
        per_cell = {}
        for cell in self.config.cells:
            store = open_store(self.store(cell))
            rows = store.indices("test")
            codes = store.sequences[rows]
            probs = np.mean([predict_codes(m, codes, device=self.config.device, precision=self.config.precision)
                             for m in loaded], axis=0)
            column = classes.index(cell.lower())
            labels = np.asarray(store.labels[rows])
            score = probs[:, column]
            per_cell[cell] = {"auroc": auroc(labels, score), "auprc": auprc(labels, score),
                              "average_precision": average_precision(labels, score)}
        write_json(self.out / "evaluation" / "multiclass" / "per_cell.json", per_cell)
        return per_cell

    # bootstrap ---------------------------------------------------------------------------------
    def _bootstrap(self) -> dict[str, Any]:
        from ..bootstrap import run_bootstrap

        b = self.config.bootstrap
        cell = b.cell
        table = run_bootstrap(self.store(cell), self.pretrained, self.out / "bootstrap",
                              fractions=b.fractions, replicates=b.replicates,
                              seed=self.config.seed, fold=self.config.folds[0],
                              train_options={k: v for k, v in self.train_options("finetune").items()
                                             if k not in ("device", "seed")},
                              device=self.config.device, echo=self.echo,
                              f1_average=self.config.evaluate.f1_average)
        return {"cell": cell, "rows": len(table)}


def _given(options: dict[str, Any], keep_none: tuple[str, ...] = ()) -> dict[str, Any]:
    """A store section's options less the ``None`` ("as the shared key") ones, except ``keep_none``."""
    return {k: v for k, v in options.items() if v is not None or k in keep_none}


#: The test metrics summary.json keeps per model (:func:`~chromtransfer.evaluation.binary_metrics`):
#: ``auprc`` is the interpolated PR area and ``f1_overall`` the class-size weighted F1, as the paper.
HEADLINE_KEYS = ("auroc", "auprc", "average_precision", "f1_negative", "f1_positive", "f1_overall", "f1_macro",
                 "brier", "ece")


def _headline(document: dict[str, Any]) -> dict[str, Any]:
    """The ensemble's (or the single model's) test metrics from an ``evaluate_models`` result."""
    metrics = document["metrics"]
    chosen = metrics.get(document.get("ensemble") or "") or next(iter(metrics.values()))
    return {k: chosen[k] for k in HEADLINE_KEYS if k in chosen}


def run_study(config_path: str | Path, out: str | Path, echo: Callable[[str], None] = print,
              dry_run: bool = False) -> dict[str, Any]:
    """Load the config and run (or resume, or with ``dry_run`` only plan) the study into ``out``.

    Returns the summary (``{}`` in a dry run).
    """
    from ..artifacts import check_output_dir, claim_output_dir

    config = load_config(config_path)
    # A folder holding anything but a study is refused, after the config is known to be good; a
    # dry run only checks.
    (check_output_dir if dry_run else claim_output_dir)(out, "study", resume=True)
    return Study(config, out, echo, dry_run=dry_run).run()
