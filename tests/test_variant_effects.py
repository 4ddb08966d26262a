"""The study's variants stage: its figures against the synthetic truth (pure functions, no models)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chromtransfer.workflow.variant_effects import truth_metrics


def _tables():
    truth = pd.DataFrame({
        "chrom": ["chr1"] * 6 + ["chr2"], "pos": [10, 20, 30, 40, 50, 60, 70],
        "ref": list("AAAAAAC"), "alt": list("CCCCCCG"),
        "class": ["driver", "driver", "driver", "nonmotif", "nonmotif", "driver", "background"],
        "cell": ["K562", "K562", "K562", "K562", "K562", "HepG2", ""],
        "tf": ["GATA1", "TAL1::TCF3", "TAL1::TCF3", "", "", "HNF1A", ""],
    })
    rows = []
    deltas = {"K562": [-0.5, -3.0, 0.1, 0.2, -1.0, -4.0, np.nan], "HepG2": [0, 0, 0, 0, 0, -2.0, np.nan]}
    lost = ["GATA1:MA0035.4:14.2", "TAL1::TCF3:MA0091.1:17.6|Atoh1:MA1467.2:14.0", "", "", "", "HNF1A:MA0046.2:21", ""]
    for i, row in truth.iterrows():
        for model in ("HepG2", "K562"):
            rows.append({"chrom": row["chrom"], "pos": row["pos"], "ref": row["ref"], "alt": row["alt"],
                         "model": model, "delta_logit": deltas[model][i], "p_ref": 0.5, "p_alt": 0.4,
                         "motifs_lost": lost[i]})
    return pd.DataFrame(rows), truth


def test_truth_metrics_of_one_cell_line():
    table, truth = _tables()
    entry = truth_metrics(table, truth, "K562", top=2)
    assert entry["n_driver"] == 3 and entry["n_neutral"] == 2
    # |delta_logit| drivers 0.5, 3.0, 0.1 against non-motif 0.2, 1.0: 3 of 6 pairs ranked right
    assert entry["auroc_driver_vs_neutral"] == pytest.approx(3 / 6)
    assert entry["auroc_by_tf"] == {"GATA1": pytest.approx(0.5), "TAL1::TCF3": pytest.approx(0.5)}
    # the two strongest driver SNVs (3.0 TAL1::TCF3, 0.5 GATA1) both name their TF among motifs_lost
    assert entry["planted_tf_in_motifs_lost_share"] == 1.0
    # top: the K562 model's largest effects over every element (HepG2's driver -4.0 first)
    assert [(t["pos"], t["class"], t["delta_logit"]) for t in entry["top"]] == [(60, "driver", -4.0),
                                                                                (20, "driver", -3.0)]
    assert entry["top"][1]["motifs_lost"].startswith("TAL1::TCF3:MA0091.1")
    three = truth_metrics(table, truth, "K562", top=3)  # the third strongest driver (0.1) names no motif
    assert three["planted_tf_in_motifs_lost_share"] == pytest.approx(2 / 3)


def test_without_truth_only_the_top_variants():
    table, _ = _tables()
    entry = truth_metrics(table, None, "HepG2", top=1)
    assert set(entry) == {"top"} and entry["top"][0]["pos"] == 60
