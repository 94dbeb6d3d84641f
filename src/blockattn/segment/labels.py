"""Gold boundaries (character offsets where a block starts) on the candidate grid."""

from __future__ import annotations

import numpy as np

from blockattn.segment.document import Document
from blockattn.segment.scored import nearest_candidates


def content_end(text: str, offset: int) -> int:
    """`offset` moved left over the whitespace before it: where blockattn would cut for a block that
    starts at `offset` (whitespace goes to the following block)."""
    while offset > 0 and text[offset - 1].isspace():
        offset -= 1
    return offset


def snap(doc: Document, offsets) -> tuple[np.ndarray, np.ndarray]:
    """(candidate index, exact) per offset: the candidate where that boundary falls once whitespace is
    handed to the next block, or the nearest candidate when none is there (`exact` False)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    if not len(offsets) or not len(doc.candidates):
        return np.zeros(len(offsets), dtype=np.int64), np.zeros(len(offsets), dtype=bool)
    moved = np.asarray([content_end(doc.text, o) for o in offsets.tolist()], dtype=np.int64)
    index = nearest_candidates(doc, moved)
    return index, doc.candidates.offsets[index] == moved
