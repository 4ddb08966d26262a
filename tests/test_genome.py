"""Genome access: formats (plain, gzip, bgzip, 2bit), aliases, case, N codes, indexes, bulk fetches."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from chromtransfer import genome as genome_module
from chromtransfer.encoding import decode, encode
from chromtransfer.errors import InputError
from chromtransfer.genome import Genome, chromosome_key, n_runs


def _random_seq(rng, n, alphabet="ACGT"):
    return "".join(rng.choice(list(alphabet), size=n))


def _write_fasta(path, records, width=60):
    with open(path, "w") as handle:
        for name, seq in records.items():
            handle.write(f">{name} some description\n")
            for i in range(0, len(seq), width):
                handle.write(seq[i:i + width] + "\n")


def _write_2bit(path, records):
    """A minimal UCSC .2bit writer (version 0), with N blocks and a soft mask."""
    order = {"T": 0, "C": 1, "A": 2, "G": 3}
    header = struct.pack("<IIII", 0x1A412743, 0, len(records), 0)
    index_size = sum(1 + len(n) + 4 for n in records)
    offset = len(header) + index_size
    index, blobs = b"", []
    for name, seq in records.items():
        upper = seq.upper()
        n_starts, n_sizes = [], []
        i = 0
        while i < len(upper):
            if upper[i] not in "ACGT":
                j = i
                while j < len(upper) and upper[j] not in "ACGT":
                    j += 1
                n_starts.append(i)
                n_sizes.append(j - i)
                i = j
            else:
                i += 1
        lower = [k for k, c in enumerate(seq) if c.islower()]
        mask = [(lower[0], 1)] if lower else []
        packed = bytearray()
        padded = upper + "T" * (-len(upper) % 4)
        for k in range(0, len(padded), 4):
            byte = 0
            for c in padded[k:k + 4]:
                byte = (byte << 2) | order.get(c, 0)
            packed.append(byte)
        blob = struct.pack("<II", len(seq), len(n_starts))
        blob += struct.pack(f"<{len(n_starts)}I", *n_starts) + struct.pack(f"<{len(n_sizes)}I", *n_sizes)
        blob += struct.pack("<I", len(mask)) + b"".join(struct.pack("<I", s) for s, _ in mask)
        blob += b"".join(struct.pack("<I", z) for _, z in mask) + struct.pack("<I", 0) + bytes(packed)
        index += bytes([len(name)]) + name.encode() + struct.pack("<I", offset)
        offset += len(blob)
        blobs.append(blob)
    path.write_bytes(header + index + b"".join(blobs))


@pytest.fixture()
def records():
    rng = np.random.default_rng(0)
    chr1 = _random_seq(rng, 5000)
    chr1 = chr1[:100] + "acgtacgtnn" + chr1[110:200] + "N" * 50 + chr1[250:300] + "RYKM" + chr1[304:]
    return {"chr1": chr1, "chr2": _random_seq(rng, 1234), "MT": _random_seq(rng, 321)}


@pytest.fixture()
def fasta(tmp_path, records):
    path = tmp_path / "genome.fa"
    _write_fasta(path, records)
    return path


def test_fetch_codes_case_and_n(fasta, records):
    g = Genome(fasta)
    assert g.names == ["chr1", "chr2", "MT"]
    assert g.lengths == {"chr1": 5000, "chr2": 1234, "MT": 321}
    codes = g.fetch_codes("chr1", 100, 110)
    assert codes.tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 4]  # lower case read as upper case
    assert (g.fetch_codes("chr1", 200, 250) == 4).all()
    assert g.fetch_codes("chr1", 300, 304).tolist() == [4, 4, 4, 4]  # IUPAC codes -> N
    for start, end in [(0, 5000), (59, 61), (4990, 5000), (123, 723)]:
        assert decode(g.fetch_codes("chr1", start, end)) == records["chr1"][start:end].upper().replace(
            "R", "N").replace("Y", "N").replace("K", "N").replace("M", "N")
    assert (fasta.parent / "genome.fa.fai").exists()  # index built next to a writable FASTA


def test_aliases(fasta):
    g = Genome(fasta)
    assert g.resolve("1") == "chr1"
    assert g.resolve("chr1") == "chr1"
    assert g.resolve("CHR2") == "chr2"
    assert g.resolve("chrM") == "MT"
    assert g.resolve("M") == "MT"
    assert g.resolve("chrMT") == "MT"
    assert "chr2" in g and "2" in g and "chr9" not in g
    assert chromosome_key("chr20") == chromosome_key("20") == "20"
    with pytest.raises(InputError) as err:
        g.resolve("chr9")
    message = str(err.value)
    assert str(fasta) in message and "'chr9'" in message and "chr1, chr2, MT" in message
    np.testing.assert_array_equal(g.fetch_codes("1", 0, 50), g.fetch_codes("chr1", 0, 50))


def test_out_of_range(fasta):
    g = Genome(fasta)
    with pytest.raises(InputError, match="outside chr2"):
        g.fetch_codes("chr2", 1200, 1300)
    padded = g.fetch_codes("chr2", 1200, 1300, pad=True)
    assert padded.shape == (100,) and (padded[34:] == 4).all() and (padded[:34] < 4).all()
    left = g.fetch_codes("chr2", -10, 10, pad=True)
    assert (left[:10] == 4).all()
    np.testing.assert_array_equal(left[10:], g.fetch_codes("chr2", 0, 10))


def test_fetch_many_matches_single_fetches(fasta):
    g = Genome(fasta)
    rng = np.random.default_rng(1)
    chroms = rng.choice(["chr1", "2", "chrM"], size=300)
    sizes = {"chr1": 5000, "2": 1234, "chrM": 321}
    starts = np.array([rng.integers(0, sizes[c] - 100) for c in chroms])
    many = g.fetch_many(chroms, starts, starts + 100)
    assert many.shape == (300, 100) and many.dtype == np.uint8
    g.release()
    for i in range(300):
        np.testing.assert_array_equal(many[i], g.fetch_codes(chroms[i], starts[i], starts[i] + 100))
    # few windows on a long chromosome: read one by one (no whole-chromosome load)
    g.release()
    few = g.fetch_many(["chr1"], [17], length=100)
    np.testing.assert_array_equal(few[0], g.fetch_codes("chr1", 17, 117))
    with pytest.raises(ValueError):
        g.fetch_many(["chr1", "chr1"], [0, 10], [100, 150])
    with pytest.raises(InputError):
        g.fetch_many(["chr2"] * 20, np.arange(20) * 60, length=200)


def test_gaps(fasta):
    g = Genome(fasta)
    starts, ends = g.gaps("chr1")
    assert list(zip(starts.tolist(), ends.tolist())) == [(108, 110), (200, 250), (300, 304)]
    starts, ends = g.gaps("chr1", min_length=10)
    assert starts.tolist() == [200] and ends.tolist() == [250]
    s, e = n_runs(encode("NNACGNTNN"))
    assert s.tolist() == [0, 5, 7] and e.tolist() == [2, 6, 9]


def test_gzip_and_bgzip(tmp_path, records, fasta):
    from Bio import bgzf

    plain = Genome(fasta)
    gz = tmp_path / "plain.fa.gz"
    with open(fasta, "rb") as src, gzip.open(gz, "wb") as dst:
        dst.write(src.read())
    g = Genome(gz, cache_dir=tmp_path / "cache")
    assert g.format == "gzip"
    assert any((tmp_path / "cache" / "genomes").iterdir())  # decompressed once into the cache
    np.testing.assert_array_equal(g.chromosome_codes("chr1"), plain.chromosome_codes("chr1"))

    # bgzip with a long chromosome so that windows cross BGZF block boundaries (64 KiB)
    rng = np.random.default_rng(5)
    big = {"chr1": _random_seq(rng, 150_000), "chrX": _random_seq(rng, 70_000)}
    big_fa = tmp_path / "big.fa"
    _write_fasta(big_fa, big)
    bgz = tmp_path / "big.fa.gz"
    with open(big_fa, "rb") as src, bgzf.BgzfWriter(str(bgz), "wb") as dst:
        dst.write(src.read())
    gb = Genome(bgz)
    assert gb.format == "bgzf"
    assert (tmp_path / "big.fa.gz.fai").exists() and (tmp_path / "big.fa.gz.gzi").exists()
    ref = Genome(big_fa)
    for start in [0, 64_000, 65_000, 65_536 - 600, 65_536 * 60 // 61 - 10, 130_000, 149_400]:
        np.testing.assert_array_equal(gb.fetch_codes("chr1", start, start + 600), ref.fetch_codes("chr1", start, start + 600))
    gb.release()
    np.testing.assert_array_equal(gb.chromosome_codes("X"), ref.chromosome_codes("chrX"))
    starts = np.arange(0, 149_000, 997)
    np.testing.assert_array_equal(gb.fetch_many(["chr1"] * starts.size, starts, length=600),
                                  ref.fetch_many(["chr1"] * starts.size, starts, length=600))


def test_read_only_folder_uses_cache(tmp_path, records, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "g.fa"
    _write_fasta(path, records)
    monkeypatch.setattr(genome_module, "_writable_dir", lambda p: p != folder)
    g = Genome(path, cache_dir=tmp_path / "cache")
    assert not (folder / "g.fa.fai").exists()
    assert list((tmp_path / "cache" / "index").glob("*-g.fa.fai"))
    assert g.lengths["chr2"] == 1234
    np.testing.assert_array_equal(g.fetch_codes("chr2", 0, 30), encode(records["chr2"][:30]))


def test_twobit(tmp_path, records, fasta):
    path = tmp_path / "genome.2bit"
    _write_2bit(path, records)
    g = Genome(path)
    ref = Genome(fasta)
    assert g.format == "2bit" and g.lengths == ref.lengths
    for name in ref.names:
        np.testing.assert_array_equal(g.chromosome_codes(name), ref.chromosome_codes(name))
    np.testing.assert_array_equal(g.fetch_codes("chr1", 95, 310), ref.fetch_codes("chr1", 95, 310))
    assert g.resolve("chrM") == "MT"


def test_bad_genome_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        Genome(tmp_path / "missing.fa")
    uneven = tmp_path / "uneven.fa"
    uneven.write_text(">chr1\nACGTACGT\nACG\nACGTACGT\n")
    with pytest.raises(InputError) as err:
        Genome(uneven)
    assert str(uneven) in str(err.value)
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    with pytest.raises(InputError):
        Genome(empty)


def test_pickled_genome_reopens(fasta):
    import pickle

    g = Genome(fasta)
    g.chromosome_codes("chr1")
    copy = pickle.loads(pickle.dumps(g))
    np.testing.assert_array_equal(copy.fetch_codes("chr1", 10, 90), g.fetch_codes("chr1", 10, 90))
