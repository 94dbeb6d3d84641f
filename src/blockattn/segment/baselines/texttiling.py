"""TextTiling (Hearst, 1997) through NLTK's implementation, with our own stopword list (NLTK's corpus
cannot be downloaded here). NLTK picks boundaries by a depth-score threshold and snaps them to paragraph
breaks; we take its depth scores instead, place each at the nearest candidate, and keep the deepest, so
TextTiling can meet a size or a count and cut at the same places as every other method."""

from __future__ import annotations

import functools
import re

import numpy as np

from blockattn.errors import UserError
from blockattn.segment.assets import asset
from blockattn.segment.document import Document
from blockattn.segment.scored import ScoredBaseline

_W = 20  # NLTK's pseudo-sentence size, in words
# NLTK keeps only these characters (after lowercasing) before it splits words.
_KEPT = re.compile(r"[a-z\-' \n\t]")


@functools.cache
def stopwords() -> frozenset[str]:
    lines = asset("stopwords-en.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(w.strip() for w in lines if w.strip() and not w.startswith("#"))


def _gap_offsets(text: str, n_gaps: int) -> np.ndarray:
    """Char offset in `text` of each of NLTK's pseudo-sentence gaps: gap g precedes word (g + 1) · w of
    the punctuation-free lowercase text NLTK builds, which we rebuild with a map back to `text`."""
    lower = text.lower()
    if len(lower) != len(text):  # a few characters lowercase to two; positions are then approximate
        lower = "".join(ch.lower()[:1] for ch in text)
    kept = [i for i, ch in enumerate(lower) if _KEPT.match(ch)]
    stripped = "".join(lower[i] for i in kept)
    word_starts = [m.start() for m in re.finditer(r"\w+", stripped)]
    at = [word_starts[min((g + 1) * _W, len(word_starts) - 1)] for g in range(n_gaps)]
    return np.asarray([kept[i] for i in at], dtype=np.int64)


class TextTiling(ScoredBaseline):
    """NLTK TextTiling's depth scores, the K−1 deepest gaps (at distinct candidates) as cuts."""

    name = "texttiling"

    def scores(self, doc: Document) -> tuple[np.ndarray, np.ndarray]:
        """(char offsets, depth scores) of NLTK's gaps; empty when the text is too short to tile."""
        if "texttiling" not in doc.memo:
            from nltk.tokenize.texttiling import TextTilingTokenizer

            tiler = TextTilingTokenizer(w=_W, stopwords=stopwords(), demo_mode=True)
            if len(doc.text) > tiler.MAX_TEXT_LEN:
                raise UserError(f"texttiling: NLTK refuses texts over {tiler.MAX_TEXT_LEN:,} characters "
                                "(its block comparison is quadratic); use another method")
            try:
                # NLTK insists on at least one paragraph break; one at the very end changes no score.
                _, _, depths, _ = tiler.tokenize(doc.text + "\n\n")
            except ValueError:  # fewer pseudo-sentences than its smoothing window: nothing to tile
                depths = []
            depths = np.asarray(depths, dtype=np.float64)
            doc.memo["texttiling"] = (_gap_offsets(doc.text, len(depths)), depths)
        return doc.memo["texttiling"]
