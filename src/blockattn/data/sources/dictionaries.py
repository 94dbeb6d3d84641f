"""Dictionaries in dictd format (Debian `dict-gcide`: the Collaborative International Dictionary of
English; `dict-wn`: WordNet 3.0; `dict-foldoc`: the Free On-line Dictionary of Computing): one document per
entry (entries are independent texts, so instances are concatenations of entries). Entries whose headwords
share their first two letters form one split group, so that related headwords (run, running) stay in one
split. GCIDE and WordNet are sampled (one headword in four, by hash) to keep them from dwarfing the other
categories' sources.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import COARSE, Document
from blockattn.data.fetch import Package
from blockattn.data.formats.text import section
from blockattn.data.sources.base import Source

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def dictd_number(code: str) -> int:
    """dictd's base-64 integers (offsets and lengths in the .index file)."""
    value = 0
    for ch in code:
        value = value * 64 + _B64.index(ch)
    return value


def dictd_entries(index: str, data: bytes) -> Iterator[tuple[str, str]]:
    """(headword, entry text) in index order, each entry once; dictd's own meta entries left out."""
    seen = set()
    for line in index.splitlines():
        fields = line.split("\t")
        if len(fields) < 3 or fields[0].startswith("00-database") or fields[0].startswith("00database"):
            continue
        offset, length = dictd_number(fields[1]), dictd_number(fields[2])
        if offset in seen:
            continue
        seen.add(offset)
        yield fields[0], data[offset:offset + length].decode("utf-8", errors="replace")


def _parse(root: Path, name: str, sample: int) -> Iterator[Document]:
    base = root / "usr/share/dictd"
    data = gzip.decompress((base / f"{name}.dict.dz").read_bytes())  # dictzip is gzip-compatible
    for k, (headword, entry) in enumerate(dictd_entries((base / f"{name}.index").read_text(encoding="utf-8"),
                                                        data)):
        pieces = section(entry, COARSE)
        if zlib.crc32(headword.encode()) % sample or not pieces:
            continue
        prefix = "".join(c for c in headword.lower() if c.isalnum())[:2] or "_"
        yield Document(f"{name}/{k:06d}", name, "dictionary", headword, group=f"{name}:{prefix}",
                       pieces=tuple(pieces))


def parse_gcide(roots: Sequence[Path]) -> Iterator[Document]:
    yield from _parse(roots[0], "gcide", 4)


def parse_wordnet(roots: Sequence[Path]) -> Iterator[Document]:
    yield from _parse(roots[0], "wn", 4)


def parse_foldoc(roots: Sequence[Path]) -> Iterator[Document]:
    yield from _parse(roots[0], "foldoc", 1)


GCIDE = Source(name="gcide", category="dictionary", packages=(Package("debian", "dict-gcide", "0.48.5+nmu2"),),
               license="GPL-3.0+ (GCIDE; based on Webster's 1913, public domain)",
               description="GCIDE entries (1 in 4 headwords)", parse=parse_gcide, version=2)
WORDNET = Source(name="wn", category="dictionary", packages=(Package("debian", "dict-wn", "1:3.0-37"),),
                 license="WordNet 3.0 licence (BSD-like)", description="WordNet 3.0 entries (1 in 4 headwords)",
                 parse=parse_wordnet, version=2)
FOLDOC = Source(name="foldoc", category="dictionary", packages=(Package("debian", "dict-foldoc", "20230119-1"),),
                license="GFDL-1.1+", description="FOLDOC computing dictionary entries", parse=parse_foldoc, version=2)
