"""``chromtransfer track``: prediction tracks written as bigWig and read back with pybigtools."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from chromtransfer.cli import main
from chromtransfer.genome import Genome
from chromtransfer.inference import predict_codes
from chromtransfer.modelio import save_model
from chromtransfer.models import build_model
from chromtransfer.prediction_tracks import tile_bins, track

pytestmark = pytest.mark.usefixtures("one_torch_thread")
pybigtools = pytest.importorskip("pybigtools", reason="pybigtools is part of the test extra")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("track")
    rng = np.random.default_rng(5)
    with open(root / "genome.fa", "w") as handle:
        for name, size in (("chr1", 3000), ("chr2", 1000)):
            s = "".join(rng.choice(list("ACGT"), size))
            handle.write(f">{name}\n" + "".join(s[i:i + 60] + "\n" for i in range(0, size, 60)))
    for seed, name in ((1, "HepG2"), (2, "K562")):
        torch.manual_seed(seed)
        model = build_model("finetune", width=0.125, head_units=(16, 8))
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0, 0.3)
        save_model(model.eval(), root / name)
    return root


def test_tile_bins():
    starts, ends, centres = tile_bins(100, 275, 50)
    assert starts.tolist() == [100, 150, 200, 250] and ends.tolist() == [150, 200, 250, 275]
    assert centres.tolist() == [125, 175, 225, 275]


def test_bigwig_tracks_read_back(world, capsys):
    (world / "regions.bed").write_text("chr1\t1000\t1400\nchr1\t1300\t1500\n2\t0\t230\n")
    code = main(["track", "--model", str(world / "HepG2"), "--model", str(world / "K562"), "--genome",
                 str(world / "genome.fa"), "--regions", str(world / "regions.bed"), "--step", "100",
                 "--out", str(world / "pred.bw")])
    assert code == 0, capsys.readouterr().err
    genome = Genome(world / "genome.fa")
    from chromtransfer.modelio import load_model

    for name in ("HepG2", "K562"):
        path = world / f"pred.{name}.bw"
        bw = pybigtools.open(str(path))
        assert dict(bw.chroms()) == {"chr1": 3000, "chr2": 1000}
        intervals = list(bw.records("chr1"))
        assert [(s, e) for s, e, _ in intervals] == [(1000, 1100), (1100, 1200), (1200, 1300), (1300, 1400),
                                                      (1400, 1500)]
        chr2 = list(bw.records("chr2"))
        assert [(s, e) for s, e, _ in chr2] == [(0, 100), (100, 200), (200, 230)]
        model = load_model(world / name)
        centres = np.array([1050, 1150, 1250, 1350, 1450])
        codes = genome.fetch_many(["chr1"] * 5, centres - 300, length=600, pad=True)
        expected = predict_codes(model, codes)[:, 0]
        np.testing.assert_allclose([v for _, _, v in intervals], expected, atol=1e-6)
        edge = genome.fetch_codes("chr2", 250 - 300, 250 + 300, pad=True)  # runs off the start: N
        assert abs(chr2[2][2] - predict_codes(model, edge[None])[0, 0]) < 1e-6
    assert code == 0
    again = main(["track", "--model", str(world / "HepG2"), "--genome", str(world / "genome.fa"),
                  "--out", str(world / "pred.HepG2.bw"), "--step", "500"])
    assert again == 2 and "exists" in capsys.readouterr().err


def test_whole_chromosome_track(world):
    (path,) = track([world / "HepG2"], world / "genome.fa", world / "chr2.bw", chroms=["chr2"], step=250)
    bw = pybigtools.open(str(path))
    records = list(bw.records("chr2"))
    assert [(s, e) for s, e, _ in records] == [(0, 250), (250, 500), (500, 750), (750, 1000)]
    assert all(0 < v < 1 for _, _, v in records)


def test_tracks_written_in_blocks_are_unchanged(world, tmp_path, monkeypatch):
    """Bins streamed to the file a few at a time give the same track as one block per region."""
    import chromtransfer.prediction_tracks as tracks

    (tmp_path / "regions.bed").write_text("chr1\t0\t3000\nchr2\t100\t950\n")
    options = dict(regions=tmp_path / "regions.bed", step=150)
    (whole,) = track([world / "K562"], world / "genome.fa", tmp_path / "whole.bw", **options)
    monkeypatch.setattr(tracks, "BLOCK_BINS", 3)
    (blocks,) = track([world / "K562"], world / "genome.fa", tmp_path / "blocks.bw", **options)
    for chrom in ("chr1", "chr2"):
        expected = list(pybigtools.open(str(whole)).records(chrom))
        assert len(expected) > 3  # several blocks per region
        got = list(pybigtools.open(str(blocks)).records(chrom))
        assert [(s, e) for s, e, _ in got] == [(s, e) for s, e, _ in expected]
        # the same windows, predicted in other batches: equal up to float32 rounding
        np.testing.assert_allclose([v for *_, v in got], [v for *_, v in expected], rtol=1e-4, atol=1e-7)
    monkeypatch.setattr("chromtransfer.interpret.tracks.bigwig_available", lambda: False)
    (graph,) = track([world / "K562"], world / "genome.fa", tmp_path / "blocks.bw", **options)
    rows = [line.split("\t") for line in graph.read_text().splitlines()[1:]]
    written = [(c, int(s), int(e)) for c, s, e, _ in rows]
    assert written == [("chr1", s, e) for s, e, _ in pybigtools.open(str(whole)).records("chr1")] + \
        [("chr2", s, e) for s, e, _ in pybigtools.open(str(whole)).records("chr2")]
