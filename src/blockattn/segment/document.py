"""A text prepared once for every segmenter: its tokens and its candidate cut points."""

from __future__ import annotations

from functools import cached_property

import numpy as np

from blockattn.segment.candidates import Candidates, add_word_candidates, find_candidates
from blockattn.segment.tokens import TokenizedText, tokenize


class Document:
    """`text` with lazily computed tokens and candidates, shared by all methods that look at it.

    Candidates are kept only where a token starts (tokens.py explains why that is where they fall), so
    every candidate has its own token position in (0, total_tokens).
    """

    def __init__(self, text: str):
        self.text = text
        self.memo: dict[str, object] = {}  # per-method results worth reusing across requests (e.g. scores)

    @cached_property
    def tokens(self) -> TokenizedText:
        return tokenize(self.text)

    @property
    def total_tokens(self) -> int:
        return len(self.tokens)

    @cached_property
    def candidates(self) -> Candidates:
        found = find_candidates(self.text)
        if not len(self.tokens):
            return found
        before = self.tokens.before(found.offsets)
        at_token = (before > 0) & (before < len(self.tokens))
        at_token[at_token] = self.tokens.starts[before[at_token]] == found.offsets[at_token]
        return Candidates(found.offsets[at_token], found.kinds[at_token])

    def candidates_within(self, max_tokens: int | None) -> Candidates:
        """The candidates, plus word-level ones inside units longer than `max_tokens` (when given)."""
        if max_tokens is None:
            return self.candidates
        return add_word_candidates(self.text, self.candidates, self.tokens.starts, max_tokens)

    @cached_property
    def candidate_tokens(self) -> np.ndarray:
        """(n,) token position of each candidate: the number of tokens before it."""
        return self.tokens.before(self.candidates.offsets)
