"""Cutting text into self-contained blocks: candidates → boundary probabilities → DP decoding → blocks.

    from blockattn.segment import segment_text
    blocks = segment_text(text, level="fine")            # or target_tokens=256, or num_blocks=8
    assert "".join(b.text for b in blocks) == text

Methods: `learned` (the default; a small numpy model, weights shipped in the package) and the baselines
`fixed`, `sentence`, `paragraph`, `recursive`, `texttiling`, `semantic`. See README.md, "Segmentation".
"""

from blockattn.segment.api import segment_document, segment_text
from blockattn.segment.blocks import Block
from blockattn.segment.document import Document
from blockattn.segment.methods import METHODS
from blockattn.segment.request import LEVELS, Request

__all__ = ["Block", "Document", "LEVELS", "METHODS", "Request", "segment_document", "segment_text"]
