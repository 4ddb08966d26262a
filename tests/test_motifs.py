"""Motif scanning: FIMO-faithful p-values, JASPAR loading, motif files, the scanner and its CLI."""
from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chromtransfer.cli import main
from chromtransfer.encoding import decode, encode, reverse_complement_codes
from chromtransfer.errors import InputError
from chromtransfer.interpret.jaspar import load_jaspar, read_jaspar_file, read_meme_background, read_meme_file
from chromtransfer.interpret.motifs import MotifScanner, Sites
from chromtransfer.interpret.pwm import (
    Motif,
    apply_pseudocount,
    build_pwm,
    build_pwm_pair,
    exact_pvalue,
    resolve_background,
)


@pytest.fixture(scope="module")
def jaspar():
    return load_jaspar()


@pytest.fixture(scope="module")
def jaspar_by_id(jaspar):
    return {m.motif_id: m for m in jaspar}


def _random_motif(rng, width, name="M"):
    counts = rng.integers(0, 30, size=(width, 4)).astype(float)
    counts[np.arange(width), rng.integers(0, 4, width)] += 40
    return Motif.from_counts(name, name, counts)


def _consensus(motif: Motif) -> np.ndarray:
    return motif.frequencies.argmax(axis=1).astype(np.uint8)


# ----------------------------------------------------------------------------- p-values
def test_pvalue_table_equals_brute_force_enumeration():
    rng = np.random.default_rng(3)
    motif = _random_motif(rng, 6)
    bg = resolve_background("0.3,0.2,0.2,0.3")
    for strand in "+-":
        pwm = build_pwm(motif, bg, strand=strand)
        words = np.array(list(itertools.product(range(4), repeat=6)), dtype=np.int64)
        scores = pwm.score_windows(words)
        probs = np.prod(bg[words], axis=1)
        assert probs.sum() == pytest.approx(1.0)
        pmf = np.bincount(scores, weights=probs, minlength=pwm.pvalues.size)
        tail = np.cumsum(pmf[::-1])[::-1]
        np.testing.assert_allclose(pwm.pvalues, tail, rtol=1e-9, atol=1e-300)
        assert pwm.best_pvalue == pytest.approx(tail[scores.max()], rel=1e-9)
        assert pwm.best_pvalue > 0


def test_fimo_scaling_and_pseudocount_conventions():
    motif = Motif.from_counts("X", "X", [[10, 0, 0, 0], [0, 5, 5, 0], [1, 1, 1, 7]])
    bg = resolve_background("uniform")
    freqs = apply_pseudocount(motif, bg, 0.1)
    # (count + 0.1 * b) / (n + 0.1)
    assert freqs[0, 0] == pytest.approx((10 + 0.025) / 10.1)
    assert freqs[0, 1] == pytest.approx(0.025 / 10.1)
    pwm = build_pwm(motif, bg)
    lo = np.log2(freqs / 0.25)
    offset = np.floor(lo.min())
    scale = np.floor(1000 / (lo.max() - offset))
    assert pwm.offset == offset and pwm.scale == scale
    np.testing.assert_array_equal(pwm.matrix, np.floor((lo - offset) * scale + 0.5))
    assert pwm.matrix.min() >= 0 and pwm.matrix.max() <= 1000
    # Reported score = scaled / scale + w * offset (bits)
    assert pwm.raw_score(pwm.max_score) == pytest.approx(pwm.max_score / scale + 3 * offset)
    # Reverse strand of a strand-symmetric background: same table.
    rev = build_pwm(motif, bg, strand="-")
    np.testing.assert_array_equal(rev.matrix, pwm.matrix[::-1, ::-1])
    np.testing.assert_array_equal(rev.pvalues, pwm.pvalues)


