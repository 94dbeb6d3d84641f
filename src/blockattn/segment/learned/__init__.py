"""The learned segmenter: static token embeddings → unit features → a small transformer over units →
P(boundary) per candidate and level → DP decoding. Inference is numpy only (no torch); training
(`blockattn segment train`) uses torch and exports to the same numpy weights."""
