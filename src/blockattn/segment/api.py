"""The Python entry point the rest of blockattn calls: text in, blocks out."""

from __future__ import annotations

from blockattn.errors import UserError
from blockattn.segment.blocks import Block, iter_blocks
from blockattn.segment.decode import Infeasible
from blockattn.segment.document import Document
from blockattn.segment.methods import get_segmenter
from blockattn.segment.request import Request


def segment_document(doc: Document, method: str, request: Request) -> list[Block]:
    """Blocks of an already prepared Document (lets callers time or reuse the preparation)."""
    if not doc.text.strip():
        raise UserError("nothing to segment: the text is empty (or only whitespace)")
    try:
        cuts = get_segmenter(method).cut(doc, request)
    except Infeasible as exc:
        raise UserError(f"{exc}; widen --min-tokens/--max-tokens or ask for another block count") from None
    return list(iter_blocks(doc.text, cuts, doc.tokens))


def segment_text(text: str, method: str = "learned", *, level: str = "medium", target_tokens: int | None = None,
                 num_blocks: int | None = None, min_tokens: int = 0, max_tokens: int | None = None) -> list[Block]:
    """Cut `text` into blocks.

    Granularity: `num_blocks` (exactly that many whenever the text has enough candidate cut points), else
    `target_tokens` (mean block length), else `level` (coarse | medium | fine). `min_tokens`/`max_tokens`
    are hard limits on every block (a text shorter than `min_tokens` is one block).

    Guarantees: blocks are contiguous and cover the text, `"".join(b.text for b in blocks) == text`, each
    `b.text == text[b.start:b.end]`; `n_tokens` counts default-model (SmolLM2) tokens. Every method but
    `fixed` and `recursive` cuts only at sentence, line or paragraph ends. Raises UserError for an empty
    text, an unknown method or level, or limits that no segmentation can meet.
    """
    request = Request(level=level, target_tokens=target_tokens, num_blocks=num_blocks,
                      min_tokens=min_tokens, max_tokens=max_tokens)
    return segment_document(Document(text), method, request)