def test_pvalues_agree_with_exact_unscaled_pvalues_near_1e5(jaspar_by_id):
    motif = jaspar_by_id["MA0114.4"]  # HNF4A, 13 bp
    bg = resolve_background("uniform")
    rng = np.random.default_rng(0)
    words = np.stack([rng.choice(4, size=3000, p=motif.frequencies[i]) for i in range(motif.width)], axis=1)
    for range_, stat, bound in ((100_000, np.max, 0.01), (1000, np.median, 0.01)):
        pwm = build_pwm(motif, bg, range_=range_)
        scaled = pwm.score_windows(words)
        near = (pwm.pvalues[scaled] > 5e-6) & (pwm.pvalues[scaled] < 2e-5)
        assert near.sum() > 50
        raw = pwm.log_odds[np.arange(motif.width)[None, :], words[near]].sum(axis=1)
        exact = exact_pvalue(pwm.log_odds, bg, raw)
        rel = np.abs(pwm.pvalues[scaled[near]] / exact - 1)
        assert stat(rel) < bound, (range_, stat(rel))


def test_exact_pvalue_reference_is_exact_on_small_motif():
    rng = np.random.default_rng(5)
    scores = rng.normal(size=(5, 4))
    bg = np.array([0.1, 0.4, 0.3, 0.2])
    words = np.array(list(itertools.product(range(4), repeat=5)))
    s = scores[np.arange(5)[None, :], words].sum(axis=1)
    p = np.prod(bg[words], axis=1)
    for t in np.quantile(s, [0.5, 0.9, 0.999]):
        assert exact_pvalue(scores, bg, t)[0] == pytest.approx(p[s >= t - 1e-12].sum(), rel=1e-12)


def test_background_validation():
    assert resolve_background("nrdb") == pytest.approx([0.281774, 0.222020, 0.228876, 0.267330], abs=1e-6)
    assert resolve_background("1,1,1,1") == pytest.approx([0.25] * 4)
    for bad in ("0.5,0.5", "a,b,c,d", "0,0.5,0.25,0.25", "-1,1,1,1"):
        with pytest.raises(ValueError):
            resolve_background(bad)


# ----------------------------------------------------------------------------- JASPAR and files
def test_jaspar2022_core_vertebrates_has_841_motifs(jaspar):
    assert len(jaspar) == 841
    ids = [m.motif_id for m in jaspar]
    assert len(set(ids)) == 841
    bases = {i.split(".")[0] for i in ids}
    assert len(bases) == 841  # one (the latest) version per matrix
    names = {m.name for m in jaspar}
    assert {"HNF4A", "CEBPA", "GATA1", "CTCF", "FOS::JUN"} <= names
    assert all(np.allclose(m.frequencies.sum(axis=1), 1) for m in jaspar)


def test_meme_file_parses(tmp_path):
    path = tmp_path / "m.meme"
    path.write_text(
        "MEME version 4\n\nALPHABET= ACGT\n\nstrands: + -\n\n"
        "Background letter frequencies\nA 0.3 C 0.2 G 0.2 T 0.3\n\n"
        "MOTIF MA0004.1 Arnt\nletter-probability matrix: alength= 4 w= 3 nsites= 20 E= 0\n"
        " 0.200000  0.800000  0.000000  0.000000\n 0.950000  0.000000  0.050000  0.000000\n"
        " 0.000000  1.000000  0.000000  0.000000\nURL http://example.org\n\n"
        "MOTIF M2\nletter-probability matrix: alength= 4 w= 2\n0.25 0.25 0.25 0.25\n1 0 0 0\n"
    )
    motifs = read_meme_file(path)
    assert [m.motif_id for m in motifs] == ["MA0004.1", "M2"]
    assert motifs[0].name == "Arnt" and motifs[1].name == "M2"
    np.testing.assert_allclose(motifs[0].frequencies[1], [0.95, 0, 0.05, 0])
    assert motifs[0].sites[0] == 20 and motifs[1].sites[0] == 20  # default site count 20
    np.testing.assert_allclose(read_meme_background(path), [0.3, 0.2, 0.2, 0.3])
    bad = tmp_path / "bad.meme"
    bad.write_text("MEME version 4\n\nMOTIF X\nletter-probability matrix: alength= 4 w= 2\n0.25 0.25 0.5\n1 0 0 0\n")
    with pytest.raises(InputError, match=r"bad\.meme:5"):
        read_meme_file(bad)


