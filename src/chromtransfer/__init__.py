"""chromtransfer: transfer learning of cell-type specific chromatin accessibility from DNA sequence.

The Python API (``docs/api.md``)::

    import chromtransfer as ct

    model = ct.load_model("runs/HepG2")                    # a run, an imported model, or --fold all
    p = ct.predict(model, ["ACGT" * 150])                  # (N, n_outputs) probabilities
    attributions = ct.attribute(model, "peaks.fa")         # gradient x input, (N, L) scores
    sites = ct.scan_motifs(attributions, "JASPAR2022")     # motif sites in those sequences
    ranking = ct.rank_tfs(attributions, sites)             # TFs by KS enrichment
    found = ct.discover_motifs(attributions)               # de novo motifs matched to JASPAR

Importing the package is light: each name loads its module (and torch) on first use, and nothing
process-wide is changed until :func:`set_cpu_defaults` is called.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

#: Public name -> (module, attribute) it comes from; loaded on first access.
_EXPORTS: dict[str, tuple[str, str]] = {
    "load_model": ("chromtransfer.api", "load_model"),
    "predict": ("chromtransfer.api", "predict"),
    "attribute": ("chromtransfer.api", "attribute"),
    "Attributions": ("chromtransfer.interpret.attributions", "Attributions"),
    "load_attributions": ("chromtransfer.interpret.attributions", "load_attributions"),
    "scan_motifs": ("chromtransfer.api", "scan_motifs"),
    "rank_tfs": ("chromtransfer.api", "rank_tfs"),
    "compare_tfs": ("chromtransfer.api", "compare_tfs"),
    "discover_motifs": ("chromtransfer.api", "discover_motifs"),
    "metrics": ("chromtransfer.api", "metrics"),
    "set_cpu_defaults": ("chromtransfer.runtime", "set_cpu_defaults"),
    "score_variants": ("chromtransfer.variants", "score_variants"),
    "track": ("chromtransfer.prediction_tracks", "track"),
    "ModelEnsemble": ("chromtransfer.ensemble", "ModelEnsemble"),
    "as_sequences": ("chromtransfer.sequence_input", "as_sequences"),
    "Genome": ("chromtransfer.genome", "Genome"),
    "open_store": ("chromtransfer.datasets.store", "open_store"),
}

__all__ = ["__version__", *_EXPORTS]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chromtransfer")
    except PackageNotFoundError:  # a source tree on sys.path without installed metadata
        return "0+unknown"


__version__ = _version()


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'chromtransfer' has no attribute {name!r}") from None
    value = getattr(import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
