"""What a source adapter declares: its category, pinned packages, licence, and a parser."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from blockattn.data.documents import Document
from blockattn.data.fetch import Package


@dataclass(frozen=True)
class Source:
    name: str                   # short, stable: used in ids, cache paths and the `source` column
    category: str
    packages: tuple[Package, ...]
    license: str                # what the packages' copyright files say about the text we use
    description: str            # one line for the dataset card
    parse: Callable[[Sequence[Path]], Iterator[Document]]  # package folders (same order) → documents
    version: int = 1            # bump when `parse` changes, to invalidate cached documents
