"""Evaluation metrics, the ``metrics`` and ``evaluate`` commands, and the figures."""
from __future__ import annotations

import gzip
import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from chromtransfer.cli import main
from chromtransfer.evaluation import (
    DegenerateMetricWarning,
    auprc,
    average_precision,
    binary_metrics,
    calibration_points,
    expected_calibration_error,
    multiclass_metrics,
    pr_points,
    roc_points,
)
from chromtransfer.evaluation.metrics import BINARY_KEYS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# y = 0 0 1 1 with scores 0.15 0.45 0.35 0.85: one of the four positive-negative pairs is
# misordered; at threshold 0.5 only the last row is predicted positive.
Y = np.array([0, 0, 1, 1])
S = np.array([0.15, 0.45, 0.35, 0.85])


def test_binary_metrics_hand_computed():
    m = binary_metrics(Y, S)
    assert tuple(m) == BINARY_KEYS
    assert m["auroc"] == pytest.approx(3 / 4)
    # precision 1 at recall 1/2, 2/3 at 1
    assert m["average_precision"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # interpolated: precision 1 up to (TP 1, FP 0); (TP 1, FP 1) adds no area; from there to
    # (TP 2, FP 1) the precision is (1 + x) / (2 + x), x in [0, 1], integral 1 - log(1.5)
    assert m["auprc"] == pytest.approx((1 + 1 - math.log(1.5)) / 2)
    assert m["f1_positive"] == pytest.approx(2 / 3)  # TP 1, FP 0, FN 1
    assert m["f1_negative"] == pytest.approx(4 / 5)  # TN 2, FN 1 (a missed positive), no FP
    assert m["f1_macro"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert m["f1_overall"] == pytest.approx((2 / 3 + 4 / 5) / 2)  # two rows of each class
    assert m["precision"] == pytest.approx(1.0) and m["recall"] == pytest.approx(0.5)
    assert m["brier"] == pytest.approx((0.15**2 + 0.45**2 + 0.65**2 + 0.15**2) / 4)
    assert m["ece"] == pytest.approx((0.15 + 0.45 + 0.65 + 0.15) / 4)  # every row alone in its bin
    assert (m["n"], m["n_positive"]) == (4, 2)


def test_threshold_and_weighted_f1():
    y = np.array([0, 0, 0, 1])
    s = np.array([0.1, 0.2, 0.6, 0.7])
    m = binary_metrics(y, s, threshold=0.5)
    assert m["f1_positive"] == pytest.approx(2 / 3) and m["f1_negative"] == pytest.approx(0.8)
    # the default overall F1 is the class-size weighted one; the macro mean is kept beside it
    assert m["f1_overall"] == pytest.approx((3 * 0.8 + 1 * 2 / 3) / 4)
    assert m["f1_macro"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert binary_metrics(y, s, f1_average="weighted")["f1_overall"] == m["f1_overall"]
    assert binary_metrics(y, s, f1_average="macro")["f1_overall"] == m["f1_macro"]
    assert binary_metrics(y, s, threshold=0.65)["f1_positive"] == pytest.approx(1.0)
    # exactly at the threshold counts as negative
    assert binary_metrics([0, 1], [0.5, 0.9])["f1_negative"] == pytest.approx(1.0)


def test_expected_calibration_error_known_cases():
    y = np.r_[np.ones(5), np.zeros(5), np.ones(10)]
    p = np.r_[np.full(10, 0.25), np.full(10, 0.95)]
    # bin (0.2, 0.3]: mean 0.25, observed 0.5; bin (0.9, 1]: mean 0.95, observed 1.0
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.25 + 0.5 * 0.05)
    assert expected_calibration_error(y, p, n_bins=1) == pytest.approx(abs(y.mean() - p.mean()))
    calibrated = np.r_[np.ones(7), np.zeros(3)]
    assert expected_calibration_error(calibrated, np.full(10, 0.7)) == pytest.approx(0.0)
    points = calibration_points(y, p)
    assert points["count"].tolist() == [10, 10]
    assert points["fraction_positive"].tolist() == pytest.approx([0.5, 1.0])
    assert points["mean_predicted"].tolist() == pytest.approx([0.25, 0.95])
    assert points["bin_lower"].tolist() == pytest.approx([0.2, 0.9])


def test_calibration_bins_follow_scikit_learn():
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(3)
    p = np.r_[rng.random(500), [0.0, 0.1, 0.5, 1.0]]  # include bin edges
    y = (rng.random(p.size) < p).astype(int)
    fraction, mean = calibration_curve(y, p, n_bins=7)
    points = calibration_points(y, p, n_bins=7)
    np.testing.assert_allclose(points["fraction_positive"], fraction)
    np.testing.assert_allclose(points["mean_predicted"], mean)
    assert points["count"].sum() == p.size
    gaps = np.abs(points["fraction_positive"] - points["mean_predicted"]) * points["count"] / p.size
    assert expected_calibration_error(y, p, n_bins=7) == pytest.approx(gaps.sum())


def test_auprc_interpolated_hand_computed():
    # points (TP, FP): (1, 0), (1, 1), (2, 1); from 1 to 2 TP precision is x / (x + 1)
    assert auprc([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx(1 - math.log(1.5) / 2)
    # a tie of one positive and one negative: precision 1/2 all along
    assert auprc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert auprc([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(1.0)
    # a tie at the top (1 positive, 1 negative) is one segment from (0, 0): precision 1/2, then
    # from (TP 1, FP 1) to (TP 2, FP 1) precision (1 + x) / (2 + x), integral 1 - log(1.5)
    assert auprc([1, 0, 1], [0.9, 0.9, 0.1]) == pytest.approx((0.5 + 1 - math.log(1.5)) / 2)
    # order of the rows within a tie does not matter
    assert auprc([0, 1, 1], [0.9, 0.9, 0.1]) == auprc([1, 0, 1], [0.9, 0.9, 0.1])
    # average precision is the step-wise area: 1/2 at recall 1/2, then 2/3 at recall 1
    assert average_precision([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_degenerate_inputs_give_nan_with_a_note():
    with pytest.warns(DegenerateMetricWarning, match="one class"):
        m = binary_metrics([1, 1, 1], [0.6, 0.7, 0.9])
    assert math.isnan(m["auroc"]) and math.isnan(m["auprc"]) and math.isnan(m["average_precision"])
    assert m["f1_positive"] == 1.0 and math.isnan(m["f1_negative"])  # no negative, none predicted
    assert m["f1_overall"] == 1.0  # weighted: a class without rows weighs nothing
    assert math.isnan(m["f1_macro"])
    with pytest.warns(DegenerateMetricWarning):
        assert math.isnan(binary_metrics([1, 1, 1], [0.6, 0.7, 0.9], f1_average="macro")["f1_overall"])
    assert m["brier"] == pytest.approx((0.16 + 0.09 + 0.01) / 3)
    with pytest.warns(DegenerateMetricWarning):
        empty = binary_metrics([], [])
    assert empty["n"] == 0 and math.isnan(empty["auroc"])
    with pytest.warns(DegenerateMetricWarning, match=r"\[0, 1\]"):
        logits = binary_metrics([0, 1, 0, 1], [-2.0, 3.0, 0.1, 0.7])
    assert logits["auroc"] == 1.0 and math.isnan(logits["brier"]) and math.isnan(logits["ece"])
    with pytest.warns(DegenerateMetricWarning):
        assert roc_points([0, 0], [0.1, 0.2]).empty and pr_points([1, 1], [0.1, 0.2]).empty
    with pytest.raises(ValueError, match="0 or 1"):
        binary_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        binary_metrics([0, 1], [0.1, float("nan")])


def test_curves_match_metrics():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    from sklearn.metrics import auc

    roc = roc_points(y, s)
    assert auc(roc["fpr"], roc["tpr"]) == pytest.approx(binary_metrics(y, s)["auroc"])
    pr = pr_points(y, s)
    assert pr["recall"].iloc[0] == 0 and pr["recall"].iloc[-1] == 1
    ap = np.sum(np.diff(pr["recall"]) * pr["precision"].to_numpy()[1:])
    assert ap == pytest.approx(binary_metrics(y, s)["average_precision"])


def test_multiclass_metrics():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = np.tile([0, 1, 2], 20)
    logits = rng.normal(size=(60, 3)) + np.eye(3)[y] * 1.5
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    m = multiclass_metrics(y, prob, ["A", "B", "C"])
    assert m["auroc_macro"] == pytest.approx(roc_auc_score(y, prob, multi_class="ovr", average="macro"))
    for k, name in enumerate("ABC"):
        assert m["per_class"][name]["auroc"] == pytest.approx(roc_auc_score(y == k, prob[:, k]))
        assert m["per_class"][name]["n_positive"] == 20
        assert m["per_class"][name]["auprc"] == pytest.approx(auprc(y == k, prob[:, k]))
        assert m["per_class"][name]["average_precision"] == pytest.approx(average_precision(y == k, prob[:, k]))
    assert m["auprc_macro"] == pytest.approx(np.mean([m["per_class"][c]["auprc"] for c in "ABC"]))
    assert m["accuracy"] == pytest.approx(np.mean(prob.argmax(1) == y))
    with pytest.warns(DegenerateMetricWarning, match="'C'"):
        separable = multiclass_metrics([0, 1, 0, 1], np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1],
                                                               [0.7, 0.2, 0.1], [0.2, 0.7, 0.1]]), ["A", "B", "C"])
    assert math.isnan(separable["per_class"]["C"]["auroc"])
    assert separable["auroc_macro"] == 1.0 and separable["accuracy"] == 1.0
    with pytest.raises(ValueError, match="shape"):
        multiclass_metrics([0, 1], np.ones((2, 2)) / 2, ["A", "B", "C"])


# ---------------------------------------------------------------------------------- metrics CLI

def _run(capsys, *args):
    status = main(["metrics", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _prediction_table(rng, n=60):
    cell = np.repeat(["HepG2", "K562", "Solo"], n // 3)
    truth = np.where(rng.random(n) < 0.4, "open", "closed")
    truth[cell == "Solo"] = "closed"  # one class only: undefined AUROC
    prob = np.clip((truth == "open") * 0.35 + rng.random(n) * 0.65, 0, 1)
    return pd.DataFrame({"sample": [f"r{i}" for i in range(n)], "truth": truth, "prob": prob, "cell": cell})


def test_metrics_cli_groups_and_string_labels(tmp_path, capsys):
    table = _prediction_table(np.random.default_rng(2))
    path = tmp_path / "preds.tsv.gz"
    with gzip.open(path, "wt") as handle:
        table.to_csv(handle, sep="\t", index=False)
    status, out, err = _run(capsys, path, "--score", "prob", "--label", "truth", "--positive-label", "open",
                            "--group", "cell")
    assert status == 0, err
    result = pd.read_csv(pd.io.common.StringIO(out), sep="\t")
    assert result["cell"].tolist() == ["HepG2", "K562", "Solo"]
    for _, row in result.iloc[:2].iterrows():
        part = table[table["cell"] == row["cell"]]
        expected = binary_metrics((part["truth"] == "open").to_numpy(), part["prob"].to_numpy())
        for key in BINARY_KEYS:
            assert row[key] == pytest.approx(expected[key]), key
    assert math.isnan(result.loc[2, "auroc"]) and result.loc[2, "n_positive"] == 0
    assert "note: Solo:" in err and "one class" in err


def test_metrics_cli_csv_no_header_and_boolean_labels(tmp_path, capsys):
    table = _prediction_table(np.random.default_rng(4))
    table["truth"] = np.where(table["truth"] == "open", "True", "False")
    path = tmp_path / "preds.csv"
    table[["prob", "truth"]].to_csv(path, index=False, header=False)
    status, out, err = _run(capsys, path, "--no-header", "--columns", "p,t", "--score", "p", "--label", "t")
    assert status == 0, err
    row = pd.read_csv(pd.io.common.StringIO(out), sep="\t").iloc[0]
    expected = binary_metrics((table["truth"] == "True").to_numpy(), table["prob"].to_numpy())
    assert row["auroc"] == pytest.approx(expected["auroc"]) and row["n"] == len(table)
    out_file = tmp_path / "m.tsv"
    status, _, _ = _run(capsys, path, "--no-header", "--score", "1", "--label", "2", "--out", out_file)
    assert status == 0 and pd.read_csv(out_file, sep="\t")["auroc"].iloc[0] == pytest.approx(expected["auroc"])


def test_metrics_cli_errors_name_file_column_and_line(tmp_path, capsys):
    path = tmp_path / "preds.tsv"
    path.write_text("id\tprob\tlabel\na\t0.2\t0\nb\t0.9\t1\nc\tabc\t1\nd\t0.4\tmaybe\n")
    status, out, err = _run(capsys, path, "--score", "probability", "--label", "label")
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and f"{path}" in err and "'probability'" in err and "prob" in err
    status, _, err = _run(capsys, path, "--score", "prob", "--label", "label")
    assert status == 2 and f"{path}:4:" in err and "'prob'" in err and "'abc'" in err
    path.write_text("id\tprob\tlabel\na\t0.2\t0\nb\t0.9\t1\nc\t0.5\t1\nd\t0.4\tmaybe\n")
    status, _, err = _run(capsys, path, "--score", "prob", "--label", "label")
    assert status == 2 and f"{path}:5:" in err and "'label'" in err and "--positive-label" in err
    status, _, err = _run(capsys, path, "--score", "prob", "--label", "label", "--positive-label", "yes")
    assert status == 2 and "'yes'" in err
    status, _, err = _run(capsys, tmp_path / "missing.tsv", "--score", "prob", "--label", "label")
    assert status == 2 and "missing.tsv" in err


# ------------------------------------------------------------------------------ evaluate + plots

@pytest.fixture(scope="module")
def tiny_binary(tmp_path_factory):
    """A 48-row store of 80 bp sequences (24 test rows) and two narrow fine-tuning models."""
    import torch

    from chromtransfer.datasets.store import write_store
    from chromtransfer.modelio import save_model
    from chromtransfer.models import build_model

    root = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(5)
    n = 48
    split = np.r_[np.zeros(24), np.ones(24)]
    regions = pd.DataFrame({"name": [f"win{i}" for i in range(n)]})
    write_store(root / "store", rng.integers(0, 5, (n, 80), dtype=np.uint8), np.tile([0, 1, 0], 16), split,
                np.where(split == 0, np.arange(n) % 3, -1), regions)
    models = []
    for fold in range(2):
        torch.manual_seed(fold)
        models.append(save_model(build_model("finetune", width=0.25), root / f"fold{fold}" / "run"))
    return root, models


def _is_png(path) -> bool:
    from matplotlib.image import imread

    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and imread(path).shape[0] > 100


def test_evaluate_two_models_with_ensemble(tiny_binary, capsys):
    root, models = tiny_binary
    out = root / "eval"
    status = main(["evaluate", "--model", str(models[0]), "--model", str(models[1]), "--data",
                   str(root / "store"), "--batch-size", "7", "--device", "cpu", "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "ensemble" in captured.out
    long = pd.read_csv(out / "predictions.tsv", sep="\t")
    assert long.columns.tolist() == ["name", "label", "model", "score"]  # predict's score column, plus model
    assert long["model"].unique().tolist() == ["fold0/run", "fold1/run", "ensemble"]
    predictions = long.pivot(index="name", columns="model", values="score").reindex(
        [f"win{i}" for i in range(24, 48)]).reset_index()
    predictions["label"] = long.drop_duplicates("name").set_index("name").loc[predictions["name"], "label"].to_numpy()
    assert long.loc[long["model"] == "ensemble", "name"].tolist() == [f"win{i}" for i in range(24, 48)]
    assert predictions["label"].tolist() == np.tile([0, 1, 0], 16)[24:].tolist()
    np.testing.assert_allclose(predictions["ensemble"], predictions[["fold0/run", "fold1/run"]].mean(axis=1),
                               rtol=1e-6)
    assert 0 < predictions["fold0/run"].min() and predictions["fold0/run"].max() < 1
    metrics = pd.read_csv(out / "metrics.tsv", sep="\t")
    assert metrics["model"].tolist() == ["fold0/run", "fold1/run", "ensemble"]
    for _, row in metrics.iterrows():
        expected = binary_metrics(predictions["label"], predictions[row["model"]])
        assert row["auroc"] == pytest.approx(expected["auroc"], abs=1e-9)
        assert row["f1_overall"] == pytest.approx(expected["f1_overall"], nan_ok=True)
    document = json.loads((out / "metrics.json").read_text())
    assert document["task"] == "binary" and document["rows"] == 24 and document["ensemble"] == "ensemble"
    assert set(document["metrics"]) == {"fold0/run", "fold1/run", "ensemble"}
    for name in ("roc", "pr", "calibration"):
        assert _is_png(out / f"{name}.png"), name
        curve = pd.read_csv(out / f"{name}.tsv", sep="\t")
        assert set(curve["model"]) == {"fold0/run", "fold1/run", "ensemble"}
    roc = pd.read_csv(out / "roc.tsv", sep="\t")
    assert roc.groupby("model")["tpr"].max().eq(1.0).all()


def test_evaluate_api_single_model_and_task_mismatch(tiny_binary, tmp_path):
    import torch

    from chromtransfer.errors import ChromTransferError
    from chromtransfer.evaluation import evaluate_models
    from chromtransfer.modelio import save_model
    from chromtransfer.models import build_model

    root, models = tiny_binary
    lines = []
    result = evaluate_models([models[0]], root / "store", split="test", out=tmp_path / "one",
                             batch_size=64, device="cpu", echo=lines.append)
    assert result["ensemble"] is None and list(result["metrics"]) == ["run"]
    assert set(result["metrics"]["run"]) >= set(BINARY_KEYS) and len(lines) == 1
    assert (tmp_path / "one" / "calibration.png").exists()
    torch.manual_seed(0)
    multi = save_model(build_model("multiclass", width=0.25, n_outputs=3), tmp_path / "multi")
    with pytest.raises(ChromTransferError, match="different tasks"):
        evaluate_models([models[0], multi], root / "store", out=tmp_path / "bad")
    with pytest.raises(ChromTransferError, match="binary"):
        evaluate_models([multi], root / "store", out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_evaluate_multiclass(tmp_path, capsys):
    import torch

    from chromtransfer.datasets.store import write_store
    from chromtransfer.modelio import save_model
    from chromtransfer.models import ChromTransferNet, ModelConfig

    rng = np.random.default_rng(6)
    classes = ["A549", "HepG2", "Negative"]
    write_store(tmp_path / "store", rng.integers(0, 4, (30, 64), dtype=np.uint8), np.arange(30) % 3,
                np.ones(30), -np.ones(30), task="multiclass", classes=classes)
    torch.manual_seed(1)
    model = save_model(ChromTransferNet(ModelConfig(head="multiclass", n_outputs=3, width=0.25, classes=classes)),
                       tmp_path / "mc")
    status = main(["evaluate", "--model", str(model), "--data", str(tmp_path / "store"), "--device", "cpu",
                   "--out", str(tmp_path / "out")])
    assert status == 0, capsys.readouterr().err
    predictions = pd.read_csv(tmp_path / "out" / "predictions.tsv", sep="\t")
    assert predictions.columns.tolist() == ["name", "label", "model", "A549", "HepG2", "Negative"]
    assert set(predictions["model"]) == {"mc"}
    np.testing.assert_allclose(predictions.iloc[:, 3:].sum(axis=1), 1.0, rtol=1e-5)
    metrics = pd.read_csv(tmp_path / "out" / "metrics.tsv", sep="\t").iloc[0]
    y = predictions["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    expected = multiclass_metrics(y, predictions.iloc[:, 3:].to_numpy(), classes)
    for cls in classes:
        assert metrics[f"auroc_{cls}"] == pytest.approx(expected["per_class"][cls]["auroc"])
    assert metrics["auroc_macro"] == pytest.approx(expected["auroc_macro"])
    assert set(pd.read_csv(tmp_path / "out" / "roc.tsv", sep="\t")["class"]) == set(classes)
    assert _is_png(tmp_path / "out" / "roc.png")


def test_plots_learning_and_bootstrap(tmp_path, monkeypatch):
    from chromtransfer import plots
    from chromtransfer.errors import InputError

    paths = {}
    for fold in range(2):
        epochs = np.arange(1, 8)
        paths[f"fold {fold}"] = tmp_path / f"lc{fold}.csv"
        pd.DataFrame({"epoch": epochs, "train_loss": 1 / epochs, "val_loss": 1 / epochs + 0.1,
                      "train_auroc": 0.8, "val_auroc": 0.7, "lr": 1e-3, "seconds": 1.0}).to_csv(
            paths[f"fold {fold}"], index=False)
    assert _is_png(plots.learning_curves(paths, tmp_path / "lc.png"))
    # The triangle marks the lowest validation loss, or the epoch a run says it kept.
    marked = {}

    def capture(fig, path, dpi):
        marked.update({line.get_label(): line.get_xdata()[0] for line in fig.axes[0].lines
                       if line.get_marker() == "v"})
        return real_save(fig, path, dpi)

    real_save = plots._save
    monkeypatch.setattr(plots, "_save", capture)
    plots.learning_curves(paths, tmp_path / "lc_kept.png", kept_epochs={"fold 1": 3})
    monkeypatch.undo()
    assert sorted(marked.values()) == [3, 7]
    (tmp_path / "bad.csv").write_text("epoch,train_loss\n1,0.5\n")
    with pytest.raises(InputError, match="val_loss"):
        plots.learning_curves({"bad": tmp_path / "bad.csv"}, tmp_path / "bad.png")
    rng = np.random.default_rng(7)
    rows = [{"fraction": f, "replicate": r, "f1_negative": 0.7 + rng.random() * 0.1,
             "f1_positive": 0.6 + rng.random() * 0.1, "f1_overall": 0.65 + 0.1 * f}
            for f in (0.01, 0.05, 0.5) for r in range(4)]
    table = pd.DataFrame(rows)
    summary = plots.bootstrap_summary(table)
    assert summary["percent"].tolist() == [1.0, 5.0, 50.0] and summary["n"].tolist() == [4, 4, 4]
    assert summary["f1_overall_mean"].tolist() == pytest.approx([0.651, 0.655, 0.7])
    assert summary["f1_negative_sd"].iloc[0] == pytest.approx(table["f1_negative"][:4].std(ddof=1))
    assert _is_png(plots.bootstrap_f1(table, tmp_path / "boot.png"))


def test_plots_have_no_global_side_effects(tmp_path):
    import matplotlib

    from chromtransfer import plots

    backend = matplotlib.get_backend()
    before = dict(matplotlib.rcParams)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.roc_curves({"m": roc_points(Y, S)}, tmp_path / "roc.svg", aucs={"m": 0.75})
    assert (tmp_path / "roc.svg").read_text().lstrip().startswith("<?xml")
    assert matplotlib.get_backend() == backend and dict(matplotlib.rcParams) == before
