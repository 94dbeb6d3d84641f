"""Turning cut offsets back into text: the third step of segmentation (probabilities → cuts → blocks)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from blockattn.segment.tokens import TokenizedText


@dataclass(frozen=True)
class Block:
    """One block: `text == source[start:end]`, `n_tokens` default-model tokens starting inside it."""

    start: int
    end: int
    n_tokens: int
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


def check_cuts(cuts: Sequence[int] | np.ndarray, length: int) -> np.ndarray:
    """`cuts` as a sorted int64 array, after checking each is strictly inside (0, length) and unique."""
    arr = np.asarray(cuts, dtype=np.int64)
    if len(arr) and (arr[0] <= 0 or arr[-1] >= length or np.any(np.diff(arr) <= 0)):
        raise ValueError(f"cuts must be strictly increasing and inside (0, {length}): {arr.tolist()[:10]}...")
    return arr


def iter_blocks(text: str, cuts: Sequence[int] | np.ndarray, tokens: TokenizedText) -> Iterator[Block]:
    """The blocks between consecutive cuts, in order.

    Guarantees: the first block starts at 0, each starts where the previous ended, the last ends at
    len(text), none is empty, and so `"".join(b.text for b in blocks) == text`.
    """
    bounds = np.concatenate([[0], check_cuts(cuts, len(text)), [len(text)]])
    counts = np.diff(tokens.before(bounds))
    for a, b, n in zip(bounds[:-1].tolist(), bounds[1:].tolist(), counts.tolist()):
        yield Block(a, b, n, text[a:b])
