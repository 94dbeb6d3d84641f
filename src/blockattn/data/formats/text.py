"""Plain-text helpers shared by all parsers: paragraphs, and long runs cut into window-sized pieces.

Guarantee of `section`: the pieces' texts concatenated equal the normalised body, every piece is non-blank
and ends with a line break, and no piece is longer than MAX_PIECE_CHARS unless a single unbreakable line is.
"""

from __future__ import annotations

import re

from blockattn.data.documents import NONE, Piece

# ~1k tokens: small enough that a window can fit its target length closely, large enough to keep
# paragraphs whole in prose.
MAX_PIECE_CHARS = 4000

_BLANK_RUN = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)*")  # blank lines only: keep the next indentation
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]])) +(?=[A-Z\"'(\[])")


def normalize(text: str) -> str:
    """Unix newlines, no trailing spaces on lines, at most one blank line in a row, ends with one newline."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
    return text + "\n" if text else ""


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs of normalised text, each ending with one blank line ("\\n\\n"), so that
    pieces from anywhere concatenate with the same spacing as paragraphs (spacing gives no boundary away)."""
    text = normalize(text)
    return [p.rstrip("\n") + "\n\n" for p in _BLANK_RUN.split(text) if p.strip()]


def _chunk(text: str, max_chars: int) -> list[str]:
    """Cut one over-long paragraph at line breaks, then sentence ends, then spaces; pieces concatenate back."""
    if len(text) <= max_chars:
        return [text]
    for splitter in (re.compile(r"(?<=\n)"), _SENTENCE_END, re.compile(r"(?<= )")):
        parts = [p for p in splitter.split(text) if p]
        if len(parts) > 1:
            break
    else:
        return [text]
    chunks = _pack(parts, max_chars)
    return [c for chunk in chunks for c in _chunk(chunk, max_chars)] if len(chunks) > 1 else chunks


def _pack(parts: list[str], max_chars: int) -> list[str]:
    """Greedily join consecutive parts into chunks of at most `max_chars` (a longer part stays whole)."""
    chunks, current = [], ""
    for part in parts:
        if current and len(current) + len(part) > max_chars:
            chunks.append(current)
            current = ""
        current += part
    return chunks + [current] if current else chunks


def _ensure_newline(chunks: list[str]) -> list[str]:
    """Sentence/space cuts leave a chunk without a final newline; turn the cut's space into one."""
    out = []
    for chunk in chunks:
        if not chunk.endswith("\n"):
            chunk = chunk.rstrip(" ") + "\n"
        out.append(chunk)
    return out


def section(body: str, level: int, heading: str = "", max_chars: int = MAX_PIECE_CHARS) -> list[Piece]:
    """A structural unit → pieces: the first opens the boundary at `level` (and carries the heading), the
    rest are paragraph-sized continuation pieces (level NONE). Empty bodies give no pieces."""
    texts = [c for block in paragraphs(body) for c in _ensure_newline(_chunk(block, max_chars)) if c.strip()]
    if not texts:
        return []
    first = Piece(texts[0], level, heading)
    return [first] + [Piece(t, NONE) for t in texts[1:]]


def code_section(body: str, level: int, max_chars: int = MAX_PIECE_CHARS) -> list[Piece]:
    """Like `section` for source code: blank lines and indentation are content, so nothing is normalised
    beyond trailing whitespace; long definitions are cut at line breaks only. The definition ends with one
    blank line, so the spacing between definitions is uniform and gives no boundary away."""
    body = "\n".join(line.rstrip() for line in body.replace("\r\n", "\n").split("\n")).strip("\n")
    if not body.strip():
        return []
    body += "\n"
    chunks = [c for c in _pack(re.split(r"(?<=\n)", body), max_chars) if c.strip()]
    chunks[-1] += "\n"  # one blank line after every definition, whatever the file had
    return [Piece(chunks[0], level)] + [Piece(c, NONE) for c in chunks[1:]]
