"""Interpretation recovers the planted drivers: in at least 5 of the 6 pseudo cell types of the
synthetic genome, a motif planted as a driver of that type is among the 5 best-ranked significant TF
families of its fine-tuned model (docs/method.md section 6, run as the study runs it).

The pipeline is the study's: pre-train once on the rDHSs open in none of the six lines against
genome tiles, fine-tune one model per line, attribute its predicted positives (p > 0.5, training
and test rows) by gradient x input, scan all 841 JASPAR 2022 CORE vertebrate motifs (p < 1e-5),
score each site by the maximum attribution over its bases, and rank TFs by the signed KS D (at
least 100 sites, Benjamini-Hochberg FDR < 0.001: the paper's values). TFs whose sites mostly lie on
a better-ranked TF's sites form one family with it (JASPAR holds about 30 AP-1/MAF matrices that
all match a planted FOS::JUN site); a planted driver counts when it heads or belongs to one of the
five best significant families.

Sizes and settings, chosen so that the whole file runs in a few minutes on two CPU cores:

* the ``small`` synthetic genome (24 Mb, 490-840 positives per line) with 200 bp windows: the
  motifs are planted within 100 bp of the centre, so the windows hold every planted site;
* a narrow network (width 0.5), pre-trained for 8 epochs at the preset's learning rate, with
  dropout 0 (published: 0.1). With dropout after BatchNorm, the moving statistics are those of
  dropout-perturbed activations; in eval mode the activations have a smaller variance than the
  statistics assume, which on a narrow network trained on a few thousand windows shifts the logits
  up by several units and floods the predicted positives with negatives;
* fine-tuning at 5e-4 for 10 epochs (a model that has learned the lines' grammar: validation
  AUROC 0.96-0.99);
* gradient x input of the **logit** (``target="logit"``). The paper differentiates the
  post-sigmoid output, which carries the factor p (1 - p): on these clean synthetic positives the
  fine-tuned models reach p = 0.999-0.9999, so the windows richest in drivers get site scores 100
  to 1000 times smaller than the windows near p = 0.5, and the KS ranking then reflects how
  confident the model is about the windows a TF occurs in rather than the TF's importance within
  them (measured on these models: with the post-sigmoid target no planted driver of A549, K562 or
  HCT116 reaches the top 5). On real data, where predictions are rarely saturated, the paper's
  target is the default of ``chromtransfer attribute`` and of the study.

The outcome depends on the seed: over seeds 0 and 1 and windows of 200 and 400 bp, 20 of the 24
fine-tuned models put a planted driver in their top 5 families; in the other four the ubiquitous
motifs (CTCF, NRF1, ZNF76/ZNF143), which every open site carries, fill the top families and the
drivers' D is not significant at FDR 0.001. Which models fail also depends on the CPU: the
kernels' rounding differs between processors and changes the trained weights (with seed 0 and
200 bp, all six lines pass on an AMD EPYC and HCT116 misses on an Intel Xeon with AVX-512). Hence
the threshold of 5 of 6 lines; a planted driver reaching a top-5 significant family by chance
(about 3 drivers among some 300 tested TFs, at FDR 0.001) is far rarer than that.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

CELLS = ["A549", "GM12878", "HCT116", "HepG2", "K562", "MCF7"]
SEED = 0
LENGTH = 200
TOP = 5
MIN_SITES = 100
FDR = 0.001
COMMON = {"device": "cpu", "quiet": True, "seed": SEED, "batch_size": 32, "bn_momentum": 0.9, "patience": 0,
          "export": "last"}
PRETRAIN = {"width": 0.5, "dropout": 0.0, "max_epochs": 8}
FINETUNE = {"lr": 5e-4, "max_epochs": 10, "lr_patience": 0, "class_weights": "none"}



@pytest.fixture(scope="module", autouse=True)
def two_torch_threads():
    """Up to two intra-op torch threads (restored afterwards): this module's seven trainings take
    most of its time, and on two idle cores the fine-tuning runs in 47 s rather than 62 s."""
    import os

    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Synthetic genome, stores of the pre-training set and of the six lines, the pre-trained model
    and the JASPAR scanner (built once for the module)."""
    from chromtransfer.datasets.finetune import prepare_finetune
    from chromtransfer.datasets.pretrain import prepare_pretrain
    from chromtransfer.datasets.synthetic import make_synthetic
    from chromtransfer.interpret.jaspar import load_jaspar
    from chromtransfer.interpret.motifs import MotifScanner
    from chromtransfer.training import train_model

    base = tmp_path_factory.mktemp("interpret_synthetic")
    syn = make_synthetic(base / "synthetic", seed=SEED, size="small")
    truth = json.loads(syn.truth.read_text())
    # Windows open in any of the six lines stay out of pre-training (as the study does).
    matrix = pd.read_csv(syn.label_matrix, sep="\t")
    opened = matrix[matrix[CELLS].to_numpy().any(axis=1)]
    exclude = base / "cell_positives.bed"
    opened[["chrom", "start", "end"]].to_csv(exclude, sep="\t", header=False, index=False)
    split = {"length": LENGTH, "test_chroms": ["chr2"], "folds": 3, "seed": SEED}
    pretrain_store = prepare_pretrain(syn.genome, syn.rdhs, base / "pretrain", exclude_positives=exclude,
                                      blacklist=syn.blacklist, neg_ratio=1.0, min_distance=300, **split)
    stores = {cell: prepare_finetune(syn.genome, base / cell, cell=cell, label_matrix=syn.label_matrix,
                                     blacklist=syn.blacklist, neg_ratio=3.0, background=100, **split)
              for cell in CELLS}
    pretrained = train_model(preset="pretrain", store=str(pretrain_store), out=str(base / "runs" / "pretrain"),
                             **COMMON, **PRETRAIN)
    scanner = MotifScanner(load_jaspar())
    return {"base": base, "truth": truth, "stores": stores, "pretrained": pretrained, "scanner": scanner}


