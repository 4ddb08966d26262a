"""Region readers and validation, centred windows, tiling, overlap / distance filters."""
from __future__ import annotations

import gzip
import logging

import numpy as np
import pytest

from chromtransfer.errors import InputError
from chromtransfer.genome import Genome
from chromtransfer.interval_sets import IntervalSet
from chromtransfer.intervals import (
    centred_windows,
    n_fraction,
    parse_region_strings,
    read_region_table,
    read_regions,
    tile_chromosome,
    tile_genome,
)


@pytest.fixture()
def genome(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "g.fa"
    seqs = {"chr1": "".join(rng.choice(list("ACGT"), 3000)), "chr2": "N" * 500 + "".join(rng.choice(list("ACGT"), 1500))}
    with open(path, "w") as handle:
        for name, seq in seqs.items():
            handle.write(f">{name}\n" + "\n".join(seq[i:i + 70] for i in range(0, len(seq), 70)) + "\n")
    return Genome(path)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bed_with_comments_and_names(tmp_path, genome):
    path = _write(tmp_path, "a.bed", "track name=x description='y'\nbrowser position chr1:1-100\n# comment\n\n"
                                     "chr1\t100\t200\tpeak1\t5\t+\n1\t300\t400\n2\t600\t800\t.\n")
    table = read_regions(path, genome)
    assert table["chrom"].tolist() == ["chr1", "chr1", "chr2"]  # aliases resolved to the genome's names
    assert table["start"].tolist() == [100, 300, 600] and table["end"].tolist() == [200, 400, 800]
    assert table["name"].tolist() == ["peak1", "1:300-400", "2:600-800"]  # unnamed: as written
    assert table["line"].tolist() == [5, 6, 7]
    assert table.attrs["dropped"] == {}
    # without a genome, names stay as written
    assert read_regions(path)["chrom"].tolist() == ["chr1", "1", "2"]


@pytest.mark.parametrize("body, line, words", [
    ("chr1\t100\t200\nchr1\t300\t250\n", 2, "not below end"),
    ("chr1\t100\t200\nchr1\t200\t200\n", 2, "not below end"),
    ("chr1\t-5\t200\n", 1, "negative start"),
    ("# header\nchr1\t10.5\t200\n", 2, "not an integer"),
    ("chr1\t10\tabc\n", 1, "not an integer"),
    ("chr1\t10\n", 1, "at least 3 columns"),
    ("chr1\t10\t20\nchr7\t10\t20\n", 2, "not in the genome"),
    ("chr1\t10\t20\nchr1\t2900\t3100\n", 2, "past the chromosome end"),
])
def test_validation_errors_name_file_and_line(tmp_path, genome, body, line, words):
    path = _write(tmp_path, "bad.bed", body)
    with pytest.raises(InputError) as err:
        read_regions(path, genome)
    message = str(err.value)
    assert f"{path}:{line}:" in message and words in message
    assert "(" in message  # every message carries a fix


def test_missing_and_off_end_can_be_dropped_or_clipped(tmp_path, genome):
    path = _write(tmp_path, "bl.bed", "chr1\t10\t20\nchr7\t10\t20\nchrUn\t1\t2\nchr1\t2900\t3100\nchr1\t3500\t3600\n")
    dropped = read_regions(path, genome, on_missing="drop", on_off_end="drop")
    assert dropped["start"].tolist() == [10]
    assert dropped.attrs["dropped"] == {"missing_chromosome": 2, "off_end": 2}
    clipped = read_regions(path, genome, on_missing="drop", on_off_end="clip")
    assert clipped["end"].tolist() == [20, 3000]
    assert clipped.attrs["dropped"]["clipped"] == 1 and clipped.attrs["dropped"]["off_end"] == 1


def test_duplicates_removed_and_counted(tmp_path, genome, caplog):
    path = _write(tmp_path, "dup.bed", "chr1\t1\t50\na\nchr1\t1\t50\tb\n1\t1\t50\nchr1\t5\t50\n".replace("\na\n", "\ta\n"))
    with caplog.at_level(logging.INFO, logger="chromtransfer.intervals"):
        table = read_regions(path, genome)
    assert len(table) == 2 and table.attrs["dropped"]["duplicates"] == 2
    assert table["name"].iloc[0] == "a"
    assert "2 duplicate regions" in caplog.text


def test_narrowpeak_summit_and_windows(tmp_path, genome):
    path = _write(tmp_path, "p.narrowPeak", "chr1\t1000\t1400\tp1\t0\t.\t5.0\t3.0\t2.0\t50\n"
                                            "chr1\t2000\t2100\tp2\t0\t.\t5.0\t3.0\t2.0\t-1\n")
    table = read_regions(path, genome)
    assert table.attrs["kind"] == "narrowpeak"
    assert table["summit"].tolist() == [1050, -1]
    mid = centred_windows(table, 600, genome)
    assert mid["start"].tolist() == [900, 1750] and (mid["end"] - mid["start"]).eq(600).all()
    assert mid["region_start"].tolist() == [1000, 2000]
    summit = centred_windows(table, 600, genome, use_summit=True)
    assert summit["start"].tolist() == [750, 1750]  # p2 has no summit: midpoint
    with pytest.raises(InputError):
        read_regions(_write(tmp_path, "short.narrowPeak", "chr1\t1\t100\tx\n"), genome)


def test_windows_off_the_end_dropped_and_counted(tmp_path, genome, caplog):
    path = _write(tmp_path, "edge.bed", "chr1\t10\t60\nchr1\t1500\t1600\nchr1\t2950\t3000\n")
    table = read_regions(path, genome)
    dropped = {}
    with caplog.at_level(logging.INFO, logger="chromtransfer.intervals"):
        windows = centred_windows(table, 600, genome, dropped=dropped)
    assert windows["start"].tolist() == [1250] and dropped == {"off_end": 2}
    assert "lines 1, 3" in caplog.text
    with pytest.raises(InputError) as err:
        centred_windows(table, 600, genome, on_off_end="error")
    assert f"{path}:1" in str(err.value)
    assert centred_windows(table, 101)["start"].tolist() == [-15, 1500, 2925]  # no genome: no check


def test_tsv_with_header_and_region_column(tmp_path, genome):
    path = _write(tmp_path, "m.tsv", "#chrom\tstart\tend\tstart_b\tA549\nchr1\t10\t20\t5\tx\nchr2\t600\t700\t6\t\n")
    table = read_regions(path, genome, extra_columns=True)
    assert table.attrs["kind"] == "tsv" and table["A549"].tolist() == ["x", ""]
    assert table["start_b"].tolist() == ["5", "6"] and table["line"].tolist() == [2, 3]
    path = _write(tmp_path, "r.tsv", "region\tvalue\nchr1:10-20\t1\nchr2:600-700\t2\n")
    table = read_regions(path, genome)
    assert table["chrom"].tolist() == ["chr1", "chr2"] and table["end"].tolist() == [20, 700]
    with pytest.raises(InputError) as err:
        read_regions(_write(tmp_path, "bad.tsv", "region\tvalue\nchr1:10-20\t1\nchr1-5\t2\n"), genome)
    assert "bad.tsv:3" in str(err.value)
    with pytest.raises(InputError, match="names no chrom"):
        read_regions(_write(tmp_path, "nohead.tsv", "a\tb\tc\n1\t2\t3\n"), genome, kind="tsv")


def test_gzip_bed(tmp_path, genome):
    path = tmp_path / "a.bed.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("chr1\t0\t10\nchr2\t5\t25\n")
    assert read_regions(path, genome)["end"].tolist() == [10, 25]


def test_parse_region_strings():
    table = parse_region_strings(["chr1:10-20", "X:5-600"])
    assert table["chrom"].tolist() == ["chr1", "X"] and table["start"].tolist() == [10, 5]
    with pytest.raises(InputError) as err:
        parse_region_strings(["chr1:10-20", "chr1:abc"], "f.csv", [3, 9])
    assert "f.csv:9" in str(err.value)


def test_interval_set_matches_brute_force():
    rng = np.random.default_rng(3)
    n, m = 400, 2000
    chroms = rng.choice(["a", "b", "c"], n)
    starts = rng.integers(0, 100_000, n)
    ends = starts + rng.integers(1, 2000, n)
    s = IntervalSet(chroms, starts, ends)
    q_chroms = rng.choice(["a", "b", "c", "zz"], m)
    q_starts = rng.integers(0, 100_000, m)
    q_ends = q_starts + 600
    for distance in (0, 1, 300):
        got = s.near(q_chroms, q_starts, q_ends, distance)
        want = np.zeros(m, dtype=bool)
        for i in range(m):
            same = chroms == q_chroms[i]
            gap = np.maximum(starts[same] - q_ends[i], q_starts[i] - ends[same])
            want[i] = bool((gap < distance).any()) if distance else bool((gap < 0).any())
        np.testing.assert_array_equal(got, want)
    assert not s.near(["zz"], [0], [10**6], 10).any()
    # merging: overlapping and touching intervals collapse
    merged = IntervalSet(["a", "a", "a", "b"], [0, 5, 10, 0], [5, 8, 20, 3])
    assert len(merged) == 3 and merged.total_bp == 8 + 10 + 3
    assert IntervalSet([], [], []).overlaps(["a"], [0], [5]).tolist() == [False]


def test_distance_semantics():
    s = IntervalSet(["c"], [1000], [1100])
    q = np.array([[300, 900], [400, 700], [399, 699], [1100, 1400], [1400, 2000], [1399, 1999]])
    hits = s.near(["c"] * len(q), q[:, 0], q[:, 1], 300)
    # gaps 100, 300, 301, 0, 300, 299 -> within 300 bp when the gap is below 300
    assert hits.tolist() == [True, False, False, True, False, True]


def test_tiles_and_n_fraction(genome):
    assert tile_chromosome(1900, 600).tolist() == [0, 600, 1200]
    assert tile_chromosome(500, 600).size == 0
    tiles = tile_genome(genome, 600)
    assert len(tiles) == 5 + 3 and (tiles["end"] - tiles["start"]).eq(600).all()
    codes = genome.fetch_many(tiles["chrom"], tiles["start"], tiles["end"])
    frac = n_fraction(codes)
    assert frac[5] == pytest.approx(500 / 600) and frac[6] == 0.0


def test_region_table(tmp_path, genome):
    path = _write(tmp_path, "m.tsv", "# made by hand\n#chrom\tstart\tend\tname\tA\tB\nchr1\t10\t20\tr1\t1\t0.5\n\n"
                                     "chr2\t600\t700\t\t0\t2\n1\t10\t20\tdup\t1\t1\n")
    table = read_region_table(path, genome)
    assert table["chrom"].tolist() == ["chr1", "chr2"] and table["line"].tolist() == [3, 5]
    assert table["name"].tolist() == ["r1", "chr2:600-700"]
    assert table["B"].dtype.kind == "f" and table.attrs["dropped"] == {"duplicates": 1}
    with pytest.raises(InputError) as err:
        read_region_table(_write(tmp_path, "b.tsv", "chrom\tstart\tend\tA\nchr1\t1\t5\t1\nchr1\tx\t5\t1\n"), genome)
    assert "b.tsv:3" in str(err.value) and "not an integer" in str(err.value)
    with pytest.raises(InputError) as err:
        read_region_table(_write(tmp_path, "c.tsv", "chrom\tstart\tend\nchr1\t50\t5\n"), genome)
    assert "c.tsv:2" in str(err.value)
    with pytest.raises(InputError, match="no header"):
        read_region_table(_write(tmp_path, "d.tsv", "chr1\t1\t5\n"), genome)
