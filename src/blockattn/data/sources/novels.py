"""Novels: Jane Austen's six novels (Debian `r-cran-janeaustenr`) and Moby-Dick (`r-cran-tokenizers`).

One document per novel, one coarse piece per chapter (heading "Chapter 12" as markup), paragraphs as
continuation pieces. Novels have no finer structure, so medium and fine boundaries equal the chapters.
Front matter before the first chapter and the Project Gutenberg licence after the last are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import COARSE, Document
from blockattn.data.fetch import Package
from blockattn.data.formats.rlazyload import read_lazyload
from blockattn.data.formats.text import normalize, section
from blockattn.data.sources.base import Source

_AUSTEN = {"emma": "Emma", "mansfieldpark": "Mansfield Park", "northangerabbey": "Northanger Abbey",
           "persuasion": "Persuasion", "prideprejudice": "Pride and Prejudice",
           "sensesensibility": "Sense and Sensibility"}
_AUSTEN_CHAPTER = re.compile(r"^(?:VOLUME [IVX]+\n\n)?CHAPTER [0-9IVXLC]+\.?$|^Chapter \d+$", re.M | re.I)
_MOBY_CHAPTER = re.compile(r"^(?:CHAPTER \d+\..*|Epilogue)$", re.M)
_R_LIB = "usr/lib/R/site-library"


def chapters_document(doc_id: str, source: str, title: str, text: str, heading: re.Pattern[str],
                      end_marker: str | None = None) -> Document:
    """A novel's text → one document with a coarse piece per chapter heading match."""
    text = normalize(text)
    if end_marker and end_marker in text:
        text = text[: text.index(end_marker)]
    starts = [m for m in heading.finditer(text)]
    pieces = []
    for i, m in enumerate(starts):
        body_end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        pieces += section(text[m.end():body_end], COARSE, heading=m.group(0).strip() + "\n\n")
    return Document(doc_id, source, "novels", title, group=f"novel:{title}", pieces=tuple(pieces))


def parse_austen(roots: Sequence[Path]) -> Iterator[Document]:
    stem = roots[0] / _R_LIB / "janeaustenr/data/Rdata"
    for key, title in _AUSTEN.items():
        lines = [str(x) for x in read_lazyload(stem, key)]
        yield chapters_document(f"janeaustenr/{key}", "janeaustenr", title, "\n".join(lines), _AUSTEN_CHAPTER)


def parse_mobydick(roots: Sequence[Path]) -> Iterator[Document]:
    text = str(read_lazyload(roots[0] / _R_LIB / "tokenizers/data/Rdata", "mobydick")[0])
    yield chapters_document("mobydick/mobydick", "mobydick", "Moby-Dick", text, _MOBY_CHAPTER,
                            end_marker="End of Project Gutenberg")


AUSTEN = Source(
    name="janeaustenr", category="novels",
    packages=(Package("debian", "r-cran-janeaustenr", "1.0.0-1"),),
    license="novels: public domain (Project Gutenberg); package: MIT",
    description="Jane Austen's six completed novels, by chapter", parse=parse_austen)
MOBYDICK = Source(
    name="mobydick", category="novels",
    packages=(Package("debian", "r-cran-tokenizers", "0.3.0-1"),),
    license="novel: public domain (Project Gutenberg); package: MIT",
    description="Herman Melville, Moby-Dick, by chapter", parse=parse_mobydick)
