"""Fixed token windows: the simplest chunker, blind to text structure (it may cut inside a word)."""

from __future__ import annotations

import numpy as np

from blockattn.segment.document import Document
from blockattn.segment.methods import Baseline


class FixedWindows(Baseline):
    """Equal windows of tokens: ceil(N / size) windows for a size (each ≤ size), K windows for a count."""

    name = "fixed"

    def cuts_for_size(self, doc: Document, size: int) -> np.ndarray:
        return self.cuts_for_count(doc, -(-doc.total_tokens // size))

    def cuts_for_count(self, doc: Document, num_blocks: int) -> np.ndarray:
        total = doc.total_tokens
        k = max(1, min(num_blocks, total))
        at = np.round(np.arange(1, k) * total / k).astype(np.int64)  # token index where window i starts
        cuts = np.unique(doc.tokens.starts[at])
        # several tokens can start at one character (byte-level pieces of "Ä"): a cut at 0 would be empty
        return cuts[(cuts > 0) & (cuts < len(doc.text))]

    def max_blocks(self, doc: Document) -> int:
        return max(1, len(np.unique(doc.tokens.starts)))
