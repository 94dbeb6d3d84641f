"""Token accounting for blocks, with the default model's tokenizer and nothing heavier than `tokenizers`.

Block sizes are counted in SmolLM2 tokens (the default model; SemanticSeg counts with it too). The
tokenizer ships gzipped beside the segmenter weights, so `blockattn segment` neither imports transformers
nor needs `blockattn models prepare` to have run.

Why cuts at candidates are token-exact: SmolLM2's ByteLevel pre-tokenizer attaches whitespace to the
*following* word, so a position right before a whitespace run always starts a new pre-token. Cutting there
tokenizes both halves exactly as the whole text was tokenized; `TokenizedText.count` is then the block's
own token count.
"""

from __future__ import annotations

import functools
import gzip
from dataclasses import dataclass

import numpy as np

from blockattn.segment.assets import asset

_ASSET = "tokenizer.json.gz"
# Texts longer than this are tokenized in pieces (in parallel, by the Rust side's batch encoder); pieces end
# right before a whitespace run that holds a newline, which is a pre-token boundary, so nothing changes.
_PIECE_CHARS = 1 << 16


@functools.cache
def load_tokenizer():
    """The default model's tokenizer (a `tokenizers.Tokenizer`), loaded once per process."""
    from tokenizers import Tokenizer

    blob = asset(_ASSET).read_bytes()
    return Tokenizer.from_str(gzip.decompress(blob).decode("utf-8"))


@dataclass(frozen=True)
class TokenizedText:
    """Tokens of one text: ids and the character offset where each starts (non-decreasing)."""

    ids: np.ndarray  # (T,) int32
    starts: np.ndarray  # (T,) int64, Python character offsets into the text

    def __len__(self) -> int:
        return len(self.ids)

    def before(self, offsets: np.ndarray | int) -> np.ndarray | int:
        """Number of tokens that start before each character offset (a block [a, b) has before(b) - before(a))."""
        return np.searchsorted(self.starts, offsets, side="left")

    def count(self, start: int, end: int) -> int:
        """Tokens starting inside text[start:end]."""
        return int(self.before(end) - self.before(start))


def piece_bounds(text: str, piece_chars: int = _PIECE_CHARS) -> list[int]:
    """Offsets [0, ..., len(text)] that split `text` into pieces of about `piece_chars` characters, each
    inner offset at the start of a whitespace run holding a newline (a pre-token boundary) when one exists."""
    bounds = [0]
    while len(text) - bounds[-1] > piece_chars:
        lo, hi = bounds[-1] + piece_chars // 2, bounds[-1] + piece_chars
        cut = text.rfind("\n", lo, hi)
        if cut < 0:
            cut = text.rfind(" ", lo, hi)
        if cut < 0:
            cut = hi  # a newline- and space-free stretch: any cut is as good as another
        while cut > lo and text[cut - 1].isspace():
            cut -= 1
        bounds.append(cut)
    bounds.append(len(text))
    return bounds


def tokenize(text: str) -> TokenizedText:
    """Tokenize `text` (no special tokens added). Long texts go in pieces, with the same result."""
    tokenizer = load_tokenizer()
    bounds = piece_bounds(text)
    encodings = tokenizer.encode_batch([text[a:b] for a, b in zip(bounds, bounds[1:])],
                                       add_special_tokens=False)
    ids, starts = [], []
    for base, enc in zip(bounds, encodings):
        ids.append(np.asarray(enc.ids, dtype=np.int32))
        offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        starts.append(offsets[:, 0] + base)
    return TokenizedText(np.concatenate(ids), np.concatenate(starts))
