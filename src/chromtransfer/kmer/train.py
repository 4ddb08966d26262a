"""Train the composition baseline on a dataset store into a run folder.

The rows are those a network of the store would use (:func:`chromtransfer.training.data.split_rows`:
the validation fold, or a random 10 % of the training rows for a store without folds), the
class weights the network's (``balanced`` by default, scikit-learn's), and the L2 strength ``C``
of the logistic regression the one of :data:`C_GRID` with the lowest validation log-loss
(unweighted, as the networks' ``val_loss``); the model is then the fit on the training rows with
that ``C``. Features are standardised on the training rows.

The run folder is a training run (:mod:`chromtransfer.training.rundir`): ``run.json`` (status
``complete``, settings, rows, the validation loss of every ``C``), ``model.json`` and
``model.safetensors`` (:mod:`.model`), claimed with :func:`chromtransfer.artifacts.claim_output_dir`.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import check_output_dir, claim_output_dir, file_sha256, provenance, write_json
from ..datasets.store import open_store
from ..errors import ArtifactError, ChromTransferError
from .features import KmerSpec, feature_matrix

log = logging.getLogger("chromtransfer.kmer")

#: Candidate inverse L2 strengths (scikit-learn's ``C``), chosen on the validation rows.
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
#: The k of ``chromtransfer train --preset kmer`` when none is given (136 canonical 4-mers).
DEFAULT_K = 4
PRESET = "kmer"


def train_kmer(store: str | Path, out: str | Path, *, k: int = DEFAULT_K, span: int | None = None,
               fold: int | str | None = None, seed: int = 0, class_weights: str = "balanced",
               train_fraction: float = 1.0, subsample_seed: int | None = None,
               overwrite: bool = False, resume: bool = False, max_iter: int = 2000) -> Path:
    """Fit the k-mer logistic regression on ``store`` and save it into the run folder ``out``.

    Args:
        store: a binary dataset store.
        out: the run folder (created; a finished run is returned as is with ``resume``, replaced
            only with ``overwrite``).
        k, span: the features (:class:`~chromtransfer.kmer.features.KmerSpec`; ``span > k`` for
            gapped k-mers).
        fold: validation fold (``None``: fold 0, or a random 10 % of the training rows for a store
            without folds); ``"all"`` is not offered (one fit takes seconds: train a fold each).
        seed: seeds the random validation rows (stores without folds).
        class_weights: ``"balanced"`` or ``"none"``, as the networks' ``--class-weights``.
        train_fraction, subsample_seed: fit on a label-stratified share of the whole training set
            (validation fold included, then split as the whole set is), as the networks'
            ``subsample_scope="all"`` (the bootstrap of training-set size).
        max_iter: L-BFGS iterations per fit.

    Returns:
        ``out``.
    """
    from ..training.data import balanced_class_weights, split_rows, stratified_subsample
    from ..training.engine import _concrete_fold
    from ..training.rundir import RUN_FILE, RUN_FORMAT, RUN_KIND, is_complete, utc_now

    try:
        spec = KmerSpec(int(k), None if span is None or int(span) == int(k) else int(span))
    except ValueError as exc:
        raise ChromTransferError(f"--k/--gapped: {exc}") from exc
    if class_weights not in ("balanced", "none"):
        raise ChromTransferError(f"--class-weights must be balanced or none, not {class_weights!r}")
    if str(fold).lower() == "all":
        raise ChromTransferError("--fold all is for the networks; train the k-mer model once per --fold")
    if resume and overwrite:
        raise ChromTransferError("--resume continues the run in --out, --overwrite starts it again: give one")
    out = Path(out)
    check_output_dir(out, RUN_KIND, overwrite=overwrite, resume=True)
    if is_complete(out) and not overwrite:
        if resume:
            return out
        raise ArtifactError(f"{out}: already holds a finished model; add --overwrite to train it again "
                            "(only the run's own files are replaced), or choose another --out")
    data = open_store(store)
    if data.task != "binary" or len(data.classes) != 2:
        raise ArtifactError(f"{data.path}: a {data.task} store; the k-mer baseline needs a binary store "
                            "(build it with 'chromtransfer prepare finetune')")
    concrete = _concrete_fold(data, fold)
    validation = "fold" if concrete is not None else ("test" if str(fold).lower() == "none" else "random")
    if validation == "test":
        raise ChromTransferError("--fold none would choose C on the test rows; give a fold (or none for a "
                                 "store without folds)")
    if not 0 < float(train_fraction) <= 1:
        raise ChromTransferError(f"--train-fraction must lie in (0, 1], not {train_fraction}")
    train_rows, val_rows = split_rows(data, concrete, seed, validation)
    labels = np.asarray(data.labels[:], dtype=np.int64)
    subsample_seed = int(seed if subsample_seed is None else subsample_seed)
    if train_fraction < 1:
        everything = data.indices("train")
        kept = stratified_subsample(everything, labels[everything], float(train_fraction), subsample_seed)
        train_rows, val_rows = train_rows[np.isin(train_rows, kept)], val_rows[np.isin(val_rows, kept)]
        if len(val_rows) == 0:
            raise ArtifactError(f"{data.path}: the {train_fraction:g} share of the training set holds no "
                                "validation row; use a larger fraction or a larger store")
    y_train, y_val = labels[train_rows], labels[val_rows]
    if len(np.unique(y_train)) < 2:
        raise ArtifactError(f"{data.path}: the training rows hold a single class; a classifier needs two")

    started = time.perf_counter()
    x_train = feature_matrix(data.sequences[train_rows], spec)
    x_val = feature_matrix(data.sequences[val_rows], spec)
    weights = balanced_class_weights(y_train, 2) if class_weights == "balanced" else np.ones(2)
    fit = _fit(x_train, y_train, x_val, y_val, weights, max_iter)
    seconds = time.perf_counter() - started

    claim_output_dir(out, RUN_KIND, overwrite=overwrite, resume=True)
    for name in (RUN_FILE, "model.json", "model.safetensors"):
        if overwrite:
            (out / name).unlink(missing_ok=True)
    import torch

    from ..modelio import save_model
    from .model import KmerConfig, KmerModel

    config = KmerConfig(k=spec.k, span=spec.span, n_features=spec.n_features, C=fit["C"], classes=list(data.classes))
    model = KmerModel(config, *(torch.from_numpy(np.asarray(fit[name], dtype=np.float64))
                                for name in ("mean", "scale", "coef", "intercept")))
    settings = {"preset": PRESET, "k": spec.k, "span": spec.span, "fold": concrete, "seed": int(seed),
                "class_weights": class_weights, "c_grid": list(C_GRID), "max_iter": int(max_iter),
                "validation": validation, "train_fraction": float(train_fraction),
                "subsample_seed": subsample_seed, "subsample_scope": "all"}
    result = {"C": fit["C"], "best_val_loss": fit["val_loss"], "best_val_auroc": fit["val_auroc"],
              "val_loss_by_C": fit["val_loss_by_C"], "train_seconds": round(seconds, 3),
              "n_features": spec.n_features, "top_features": _top_features(spec, fit["coef"] / fit["scale"])}
    store_record = {"path": str(data.path.resolve()), "manifest_sha256": file_sha256(data.path / "manifest.json"),
                    "rows": data.n_rows, "length": data.length, "task": data.task, "classes": data.classes}
    data_record = {"train_rows": int(len(train_rows)), "val_rows": int(len(val_rows)),
                   "validation": f"store fold {concrete}" if concrete is not None
                   else f"random 10% of the training rows (seed {seed})",
                   "train_counts": {c: int((y_train == i).sum()) for i, c in enumerate(data.classes)},
                   "class_weights": weights.tolist()}
    save_model(model, out, preset=PRESET, kind="kmer",
               training={"run": str(out.resolve()), "settings": settings, "store": store_record,
                         "data": data_record, "result": result},
               provenance=provenance(seed=int(seed)))
    write_json(out / RUN_FILE, {"format": RUN_FORMAT, "format_version": 1, "status": "complete", "preset": PRESET,
                                "seed": int(seed), "settings": settings, "n_train": int(len(train_rows)),
                                "n_val": int(len(val_rows)), "store": store_record, "data": data_record,
                                "result": result, "finished_utc": utc_now(), "provenance": provenance()})
    log.info("%s: k-mer model, C %g, val AUROC %.4f", out, fit["C"], fit["val_auroc"])
    return out


def _fit(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
         class_weights: np.ndarray, max_iter: int) -> dict[str, Any]:
    """Standardise, fit one L2 logistic regression per ``C`` of :data:`C_GRID`, keep the one with
    the lowest validation log-loss (ties: the smaller ``C``)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss, roc_auc_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    z_train = (x_train - scaler.mean_) / scale
    z_val = (x_val - scaler.mean_) / scale
    weights = {0: float(class_weights[0]), 1: float(class_weights[1])}
    losses: dict[str, float] = {}
    best: tuple[float, float, Any] | None = None
    for c in C_GRID:
        model = LogisticRegression(C=c, class_weight=weights, max_iter=max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(z_train, y_train)
        p = model.predict_proba(z_val)[:, 1]
        loss = float(log_loss(y_val, p, labels=[0, 1]))
        losses[f"{c:g}"] = loss
        if best is None or loss < best[0]:
            best = (loss, c, model)
    loss, c, model = best
    p = model.predict_proba(z_val)[:, 1]
    val_auroc = float(roc_auc_score(y_val, p)) if len(np.unique(y_val)) == 2 else float("nan")
    return {"C": float(c), "val_loss": loss, "val_auroc": val_auroc, "val_loss_by_C": losses,
            "mean": scaler.mean_, "scale": scale, "coef": model.coef_[0], "intercept": model.intercept_}


def _top_features(spec: KmerSpec, weights: np.ndarray, n: int = 10) -> dict[str, list[list[Any]]]:
    """The ``n`` features with the largest positive and negative weights per unit of frequency."""
    names = spec.names()
    order = np.argsort(weights)
    return {"positive": [[names[i], round(float(weights[i]), 4)] for i in order[::-1][:n]],
            "negative": [[names[i], round(float(weights[i]), 4)] for i in order[:n]]}
