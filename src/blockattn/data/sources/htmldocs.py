"""HTML manuals: PostgreSQL 15's documentation (Debian `postgresql-doc-15`, category `technical-docs`, one
document per page) and the Debian FAQ (`debian-faq`, category `faq`, one document per chapter, every
question a coarse unit).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import COARSE, MEDIUM, Document
from blockattn.data.fetch import Package
from blockattn.data.formats.html import html_pieces
from blockattn.data.sources.base import Source

# Pages of reference lists (release notes, error-code and keyword tables) rather than prose.
_PG_SKIP = ("release-", "errcodes-", "sql-keywords", "bookindex", "biblio", "index.html")


def parse_postgres(roots: Sequence[Path]) -> Iterator[Document]:
    base = roots[0] / "usr/share/doc/postgresql-doc-15/html"
    for path in sorted(base.glob("*.html")):
        if path.name.startswith(_PG_SKIP):
            continue
        title, pieces = html_pieces(path.read_text(encoding="utf-8", errors="replace"))
        if pieces:
            yield Document(f"postgres-docs/{path.stem}", "postgres-docs", "technical-docs", title or path.stem,
                           group=f"pg:{path.stem}", pieces=tuple(pieces))


def parse_debian_faq(roots: Sequence[Path]) -> Iterator[Document]:
    base = roots[0] / "usr/share/doc/debian/FAQ"
    for path in sorted(base.glob("*.en.html")):
        if path.name.startswith(("index", "faqinfo")):
            continue
        title, pieces = html_pieces(path.read_text(encoding="utf-8", errors="replace"), (COARSE, COARSE, MEDIUM))
        if pieces:
            yield Document(f"debian-faq/{path.stem}", "debian-faq", "faq", title or path.stem,
                           group=f"debian-faq:{path.stem}", pieces=tuple(pieces))


POSTGRES_DOCS = Source(
    name="postgres-docs", category="technical-docs",
    packages=(Package("debian", "postgresql-doc-15", "15.18-0+deb12u1"),), license="PostgreSQL Licence",
    description="PostgreSQL 15 manual pages (HTML)", parse=parse_postgres)
DEBIAN_FAQ = Source(
    name="debian-faq", category="faq", packages=(Package("debian", "debian-faq", "11.1"),),
    license="GPL-2.0+", description="the Debian GNU/Linux FAQ, one question per unit", parse=parse_debian_faq)
