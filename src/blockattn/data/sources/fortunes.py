"""Quotes and poems: the `fortunes` database (Debian `fortunes`), one document per entry.

Entries are independent texts (a file is a loose theme, not a document), so instances are concatenations
of entries; each fortune file (art, computers, songs-poems, ...) is one split group. The "%" separator
line is the entry's markup. The ASCII-art file is left out: pictures, not text.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import COARSE, Document
from blockattn.data.fetch import Package
from blockattn.data.formats.text import section
from blockattn.data.sources.base import Source

_SKIP = {"ascii-art"}


def parse_fortune_file(text: str) -> list[str]:
    """Entries of a strfile-format fortune file: text blocks separated by lines holding only '%'."""
    entries, current = [], []
    for line in text.split("\n"):
        if line.strip() == "%":
            entries.append("\n".join(current))
            current = []
        else:
            current.append(line)
    entries.append("\n".join(current))
    return [e.expandtabs(8) for e in entries if e.strip()]


def parse(roots: Sequence[Path]) -> Iterator[Document]:
    folder = roots[0] / "usr/share/games/fortunes"
    for path in sorted(folder.iterdir()):
        if path.suffix or path.is_symlink() or path.name in _SKIP:
            continue
        for k, entry in enumerate(parse_fortune_file(path.read_text(encoding="utf-8", errors="replace"))):
            pieces = section(entry, COARSE, heading="%\n")
            if pieces:
                yield Document(f"fortunes/{path.name}/{k}", "fortunes", "quotes-poems", f"{path.name} #{k}",
                               group=f"fortunes:{path.name}", pieces=tuple(pieces))


FORTUNES = Source(
    name="fortunes", category="quotes-poems", packages=(Package("debian", "fortunes", "1:1.99.1-7.3"),),
    license="fortune database: mostly public domain / fair-use quotations (see the package's copyright file)",
    description="fortune-mod quotations, jokes and poems, one entry per unit", parse=parse, version=2)
