"""News (thin): the Lee background corpus of Australian news articles shipped as test data in the `gensim`
wheel, one article per line, one document per article. About 300 short articles: the category gets few
instances, all concatenations.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import COARSE, Document
from blockattn.data.fetch import Package
from blockattn.data.formats.text import section
from blockattn.data.sources.base import Source


def parse(roots: Sequence[Path]) -> Iterator[Document]:
    path = next(roots[0].glob("gensim/test/test_data/lee_background.cor"))
    for k, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
        pieces = section(line, COARSE, max_chars=1200)
        if pieces:
            yield Document(f"lee-news/{k:03d}", "lee-news", "news", f"news article {k}", group=f"lee:{k}",
                           pieces=tuple(pieces))


LEE_NEWS = Source(
    name="lee-news", category="news", packages=(Package("pypi", "gensim", "4.4.0"),),
    license="research corpus shipped in gensim's test data (LGPL-2.1 package)",
    description="Lee background corpus: Australian news articles", parse=parse)
