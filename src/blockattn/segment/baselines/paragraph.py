"""Paragraph splitting: a block per blank-line-separated paragraph."""

from __future__ import annotations

import numpy as np

from blockattn.segment.candidates import PARAGRAPH
from blockattn.segment.document import Document
from blockattn.segment.fit import even_cuts
from blockattn.segment.methods import Baseline

# For a block count, a paragraph break is worth this much more than another candidate; the even-length
# prior only chooses among paragraph breaks (or fills in where there are too few).
_PARAGRAPH_GAIN = 10.0


class Paragraphs(Baseline):
    """Cuts at every blank line, whatever the size asked (fit_cuts merges or splits to meet hard limits).
    For a block count: the K−1 paragraph breaks that give the most even blocks."""

    name = "paragraph"

    def cuts_for_size(self, doc: Document, size: int) -> np.ndarray:
        return doc.candidates.of_kind(PARAGRAPH)

    def cuts_for_count(self, doc: Document, num_blocks: int) -> np.ndarray:
        return even_cuts(doc, num_blocks, np.where(doc.candidates.kinds == PARAGRAPH, _PARAGRAPH_GAIN, 0.0))
