"""Sentence packing: whole sentences (and lines, for code) packed into blocks up to a size."""

from __future__ import annotations

import numpy as np

from blockattn.segment.document import Document
from blockattn.segment.fit import even_cuts
from blockattn.segment.methods import Baseline


class SentencePacking(Baseline):
    """Greedy packing: a block grows sentence by sentence until the next one would overflow `size`.
    For a block count: the most even split into exactly K blocks at sentence ends."""

    name = "sentence"

    def cuts_for_size(self, doc: Document, size: int) -> np.ndarray:
        # Candidate i ends unit i; the block open since `start` overflows when it reaches candidate i.
        positions = doc.candidate_tokens.tolist() + [doc.total_tokens]
        cuts, start = [], 0
        for i in range(1, len(positions)):
            if positions[i] - start > size and positions[i - 1] > start:
                cuts.append(i - 1)
                start = positions[i - 1]
        return doc.candidates.offsets[np.asarray(cuts, dtype=np.int64)]

    def cuts_for_count(self, doc: Document, num_blocks: int) -> np.ndarray:
        return even_cuts(doc, num_blocks)