def test_jaspar_and_pfm_files_parse(tmp_path):
    jaspar_text = (">MA0004.1\tArnt\nA  [ 4 19 0 0 0 0 ]\nC  [16 0 20 0 0 0 ]\n"
                   "G  [ 0 1 0 20 0 20 ]\nT  [ 0 0 0 0 20 0 ]\n>X.1 other\nT [1 2]\nG [0 0]\nC [0 0]\nA [3 2]\n")
    path = tmp_path / "m.jaspar"
    path.write_text(jaspar_text)
    motifs = read_jaspar_file(path)
    assert [m.motif_id for m in motifs] == ["MA0004.1", "X.1"]
    assert decode(_consensus(motifs[0])) == "CACGTG"
    np.testing.assert_allclose(motifs[1].frequencies, [[0.75, 0, 0, 0.25], [0.5, 0, 0, 0.5]])
    assert motifs[0].sites[0] == 20
    pfm = tmp_path / "single.pfm"
    pfm.write_text("4 19 0\n16 0 20\n0 1 0\n0 0 0\n")
    (single,) = read_jaspar_file(pfm)
    assert single.motif_id == "single" and single.width == 3
    broken = tmp_path / "broken.jaspar"
    broken.write_text(">A x\nA [1 2]\nC [1]\nG [1 2]\nT [1 2]\n")
    with pytest.raises(InputError, match="different lengths"):
        read_jaspar_file(broken)


# ----------------------------------------------------------------------------- scanning
def _brute_force_sites(scanner: MotifScanner, codes: np.ndarray) -> dict:
    best = {}
    for mi, pair in enumerate(scanner.pwms):
        for strand, pwm in enumerate(pair):
            kmin = pwm.min_significant_score(scanner.threshold)
            if kmin is None:
                continue
            w = pwm.width
            for row in range(codes.shape[0]):
                windows = np.lib.stride_tricks.sliding_window_view(codes[row], w)
                ok = ~(windows == 4).any(axis=1)
                scores = np.where(ok, pwm.score_windows(np.minimum(windows, 3)), -1)
                for start in np.flatnonzero(scores >= kmin):
                    s = int(scores[start])
                    cand = (float(pwm.pvalues[s]), -float(pwm.raw_score(s)), strand, s)
                    key = (row, mi, int(start))
                    if key not in best or cand < best[key]:
                        best[key] = cand
    return best


def test_scanner_equals_brute_force_with_ns_and_asymmetric_background():
    rng = np.random.default_rng(11)
    motifs = [_random_motif(rng, w, f"M{w}") for w in (5, 6, 8, 9, 12)]
    codes = rng.integers(0, 4, size=(9, 120)).astype(np.uint8)
    codes[rng.random(codes.shape) < 0.02] = 4
    scanner = MotifScanner(motifs, background="0.3,0.2,0.25,0.25", threshold=1e-2, group_size=3, batch_size=4)
    sites = scanner.scan(codes)
    got = {(int(r), int(m), int(s)): (float(p), -float(sc), int(st), int(k))
           for r, m, s, p, sc, st, k in zip(sites.row, sites.motif, sites.start, sites.pvalue, sites.score,
                                             sites.strand, sites.scaled)}
    expected = _brute_force_sites(scanner, codes)
    assert len(expected) > 20
    assert got == expected
    assert np.all(sites.pvalue > 0) and np.all(sites.pvalue < 1e-2)


def _brute_force_strand_sites(scanner: MotifScanner, codes: np.ndarray) -> set:
    """Every (row, motif, strand, start, scaled score) with p < threshold, each strand kept."""
    found = set()
    for mi, pair in enumerate(scanner.pwms):
        for strand, pwm in enumerate(pair):
            w = pwm.width
            if w > codes.shape[1]:
                continue
            for row in range(codes.shape[0]):
                windows = np.lib.stride_tricks.sliding_window_view(codes[row], w)
                ok = ~(windows >= 4).any(axis=1)
                scores = pwm.score_windows(np.minimum(windows, 3))
                for start in np.flatnonzero(ok & (pwm.pvalues[scores] < scanner.threshold)):
                    found.add((row, mi, strand, int(start), int(scores[start])))
    return found


