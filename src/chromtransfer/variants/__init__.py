"""Cell-type-specific variant effects: VCF in, per-cell-line scores, motif changes and an
annotated VCF out (:func:`score_variants`; the command ``chromtransfer variants``)."""
from __future__ import annotations

from .run import BASE_COLUMNS, score_variants

__all__ = ["BASE_COLUMNS", "score_variants"]
