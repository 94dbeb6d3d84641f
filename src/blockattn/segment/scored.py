"""Turning scores at text positions into cuts: the K−1 best-scored candidates (TextTiling, semantic)."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from blockattn.segment.document import Document
from blockattn.segment.methods import Baseline


def nearest_candidates(doc: Document, offsets: np.ndarray) -> np.ndarray:
    """Index of the candidate nearest each char offset (doc must have at least one candidate)."""
    cands = doc.candidates.offsets
    right = np.clip(np.searchsorted(cands, offsets), 0, len(cands) - 1)
    left = np.maximum(right - 1, 0)
    return np.where(np.abs(cands[left] - offsets) <= np.abs(cands[right] - offsets), left, right)


def top_scoring_cuts(doc: Document, offsets: np.ndarray, scores: np.ndarray, num_blocks: int) -> np.ndarray:
    """Char offsets of the (at most) num_blocks − 1 candidates with the highest scores, each score moved to
    the candidate nearest its offset (a candidate keeps its best). Candidates that got no score are never
    chosen: fit_cuts completes the count if there are too few."""
    if num_blocks <= 1 or not len(doc.candidates) or not len(offsets):
        return np.zeros(0, dtype=np.int64)
    best = np.full(len(doc.candidates), -np.inf)
    np.maximum.at(best, nearest_candidates(doc, np.asarray(offsets)), np.asarray(scores, dtype=np.float64))
    scored = np.flatnonzero(np.isfinite(best))
    top = scored[np.argsort(-best[scored], kind="stable")[:num_blocks - 1]]
    return np.sort(doc.candidates.offsets[top])


class ScoredBaseline(Baseline):
    """A baseline that scores positions (higher = more of a boundary) and keeps the K−1 best; a size asks
    for round(N / size) blocks."""

    @abstractmethod
    def scores(self, doc: Document) -> tuple[np.ndarray, np.ndarray]:
        """(char offsets, scores): where the method sees a possible boundary, and how strongly."""

    def cuts_for_size(self, doc: Document, size: int) -> np.ndarray:
        return self.cuts_for_count(doc, max(1, round(doc.total_tokens / size)))

    def cuts_for_count(self, doc: Document, num_blocks: int) -> np.ndarray:
        return top_scoring_cuts(doc, *self.scores(doc), num_blocks)
