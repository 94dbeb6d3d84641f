"""The one hook between documents and blocks, shared by `blockattn generate` and the server.

    "none"  each document is one block
    "auto"  each document is cut by the learned segmenter (`blockattn.segment`, shipped weights) into
            blocks of AUTO_TARGET_TOKENS on average, between AUTO_MIN_TOKENS and AUTO_MAX_TOKENS, at the
            boundaries it scores highest. Block texts come back in document order; a document shorter
            than 1.5 target blocks stays one block, and joining a document's blocks gives it back.

Why a target size and not `--level medium`: SemanticSeg's levels are its sources' own units, from a
40-token chat turn or poem to a 3k-token licence section, so a level gives blocks of any size. For the
block KV cache a block should be a passage: big enough to carry its own context and be worth a cache
entry, small enough to be reused on its own -- the few-hundred-token passages RAG retrieves. The
segmenter still decides where, so blocks end at topic and structure shifts rather than mid-thought.
"""

from __future__ import annotations

from blockattn.errors import UserError

SEGMENT_MODES = ("none", "auto")
AUTO_TARGET_TOKENS = 256  # mean block length (a typical RAG passage)
AUTO_MIN_TOKENS = 32  # below this a block costs a cache entry and carries almost no context
# A block is prefilled in one pass with no view of its neighbours: the cap bounds that cost even in a
# long text with nothing to cut at (word-level cuts are then used).
AUTO_MAX_TOKENS = 1024


def split_documents(texts: list[str], segment: str) -> list[str]:
    """Document texts → block texts, in order."""
    if segment == "none":
        return list(texts)
    if segment == "auto":
        from blockattn.segment import segment_text

        return [block.text for text in texts
                for block in segment_text(text, "learned", target_tokens=AUTO_TARGET_TOKENS,
                                          min_tokens=AUTO_MIN_TOKENS, max_tokens=AUTO_MAX_TOKENS)]
    raise UserError(f"unknown segment mode {segment!r}; choose one of {', '.join(SEGMENT_MODES)}")
