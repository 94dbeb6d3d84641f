"""Cutting a text into blocks of token ids for training: fixed-size, or at SemanticSeg's gold boundaries.

The learned segmenter (`blockattn.segment.segment_text`, method "learned", medium granularity) is a third
source of character cut offsets; it needs its trained weights.

Guarantees: every block holds 1..max_tokens tokens; a gold block (after merging) holds at least
`min_tokens` unless the whole text is shorter; the decoded blocks, concatenated, give back the text (up to
the tokenizer's own round trip).
"""

from __future__ import annotations

from typing import Callable, Sequence

Encode = Callable[[str], list[int]]


def split_long(block: Sequence[int], max_tokens: int) -> list[list[int]]:
    """`block` cut into consecutive pieces of at most `max_tokens` tokens."""
    return [list(block[i:i + max_tokens]) for i in range(0, len(block), max_tokens)]


def fixed_blocks(text: str, encode: Encode, block_tokens: int) -> list[list[int]]:
    """The whole text tokenized once, then cut every `block_tokens` tokens."""
    return split_long(encode(text), block_tokens)


def gold_blocks(text: str, cuts: Sequence[int], encode: Encode, max_tokens: int, min_tokens: int) -> list[list[int]]:
    """Blocks between the character offsets `cuts` (where a new block starts), each tokenized on its own.

    Pieces under `min_tokens` tokens join the next piece (a heading joins its section); a short tail joins
    the previous block; blocks over `max_tokens` are split."""
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(text)), len(text)]
    pieces = [text[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    merged: list[str] = []
    pending = ""
    for piece in pieces:
        pending += piece
        if len(encode(pending)) >= min_tokens:
            merged.append(pending)
            pending = ""
    if pending:
        if merged:
            merged[-1] += pending
        else:
            merged.append(pending)
    return [piece for block in merged for piece in split_long(encode(block), max_tokens) if piece]


def segment_text(text: str, boundaries: dict | None, encode: Encode, segmenter: str, block_tokens: int,
                 min_block_tokens: int) -> list[list[int]]:
    """Blocks of `text` by `segmenter`: "fixed", "learned", or a gold level ("coarse" / "medium" / "fine")
    read from `boundaries` (SemanticSeg's column: level → character offsets where a block starts)."""
    if segmenter == "fixed":
        return fixed_blocks(text, encode, block_tokens)
    if segmenter == "learned":
        from blockattn.segment import segment_text as learned_segmentation

        blocks = learned_segmentation(text, "learned", level="medium", min_tokens=min_block_tokens,
                                      max_tokens=block_tokens)
        return gold_blocks(text, [b.start for b in blocks[1:]], encode, block_tokens, min_block_tokens)
    cuts = (boundaries or {}).get(segmenter)
    if cuts is None:
        raise ValueError(f"this text has no {segmenter!r} boundaries")
    return gold_blocks(text, cuts, encode, block_tokens, min_block_tokens)
