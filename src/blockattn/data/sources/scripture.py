"""Scripture: the World English Bible and the King James Version (Debian `sword-text-web`, `sword-text-kjv`,
read with PyPI `pysword`).

One document per book and translation, one coarse piece per chapter (heading "Genesis 3" as markup),
paragraph breaks where the module marks them (OSIS `x-p`). Both translations of a book share one split
group, so no book is seen in training in one translation and tested in the other.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import COARSE, Document
from blockattn.data.fetch import Package
from blockattn.data.formats.text import section
from blockattn.data.sources.base import Source

_NOTE = re.compile(r"<note\b.*?</note>", re.S)
_PARAGRAPH = re.compile(r"<(?:div|milestone)\b[^>]*type=\"x-p\"[^>]*/>")
_TAG = re.compile(r"<[^>]+>")
_PARAGRAPH_MARK = "\x00"  # stands for a paragraph break while tags are stripped


def clean_verse(osis: str) -> str:
    """OSIS verse markup → plain text; paragraph markers become a placeholder, footnotes are dropped."""
    text = _PARAGRAPH.sub(_PARAGRAPH_MARK, _NOTE.sub(" ", osis))  # a note sits between words
    text = html.unescape(_TAG.sub("", text)).replace("¶", "")
    return re.sub(r"[ \t\n]+", " ", text).strip()


def chapter_text(verses: list[str]) -> str:
    """Verses joined into paragraphs: spaces within, a blank line at each paragraph marker."""
    joined = " ".join(v for v in (clean_verse(v) for v in verses) if v)
    paragraphs = [re.sub(" +", " ", p).strip() for p in joined.split(_PARAGRAPH_MARK)]
    return "\n\n".join(p for p in paragraphs if p) + "\n"


def _bible(root: Path, module: str, source: str, translation: str) -> Iterator[Document]:
    from pysword.modules import SwordModules

    modules = SwordModules(str(root / "usr/share/sword"))
    modules.parse_modules()
    bible = modules.get_bible_from_module(module)
    for testament in ("ot", "nt"):
        for book in bible.get_structure().get_books()[testament]:
            pieces = []
            for chapter in range(1, book.num_chapters + 1):
                verses = list(bible.get_iter(books=[book.osis_name], chapters=[chapter], clean=False))
                pieces += section(chapter_text(verses), COARSE, heading=f"{book.name} {chapter}\n\n")
            if pieces:
                yield Document(f"{source}/{book.osis_name}", source, "scripture", f"{book.name} ({translation})",
                               group=f"bible:{book.osis_name}", pieces=tuple(pieces))


def parse_web(roots: Sequence[Path]) -> Iterator[Document]:
    yield from _bible(roots[0], "engWEB2015eb", "bible-web", "WEB")


def parse_kjv(roots: Sequence[Path]) -> Iterator[Document]:
    yield from _bible(roots[0], "engKJV2006eb", "bible-kjv", "KJV")


WEB = Source(
    name="bible-web", category="scripture", packages=(Package("debian", "sword-text-web", "426.0-1"),),
    license="public domain", description="World English Bible, by book and chapter", parse=parse_web, version=2)
KJV = Source(
    name="bible-kjv", category="scripture", packages=(Package("debian", "sword-text-kjv", "14.3-1"),),
    license="public domain (outside the UK: Crown patent)", description="King James Version, by book and chapter",
    parse=parse_kjv)
