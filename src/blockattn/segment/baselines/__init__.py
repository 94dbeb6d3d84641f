"""Baseline segmenters, each behind `methods.Baseline`: fixed windows, sentence packing, paragraphs, a
recursive character splitter, TextTiling and embedding-based semantic chunking."""
