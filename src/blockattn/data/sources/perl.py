"""Perl's documentation (Debian `perl-doc`): the manual pages as `technical-docs`, the nine perlfaq
volumes as `faq` (every `=head2` question a coarse unit). Release notes (perl*delta), the generated API
listings, the table of contents and the licences are left out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import COARSE, FINE, MEDIUM, Document
from blockattn.data.fetch import Package
from blockattn.data.formats.pod import pod_pieces
from blockattn.data.sources.base import Source

_POD = "usr/share/perl/5.36.0/pod"
_SKIP = {"perltoc.pod", "perlapi.pod", "perlintern.pod", "perlgpl.pod", "perlartistic.pod", "perlfaq.pod",
         "perlmodlib.pod", "perldiag.pod"}
_FAQ_LEVELS = {1: COARSE, 2: COARSE, 3: MEDIUM, 4: FINE}


def _docs(root: Path, faq: bool) -> Iterator[Document]:
    source, category = ("perlfaq", "faq") if faq else ("perl-docs", "technical-docs")
    for path in sorted((root / _POD).glob("*.pod")):
        is_faq = path.name.startswith("perlfaq")
        if path.name in _SKIP or path.stem.endswith("delta") or is_faq != faq:
            continue
        title, pieces = pod_pieces(path.read_text(encoding="utf-8", errors="replace"), _FAQ_LEVELS if faq else None)
        if pieces:
            yield Document(f"{source}/{path.stem}", source, category, title or path.stem,
                           group=f"perl:{path.stem}", pieces=tuple(pieces))


def parse_docs(roots: Sequence[Path]) -> Iterator[Document]:
    yield from _docs(roots[0], faq=False)


def parse_faq(roots: Sequence[Path]) -> Iterator[Document]:
    yield from _docs(roots[0], faq=True)


_PKG = Package("debian", "perl-doc", "5.36.0-7+deb12u3")
PERL_DOCS = Source(name="perl-docs", category="technical-docs", packages=(_PKG,),
                   license="Artistic-1.0 or GPL-1.0+ (Perl's terms)",
                   description="Perl manual pages (pod), no release notes", parse=parse_docs, version=2)
PERLFAQ = Source(name="perlfaq", category="faq", packages=(_PKG,), license="Artistic-1.0 or GPL-1.0+ (Perl's terms)",
                 description="perlfaq1-9, one question per unit", parse=parse_faq, version=2)
