"""Planted-fact retrieval items built from real text: n documents, one of which holds an access code.

    documents  n passages of real text (one block each at evaluation); one gets the sentence
               "The access code for the amber harbour is 4821." planted between two of its lines
    question   "What is the access code for the amber harbour?"
    answer     "4821" (an answer is correct when the generated text contains it)

Everything is drawn from one seed, so an item set is reproducible and can travel as JSON (the distillation
pack carries one). The fact is planted at a line break, so the passage's own sentences stay intact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

ADJECTIVES = ("amber", "silver", "northern", "quiet", "crimson", "hidden", "eastern", "frozen", "golden",
              "hollow", "iron", "lower", "marble", "narrow", "old", "painted", "royal", "sunken", "twin",
              "upper", "velvet", "western", "wooden", "copper")
NOUNS = ("harbour", "archive", "observatory", "vault", "library", "garden", "tower", "mill", "chapel",
         "workshop", "bridge", "lighthouse", "station", "cellar", "gallery", "orchard", "foundry", "quarry",
         "theatre", "granary", "studio", "depot", "ferry", "kiln")


@dataclass(frozen=True)
class NeedleItem:
    documents: list[str]
    question: str
    answer: str
    needle_doc: int  # index of the document holding the fact
    n_docs: int

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "NeedleItem":
        return NeedleItem(**d)


def passages(texts: Sequence[str], count_tokens: Callable[[str], int], max_tokens: int,
             min_tokens: int) -> list[str]:
    """Passages of whole lines, each between `min_tokens` and `max_tokens` tokens, cut from `texts` in order
    (lines longer than `max_tokens` are skipped)."""
    out: list[str] = []
    for text in texts:
        current, size = [], 0
        for line in text.splitlines(keepends=True):
            n = count_tokens(line)
            if n > max_tokens:
                current, size = [], 0
                continue
            if size + n > max_tokens:
                if size >= min_tokens:
                    out.append("".join(current))
                current, size = [], 0
            current.append(line)
            size += n
        if size >= min_tokens:
            out.append("".join(current))
    return [p for p in out if p.strip()]


def plant(passage: str, sentence: str, rng: np.random.Generator) -> str:
    """`passage` with `sentence` inserted as its own line at a random line break (or at the end)."""
    lines = passage.splitlines(keepends=True)
    at = int(rng.integers(0, len(lines) + 1))
    head = "".join(lines[:at])
    if head and not head.endswith("\n"):
        head += "\n"
    return head + sentence + "\n" + "".join(lines[at:])


def document_draws(pool: Sequence[str], doc_counts: Sequence[int], per_count: int, rng: np.random.Generator,
                   limit: int | None = None):
    """`per_count` lists of documents per document count, each drawn from `pool` without replacement (an
    item's documents are distinct). `limit`: another bound on the count (e.g. the names there are)."""
    for n in doc_counts:
        if n > len(pool) or (limit is not None and n > limit):
            raise ValueError(f"{n} documents per item but only {len(pool)} passages"
                             + (f" / {limit} names" if limit is not None else ""))
        for _ in range(per_count):
            yield [pool[int(i)] for i in rng.choice(len(pool), size=n, replace=False)]


def make_items(pool: Sequence[str], doc_counts: Sequence[int], per_count: int, seed: int) -> list[NeedleItem]:
    """`per_count` items for each document count, documents drawn without replacement within an item."""
    rng = np.random.default_rng([seed, 0x4EED])
    items = []
    for docs in document_draws(pool, doc_counts, per_count, rng):
        n = len(docs)
        name = f"the {ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]} {NOUNS[int(rng.integers(len(NOUNS)))]}"
        code = str(int(rng.integers(1000, 10000)))
        needle = int(rng.integers(n))
        docs[needle] = plant(docs[needle], f"The access code for {name} is {code}.", rng)
        items.append(NeedleItem(documents=docs, question=f"What is the access code for {name}?",
                                answer=code, needle_doc=needle, n_docs=n))
    return items


def first_per_count(items: Sequence[NeedleItem], n: int) -> list[NeedleItem]:
    """The first `n` items of each document count, in their order."""
    seen: dict[int, int] = {}
    picked = []
    for item in items:
        if seen.get(item.n_docs, 0) < n:
            seen[item.n_docs] = seen.get(item.n_docs, 0) + 1
            picked.append(item)
    return picked


def is_correct(item: NeedleItem, generated: str) -> bool:
    return item.answer in generated
