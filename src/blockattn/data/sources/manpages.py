"""Man pages (Debian `manpages`, `manpages-dev`: the Linux man-pages project): one document per page,
`.SH` sections coarse, `.SS` medium. Both packages are one source: the pages of sections 2 and 3 sit in
`manpages-dev`, the rest in `manpages`.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import Document
from blockattn.data.fetch import Package
from blockattn.data.formats.roff import man_pieces
from blockattn.data.sources.base import Source


def parse(roots: Sequence[Path]) -> Iterator[Document]:
    for root in roots:
        base = root / "usr/share/man"
        for path in sorted(base.glob("man*/*.gz")):
            if path.is_symlink():
                continue
            name = path.name[: -len(".gz")]
            pieces = man_pieces(gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace"))
            if pieces:
                yield Document(f"manpages/{name}", "manpages", "man-pages", name, group=f"man:{name}",
                               pieces=tuple(pieces))


MANPAGES = Source(
    name="manpages", category="man-pages",
    packages=(Package("debian", "manpages", "6.03-2"), Package("debian", "manpages-dev", "6.03-2")),
    license="Linux man-pages copyleft (verbatim copying permitted) and per-page terms",
    description="Linux man-pages 6.03, sections 1-8", parse=parse)
