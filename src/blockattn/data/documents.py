"""The shape every source adapter produces: documents made of pieces, each piece opening a boundary level.

A `Document` is one natural text (a novel, a Bible book, a man page, a Python module, an email). Its text
is the concatenation of its pieces. Every piece says how strong the boundary *before* it is:

    level 0  coarse   a chapter, a top-level section, a top-level definition, a whole short entry
    level 1  medium   a subsection, a method
    level 2  fine     a sub-subsection, a small field
    level 3  none     a paragraph or line run: a place where a window may start or end, never a gold boundary

so gold boundaries nest by construction: coarse ⊆ medium ⊆ fine (issue 3). A piece may carry a `heading`
(a title line, an underline, a separator such as fortune's "%"): markup that the instance builder keeps or
strips per instance, so that a segmenter cannot rely on it alone.
"""

from __future__ import annotations

from dataclasses import dataclass

COARSE, MEDIUM, FINE, NONE = 0, 1, 2, 3
LEVEL_NAMES = ("coarse", "medium", "fine")


@dataclass(frozen=True, slots=True)
class Piece:
    text: str          # content; non-blank, ends with its own line break(s)
    level: int         # strength of the boundary before this piece (COARSE..NONE)
    heading: str = ""  # markup shown before `text` when markup is kept ("" = none)

    def render(self, markup: bool) -> str:
        return self.heading + self.text if markup else self.text


@dataclass(frozen=True, slots=True)
class Document:
    id: str                     # stable and unique: "<source>/<key>"
    source: str                 # adapter name
    category: str
    title: str
    group: str                  # split key: documents sharing a group always land in the same split
    pieces: tuple[Piece, ...]

    def text(self, markup: bool = True) -> str:
        return "".join(p.render(markup) for p in self.pieces)

    @property
    def n_chars(self) -> int:
        return sum(len(p.text) + len(p.heading) for p in self.pieces)


@dataclass(frozen=True, slots=True)
class Unit:
    """An independent text for other stages (RAG items, examples): one coarse part of a document."""

    id: str
    text: str
    title: str
    category: str
    source: str
