"""The Debian Policy Manual and the Debian Developer's Reference (their reStructuredText sources, shipped
as Sphinx `_sources/*.rst.txt`): normative packaging rules and procedures, a kind of text SemanticSeg never
contains (issue 14: a second unseen set). Not part of SemanticSeg's registry: only
`blockattn data build-unseen --set debian-policy` reads it. Gold boundaries: the chapters' own section
titles (section → coarse, subsection → medium, sub-subsection → fine); one document per chapter.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import Document
from blockattn.data.fetch import Package
from blockattn.data.formats.headings import underlined_pieces
from blockattn.data.sources.base import Source

CATEGORY = "debian-policy"
_SOURCES = {  # package → folder of its reST sources
    "debian-policy": "usr/share/doc/debian-policy/policy.html/_sources",
    "developers-reference": "usr/share/developers-reference/_sources",
}
# Tables of contents, not prose.
_SKIP = ("index.rst.txt",)


def parse(roots: Sequence[Path]) -> Iterator[Document]:
    for root, package in zip(roots, _SOURCES):
        for path in sorted((root / _SOURCES[package]).glob("*.rst.txt")):
            if path.name in _SKIP:
                continue
            title, pieces = underlined_pieces(path.read_text(encoding="utf-8", errors="replace"))
            if pieces:
                key = f"{package}/{path.name.removesuffix('.rst.txt')}"
                yield Document(f"{CATEGORY}/{key}", CATEGORY, CATEGORY, title or key, group=f"policy:{key}",
                               pieces=tuple(pieces))


DEBIAN_POLICY = Source(
    name="debian-policy", category=CATEGORY,
    packages=(Package("debian", "debian-policy", "4.6.2.0"), Package("debian", "developers-reference", "12.18")),
    license="GPL-2+ (debian-policy), MIT-style (developers-reference); see each package's copyright file",
    description="Debian Policy Manual 4.6.2.0 and Developer's Reference 12.18 (reST sources), one document "
                "per chapter", parse=parse)
