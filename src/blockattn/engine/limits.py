"""What checking a prompt needs to know of an engine: its vocabulary, window and sinks per block.

Kept apart from the engine so that a process without the model (the HTTP front end of `serve --engine-process`)
checks requests exactly as the engine would, and answers a bad one with a 4xx before anything is sent on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from blockattn.errors import UserError


class ContextTooLong(UserError):
    """The prompt plus the requested new tokens do not fit the model's window."""


@dataclass(frozen=True)
class EngineLimits:
    vocab_size: int
    max_positions: int | None  # the model's window (None: unbounded)
    n_sinks: int = 0  # sink tokens in front of every block (block mode)
    n_shared: int = 0  # shared sink tokens at the very start (block mode)

    def check_tokens(self, tokens: Sequence[int] | np.ndarray, what: str) -> np.ndarray:
        """The ids as an int64 array; UserError when one is outside the vocabulary (vectorised: a 32k-token
        prompt is checked in microseconds, not the milliseconds a Python loop takes)."""
        try:
            ids = np.asarray(tokens, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError, OverflowError):
            raise UserError(f"{what}: token ids must be integers") from None
        bad = ids[(ids < 0) | (ids >= self.vocab_size)]
        if bad.size:
            raise UserError(f"{what}: token id {int(bad[0])} outside the vocabulary (0..{self.vocab_size - 1})")
        return ids

    def positions_needed(self, blocks: Sequence[Sequence[int]], query: Sequence[int], mode: str) -> int:
        """Positions a prompt occupies (sink tokens included in block mode)."""
        if mode == "full":
            return sum(len(b) for b in blocks) + len(query)
        content = [b for b in blocks if len(b) or self.n_sinks]
        return self.n_shared + sum(self.n_sinks + len(b) for b in content) + len(query)

    def check_fits(self, blocks: Sequence[Sequence[int]], query: Sequence[int], mode: str, max_new_tokens: int) -> None:
        """Raise ContextTooLong when prompt + new tokens exceed the model's window."""
        needed = self.positions_needed(blocks, query, mode) + max_new_tokens
        if self.max_positions is not None and needed > self.max_positions:
            raise ContextTooLong(f"context too long: the prompt needs {needed - max_new_tokens} positions + "
                                 f"{max_new_tokens} new tokens, over the model's {self.max_positions}-token window")
