"""Texts cut into blocks of token ids, stored flat (CSR), the form every training and evaluation row is cut from.

    tokens        t0 t1 t2 t3 t4 t5 t6 t7 t8 t9
    block_starts  0        3     5           9 10      block b = tokens[block_starts[b] : block_starts[b+1]]
    text_starts   0              3 4                   text j  = blocks text_starts[j] .. text_starts[j+1]-1

Each block is tokenized on its own (as the engine tokenizes a document block), so a block's tokens never
depend on its neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class BlockCorpus:
    tokens: np.ndarray  # (T,) int64 token ids, all blocks back to back
    block_starts: np.ndarray  # (n_blocks + 1,) int64 offsets into `tokens`
    text_starts: np.ndarray  # (n_texts + 1,) int64 offsets into the blocks

    def __post_init__(self):
        if self.block_starts[0] != 0 or self.block_starts[-1] != len(self.tokens):
            raise ValueError("block_starts must start at 0 and end at len(tokens)")
        if np.any(np.diff(self.block_starts) <= 0):
            raise ValueError("every block must hold at least one token")
        if self.text_starts[0] != 0 or self.text_starts[-1] != len(self.block_starts) - 1:
            raise ValueError("text_starts must start at 0 and end at the number of blocks")
        if np.any(np.diff(self.text_starts) <= 0):
            raise ValueError("every text must hold at least one block")

    @staticmethod
    def from_texts(texts: Sequence[Sequence[Sequence[int]]]) -> "BlockCorpus":
        """texts[j][b] = token ids of block b of text j (empty blocks and empty texts are dropped)."""
        texts = [[list(b) for b in text if len(b)] for text in texts]
        texts = [t for t in texts if t]
        blocks = [b for text in texts for b in text]
        lengths = np.array([len(b) for b in blocks], dtype=np.int64)
        return BlockCorpus(
            tokens=np.fromiter((t for b in blocks for t in b), dtype=np.int64, count=int(lengths.sum())),
            block_starts=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            text_starts=np.concatenate([[0], np.cumsum([len(t) for t in texts])]).astype(np.int64),
        )

    @property
    def n_texts(self) -> int:
        return len(self.text_starts) - 1

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    def text_spans(self, j: int) -> list[tuple[int, int]]:
        """Token spans (start, end) of text j's blocks, in order."""
        first, last = int(self.text_starts[j]), int(self.text_starts[j + 1])
        return [(int(self.block_starts[b]), int(self.block_starts[b + 1])) for b in range(first, last)]

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The corpus as named arrays (for `np.savez`); ids stored as uint16 when they fit (smaller packs)."""
        small = self.n_tokens == 0 or int(self.tokens.max()) < 2**16
        return {f"{prefix}_tokens": self.tokens.astype(np.uint16 if small else np.int32),
                f"{prefix}_block_starts": self.block_starts, f"{prefix}_text_starts": self.text_starts}

    @staticmethod
    def from_arrays(arrays, prefix: str) -> "BlockCorpus":
        return BlockCorpus(tokens=np.asarray(arrays[f"{prefix}_tokens"]).astype(np.int64),
                           block_starts=np.asarray(arrays[f"{prefix}_block_starts"]).astype(np.int64),
                           text_starts=np.asarray(arrays[f"{prefix}_text_starts"]).astype(np.int64))
