"""``chromtransfer variants`` / :func:`chromtransfer.variants.score_variants` on a small random genome.

Models are narrow and untrained (random weights, random BatchNorm statistics): the point here is
bookkeeping and exactness, not accuracy. The shared-reference SNV path is compared with two full
forward passes per variant; REF mismatches, multi-allelic records, indels, duplicates, chromosome
aliases, element windows, the null, specificity, the annotated VCF and resuming a killed run are
checked on the written files.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from chromtransfer.cli import main
from chromtransfer.encoding import decode, encode
from chromtransfer.errors import ChromTransferError, InputError
from chromtransfer.genome import Genome
from chromtransfer.inference import predict_codes
from chromtransfer.modelio import save_model
from chromtransfer.models import build_model
from chromtransfer.variants import BASE_COLUMNS, score_variants
from chromtransfer.variants import run as variants_run
from chromtransfer.variants.fastsnv import snv_probabilities
from chromtransfer.variants.scoring import WindowBatch, load_cell_models, score_windows, score_windows_naive
from chromtransfer.variants.windows import alt_window

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MOTIF = "TGCGATAAGC"  # planted at chr1[1000:1010]: p ~ 1e-6 exact, above 1e-5 with one mismatch
NEAR_MOTIF = "TGCGATCAGC"  # planted at chr2[2000:2010]; C -> A at chr2:2007 (1-based) makes MOTIF


def _random_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("finetune", width=0.125, head_units=(16, 8))
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("variants")
    rng = np.random.default_rng(7)
    seqs = {"chr1": list(rng.choice(list("ACGT"), 6000)), "chr2": list(rng.choice(list("ACGT"), 4000))}
    seqs["chr1"][1000:1000 + len(MOTIF)] = list(MOTIF)
    seqs["chr2"][2000:2000 + len(NEAR_MOTIF)] = list(NEAR_MOTIF)
    text = {name: "".join(s) for name, s in seqs.items()}
    genome = root / "genome.fa"
    with open(genome, "w") as handle:
        for name, s in text.items():
            handle.write(f">{name}\n" + "".join(s[i:i + 60] + "\n" for i in range(0, len(s), 60)))
    save_model(_random_model(1), root / "HepG2")
    save_model(_random_model(2), root / "K562" / "fold0")
    save_model(_random_model(3), root / "K562" / "fold1")
    (root / "K562" / "folds.json").write_text(json.dumps({"status": "complete", "folds": ["fold0", "fold1"]}))
    counts = np.full((len(MOTIF), 4), 1)
    counts[np.arange(len(MOTIF)), encode(MOTIF)] = 97
    (root / "motif.jaspar").write_text(">MA9999.1 PLANTED\n" + "".join(
        f"{b} [ {' '.join(str(c) for c in counts[:, i])} ]\n" for i, b in enumerate("ACGT")))
    return {"root": root, "genome": genome, "text": text, "models": [root / "HepG2", root / "K562"],
            "motifs": root / "motif.jaspar"}


def _other(base: str) -> str:
    return "A" if base != "A" else "C"


def _vcf(path: Path, records: list[tuple], header_contigs=("chr1", "chr2")) -> Path:
    lines = ["##fileformat=VCFv4.2"] + [f"##contig=<ID={c}>" for c in header_contigs]
    lines += ['##INFO=<ID=DP,Number=1,Type=Integer,Description="depth">',
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    lines += [f"{c}\t{p}\t{i}\t{r}\t{a}\t.\t.\tDP=3" for c, p, i, r, a in records]
    path.write_text("\n".join(lines) + "\n")
    return path


def _records(world) -> list[tuple]:
    g = world["text"]
    b = lambda c, p: g[c][p - 1]  # noqa: E731  (1-based)
    motif_mid = 1000 + 6  # 1-based position of MOTIF[5]
    alts_2000 = ",".join(x for x in "ACGT" if x != b("chr1", 2000))
    return [
        ("chr1", motif_mid, "breaks_motif", b("chr1", motif_mid), _other(b("chr1", motif_mid))),
        ("chr1", 2000, "multi", b("chr1", 2000), alts_2000),
        ("chr1", 2000, "dup", b("chr1", 2000), alts_2000.split(",")[1]),
        ("chr2", 100, "ins", b("chr2", 100), b("chr2", 100) + "GGA"),
        ("chr2", 300, "del", g["chr2"][299:303], b("chr2", 300)),
        ("chr2", 2007, "makes_motif", "C", "A"),
        ("1", 5990, "alias", b("chr1", 5990), _other(b("chr1", 5990))),
        ("chr2", 600, "mismatch_flip", _other(b("chr2", 600)), b("chr2", 600)),
        ("chr2", 700, "mismatch_skip", _other(b("chr2", 700)), "G" if b("chr2", 700) not in "AG" else "T"),
    ]


def _read(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "variants.tsv.gz", sep="\t", keep_default_na=False, na_values=["NA"])


@pytest.fixture(scope="module")
def full_run(world) -> dict:
    root = world["root"]
    vcf = _vcf(root / "all.vcf", _records(world))
    out = root / "run_full"
    summary = score_variants(vcf, world["genome"], world["models"], out, on_ref_mismatch="flip", null=40,
                             motifs=world["motifs"], explain=1, chunk_size=3, device="cpu")
    return {"vcf": vcf, "out": out, "summary": summary, "table": _read(out)}


# ------------------------------------------------------------------------------- exactness


def test_shared_reference_snvs_equal_two_full_passes():
    model = _random_model(11)
    rng = np.random.default_rng(0)
    windows = rng.integers(0, 4, (5, 600)).astype(np.uint8)
    windows[0, :40] = 4  # a window running off a chromosome end
    rows = np.repeat(np.arange(5), 12)
    offsets = rng.integers(0, 600, rows.size)
    offsets[:6] = [0, 1, 2, 597, 598, 599]
    alts = (windows[rows, offsets] + rng.integers(1, 4, rows.size)) % 4
    p_windows, p_subs = snv_probabilities(model, windows, rows, offsets, alts, batch_size=7)
    mutated = windows[rows].copy()
    mutated[np.arange(rows.size), offsets] = alts
    full_ref = predict_codes(model, windows, fast=False)[:, 0]
    full_alt = predict_codes(model, mutated, fast=False)[:, 0]
    assert np.abs(p_windows - full_ref).max() < 1e-5
    assert np.abs(p_subs - full_alt).max() < 1e-5
    assert np.abs(p_subs - full_ref[rows]).max() > 1e-4  # the substitutions do change the output


@pytest.mark.parametrize("rc_average", [False, True])
def test_score_windows_equals_naive(world, rc_average):
    cells = load_cell_models(world["models"], torch.device("cpu"))
    genome = Genome(world["genome"])
    windows = [genome.fetch_codes("chr1", s, s + 600) for s in (100, 1500, 3000)]
    # window 0: 3 SNVs (shared reference), window 1: a lone SNV, window 2: 3 SNVs and a deletion
    rows = np.array([0, 0, 0, 1, 2, 2, 2, 2])
    offsets = np.array([5, 300, 599, 0, 10, 20, 300, 311])
    snv_alt = np.array([(int(windows[r][o]) + 1) % 4 for r, o in zip(rows, offsets)], dtype=np.int64)
    snv_alt[-1] = -1
    alt_codes = [None] * rows.size
    alt_codes[-1] = alt_window(genome, "chr1", 3000, 600, windows[2], 3311, decode(windows[2][311:314]),
                               decode(windows[2][311:312]))
    batch = WindowBatch(windows, rows, offsets, snv_alt, alt_codes)
    fast = score_windows(cells, batch, rc_average=rc_average)
    naive = score_windows_naive(cells, batch, rc_average=rc_average)
    for a, b in zip(fast, naive):
        assert np.abs(a - b).max() < 1e-5


def test_alt_windows_are_length_preserving(world):
    genome = Genome(world["genome"])
    g = world["text"]["chr2"]
    ref = genome.fetch_codes("chr2", 0, 600)
    insertion = decode(alt_window(genome, "chr2", 0, 600, ref, 99, g[99], g[99] + "GGA"))
    assert insertion == g[:100] + "GGA" + g[100:597]
    deletion = decode(alt_window(genome, "chr2", 0, 600, ref, 299, g[299:303], g[299]))
    assert deletion == g[:300] + g[303:603]
    assert len(insertion) == len(deletion) == 600


# ------------------------------------------------------------------------------- the full run


def test_table_columns_and_counts(full_run):
    table = full_run["table"]
    assert list(table.columns) == BASE_COLUMNS + ["specificity", "null_z", "null_p", "motifs_lost", "motifs_gained"]
    counts = full_run["summary"]["counts"]
    # 9 records; the multi-allelic one gives 3 variants: 11 variants
    assert full_run["summary"]["records"] == 9 and full_run["summary"]["variants"] == 11
    assert counts["scored"] == 8 and counts["flipped"] == 1 and counts["duplicate"] == 1
    assert counts["ref_mismatch"] == 1
    assert len(table) == 11 * 2 and set(table["model"]) == {"HepG2", "K562"}


def test_multiallelic_split(full_run, world):
    table = full_run["table"]
    multi = table[(table["id"] == "multi") & (table["model"] == "K562")]
    ref = world["text"]["chr1"][1999]
    assert sorted(multi["alt"]) == sorted(x for x in "ACGT" if x != ref)
    assert (multi["p_ref"].nunique() == 1) and multi["p_alt"].nunique() == 3


def test_duplicates_scored_once_and_reported(full_run):
    table = full_run["table"]
    dup = table[table["id"] == "dup"]
    assert set(dup["status"]) == {"duplicate"}
    first = table[table["variant"] == dup["duplicate_of"].iloc[0]]
    assert first["alt"].iloc[0] == dup["alt"].iloc[0]
    np.testing.assert_array_equal(dup["delta_logit"].to_numpy(), first["delta_logit"].to_numpy())


def test_ref_mismatch_flip_and_skip(full_run, world):
    table = full_run["table"]
    flipped = table[table["id"] == "mismatch_flip"].iloc[0]
    assert flipped["status"] == "flipped" and flipped["ref"] == world["text"]["chr2"][599]
    skipped = table[table["id"] == "mismatch_skip"]
    assert set(skipped["status"]) == {"ref_mismatch"} and skipped["p_ref"].isna().all()


def test_ref_mismatch_error_is_one_line(world, tmp_path, capsys):
    vcf = _vcf(tmp_path / "bad.vcf", _records(world))
    code = main(["variants", "--vcf", str(vcf), "--genome", str(world["genome"]), "--model",
                 str(world["models"][0]), "--out", str(tmp_path / "out"), "--motifs", "none", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    lines = [line for line in err if line.startswith("error:")]
    assert len(lines) == 1 and "bad.vcf:13" in lines[0] and "does not match the genome" in lines[0]
    assert not (tmp_path / "out").exists()  # checked before anything was written


def test_skip_mode_counts(world, tmp_path):
    vcf = _vcf(tmp_path / "v.vcf", _records(world)[-3:])
    before = torch.get_num_threads()
    summary = score_variants(vcf, world["genome"], world["models"][:1], tmp_path / "out",
                             on_ref_mismatch="skip", motifs=None, threads=before + 1)
    assert summary["counts"]["ref_mismatch"] == 2 and summary["counts"]["scored"] == 1
    assert torch.get_num_threads() == before  # threads= lasts for the call only


def test_indels_scored_with_their_windows(full_run, world):
    cells = load_cell_models(world["models"], torch.device("cpu"))
    genome = Genome(world["genome"])
    table = full_run["table"]
    for vid, kind in (("ins", "insertion"), ("del", "deletion")):
        rows = table[table["id"] == vid]
        assert set(rows["kind"]) == {kind}
        row = rows[rows["model"] == "HepG2"].iloc[0]
        start, end = int(row["window_start"]), int(row["window_end"])
        assert end - start == 600 and int(row["pos"]) - 1 - start == 300
        ref = genome.fetch_codes("chr2", start, end, pad=True)
        alt = alt_window(genome, "chr2", start, 600, ref, int(row["pos"]) - 1, row["ref"], row["alt"])
        expected = predict_codes(cells[0].members[0], alt[None])[0, 0]
        assert abs(row["p_alt"] - expected) < 1e-5


def test_aliases(full_run):
    row = full_run["table"][full_run["table"]["id"] == "alias"].iloc[0]
    assert row["chrom"] == "1" and row["window_chrom"] == "chr1" and row["status"] == "scored"
    assert int(row["window_end"]) > 6000  # the window runs off the end, padded with N


def test_specificity_and_null(full_run):
    table = full_run["table"][full_run["table"]["status"].isin(["scored", "flipped", "duplicate"])]
    wide = table.pivot(index="variant", columns="model", values="delta_logit")
    spec = table.pivot(index="variant", columns="model", values="specificity")
    np.testing.assert_allclose(spec["HepG2"], wide["HepG2"] - wide["K562"], rtol=1e-5, atol=1e-9)
    null = pd.read_csv(full_run["out"] / "null.tsv.gz", sep="\t")
    assert len(null) == 40
    for model in ("HepG2", "K562"):
        d0 = null[f"delta_logit_{model}"].to_numpy()
        rows = table[table["model"] == model]
        z = (rows["delta_logit"] - d0.mean()) / d0.std(ddof=1)
        np.testing.assert_allclose(rows["null_z"], z, rtol=1e-4, atol=1e-6)
        dev = np.abs(d0 - d0.mean())
        p = [(1 + (dev >= abs(d - d0.mean()) * (1 - 1e-9)).sum()) / 41 for d in rows["delta_logit"]]
        np.testing.assert_allclose(rows["null_p"], p, rtol=1e-4)


def test_motifs_lost_and_gained(full_run):
    table = full_run["table"]
    lost = table[table["id"] == "breaks_motif"]["motifs_lost"].iloc[0]
    gained = table[table["id"] == "makes_motif"]["motifs_gained"].iloc[0]
    assert lost.startswith("PLANTED:MA9999.1:") and float(lost.split(":")[2]) > 10
    assert gained.startswith("PLANTED:MA9999.1:")
    assert table[table["id"] == "multi"]["motifs_lost"].eq("").all()


def test_annotated_vcf_readable_by_cyvcf2(full_run):
    import cyvcf2

    table = full_run["table"]
    reader = cyvcf2.VCF(str(full_run["out"] / "variants.vcf.gz"))
    records = list(reader)
    assert len(records) == 9
    multi = next(r for r in records if r.ID == "multi")
    values = multi.INFO.get("CT_K562_DLOGIT")
    expected = table[(table["id"] == "multi") & (table["model"] == "K562")]["delta_logit"].to_numpy()
    np.testing.assert_allclose(values, expected, rtol=1e-4)
    assert multi.INFO.get("CT_STATUS") == "scored,scored,scored"
    assert multi.INFO.get("DP") == 3  # the original INFO is kept
    skipped = next(r for r in records if r.ID == "mismatch_skip")
    assert skipped.INFO.get("CT_STATUS") == "ref_mismatch"
    assert "PLANTED" in next(r for r in records if r.ID == "breaks_motif").INFO.get("CT_MOTIFS_LOST")


def test_figures_written(full_run):
    out = full_run["out"]
    assert (out / "top_variants.png").stat().st_size > 1000
    assert len(list((out / "explain").glob("*.png"))) == 1
    assert not (out / "chunks").exists()


# ------------------------------------------------------------------------------- folder, resume, regions


def test_refuses_a_foreign_folder(world, full_run, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ChromTransferError, match="not written by chromtransfer"):
        score_variants(full_run["vcf"], world["genome"], world["models"][:1], tmp_path, on_ref_mismatch="skip",
                       motifs=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_refuses_a_model_run_as_out(world, full_run):
    run = Path(world["models"][0])
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(ChromTransferError, match="not variant scores"):
        score_variants(full_run["vcf"], world["genome"], world["models"][:1], run, on_ref_mismatch="skip",
                       motifs=None)
    assert sorted(p.name for p in run.iterdir()) == before


def test_killed_run_resumes(world, tmp_path, monkeypatch):
    vcf = _vcf(tmp_path / "v.vcf", _records(world))
    options = dict(on_ref_mismatch="flip", motifs=world["motifs"], chunk_size=2, null=10)
    reference = score_variants(vcf, world["genome"], world["models"], tmp_path / "whole", **options)
    written = []
    original = variants_run._write_chunk

    def stop_after_two(out, k, table):
        if len(written) == 2:
            raise KeyboardInterrupt("killed")
        original(out, k, table)
        written.append(k)

    monkeypatch.setattr(variants_run, "_write_chunk", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        score_variants(vcf, world["genome"], world["models"], tmp_path / "resumed", **options)
    manifest = json.loads((tmp_path / "resumed" / "manifest.json").read_text())
    assert manifest["status"] == "running" and manifest["chunks_done"] == [0, 1]
    monkeypatch.setattr(variants_run, "_write_chunk", original)
    with pytest.raises(ChromTransferError, match="changed: options"):
        score_variants(vcf, world["genome"], world["models"], tmp_path / "resumed", **{**options, "null": 11})
    summary = score_variants(vcf, world["genome"], world["models"], tmp_path / "resumed", **options)
    assert summary["scored_this_run"] < reference["scored_this_run"]
    pd.testing.assert_frame_equal(_read(tmp_path / "resumed"), _read(tmp_path / "whole"))
    with gzip.open(tmp_path / "resumed" / "variants.vcf.gz", "rt") as a, \
            gzip.open(tmp_path / "whole" / "variants.vcf.gz", "rt") as b:
        assert a.read() == b.read()


def test_regions_windows_and_outside(world, tmp_path):
    bed = tmp_path / "elements.bed"
    bed.write_text("chr1\t900\t1500\tE1\n1\t1800\t2400\tE2\n")
    records = _records(world)[:3] + [_records(world)[3]]
    vcf = _vcf(tmp_path / "v.vcf", records)
    summary = score_variants(vcf, world["genome"], world["models"][:1], tmp_path / "out", regions=bed,
                             motifs=None, null=5)
    table = _read(tmp_path / "out")
    assert summary["counts"]["outside_regions"] == 1
    assert table[table["id"] == "ins"]["status"].iloc[0] == "outside_regions"
    inside = table[table["id"] == "multi"]
    assert set(inside["element"]) == {"E2"} and set(inside["window_start"]) == {1800}
    null = pd.read_csv(tmp_path / "out" / "null.tsv.gz", sep="\t")
    pos = null["pos"].to_numpy() - 1
    assert (((pos >= 900) & (pos < 1500)) | ((pos >= 1800) & (pos < 2400))).all()


def test_unknown_chromosome_is_bad_input(world, tmp_path, capsys):
    vcf = _vcf(tmp_path / "v.vcf", [("chr9", 10, ".", "A", "C")])
    code = main(["variants", "--vcf", str(vcf), "--genome", str(world["genome"]), "--model",
                 str(world["models"][0]), "--out", str(tmp_path / "out"), "--quiet"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(err) == 1 and "v.vcf:6" in err[0] and "chr9" in err[0]
    with pytest.raises(InputError):
        score_variants(tmp_path / "missing.vcf", world["genome"], world["models"][:1], tmp_path / "o2")


def test_malformed_records_and_symbolic_alleles(world, tmp_path, capsys):
    bad = tmp_path / "bad.vcf"
    bad.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\nchr1\tabc\t.\tA\tC\t.\t.\t.\n")
    code = main(["variants", "--vcf", str(bad), "--genome", str(world["genome"]), "--model",
                 str(world["models"][0]), "--out", str(tmp_path / "out"), "--quiet"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(err) == 1 and "bad.vcf:3" in err[0] and "POS" in err[0]
    g = world["text"]["chr1"]
    vcf = _vcf(tmp_path / "sym.vcf", [("chr1", 10, "sv", g[9], "<DEL>"), ("chr1", 12, "star", g[11], "*"),
                                      ("chr1", 14, "ok", g[13], _other(g[13]))])
    summary = score_variants(vcf, world["genome"], world["models"][:1], tmp_path / "out2", motifs=None)
    assert summary["counts"]["unsupported_allele"] == 2 and summary["counts"]["scored"] == 1