def _planted(truth: dict, cell: str) -> list[str]:
    """The drivers planted for ``cell``, spelled as JASPAR names them (e.g. SPI1 -> Spi1)."""
    names = truth["jaspar_names"]
    return [names.get(m, m) for m in truth["cells"][cell]]


def test_scanner_holds_all_jaspar_motifs_and_the_planted_ones(setup):
    scanner, truth = setup["scanner"], setup["truth"]
    assert len(scanner.motifs) == 841
    ids = {m.motif_id for m in scanner.motifs}
    assert set(truth["motif_ids"].values()) <= ids
    assert not set(truth["motif_ids"].values()) & set(scanner.weak_motifs)


@pytest.fixture(scope="module")
def ranking(setup):
    """``ranking(cell)``: fine-tune, attribute and rank the TFs of one line (computed once per line)."""
    from chromtransfer.interpret.enrich import family_heads, run_enrichment
    from chromtransfer.interpret.pipeline import attribute, inputs_from_store
    from chromtransfer.modelio import load_model
    from chromtransfer.training import train_model
    from chromtransfer.workflow.interpretation import planted_in_top

    done: dict[str, dict] = {}

    def rank(cell: str) -> dict:
        if cell in done:
            return done[cell]
        run = train_model(preset="finetune", store=str(setup["stores"][cell]), init=str(setup["pretrained"]),
                          out=str(setup["base"] / "runs" / cell), **COMMON, **FINETUNE)
        attributions = attribute(load_model(run), inputs_from_store(setup["stores"][cell], split="all"),
                                 method="grad_x_input", target="logit", select="predicted-positive", device="cpu",
                                 model_path=str(run))
        sites = setup["scanner"].scan_table(attributions.codes, attributions.names)
        table = run_enrichment(sites, attributions, min_sites=MIN_SITES, fdr=FDR).a
        # The best-ranked significant families: heads with FDR < 0.001 and positive D (sites scoring
        # above the other TFs' sites), highest D first.
        families = family_heads(table)
        planted = _planted(setup["truth"], cell)
        heads = [f["tf"] for f in families[:TOP]]
        done[cell] = {
            "n_selected": len(attributions), "predictions": attributions.prediction, "families": families,
            "planted": planted, "heads": heads, "in_top": planted_in_top(planted, families, TOP),
            "found": table[table["tf"].isin(planted) & table["family"].isin(heads)],
            "shown": table[["tf", "sites", "D", "fdr", "family"]].head(12).to_string(index=False)}
        return done[cell]

    return rank


@pytest.mark.parametrize("cell", CELLS)
def test_each_line_ranks_the_sites_of_its_predicted_positives(ranking, cell):
    line = ranking(cell)
    assert line["n_selected"] >= 100, f"{cell}: only {line['n_selected']} windows predicted positive"
    assert (line["predictions"] > 0.5).all()
    assert line["families"], f"{cell}: no TF family is significant at FDR {FDR}"
    if line["in_top"]:
        assert len(line["found"]) and (line["found"]["sites"] >= MIN_SITES).all()


def test_planted_drivers_rank_among_top_tfs_in_most_lines(ranking):
    """At least 5 of the 6 lines put a planted driver among their 5 best significant families (the
    rate measured over seeds and window lengths is 20 of 24; a line whose drivers fail, fails by its
    drivers' D missing FDR 0.001, which numerical noise of the CPU's kernels decides)."""
    lines = {cell: ranking(cell) for cell in CELLS}
    missed = [cell for cell, line in lines.items() if not line["in_top"]]
    report = "\n".join(f"{cell}: none of the planted drivers {lines[cell]['planted']} in the top {TOP} "
                       f"significant families {lines[cell]['heads']}; ranking:\n{lines[cell]['shown']}"
                       for cell in missed)
    assert len(missed) <= 1, report
