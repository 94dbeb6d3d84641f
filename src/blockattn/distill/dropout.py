"""Block dropout: which blocks of a row are query blocks.

Our reading of the paper (GUIDE.md): per sequence, each non-final block independently becomes a query block
with probability p. A query block attends to every earlier *context* block and is seen by no later block;
the teacher sees exactly the same text with full attention, so every query block yields a faithful target
("full attention over the same visible text"), and a row yields many of them instead of one. With p = 0
only the final block is a query block (the plain block-attention setting).

Draws are counter-based, a function of (seed, row index) only: a resumed run, or a run on another number of
processes, sees the same flags for the same row without carrying generator state.
"""

from __future__ import annotations

import numpy as np

_TAG = 0xB10C  # separates these draws from other streams seeded by the same (seed, row)


def query_flags(n_blocks: int, p: float, seed: int, row_index: int) -> list[bool]:
    """is_query per block: the final block always, every other block with probability `p`."""
    if n_blocks < 1:
        raise ValueError("a row needs at least one block")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"block dropout must be in [0, 1), got {p}")
    draws = np.random.default_rng([seed, row_index, _TAG]).random(n_blocks - 1)
    return [bool(d < p) for d in draws] + [True]
