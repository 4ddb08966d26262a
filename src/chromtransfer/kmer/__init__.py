"""The composition baseline: logistic regression on canonical (gapped) k-mer frequencies.

Public API::

    from chromtransfer.kmer import train_kmer
    run = train_kmer("stores/HepG2", "runs/HepG2-kmer", k=4)       # seconds
    model = chromtransfer.load_model(run)                           # a KmerModel, used as any model

:mod:`.features` counts the features, :mod:`.model` is the torch module that predicts with them
(so ``predict``, ``evaluate``, ensembles and ISM take it like a network), :mod:`.train` fits it.
"""
from .train import C_GRID, DEFAULT_K, train_kmer

__all__ = ["C_GRID", "DEFAULT_K", "train_kmer"]
