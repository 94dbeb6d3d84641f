"""Embedding-similarity "semantic chunking" as LangChain's SemanticChunker and LlamaIndex's semantic
splitter do it: embed each sentence with its neighbours (a buffer of one on each side) with MiniLM, and
break where the cosine distance between consecutive windows is above a percentile of all distances."""

from __future__ import annotations

import numpy as np

from blockattn.segment.document import Document
from blockattn.segment.scored import ScoredBaseline

_BUFFER = 1  # sentences on each side of a sentence in its window (the LangChain default)


class SemanticChunker(ScoredBaseline):
    """Breakpoints at the highest cosine distances between neighbouring sentence windows: a count of K
    takes the K−1 largest, i.e. the percentile threshold that yields K blocks (LangChain's
    `number_of_chunks`). Sentences are our candidate spans; a window's embedding is the mean of its
    sentences' MiniLM embeddings, which saves encoding every sentence three times."""

    name = "semantic"

    def scores(self, doc: Document) -> tuple[np.ndarray, np.ndarray]:
        """Candidates, and the cosine distance across each between the windows that end and start there."""
        if "semantic" not in doc.memo:
            from blockattn.segment.minilm import embed

            bounds = np.concatenate([[0], doc.candidates.offsets, [len(doc.text)]]).tolist()
            units = embed([doc.text[a:b] for a, b in zip(bounds[:-1], bounds[1:])])  # (n+1, 384)
            sums = np.concatenate([np.zeros((1, units.shape[1])), np.cumsum(units, 0)])
            idx = np.arange(len(units))
            lo, hi = np.maximum(idx - _BUFFER, 0), np.minimum(idx + _BUFFER + 1, len(units))
            windows = sums[hi] - sums[lo]  # (n+1, 384): window around each unit (sum; cosine ignores scale)
            windows /= np.maximum(np.linalg.norm(windows, axis=1, keepdims=True), 1e-9)
            doc.memo["semantic"] = 1.0 - np.sum(windows[:-1] * windows[1:], axis=1)
        return doc.candidates.offsets, doc.memo["semantic"]
