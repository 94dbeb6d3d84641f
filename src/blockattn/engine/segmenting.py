"""The one hook between documents and blocks, shared by `blockattn generate` and the server.

    "none"  each document is one block
    "auto"  documents are cut into self-contained blocks by the segmenter (`blockattn.segment`); wired in
            by the segmenter issue -- until then a clear user error, never a silent fallback
"""

from __future__ import annotations

from blockattn.errors import UserError

SEGMENT_MODES = ("none", "auto")


def split_documents(texts: list[str], segment: str) -> list[str]:
    """Document texts → block texts, in order."""
    if segment == "none":
        return list(texts)
    if segment == "auto":
        raise UserError("segment 'auto' is not available yet (the segmenter is not wired into the engine); "
                        "use 'none'")
    raise UserError(f"unknown segment mode {segment!r}; choose one of {', '.join(SEGMENT_MODES)}")
