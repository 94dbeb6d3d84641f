"""Manuals with underlined section titles: the Python 3.11 documentation and the Linux 6.1 kernel
documentation (reStructuredText, category `reference-manuals`), Git's documentation (AsciiDoc, category
`technical-docs`) and the Python FAQ (category `faq`).

One document per file (its split group); sections → coarse, subsections → medium, deeper → fine; in the
FAQ every question is a coarse unit (the FAQ's own structure: sections of independent questions).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import COARSE, FINE, MEDIUM, Document
from blockattn.data.fetch import Package
from blockattn.data.formats.headings import DEFAULT_LEVELS, underlined_pieces
from blockattn.data.sources.base import Source

_PYDOC = "usr/share/doc/python3.11/html/_sources"
# Release notes and licence boilerplate are lists of changes, not manual prose.
_PYDOC_SKIP = ("whatsnew/", "faq/", "license", "copyright", "contents", "bugs", "about")
_FAQ_LEVELS = (COARSE, COARSE, MEDIUM, FINE)


def _document(source: str, category: str, rel: str, text: str, levels=DEFAULT_LEVELS) -> Document | None:
    title, pieces = underlined_pieces(text, levels)
    if not pieces:
        return None
    return Document(f"{source}/{rel}", source, category, title or rel, group=f"{source}:{rel}",
                    pieces=tuple(pieces))


def parse_python_docs(roots: Sequence[Path]) -> Iterator[Document]:
    base = roots[0] / _PYDOC
    for path in sorted(base.rglob("*.rst.txt")):
        rel = path.relative_to(base).as_posix()
        if not rel.startswith(_PYDOC_SKIP):
            doc = _document("python-docs", "reference-manuals", rel, path.read_text(encoding="utf-8"))
            if doc:
                yield doc


def parse_python_faq(roots: Sequence[Path]) -> Iterator[Document]:
    base = roots[0] / _PYDOC
    for path in sorted((base / "faq").glob("*.rst.txt")):
        rel = path.relative_to(base).as_posix()
        doc = _document("python-faq", "faq", rel, path.read_text(encoding="utf-8"), _FAQ_LEVELS)
        if doc:
            yield doc


def parse_linux_docs(roots: Sequence[Path]) -> Iterator[Document]:
    base = roots[0] / "usr/share/doc/linux-doc-6.1/Documentation"
    for path in sorted(base.rglob("*.rst.gz")):
        rel = path.relative_to(base).as_posix()[: -len(".gz")]
        if rel.startswith(("translations/", "ABI/")):  # other languages; machine-oriented ABI listings
            continue
        doc = _document("linux-docs", "reference-manuals", rel,
                        gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace"))
        if doc:
            yield doc


def parse_git_docs(roots: Sequence[Path]) -> Iterator[Document]:
    base = roots[0] / "usr/share/doc/git-doc"
    for path in sorted(base.rglob("*.txt")):
        rel = path.relative_to(base).as_posix()
        doc = _document("git-docs", "technical-docs", rel, path.read_text(encoding="utf-8", errors="replace"))
        if doc:
            yield doc


_PY_DOC_PKG = Package("debian", "python3.11-doc", "3.11.2-6+deb12u8")
PYTHON_DOCS = Source(
    name="python-docs", category="reference-manuals", packages=(_PY_DOC_PKG,), license="PSF License 2.0",
    description="Python 3.11 documentation sources (library, reference, tutorial, howto, ...)",
    parse=parse_python_docs, version=2)
PYTHON_FAQ = Source(
    name="python-faq", category="faq", packages=(_PY_DOC_PKG,), license="PSF License 2.0",
    description="the Python FAQ, one question per unit", parse=parse_python_faq, version=2)
LINUX_DOCS = Source(
    name="linux-docs", category="reference-manuals", packages=(Package("debian", "linux-doc-6.1", "6.1.176-1"),),
    license="GPL-2.0", description="Linux 6.1 kernel documentation (reStructuredText, no translations)",
    parse=parse_linux_docs, version=2)
GIT_DOCS = Source(
    name="git-docs", category="technical-docs", packages=(Package("debian", "git-doc", "1:2.39.5-0+deb12u3"),),
    license="GPL-2.0", description="Git manual pages, guides and technical notes (AsciiDoc)",
    parse=parse_git_docs, version=2)
