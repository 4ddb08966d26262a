"""Gradient x input, in-silico mutagenesis (fast vs naive), genome tracks and `chromtransfer attribute`."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from chromtransfer.cli import main
from chromtransfer.datasets.store import write_store
from chromtransfer.encoding import N_CODE, one_hot
from chromtransfer.interpret.attribution import grad_x_input
from chromtransfer.interpret.attributions import load_attributions
from chromtransfer.interpret.ism import ism, ism_scores, naive_ism, receptive_field
from chromtransfer.interpret.tracks import bigwig_available, merge_tracks, write_bedgraph, write_bigwig
from chromtransfer.modelio import save_model
from networks import random_network

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(head: str = "finetune", width: float = 0.25, dtype=torch.float64, seed: int = 0, **kwargs):
    """A network with non-trivial BatchNorm statistics (so eval mode matters), in eval mode."""
    return random_network(head, width=width, dtype=dtype, seed=seed, **kwargs)


def _codes(n: int, length: int, seed: int = 0, n_positions=()) -> np.ndarray:
    codes = np.random.default_rng(seed).integers(0, 4, size=(n, length)).astype(np.uint8)
    for row, col in n_positions:
        codes[row, col] = N_CODE
    return codes


# --------------------------------------------------------------------------- gradient x input


def test_grad_x_input_equals_finite_differences_and_per_sequence_autograd():
    model = _model()
    codes = _codes(3, 64, n_positions=[(0, 0), (1, 30), (2, 63)])
    model.train()  # the function must switch to eval mode and restore the flag
    scores = grad_x_input(model, codes, batch_size=2)
    assert model.training
    model.eval()
    assert scores.shape == (3, 64) and scores.dtype == np.float32
    assert scores[0, 0] == 0 and scores[1, 30] == 0 and scores[2, 63] == 0  # N: all-zero column
    assert np.abs(scores).max() > 1e-6

    # per-sequence autograd reference, in eval mode
    for i in range(3):
        x = one_hot(torch.from_numpy(codes[i:i + 1]), torch.float64).requires_grad_(True)
        torch.sigmoid(model(x))[0, 0].backward()
        expected = (x.grad * x).sum(1)[0].detach().numpy()
        np.testing.assert_allclose(scores[i], expected, rtol=1e-5, atol=1e-9)

    # central finite differences along the reference base's channel
    x0 = one_hot(torch.from_numpy(codes[:1]), torch.float64)
    eps = 1e-6
    with torch.no_grad():
        for j in (1, 17, 40, 62):
            c = int(codes[0, j])
            up, down = x0.clone(), x0.clone()
            up[0, c, j] += eps
            down[0, c, j] -= eps
            numeric = (torch.sigmoid(model(up)) - torch.sigmoid(model(down))).item() / (2 * eps)
            assert scores[0, j] == pytest.approx(numeric, rel=1e-4, abs=1e-9)


def test_grad_x_input_logit_and_multiclass_unit():
    model = _model("multiclass", n_outputs=4)
    codes = _codes(2, 48, seed=3)
    logit = grad_x_input(model, codes, target="logit", class_index=2)
    prob = grad_x_input(model, codes, target="probability", class_index=2)
    x = one_hot(torch.from_numpy(codes), torch.float64).requires_grad_(True)
    logits = model(x)
    g_logit, = torch.autograd.grad(logits[:, 2].sum(), x, retain_graph=True)
    g_prob, = torch.autograd.grad(torch.softmax(logits, -1)[:, 2].sum(), x)
    np.testing.assert_allclose(logit, (g_logit * x).sum(1).detach().numpy(), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(prob, (g_prob * x).sum(1).detach().numpy(), rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError):
        grad_x_input(model, codes)  # a multi-class model needs the class
    with pytest.raises(ValueError):
        grad_x_input(_model(), codes, class_index=1)


# --------------------------------------------------------------------------- ISM


def test_receptive_field_matches_the_network():
    model = _model(width=0.25)
    assert receptive_field(model.body) == (98, 103)
    codes = _codes(1, 400, seed=5)
    i = 200
    mutant = codes.copy()
    mutant[0, i] = (mutant[0, i] + 1) % 4
    with torch.no_grad():
        a = model.body.feature_map(one_hot(torch.from_numpy(codes), torch.float64))
        b = model.body.feature_map(one_hot(torch.from_numpy(mutant), torch.float64))
    changed = np.flatnonzero((a - b).abs().amax(dim=1)[0].numpy() > 0)
    assert changed.min() >= i - 103 and changed.max() <= i + 98
    assert changed.min() <= i - 95 and changed.max() >= i + 90  # the window is used, not just its centre


@pytest.mark.parametrize("target", ["logit", "probability"])
def test_fast_ism_equals_naive_narrow_float64(target):
    model = _model(width=0.25, dtype=torch.float64)
    # N at the first and last base and inside; the edges are within the receptive field
    codes = _codes(1, 300, seed=1, n_positions=[(0, 0), (0, 150), (0, 299)])
    fast = ism(model, codes, target=target, batch_size=100)
    slow = naive_ism(model, codes, target=target, batch_size=128)
    assert fast.shape == (1, 300, 4) and fast.dtype == np.float32
    assert np.abs(slow).max() > 1e-4
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-6)
    # reference base entries are 0; N positions have all four substitutions
    ref = codes[0, 1]
    assert fast[0, 1, ref] == 0 and np.count_nonzero(fast[0, 1]) == 3
    assert np.count_nonzero(fast[0, 150]) == 4


def test_fast_ism_equals_naive_full_width_float32():
    model = _model(width=1.0, dtype=torch.float32, seed=2)
    codes = _codes(1, 300, seed=2, n_positions=[(0, 5)])
    fast = ism(model, codes, batch_size=128)
    slow = naive_ism(model, codes, batch_size=64)
    assert np.abs(slow).max() > 1e-4
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-5)


def test_fast_ism_equals_naive_full_width_float64_short_sequences():
    # shorter than the receptive field: every window crosses both sequence ends
    model = _model(width=1.0, dtype=torch.float64, seed=4)
    codes = _codes(2, 40, seed=4, n_positions=[(1, 39)])
    np.testing.assert_allclose(ism(model, codes, target="logit", batch_size=50),
                               naive_ism(model, codes, target="logit"), rtol=0, atol=1e-9)


def test_ism_delta_score_is_the_signed_largest_change():
    deltas = np.zeros((1, 4, 4), dtype=np.float32)
    deltas[0, 0] = [0.0, 0.2, -0.5, 0.1]   # reference A: the largest change is a loss
    deltas[0, 1] = [0.3, 0.0, -0.1, 0.05]  # reference C: a gain
    deltas[0, 2] = [-0.2, 0.2, 0.0, 0.1]   # a tie in size: the first (A) in A, C, G, T order
    deltas[0, 3] = [0.4, -0.6, 0.1, 0.2]   # N: all four bases are alternatives
    codes = np.array([[0, 1, 2, 4]], dtype=np.uint8)
    np.testing.assert_array_equal(ism_scores(deltas, codes), np.float32([[-0.5, 0.3, -0.2, -0.6]]))
    np.testing.assert_allclose(ism_scores(deltas, codes, summary="mean"),
                               [[-0.2 / 3, 0.25 / 3, 0.1 / 3, 0.1 / 4]], rtol=1e-6)
    with pytest.raises(ValueError, match="summary"):
        ism_scores(deltas, codes, summary="max")


def test_fast_ism_multiclass_unit_and_scores():
    model = _model("multiclass", n_outputs=3, seed=6)
    codes = _codes(2, 120, seed=6, n_positions=[(0, 60)])
    fast = ism(model, codes, class_index=1)
    np.testing.assert_allclose(fast, naive_ism(model, codes, class_index=1), rtol=0, atol=1e-9)
    means = ism_scores(fast, codes, summary="mean")
    assert means.shape == (2, 120)
    np.testing.assert_allclose(means[0, 60], fast[0, 60].mean(), rtol=1e-6)  # N: four alternatives
    np.testing.assert_allclose(means[1, 7], fast[1, 7].sum() / 3, rtol=1e-6)
    largest = ism_scores(fast, codes)  # the paper's: the signed change of largest size
    assert largest.shape == (2, 120)
    for i, j in ((0, 60), (1, 7), (1, 100)):
        assert largest[i, j] == fast[i, j][np.abs(fast[i, j]).argmax()]
    with pytest.raises(ValueError):
        ism(model, codes)


# --------------------------------------------------------------------------- tracks


def test_tracks_merge_overlaps_by_mean_and_reverse_minus_strand(tmp_path):
    scores = np.array([[1, 2, 3, 4], [10, 20, 30, 40], [5, 5, 5, 5], [7, 8, 9, 9]], dtype=np.float32)
    chrom = ["chr2", "chr2", "chr1", ""]
    start = [100, 102, 50, -1]
    end = [104, 106, 54, -1]
    strand = ["+", "-", "+", "+"]
    blocks = list(merge_tracks(chrom, start, end, scores, strand))
    assert [b.chrom for b in blocks] == ["chr1", "chr2"]
    chr1, chr2 = blocks
    assert chr1.starts.tolist() == [50] and chr1.ends.tolist() == [54] and chr1.values.tolist() == [5]
    # chr2: 100..104 (+) and 102..106 (-, reversed: 40 30 20 10); 102 and 103 are averaged
    per_base = np.concatenate([np.full(e - s, v) for s, e, v in zip(chr2.starts, chr2.ends, chr2.values)])
    assert chr2.starts[0] == 100 and chr2.ends[-1] == 106
    np.testing.assert_allclose(per_base, [1, 2, (3 + 40) / 2, (4 + 30) / 2, 20, 10])
    lines = write_bedgraph(tmp_path / "t.bedGraph", blocks, name="test")
    text = (tmp_path / "t.bedGraph").read_text().splitlines()
    assert text[0].startswith("track type=bedGraph") and len(text) == lines + 1
    assert text[1] == "chr1\t50\t54\t5"
    if bigwig_available():
        import pybigtools

        assert write_bigwig(tmp_path / "t.bw", blocks, {"chr1": 1000, "chr2": 1000})
        reader = pybigtools.open(str(tmp_path / "t.bw"))
        np.testing.assert_allclose(np.asarray(reader.values("chr2", 100, 106, fillna=0)), per_base)
    else:
        assert not write_bigwig(tmp_path / "t.bw", blocks, {"chr1": 1000, "chr2": 1000})
    with pytest.raises(ValueError):
        list(merge_tracks(["chr1"], [0], [5], scores[:1]))  # window length differs from the scores


# --------------------------------------------------------------------------- command line


@pytest.fixture()
def tiny_inputs(tmp_path):
    model_dir = tmp_path / "model"
    save_model(_model(width=0.25, dtype=torch.float32, seed=8), model_dir)
    n, length = 8, 64
    codes = _codes(n, length, seed=8, n_positions=[(2, 10)])
    regions = pd.DataFrame({
        "name": [f"r{i}" for i in range(n)],
        "chrom": ["chr1"] * 4 + ["chr2"] * 4,
        "start": [0, 32, 200, 400, 0, 100, 200, 300],
        "strand": ["+", "+", "-", "+", "+", "+", "+", "-"],
        "label_name": ["x"] * n,
    })
    regions["end"] = regions["start"] + length
    store = write_store(tmp_path / "store", codes, labels=[0, 1] * 4, split=[0, 0, 0, 0, 1, 1, 1, 1],
                        fold=[0, 1, 0, 1, -1, -1, -1, -1], regions=regions)
    return {"model": model_dir, "store": store, "codes": codes, "regions": regions, "tmp": tmp_path}


def test_cli_attribute_ism_on_store(tiny_inputs, capsys):
    out = tiny_inputs["tmp"] / "attr"
    rc = main(["attribute", "--model", str(tiny_inputs["model"]), "--data", str(tiny_inputs["store"]),
               "--split", "all", "--select", "all", "--method", "ism", "--batch-size", "100",
               "--device", "cpu", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    attrs = load_attributions(out)
    for key in ("scores", "ism", "codes", "names", "chrom", "start", "end", "prediction", "method", "target"):
        assert key in attrs.arrays()
    assert attrs.scores.shape == (8, 64) and attrs.scores.dtype == np.float32
    assert attrs.ism.shape == (8, 64, 4) and attrs.codes.dtype == np.uint8
    assert attrs.method == "ism" and attrs.target == "probability"
    assert attrs.names.tolist() == [f"r{i}" for i in range(8)]
    np.testing.assert_array_equal(attrs.codes, tiny_inputs["codes"])
    from chromtransfer.modelio import load_model

    model = load_model(tiny_inputs["model"])
    expected = naive_ism(model, tiny_inputs["codes"])
    np.testing.assert_allclose(attrs.ism, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(attrs.scores, ism_scores(expected, tiny_inputs["codes"]), rtol=0, atol=1e-6)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == "ism" and manifest["counts"] == {"input": 8, "selected": 8}
    assert (out / "attributions.bedGraph").exists()
    first = (out / "attributions.bedGraph").read_text().splitlines()[1].split("\t")
    assert first[0] == "chr1" and first[1] == "0"
    assert (out / "attributions.bw").exists() == bigwig_available()


def test_cli_attribute_grad_selection_fasta_and_errors(tiny_inputs, capsys):
    from chromtransfer.inference import predict_codes
    from chromtransfer.modelio import load_model

    model = load_model(tiny_inputs["model"])
    codes = tiny_inputs["codes"]
    probs = predict_codes(model, codes, device="cpu")[:, 0]
    threshold = float(np.median(probs))
    out = tiny_inputs["tmp"] / "grad"
    rc = main(["attribute", "--model", str(tiny_inputs["model"]), "--data", str(tiny_inputs["store"]),
               "--split", "all", "--threshold", str(threshold), "--method", "grad_x_input", "--target", "logit",
               "--device", "cpu", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    attrs = load_attributions(out)
    keep = np.flatnonzero(probs > threshold)
    assert 0 < len(keep) < 8 and attrs.ism is None
    np.testing.assert_array_equal(attrs.start, tiny_inputs["regions"]["start"].to_numpy()[keep])
    np.testing.assert_allclose(attrs.prediction, probs[keep], rtol=1e-6)
    np.testing.assert_allclose(attrs.scores, grad_x_input(model, codes[keep], target="logit"), rtol=1e-5, atol=1e-7)

    # FASTA input: no coordinates, no tracks
    from chromtransfer.encoding import decode

    fasta = tiny_inputs["tmp"] / "q.fa"
    fasta.write_text("".join(f">s{i}\n{decode(c)}\n" for i, c in enumerate(codes[:3])))
    out2 = tiny_inputs["tmp"] / "fa"
    assert main(["attribute", "--model", str(tiny_inputs["model"]), "--fasta", str(fasta), "--select", "all",
                 "--device", "cpu", "--out", str(out2)]) == 0
    attrs = load_attributions(out2)
    assert attrs.names.tolist() == ["s0", "s1", "s2"] and attrs.start.tolist() == [-1, -1, -1]
    assert not (out2 / "attributions.bedGraph").exists()

    # unequal FASTA lengths: one error line, exit 2, earlier results untouched
    fasta.write_text(f">a\n{decode(codes[0])}\n>b\n{decode(codes[1][:50])}\n")
    before = (out2 / "attributions.npz").read_bytes()
    capsys.readouterr()
    assert main(["attribute", "--model", str(tiny_inputs["model"]), "--fasta", str(fasta),
                 "--device", "cpu", "--out", str(out2), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "q.fa" in err and len(err.strip().splitlines()) == 1
    assert (out2 / "attributions.npz").read_bytes() == before
    assert main(["attribute", "--model", str(tiny_inputs["model"]), "--fasta", str(fasta), "--class", "2",
                 "--data", str(tiny_inputs["store"]), "--out", str(out2)]) == 2


def test_cli_attribute_deeplift_shap_and_gradients_as_hypothetical(tiny_inputs, capsys):
    from chromtransfer.interpret.attribution import input_gradients
    from chromtransfer.interpret.deeplift import deeplift_shap
    from chromtransfer.modelio import load_model

    model = load_model(tiny_inputs["model"])
    codes = tiny_inputs["codes"]
    out = tiny_inputs["tmp"] / "dls"
    rc = main(["attribute", "--model", str(tiny_inputs["model"]), "--data", str(tiny_inputs["store"]),
               "--split", "test", "--select", "all", "--method", "deeplift_shap", "--references", "3", "--seed", "5",
               "--target", "logit", "--device", "cpu", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    attrs = load_attributions(out)
    expected = deeplift_shap(model, codes[4:], target="logit", references=3, seed=5)
    assert attrs.method == "deeplift_shap" and attrs.hypothetical.shape == (4, 64, 4) and attrs.ism is None
    np.testing.assert_allclose(attrs.scores, expected.scores, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(attrs.hypothetical, expected.hypothetical, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(attrs.convergence_delta, expected.delta, atol=1e-6)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["deeplift_shap"]["references"] == 3 and manifest["deeplift_shap"]["seed"] == 5
    assert manifest["deeplift_shap"]["convergence"]["share_within_tolerance"] == 1.0
    assert "warning" not in capsys.readouterr().err

    # gradient x input keeps the gradients as its hypothetical contributions
    out2 = tiny_inputs["tmp"] / "grad_h"
    assert main(["attribute", "--model", str(tiny_inputs["model"]), "--data", str(tiny_inputs["store"]),
                 "--split", "all", "--select", "all", "--device", "cpu", "--out", str(out2)]) == 0
    attrs = load_attributions(out2)
    np.testing.assert_allclose(attrs.hypothetical, input_gradients(model, codes), rtol=1e-6, atol=1e-9)
    picked = np.take_along_axis(attrs.hypothetical, np.minimum(codes, 3)[..., None].astype(np.int64), -1)[..., 0]
    np.testing.assert_array_equal(attrs.scores, np.where(codes < 4, picked, 0))
    assert attrs.scores[2, 10] == 0 and attrs.convergence_delta is None
    capsys.readouterr()
    assert main(["attribute", "--model", str(tiny_inputs["model"]), "--data", str(tiny_inputs["store"]),
                 "--references", "3", "--device", "cpu", "--out", str(tiny_inputs["tmp"] / "x")]) == 2
    assert "--references applies to --method deeplift_shap only" in capsys.readouterr().err


def test_cli_attribute_bed_on_genome(tiny_inputs, capsys):
    rng = np.random.default_rng(9)
    genome = tiny_inputs["tmp"] / "genome.fa"
    sequence = "".join("ACGT"[i] for i in rng.integers(0, 4, 1000))
    genome.write_text(">20\n" + "\n".join(sequence[i:i + 60] for i in range(0, 1000, 60)) + "\n")
    bed = tiny_inputs["tmp"] / "regions.bed"
    bed.write_text("chr20\t100\t180\tpeak1\nchr20\t130\t170\tpeak2\nchr20\t100\t180\tpeak1\n")  # a duplicate
    out = tiny_inputs["tmp"] / "bed"
    rc = main(["attribute", "--model", str(tiny_inputs["model"]), "--bed", str(bed), "--genome", str(genome),
               "--window", "64", "--select", "all", "--device", "cpu", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    attrs = load_attributions(out)
    assert attrs.names.tolist() == ["peak1", "peak2"]
    assert attrs.chrom.tolist() == ["chr20", "chr20"]
    assert attrs.start.tolist() == [108, 118] and attrs.end.tolist() == [172, 182]
    assert "".join("ACGT"[c] for c in attrs.codes[0]) == sequence[108:172]
    lines = (out / "attributions.bedGraph").read_text().splitlines()[1:]
    assert lines[0].split("\t")[:2] == ["chr20", "108"] and lines[-1].split("\t")[2] == "182"


def test_attributions_save_load_round_trip(tmp_path):
    from chromtransfer.errors import ArtifactError
    from chromtransfer.interpret.attributions import Attributions

    rng = np.random.default_rng(3)
    codes = rng.integers(0, 4, size=(3, 10)).astype(np.uint8)
    ism_deltas = rng.normal(size=(3, 10, 4)).astype(np.float32)
    made = Attributions(rng.normal(size=(3, 10)).astype(np.float32), np.array(["a", "b", "c"]), "ism", codes=codes,
                        ism=ism_deltas, hypothetical=-ism_deltas, target="logit", chrom=np.array(["chr1", "chr1", ""]),
                        start=np.array([0, 20, -1]), end=np.array([10, 30, -1]), strand=np.array(["+", "-", ""]),
                        model="run", n_candidates=5)
    manifest = made.save(tmp_path / "a", bigwig=False)
    assert manifest["counts"] == {"input": 5, "selected": 3} and manifest["model"] == "run"
    assert manifest["files"] == ["attributions.npz", "attributions.bedGraph"]
    back = load_attributions(tmp_path / "a")
    np.testing.assert_array_equal(back.scores, made.scores)
    np.testing.assert_array_equal(back.ism, ism_deltas)
    np.testing.assert_array_equal(back.hypothetical, -ism_deltas)
    np.testing.assert_array_equal(back.codes, codes)
    assert back.method == "ism" and back.target == "logit" and back.model == "run" and back.n_candidates == 5
    assert back.regions()["start"].tolist() == [0, 20, -1] and back.path == tmp_path / "a"
    assert load_attributions(tmp_path / "a" / "attributions.npz").names.tolist() == ["a", "b", "c"]
    with pytest.raises(ArtifactError, match="complete"):  # an existing result is replaced only on request
        made.save(tmp_path / "a")
    made.save(tmp_path / "a", overwrite=True)
    # a folder of the older format (arrays only, no manifest) still loads
    (tmp_path / "old").mkdir()
    np.savez(tmp_path / "old" / "attributions.npz", scores=made.scores, names=made.names, method=np.array("ism"))
    old = load_attributions(tmp_path / "old")
    assert old.codes is None and old.ism is None and old.hypothetical is None and old.target == "probability" and old.manifest == {}
