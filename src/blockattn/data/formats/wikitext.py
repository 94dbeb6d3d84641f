"""MediaWiki wikitext → plain text with `==Section==` headings as boundaries (== coarse, === medium,
==== and deeper fine). Templates, references, tables, files, categories and comments are removed;
links keep their label; bold/italic quotes go.
"""

from __future__ import annotations

import html
import re

from blockattn.data.documents import COARSE, FINE, MEDIUM, Piece
from blockattn.data.formats.text import section

_COMMENT = re.compile(r"<!--.*?-->", re.S)
_REF = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.S)
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_FILE_LINK = re.compile(r"\[\[(?:File|Image|Category|[a-z]{2,3}):[^\[\]]*(?:\[\[[^\]]*\]\][^\[\]]*)*\]\]", re.I)
_LINK = re.compile(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]")
_EXTERNAL = re.compile(r"\[(?:https?|ftp)://\S+\s*([^\]]*)\]")
_HEADING = re.compile(r"^(={2,6})\s*(.*?)\s*\1\s*$", re.M)
_SKIP_SECTIONS = {"references", "external links", "see also", "further reading", "notes", "bibliography",
                  "sources", "footnotes", "citations"}


def _strip_nested(text: str, open_: str, close: str) -> str:
    """Remove balanced {{...}} / {|...|} spans (templates nest)."""
    out, depth, i = [], 0, 0
    while i < len(text):
        if text.startswith(open_, i):
            depth += 1
            i += len(open_)
        elif depth and text.startswith(close, i):
            depth -= 1
            i += len(close)
        else:
            if not depth:
                out.append(text[i])
            i += 1
    return "".join(out)


def clean(wikitext: str) -> str:
    text = html.unescape(wikitext)
    text = _COMMENT.sub("", text)
    text = _REF.sub("", text)
    text = _strip_nested(text, "{{", "}}")
    text = _strip_nested(text, "{|", "|}")
    text = _FILE_LINK.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _EXTERNAL.sub(r"\1", text)
    text = _TAG.sub("", text)
    text = re.sub(r"'{2,}", "", text)
    text = re.sub(r"^[*#:;]+\s*", "", text, flags=re.M)  # list markers
    return text


def wiki_pieces(wikitext: str) -> list[Piece]:
    text = clean(wikitext)
    marks = list(_HEADING.finditer(text))
    pieces = section(text[: marks[0].start() if marks else len(text)], COARSE)
    skipping_depth = None
    for k, m in enumerate(marks):
        depth, title = len(m.group(1)), m.group(2).strip()
        if skipping_depth is not None and depth > skipping_depth:
            continue
        skipping_depth = depth if title.lower() in _SKIP_SECTIONS else None
        if skipping_depth is not None:
            continue
        body = text[m.end(): marks[k + 1].start() if k + 1 < len(marks) else len(text)]
        level = {2: COARSE, 3: MEDIUM}.get(depth, FINE)
        pieces += section(body, level, heading=f"{m.group(1)} {title} {m.group(1)}\n\n")
    return pieces
