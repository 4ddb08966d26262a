"""The bootstrap analysis of training-set size (the paper's Table 1).

For every fraction f and replicate r, fine-tune the pre-trained model on a random subsample of the
whole training set, then evaluate on the whole test split. As the paper describes it ("the
original training data of 74673 input sequences were subsampled to target sizes of 1 %, ...") the
subsample is a share of all training rows (every fold), HepG2 1 % = 747 sequences. It is drawn
label-stratified, ``round(f * n)`` rows of each label: the paper's sizes are exactly those (1 % =
257 positives + 490 negatives = 747, 5 % = 1,283 + 2,450 = 3,733; one random draw of 3,733 rows
would not give 1,283 positives in every bootstrap, and rounding the total would give 3,734).
Fine-tuning is then "as above": the subsample's rows of the validation fold (``fold``, default 0)
are its validation set for early stopping and the LR schedule, the others its training rows, as
the whole training set is split for the full model (the validation share stays a third). The
subsample of (f, r) is drawn with the seed ``default_rng([seed, r, round(f * 1e6)])`` gives, and
training (initial head, dropout, batch order) is seeded the same way, so every fraction and
replicate has its own draw and adding a fraction changes no other.

Results are kept per replicate (``OUT/f<percent>/rep<r>/metrics.json``): a killed analysis resumes
replicate by replicate, and a replicate killed mid-training resumes from its own checkpoint.

Outputs: ``OUT/bootstrap_replicates.tsv`` (one row per replicate), ``OUT/bootstrap_table.tsv``
(Table 1: percent, subsample size, mean and sd of negative, positive and overall test F1) and
``OUT/bootstrap_f1.png``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .artifacts import check_output_dir, claim_output_dir, write_json
from .datasets.store import open_store
from .errors import InputError
from .evaluation.metrics import DEFAULT_F1_AVERAGE, binary_metrics

PAPER_FRACTIONS = (0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 0.75)
BOOTSTRAP_KIND = "bootstrap"


def replicate_dir(out: Path, fraction: float, replicate: int) -> Path:
    return Path(out) / f"f{fraction * 100:g}" / f"rep{replicate}"


def replicate_seed(seed: int, fraction: float, replicate: int) -> int:
    """The seed of one bootstrap replicate: its subsample and its training (a 32-bit integer)."""
    state = np.random.default_rng([int(seed), int(replicate), int(round(fraction * 1e6))])
    return int(state.integers(0, 2**31 - 1))


def run_bootstrap(
    store_path: str | os.PathLike,
    init: str | os.PathLike | None,
    out: str | os.PathLike,
    *,
    preset: str = "finetune",
    fractions: Sequence[float] = PAPER_FRACTIONS,
    replicates: int = 10,
    seed: int = 0,
    fold: int | None = 0,
    include_full: bool = False,
    train_options: dict[str, Any] | None = None,
    device: str = "auto",
    batch_size: int = 1024,
    f1_average: str = DEFAULT_F1_AVERAGE,
    echo: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Run (or resume) the analysis; returns the Table-1 summary (one row per fraction).

    Args:
        store_path: binary fine-tuning store of one cell line.
        init: the pre-trained model (run or model directory); ``None`` for ``preset="kmer"``.
        preset: ``finetune`` (the paper's) or ``kmer``: the composition baseline
            (:func:`chromtransfer.kmer.train_kmer`, ``train_options`` its keyword arguments) on
            the same subsamples, to see how much data each needs.
        fractions: shares of the whole training set, each in (0, 1].
        replicates: subsamples per fraction.
        fold: the validation fold of every subsample (early stopping).
        include_full: also fine-tune once on all training rows (fraction 1.0, one replicate).
        train_options: settings passed on to :func:`chromtransfer.training.train_model`
            (``max_epochs``, ``lr``, ``width``, ...); the preset is ``finetune``.
        f1_average: how ``f1_overall`` combines the per-class F1 (``weighted``, the paper's, or
            ``macro``; :func:`~chromtransfer.evaluation.metrics.overall_f1`). Both are kept
            per replicate (``f1_overall`` and ``f1_macro``).

    ``out`` is claimed as a bootstrap folder (:func:`~chromtransfer.artifacts.claim_output_dir`):
    an earlier analysis there is continued, a folder holding anything else is refused. Bad
    ``fractions`` or ``replicates`` raise :class:`~chromtransfer.errors.InputError` before any
    training.
    """
    from .inference import predict_codes
    from .kmer import train_kmer
    from .modelio import load_model
    from .training import train_model
    from .training.rundir import is_complete, read_run

    fractions = sorted({float(f) for f in fractions})
    bad = [f for f in fractions if not 0 < f <= 1]
    if bad or not fractions:
        raise InputError("--fractions", f"every fraction must lie in (0, 1], not {', '.join(f'{f:g}' for f in bad)}"
                         if bad else "no fraction given", fix="give shares of the training rows, e.g. 0.05,0.1,0.5")
    if int(replicates) != replicates or replicates < 1:
        raise InputError("--replicates", f"must be a whole number of at least 1, not {replicates}",
                         fix="e.g. --replicates 10, as in the paper")
    if preset not in ("finetune", "kmer"):
        raise InputError("--preset", f"the bootstrap trains finetune or kmer models, not {preset}",
                         fix="give --preset finetune (with --init) or --preset kmer")
    if preset == "finetune" and init is None:
        raise InputError("--init", "fine-tuning needs the pre-trained model", fix="give --init RUN")
    check_output_dir(out, BOOTSTRAP_KIND, resume=True)
    store = open_store(store_path)
    if store.task != "binary":
        raise InputError(store_path, "the bootstrap analysis needs a binary fine-tuning store",
                         fix="build one with 'chromtransfer prepare finetune'")
    out = claim_output_dir(out, BOOTSTRAP_KIND, resume=True)
    plan = [(f, r) for f in fractions for r in range(replicates)]
    if include_full and 1.0 not in fractions:
        plan.append((1.0, 0))
    test_rows = store.indices("test")
    test_labels = np.asarray(store.labels[test_rows])
    rows = []
    for i, (fraction, replicate) in enumerate(plan, 1):
        run_dir = replicate_dir(out, fraction, replicate)
        result_path = run_dir / "metrics.json"
        if result_path.exists():
            row = json.loads(result_path.read_text())
            if row.get("f1_average") == f1_average:
                rows.append(row)
                continue
        echo(f"bootstrap {i}/{len(plan)}: {fraction * 100:g} % of the training set, replicate {replicate}")
        if is_complete(run_dir) and read_run(run_dir).get("settings", {}).get("subsample_scope") != "all":
            from .errors import ArtifactError

            raise ArtifactError(f"{run_dir}: a replicate trained on a share of the fold's training rows only "
                                "(an earlier version of the analysis); use a new --out")
        if not is_complete(run_dir) and preset == "kmer":
            run_seed = replicate_seed(seed, fraction, replicate)
            train_kmer(store_path, run_dir, fold=fold, seed=run_seed, train_fraction=fraction,
                       subsample_seed=run_seed, **dict(train_options or {}))
        elif not is_complete(run_dir):
            options = dict(train_options or {})
            options.setdefault("quiet", True)
            run_seed = replicate_seed(seed, fraction, replicate)
            train_model(preset="finetune", store=str(store_path), out=str(run_dir), init=str(init),
                        fold=fold, seed=run_seed, device=device, train_fraction=fraction,
                        subsample_seed=run_seed, subsample_scope="all",
                        resume=(run_dir / "checkpoints" / "last.ckpt").exists(), **options)
        model = load_model(run_dir, device="cpu")
        scores = predict_codes(model, store.sequences[test_rows], batch_size=batch_size, device=device)[:, 0]
        metrics = binary_metrics(test_labels, scores, f1_average=f1_average)
        run = read_run(run_dir)
        row = {"fraction": fraction, "percent": fraction * 100, "replicate": replicate,
               "n_sequences": int(run.get("n_train", 0)) + int(run.get("n_val", 0)),
               "n_train": run.get("n_train"), "n_val": run.get("n_val"),
               "f1_average": f1_average, **metrics}
        write_json(result_path, row)
        rows.append(row)
    replicates_table = pd.DataFrame(rows)
    replicates_table.to_csv(out / "bootstrap_replicates.tsv", sep="\t", index=False)
    table = summarise(replicates_table)
    table.to_csv(out / "bootstrap_table.tsv", sep="\t", index=False)
    from .plots import bootstrap_f1

    bootstrap_f1(replicates_table, out / "bootstrap_f1.png")
    return table


def summarise(replicates_table: pd.DataFrame) -> pd.DataFrame:
    """Table 1: per fraction, the subsample size (``n_sequences``, training plus validation rows,
    the paper's "747 sequences"), its training rows and mean / sd (ddof 1) of the test F1 scores."""
    grouped = replicates_table.groupby("percent", sort=True)
    table = pd.DataFrame({"replicates": grouped.size()})
    for column in ("n_sequences", "n_train"):
        if column in replicates_table:
            table[column] = grouped[column].median()
    for metric in ("f1_negative", "f1_positive", "f1_overall", "f1_macro", "auroc"):
        if metric not in replicates_table:
            continue
        table[f"{metric}_mean"] = grouped[metric].mean()
        table[f"{metric}_sd"] = grouped[metric].std(ddof=1)
    table = table.reset_index()
    table.insert(0, "fraction", table["percent"] / 100)
    return table