def _strand_sites(sites) -> set:
    return set(zip(sites.row.tolist(), sites.motif.tolist(), sites.strand.tolist(), sites.start.tolist(),
                   sites.scaled.tolist()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cpu_kernel_equals_brute_force_on_random_pwms(seed):
    # Widths below, at and beyond the kernel's 5-column blocks and 10-column pre-filter, sequences
    # shorter than some motifs, N and IUPAC codes (> 4), an asymmetric background, loose thresholds
    # so that thousands of windows are reported.
    rng = np.random.default_rng(seed)
    widths = [1, 3, 5, 7, 10, 11, 16, 23, 31]
    motifs = [_random_motif(rng, w, f"M{i}") for i, w in enumerate(widths)]
    lengths = np.append(rng.integers(1, 300, size=11), 300)
    codes = np.full((12, 300), 4, dtype=np.uint8)
    for row, n in enumerate(lengths):
        codes[row, :n] = rng.integers(0, 4, size=n)
    for i, motif in enumerate(motifs):  # strong sites, one per motif, on the + and - strand
        codes[11, 33 * i:33 * i + motif.width] = _consensus(motif)
        codes[10, 33 * i:33 * i + motif.width] = reverse_complement_codes(_consensus(motif))
    codes[rng.random(codes.shape) < 0.02] = rng.integers(4, 15)
    bg = rng.dirichlet([5, 5, 5, 5]) + 0.05
    for threshold in (0.2, 1e-3):
        scanner = MotifScanner(motifs, background=bg, threshold=threshold, batch_size=5)
        sites = scanner.scan(codes, dedupe=False)
        expected = _brute_force_strand_sites(scanner, codes)
        assert len(expected) > (500 if threshold == 0.2 else 10)
        assert _strand_sites(sites) == expected
        assert np.all(sites.pvalue > 0) and np.all(sites.pvalue < threshold)


def test_cpu_kernel_equals_convolution_and_threads_agree(jaspar):
    rng = np.random.default_rng(4)
    codes = rng.choice(4, size=(40, 600), p=[0.3, 0.2, 0.2, 0.3]).astype(np.uint8)
    codes[3, 100:140] = 4
    motifs = jaspar[::4]
    one = MotifScanner(motifs, threshold=1e-4, threads=1).scan(codes, dedupe=False)
    two = MotifScanner(motifs, threshold=1e-4, threads=2, batch_size=7).scan(codes, dedupe=False)
    scanner = MotifScanner(motifs, threshold=1e-4)
    convolution = Sites.concat([scanner._scan_batch(codes[lo:lo + 16], lo) for lo in range(0, 40, 16)])
    assert len(one) > 100
    assert _strand_sites(one) == _strand_sites(two) == _strand_sites(convolution)
    order = np.lexsort((convolution.strand, convolution.motif, convolution.start, convolution.row))
    np.testing.assert_array_equal(one.pvalue, convolution.pvalue[order])
    np.testing.assert_array_equal(one.score, convolution.score[order])


def test_planted_sites_found_inside_only_and_deduplicated(jaspar_by_id):
    rng = np.random.default_rng(7)
    ctcf = jaspar_by_id["MA0139.1"]  # 19 bp, not palindromic
    ebox = jaspar_by_id["MA0004.1"]  # Arnt, CACGTG, its own reverse complement
    codes = rng.integers(0, 4, size=(4, 200)).astype(np.uint8)
    cons = _consensus(ctcf)
    codes[0, 50:69] = cons
    codes[1, 30:49] = reverse_complement_codes(cons)
    codes[2, 200 - 19:] = cons  # flush with the end: a full site
    codes[3, 200 - 10:] = cons[:10]  # cut by the end: no site
    codes[3, 10:16] = encode("CACGTG")
    codes[3, 100:119] = cons
    codes[3, 105] = 4  # an N inside the site: no site
    scanner = MotifScanner([ctcf, ebox], threshold=1e-4)
    table = scanner.scan_table(codes, names=["a", "b", "c", "d"])
    assert (table["site_end"] <= 200).all() and (table["site_start"] >= 0).all()
    assert not table["sequence"].str.contains("N").any()
    hits = table[table["motif_id"] == "MA0139.1"].set_index("region")
    assert hits.loc["a", "site_start"] == 50 and hits.loc["a", "strand"] == "+"
    assert hits.loc["b", "site_start"] == 30 and hits.loc["b", "strand"] == "-"
    assert hits.loc["b", "sequence"] == decode(cons)  # reported in the motif's orientation
    assert hits.loc["c", "site_end"] == 200
    assert "d" not in hits.index
    assert "MA0004.1" in scanner.weak_motifs  # 6 bp: best p-value 4**-6 > 1e-4
    ebox_table = MotifScanner([ebox], threshold=1e-3).scan_table(codes)
    ebox_hits = ebox_table[(ebox_table["region_index"] == 3) & (ebox_table["site_start"] == 10)]
    assert len(ebox_hits) == 1  # matches both strands, counted once
    assert ebox_hits["strand"].iloc[0] == "+" and ebox_hits["sequence"].iloc[0] == "CACGTG"
    assert list(table.columns) == ["region", "region_index", "chrom", "start", "end", "site_start", "site_end",
                                   "strand", "motif_id", "tf", "score", "pvalue", "sequence"]


def test_weak_motif_gives_no_sites():
    short = Motif.from_counts("short", "SHORT", [[20, 0, 0, 0], [0, 20, 0, 0], [0, 0, 20, 0]])
    codes = np.tile(encode("ACGACGACG"), (3, 5))
    scanner = MotifScanner([short], threshold=1e-5)
    assert scanner.weak_motifs == ["short"]
    assert build_pwm_pair(short, resolve_background("uniform"))[0].best_pvalue > 1e-5
    assert len(scanner.scan(codes)) == 0
    assert len(MotifScanner([short], threshold=0.05).scan(codes)) > 0


def test_all_jaspar_motifs_scan_random_sequence(jaspar):
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 4, size=(6, 600)).astype(np.uint8)
    scanner = MotifScanner(jaspar)
    table = scanner.scan_table(codes)
    assert len(scanner.weak_motifs) > 0 and len(scanner.weak_motifs) < 200
    assert (table["pvalue"] > 0).all() and (table["pvalue"] < 1e-5).all()
    # Under the null a 600 bp sequence gets about 2 * 600 * 1e-5 sites per motif (fewer: discreteness).
    assert 0 < len(table) / 6 < 2 * 600 * 1e-5 * len(jaspar)
    assert not table.duplicated(["region", "motif_id", "site_start"]).any()


# ----------------------------------------------------------------------------- command line
def _small_motif_file(tmp_path: Path) -> Path:
    path = tmp_path / "two.jaspar"
    path.write_text(">CTCFlike CTCF\nA [0 0 20 0 0 0 20 0 0 0]\nC [20 0 0 0 20 20 0 0 20 0]\n"
                    "G [0 20 0 20 0 0 0 20 0 0]\nT [0 0 0 0 0 0 0 0 0 20]\n"
                    ">EBOX E\nA [0 20 0 0 0 0]\nC [20 0 20 0 0 0]\nG [0 0 0 20 0 20]\nT [0 0 0 0 20 0]\n")
    return path


def test_cli_scan_fasta_with_genomic_names(tmp_path):
    rng = np.random.default_rng(2)
    seqs = [rng.integers(0, 4, 80).astype(np.uint8) for _ in range(3)]
    seqs[0][10:20] = encode("CGAGCCAGCT")
    seqs[1][5:11] = encode("CACGTG")
    fasta = tmp_path / "q.fa.gz"
    with gzip.open(fasta, "wt") as handle:
        handle.write(f">chr2:1000-1080 x\n{decode(seqs[0])}\n>plain\n{decode(seqs[1])}\n>short\n{decode(seqs[2][:40])}\n")
    out = tmp_path / "sites.tsv"
    assert main(["motifs", "scan", "--fasta", str(fasta), "--motifs", str(_small_motif_file(tmp_path)),
                 "--pvalue", "1e-3", "--device", "cpu", "--out", str(out)]) == 0
    table = pd.read_csv(out, sep="\t", keep_default_na=False)
    first = table[(table["region"] == "chr2:1000-1080") & (table["tf"] == "CTCF")].iloc[0]
    assert first["site_start"] == 10 and first["chrom"] == "chr2"
    assert int(first["start"]) == 1010 and int(first["end"]) == 1020
    plain = table[table["region"] == "plain"]
    assert (plain["chrom"] == "").all() and (plain["start"] == "").all()
    assert ((plain["tf"] == "E") & (plain["site_start"] == 5)).any()
    manifest = json.loads((tmp_path / "sites.tsv.json").read_text())
    assert manifest["sites"] == len(table) and manifest["sequences"] == 3


def test_cli_scan_store_and_errors(tmp_path, capsys):
    from chromtransfer.datasets.store import write_store

    rng = np.random.default_rng(4)
    seqs = rng.integers(0, 4, size=(5, 100)).astype(np.uint8)
    seqs[:, 40:50] = encode("CGAGCCAGCT")
    regions = pd.DataFrame({"name": [f"r{i}" for i in range(5)], "chrom": "chr1",
                            "start": np.arange(5) * 1000, "end": np.arange(5) * 1000 + 100,
                            "strand": ["+", "+", "+", "+", "-"], "label_name": "x"})
    store = tmp_path / "store"
    write_store(store, seqs, np.zeros(5, np.int32), np.array([0, 0, 1, 1, 1], np.uint8),
                np.array([0, 1, -1, -1, -1], np.int8), regions=regions, task="binary", classes=["neg", "pos"])
    out = tmp_path / "s.tsv"
    assert main(["motifs", "scan", "--data", str(store), "--split", "test", "--motifs",
                 str(_small_motif_file(tmp_path)), "--device", "cpu", "--out", str(out)]) == 0
    table = pd.read_csv(out, sep="\t")
    ctcf = table[(table["tf"] == "CTCF") & (table["site_start"] == 40)].set_index("region")
    assert set(ctcf.index) == {"r2", "r3", "r4"}
    assert ctcf.loc["r2", "start"] == 2040 and ctcf.loc["r2", "region_index"] == 2
    assert ctcf.loc["r4", "start"] == 4000 + 100 - 50 and ctcf.loc["r4", "end"] == 4000 + 100 - 40  # minus window
    out2 = tmp_path / "s2.tsv"
    assert main(["motifs", "scan", "--data", str(store), "--motifs", str(_small_motif_file(tmp_path)),
                 "--background", "sequences", "--device", "cpu", "--out", str(out2)]) == 0
    used = json.loads((tmp_path / "s2.tsv.json").read_text())["scanner"]["background"]
    counts = np.bincount(seqs.ravel(), minlength=4).astype(float)
    expected = (counts + counts[::-1]) / 2 + 1  # both strands, +1 per base
    np.testing.assert_allclose(used, expected / expected.sum(), rtol=1e-9)
    capsys.readouterr()
    assert main(["motifs", "scan", "--data", str(store), "--motifs", str(_small_motif_file(tmp_path)),
                 "--background", "motif-file", "--out", str(tmp_path / "s3.tsv")]) == 2
    assert "Background letter frequencies" in capsys.readouterr().err
    assert main(["motifs", "scan", "--fasta", str(tmp_path / "missing.fa"), "--motifs",
                 str(_small_motif_file(tmp_path)), "--out", str(tmp_path / "x.tsv")]) == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "x.tsv").exists()
    assert main(["motifs", "scan", "--fasta", "a.fa", "--data", "b", "--out", "x.tsv"]) == 2


def test_scan_real_genome_windows(tmp_path, shared_data):
    labels = shared_data / "real" / "labels" / "chromtransfer_cells_GRCh37.tsv.gz"
    genome = shared_data / "real" / "genome" / "GRCh37_dev.fa.gz"
    if not labels.exists() or not genome.exists():
        pytest.skip("shared GRCh37 data files are absent")
    table = pd.read_csv(labels, sep="\t", nrows=24)
    bed = tmp_path / "w.bed"
    table.iloc[:, :3].to_csv(bed, sep="\t", header=False, index=False)
    out = tmp_path / "real.tsv"
    assert main(["motifs", "scan", "--bed", str(bed), "--genome", str(genome), "--device", "cpu",
                 "--out", str(out)]) == 0
    sites = pd.read_csv(out, sep="\t")
    assert len(sites) > 24  # real open chromatin windows carry many JASPAR sites
    assert (sites["end"] - sites["start"] == sites["site_end"] - sites["site_start"]).all()
    assert (sites["pvalue"] < 1e-5).all()
