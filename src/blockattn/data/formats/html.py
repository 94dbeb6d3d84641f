"""DocBook-generated HTML (PostgreSQL's manual, the Debian FAQ) → pieces at its h1–h4 headings.

Only the visible text of content elements is kept (paragraphs, lists, tables, preformatted blocks);
navigation headers/footers, tables of contents, scripts and styles are dropped. The first heading level in
the page that occurs exactly once is the page title; the levels below map to `levels`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html.parser import HTMLParser

from blockattn.data.documents import COARSE, FINE, MEDIUM, Piece
from blockattn.data.formats.text import section

DEFAULT_LEVELS = (COARSE, MEDIUM, FINE)
_BLOCKS = {"p", "pre", "li", "dt", "dd", "tr", "div", "table", "blockquote", "br", "ul", "ol", "dl"}
_SKIP_CLASSES = {"navheader", "navfooter", "toc", "list-of-tables", "list-of-figures", "list-of-examples"}
_VOID = {"br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr"}


class _Blocks(HTMLParser):
    """Collects (tag, text) blocks: tag is "h1".."h6" for headings, "p" for any other text block."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []
        self.stack: list[tuple[str, bool]] = []  # (tag, skipped)
        self.buffer: list[str] = []
        self.pre = 0

    @property
    def skipping(self) -> bool:
        return any(skip for _, skip in self.stack)

    def _flush(self, kind: str = "p") -> None:
        text = "".join(self.buffer)
        text = text if self.pre else re.sub(r"[ \t\r\n]+", " ", text)
        if text.strip():
            self.blocks.append((kind, text.strip("\n") if self.pre else text.strip()))
        self.buffer = []

    def handle_starttag(self, tag, attrs):
        classes = set((dict(attrs).get("class") or "").split())
        if tag in _VOID:
            if tag == "br":
                self.buffer.append("\n")
            return
        if tag in _BLOCKS or re.fullmatch(r"h[1-6]", tag):
            self._flush()
        if tag == "pre":
            self.pre += 1
        self.stack.append((tag, tag in ("script", "style", "head") or bool(classes & _SKIP_CLASSES)))

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        while self.stack:
            open_tag, _ = self.stack[-1]
            if re.fullmatch(r"h[1-6]", open_tag) and open_tag == tag:
                self._flush(tag)
            elif open_tag in _BLOCKS:
                self._flush()
            if open_tag == "pre":
                self.pre -= 1
            self.stack.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        if not self.skipping:
            self.buffer.append(data)


def html_pieces(markup: str, levels: Sequence[int] = DEFAULT_LEVELS) -> tuple[str, list[Piece]]:
    """(page title or "", pieces)."""
    parser = _Blocks()
    parser.feed(markup)
    parser.close()
    parser._flush()
    blocks = parser.blocks
    heading_tags = sorted({tag for tag, _ in blocks if tag != "p"})
    title = ""
    if heading_tags and sum(tag == heading_tags[0] for tag, _ in blocks) == 1:
        title = next(text for tag, text in blocks if tag == heading_tags[0])
        blocks = [b for b in blocks if b[0] != heading_tags[0]]
        heading_tags = heading_tags[1:]
    depth = {tag: levels[min(k, len(levels) - 1)] for k, tag in enumerate(heading_tags)}
    pieces: list[Piece] = []
    heading, level, paras = "", COARSE, []
    for tag, text in blocks + [("end", "")]:
        if tag == "p":
            paras.append(text)
            continue
        body = section("\n\n".join(paras), level, heading=heading)
        if body:
            pieces += body
            heading, level = "", FINE
        heading, level = heading + text + "\n\n", min(level if heading else FINE, depth.get(tag, FINE))
        paras = []
    return title, pieces
