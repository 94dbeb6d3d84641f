"""What the caller asks for: a granularity level, a target block size, or an exact number of blocks,
each with optional hard token limits."""

from __future__ import annotations

from dataclasses import dataclass

from blockattn.errors import UserError

LEVELS = ("coarse", "medium", "fine")
# Median mean block length (default-model tokens) of each SemanticSeg level. Used when a method without a
# notion of level (every baseline) is asked for one; the learned segmenter ships its own measured stats.
LEVEL_TOKENS = {"coarse": 2048, "medium": 512, "fine": 128}


@dataclass(frozen=True)
class Request:
    """A granularity request. Precedence: `num_blocks`, then `target_tokens`, then `level`.

    `min_tokens` / `max_tokens` are hard: every block respects them, except that a text shorter than
    `min_tokens` is one block.
    """

    level: str = "medium"  # coarse | medium | fine
    target_tokens: int | None = None  # mean block length wanted
    num_blocks: int | None = None  # exact block count wanted
    min_tokens: int = 0  # hard lower bound on a block's tokens
    max_tokens: int | None = None  # hard upper bound on a block's tokens

    def __post_init__(self):
        if self.level not in LEVELS:
            raise UserError(f"unknown level {self.level!r}; choose one of {', '.join(LEVELS)}")
        for name in ("target_tokens", "num_blocks", "max_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be ≥ 1, got {value}")
        if self.min_tokens < 0:
            raise UserError(f"--min-tokens must be ≥ 0, got {self.min_tokens}")
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise UserError(f"--min-tokens {self.min_tokens} exceeds --max-tokens {self.max_tokens}")
        if self.target_tokens is not None and self.num_blocks is not None:
            raise UserError("give either --target-tokens or --num-blocks, not both")

    @property
    def mode(self) -> str:
        """'num_blocks', 'target_tokens' or 'level': which field decides the granularity."""
        if self.num_blocks is not None:
            return "num_blocks"
        return "target_tokens" if self.target_tokens is not None else "level"

    def block_count(self, total_tokens: int, level_tokens: dict[str, float] = LEVEL_TOKENS) -> int:
        """The number of blocks this request implies for a text of `total_tokens` tokens: `num_blocks` as
        given; a target size T gives round(total / T) blocks (mean length ≈ T), clamped to what the hard
        limits allow."""
        if self.num_blocks is not None:
            return self.num_blocks
        size = self.target_tokens or level_tokens[self.level]
        k = max(1, round(total_tokens / size))
        if self.max_tokens:
            k = max(k, -(-total_tokens // self.max_tokens))
        if self.min_tokens:
            k = min(k, max(1, total_tokens // self.min_tokens))
        return k
