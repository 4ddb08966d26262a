"""De novo motifs (``motifs discover``, ``ct.discover_motifs``): TF-MoDISco on attributions of
sequences with a planted motif, TOMTOM matches to JASPAR, short windows, no pattern, --compare."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("modiscolite", reason="modisco-lite is not installed (pip install 'chromtransfer[motifs]')")

from chromtransfer.cli import main  # noqa: E402
from chromtransfer.errors import InputError  # noqa: E402
from chromtransfer.interpret.attributions import Attributions  # noqa: E402
from chromtransfer.interpret.discover import (  # noqa: E402
    compare_patterns,
    contribution_tracks,
    discover_motifs,
    modisco_settings,
    planted_in_top,
)
from chromtransfer.interpret.discover_io import read_discovery, write_discovery  # noqa: E402
from chromtransfer.interpret.jaspar import load_jaspar  # noqa: E402

GATA1 = "MA0035.4"
LENGTH = 100


@pytest.fixture(scope="module")
def database():
    """A small slice of JASPAR 2022 (fast TOMTOM) that holds GATA1, two other GATA matrices and
    unrelated families."""
    motifs = load_jaspar()
    chosen = [m for m in motifs if m.motif_id == GATA1]
    chosen += [m for m in motifs if "C4-GATA-related" in m.families and m.motif_id != GATA1][:2]
    chosen += [m for m in motifs if "C4-GATA-related" not in m.families][::20]
    return chosen


def _planted(n: int, seed: int, planted: bool = True) -> Attributions:
    """``n`` random 100 bp sequences; with ``planted`` a GATA1 site drawn from its matrix near
    the centre of 3 in 4 of them, whose bases score about 1 (the rest noise of 0.05)."""
    gata = next(m for m in load_jaspar() if m.motif_id == GATA1)
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, size=(n, LENGTH)).astype(np.uint8)
    hypothetical = rng.normal(0, 0.05, size=(n, LENGTH, 4)).astype(np.float32)
    if planted:
        for row in np.flatnonzero(rng.random(n) < 0.75):
            start = int(rng.integers(40, 60 - gata.width))
            site = np.array([rng.choice(4, p=f) for f in gata.frequencies], dtype=np.uint8)
            if rng.random() < 0.5:  # either strand
                site = (3 - site)[::-1]
            codes[row, start:start + gata.width] = site
            for offset, base in enumerate(site):
                hypothetical[row, start + offset, base] += 1.0
    scores = np.take_along_axis(hypothetical, codes[:, :, None].astype(np.int64), axis=2)[:, :, 0]
    names = np.array([f"r{i}" for i in range(n)])
    return Attributions(scores, names, "grad_x_input", codes=codes, hypothetical=hypothetical, target="logit")


@pytest.fixture(scope="module")
def planted():
    return _planted(200, seed=1)


@pytest.fixture(scope="module")
def found(planted, database):
    return discover_motifs(planted, database, min_seqlets=15, leiden_runs=2)


def test_planted_motif_is_found_and_matched_to_its_jaspar_matrix(found, database):
    table = found.table()
    assert len(table) >= 1 and table["sign"].iloc[0] == 1
    best = table.iloc[0]
    assert best["seqlets"] >= 30  # a good share of the 150 planted sites
    assert "C4-GATA-related" in best["family"] and best["q"] < 0.05
    assert planted_in_top(found, [GATA1], database, top=3)
    assert not planted_in_top(found, ["MA0139.1"], database, top=3)  # CTCF was not planted
    entry = found.de_novo()[0]
    assert set(entry) == {"pattern", "seqlets", "best_match", "q", "family"} and entry["q"] < 0.05


def test_contributions_come_from_what_the_attributions_hold(planted):
    sequence, hypothetical, source = contribution_tracks(planted)
    assert "hypothetical" in source and np.array_equal(hypothetical, planted.hypothetical)
    assert sequence.shape == (200, LENGTH, 4) and np.all(sequence.sum(axis=2) == 1)
    ism = Attributions(planted.scores, planted.names, "ism", codes=planted.codes, ism=planted.hypothetical)
    _, centred, source = contribution_tracks(ism, window=40)
    assert "ISM" in source and centred.shape == (200, 40, 4)
    np.testing.assert_allclose(centred.sum(axis=2), 0, atol=1e-5)  # mean-centred per position
    scores_only = Attributions(planted.scores, planted.names, "grad_x_input", codes=planted.codes)
    onehot, projected, source = contribution_tracks(scores_only)
    np.testing.assert_allclose(projected.sum(axis=2), planted.scores)  # scores at the present base only
    assert np.all(projected[onehot == 0] == 0) and "x one-hot" in source
    with pytest.raises(InputError, match="outside"):
        contribution_tracks(planted, window=LENGTH + 1)


def test_short_windows_scale_modisco_and_still_find_the_motif(planted, database):
    assert modisco_settings(400)["sliding_window_size"] == 21 and modisco_settings(400)["flank_size"] == 10
    short = modisco_settings(40)
    assert short["sliding_window_size"] + 2 * (short["flank_size"] + short["initial_flank_to_add"]) <= 40
    import chromtransfer as ct

    result = ct.discover_motifs(planted, database, window=40, min_seqlets=15, leiden_runs=2)
    assert result.length == 40 and result.patterns
    assert "C4-GATA-related" in result.table()["family"].iloc[0]


def test_folder_cli_compare_and_no_pattern(tmp_path, found, database):
    written = tmp_path / "planted_motifs"
    write_discovery(found, written, inputs="planted")
    patterns = pd.read_csv(written / "patterns.tsv", sep="\t")
    for column in ("cwm_logo", "pwm_logo"):  # every logo named is written
        assert all((written / name).is_file() and (written / name).stat().st_size > 1000 for name in patterns[column])
    meme = (written / "patterns.meme").read_text()
    assert meme.count("MOTIF pos_") == int((patterns["sign"] > 0).sum()) and "letter-probability matrix" in meme
    back = read_discovery(written)
    assert [p.name for p in back.patterns] == list(patterns["pattern"])
    assert back.best_match("pos_0")["motif_id"] == patterns["best_match"].iloc[0]
    same = compare_patterns(back.patterns, found.patterns, database)
    assert same.loc[same["pattern"] == "pos_0", "shared"].all()

    # noise attributions: no pattern (a message, empty tables), compared with the folder above
    _planted(120, seed=2, planted=False).save(tmp_path / "noise", bigwig=False)
    motif_file = tmp_path / "db.meme"  # a MEME file instead of the bundled JASPAR
    motif_file.write_text("MEME version 4\n\nALPHABET= ACGT\n\n" + "".join(
        f"MOTIF {m.motif_id} {m.name}\nletter-probability matrix: alength= 4 w= {m.width}\n"
        + "".join(" ".join(f"{v:.4f}" for v in row) + "\n" for row in m.frequencies) + "\n" for m in database))
    out = tmp_path / "motifs"
    command = ["motifs", "discover", "--attributions", str(tmp_path / "noise"), "--compare", str(written),
               "--motifs", str(motif_file), "--min-seqlets", "15", "--leiden-runs", "2", "--out", str(out)]
    assert main(command) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["a"]["patterns"] == 0 and "no pattern" in manifest["a"]["note"]
    assert manifest["only_in_a"] == [] and manifest["only_in_b"] == list(patterns["pattern"])
    assert pd.read_csv(out / "patterns.tsv", sep="\t").empty and pd.read_csv(out / "matches.tsv", sep="\t").empty
    assert len(pd.read_csv(out / "patterns_b.tsv", sep="\t")) == len(patterns)
    assert all((out / name).is_file() for name in manifest["files"])
    # a complete folder is refused without --overwrite; a window longer than the sequences is an error
    assert main(command) == 2
    assert main(command[:5] + ["--window", "500", "--out", str(tmp_path / "w")]) == 2


def test_runs_are_compared_on_pattern_cores_not_on_weak_flanks(database):
    """Two patterns with different cores but the same long, weakly informative flanks are not
    'shared'; the same core with different flanks is."""
    from chromtransfer.interpret.discover import Pattern

    def pattern(name, core, flank_seed):
        noise = np.random.default_rng(flank_seed).uniform(-0.03, 0.03, size=(2, 15, 4))
        flanks = np.array([0.36, 0.14, 0.14, 0.36]) + noise  # AT-rich, about 0.15 bits a position
        flanks /= flanks.sum(axis=-1, keepdims=True)
        sharp = np.full((len(core), 4), 0.02)
        sharp[np.arange(len(core)), ["ACGT".index(b) for b in core]] = 0.94
        ppm = np.vstack([flanks[0], sharp, flanks[1]])
        return Pattern(name, 1, 30, ppm, ppm * 0.1, ppm * 0.1, (0, len(ppm)))

    cebp, gata = "ATTGCGCAAT", "AGATAAGA"
    a = [pattern("pos_0", cebp, 1)]
    b = [pattern("pos_0", gata, 1), pattern("pos_1", cebp, 2)]
    assert a[0].core_consensus == cebp and len(a[0].consensus) == 40
    table = compare_patterns(a, b[:1], database, labels=("a", "b"))
    assert not table["shared"].any()  # flanks alike, cores unlike
    table = compare_patterns(a, b[1:], database, labels=("a", "b"))
    assert table["shared"].all() and (table["consensus"] == cebp).all()
