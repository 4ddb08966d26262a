"""Interpretation: attributions (gradient x input, ISM), motif sites and TF enrichment."""
