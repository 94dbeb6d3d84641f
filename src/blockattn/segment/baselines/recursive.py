"""A recursive character splitter in the manner of LangChain's RecursiveCharacterTextSplitter: split at
the coarsest separator present, pack the pieces greedily up to the size, and split any piece that is
still too big with the next separator down the ladder. Sizes are counted in tokens here."""

from __future__ import annotations

import numpy as np

from blockattn.segment.document import Document
from blockattn.segment.methods import Baseline

# Blank line, line, word; below that, single tokens. A separator starts the piece that follows it
# (LangChain's keep_separator="start"), which is also where blockattn puts whitespace.
_SEPARATORS = ("\n\n", "\n", " ")


class RecursiveSplitter(Baseline):
    """Pieces packed greedily up to `size` tokens, never longer unless one token is."""

    name = "recursive"

    def cuts_for_size(self, doc: Document, size: int) -> np.ndarray:
        cuts: list[int] = []
        self._split(doc, 0, len(doc.text), 0, max(1, size), cuts)
        return np.asarray(sorted(set(cuts) - {0}), dtype=np.int64)

    def cuts_for_count(self, doc: Document, num_blocks: int) -> np.ndarray:
        # Block count falls as the size grows: bisect the size for the count nearest num_blocks.
        lo, hi = 1, max(1, doc.total_tokens)
        best = self.cuts_for_size(doc, hi)
        while lo <= hi:
            size = (lo + hi) // 2
            cuts = self.cuts_for_size(doc, size)
            if abs(len(cuts) + 1 - num_blocks) < abs(len(best) + 1 - num_blocks):
                best = cuts
            if len(cuts) + 1 > num_blocks:
                lo = size + 1
            elif len(cuts) + 1 < num_blocks:
                hi = size - 1
            else:
                break
        return best

    def _split(self, doc: Document, a: int, b: int, level: int, size: int, cuts: list[int]) -> None:
        """Append to `cuts` the block starts inside text[a:b] (and a itself)."""
        text, count = doc.text, doc.tokens.count
        while level < len(_SEPARATORS) and _SEPARATORS[level] not in text[a:b]:
            level += 1
        if level == len(_SEPARATORS):
            starts = doc.tokens.starts
            inner = np.unique(starts[(starts >= a) & (starts < b)])
            cuts.extend(inner[::size].tolist() or [a])
            return
        sep = _SEPARATORS[level]
        bounds = [a]
        at = text.find(sep, a + 1, b)
        while at >= 0:
            bounds.append(at)
            at = text.find(sep, at + len(sep), b)
        bounds.append(b)
        open_start = None  # start of the chunk being packed
        for pa, pb in zip(bounds[:-1], bounds[1:]):
            if not text[pa:pb].strip() and open_start is not None:
                continue  # a whitespace-only piece joins the chunk before it (LangChain drops such chunks)
            if count(pa, pb) > size:
                self._split(doc, pa, pb, level + 1, size, cuts)
                open_start = None
            elif open_start is None or count(open_start, pb) > size:
                cuts.append(pa)
                open_start = pa
