"""Sequence encodings and the dataset store."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from chromtransfer import encoding
from chromtransfer.cli import main
from chromtransfer.datasets.store import StoreWriter, open_store, write_store
from chromtransfer.errors import ArtifactError


def test_encode_decode_case_and_unknown():
    codes = encoding.encode("ACGTacgtNRY-")
    assert codes.tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 4, 4]
    assert encoding.decode(codes) == "ACGTACGTNNNN"


def test_one_hot_layout_and_n_rows():
    codes = torch.tensor(encoding.encode_many(["ACGTN"]))
    x = encoding.one_hot(codes)
    assert x.shape == (1, 4, 5)
    assert x[0, :, :4].argmax(0).tolist() == [0, 1, 2, 3]
    assert x[0, :, 4].sum() == 0
    np.testing.assert_array_equal(encoding.one_hot_numpy(codes.numpy()), x.numpy())
    back = encoding.codes_from_one_hot(x.numpy(), channels_last=False)
    assert back.tolist() == codes.tolist()


def test_reverse_complement():
    codes = encoding.encode("AACGTN")
    assert encoding.decode(encoding.reverse_complement_codes(codes)) == "NACGTT"


def _toy_store(path, n=20, length=12):
    rng = np.random.default_rng(0)
    seqs = rng.integers(0, 5, size=(n, length), dtype=np.uint8)
    labels = np.arange(n) % 2
    split = (np.arange(n) >= 15).astype(np.uint8)
    fold = np.where(split == 0, np.arange(n) % 3, -1)
    regions = pd.DataFrame({"name": [f"r{i}" for i in range(n)], "chrom": "chr1",
                            "start": np.arange(n) * 100, "end": np.arange(n) * 100 + length,
                            "label_name": np.where(labels == 1, "HEPG2", "HEPG2_NEG")})
    write_store(path, seqs, labels, split, fold, regions, seed=7)
    return seqs, labels, split, fold


def test_store_round_trip_and_indices(tmp_path):
    seqs, labels, split, fold = _toy_store(tmp_path / "s")
    store = open_store(tmp_path / "s")
    assert isinstance(store.sequences, np.memmap)
    np.testing.assert_array_equal(store.sequences, seqs)
    assert store.n_rows == 20 and store.length == 12 and store.n_folds == 3
    assert set(store.indices("test")) == set(range(15, 20))
    valid = store.indices("valid", 1)
    train = store.indices("train", 1)
    assert set(valid).isdisjoint(train) and len(valid) + len(train) == 15
    assert store.regions["label_name"].iloc[1] == "HEPG2"
    assert store.manifest["counts"]["train"]["rows"] == 15


def test_interrupted_writer_leaves_no_store(tmp_path):
    with pytest.raises(RuntimeError):
        with StoreWriter(tmp_path / "s", 4, 5) as writer:
            writer.sequences[:] = 1
            raise RuntimeError("killed")
    assert not (tmp_path / "s").exists()
    assert list(tmp_path.iterdir()) == []


def test_store_without_manifest_is_refused(tmp_path):
    _toy_store(tmp_path / "s")
    (tmp_path / "s" / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="manifest.json is missing"):
        open_store(tmp_path / "s")


def test_rewrite_replaces_old_store_only_when_complete(tmp_path):
    _toy_store(tmp_path / "s")
    with pytest.raises(ValueError):
        with StoreWriter(tmp_path / "s", 3, 4, overwrite=True) as writer:
            writer.finish([0, 1], [0, 0, 0], [0, 0, 0], pd.DataFrame({"name": list("abc")}),
                          task="binary", classes=["negative", "positive"])
    assert open_store(tmp_path / "s").n_rows == 20  # the old store survived


def test_info_dataset_json(tmp_path, capsys):
    _toy_store(tmp_path / "s")
    assert main(["info", "dataset", str(tmp_path / "s"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 20
    assert summary["positives"] == 10 and summary["negatives"] == 10
    assert summary["splits"] == {"train": 15, "test": 5}
    assert summary["folds"] == {"0": 5, "1": 5, "2": 5}
    assert summary["labels"] == {"HEPG2": 10, "HEPG2_NEG": 10}


def test_info_dataset_missing_store_is_one_line(tmp_path, capsys):
    assert main(["info", "dataset", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_read_document_checks_format_and_version(tmp_path):
    import json

    from chromtransfer.artifacts import read_document

    path = tmp_path / "doc.json"
    with pytest.raises(ArtifactError, match="no such file"):
        read_document(path, "chromtransfer-x", what="x document", fix="write it again")
    path.write_text(json.dumps({"format": "chromtransfer-x", "format_version": 1, "value": 3}))
    assert read_document(path, "chromtransfer-x", what="x document", fix="write it again")["value"] == 3
    with pytest.raises(ArtifactError, match="not a y document .format is 'chromtransfer-x'"):
        read_document(path, "chromtransfer-y", what="y document", fix="write it again")
    path.write_text(json.dumps({"format": "chromtransfer-x", "format_version": 2}))
    with pytest.raises(ArtifactError, match="format_version 2 is newer"):
        read_document(path, "chromtransfer-x", what="x document", fix="write it again")
    path.write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON .* write it again"):
        read_document(path, "chromtransfer-x", what="x document", fix="write it again")
