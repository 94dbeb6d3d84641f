"""RAG-shaped training requests from TRAINING documents only (never from HotpotQA or any evaluation set):
several passages as documents and one question about them. The teacher answers them under full attention
(`teacher.py`); the student learns that answer's distribution under block attention.

Kinds (drawn in equal shares):
    facts    every document carries a planted fact of the "train" template (data.facts), the question names one
    summary  "Summarize the document that begins with "<its first words>" in one sentence."
    continue "Which sentence follows "<a line of document k>" in the documents? Quote it."  (extractive)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from blockattn.data.facts import distractor_items

KINDS = ("facts", "summary", "continue")


def _opening(text: str, words: int = 8) -> str:
    return " ".join(text.split()[:words])


def rag_requests(pool: Sequence[str], n: int, seed: int, min_docs: int = 3, max_docs: int = 10) -> list[dict]:
    """`n` requests {"kind", "documents", "question"} over passages of `pool` (train texts)."""
    rng = np.random.default_rng([seed, 0x4A6])
    out: list[dict] = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        count = int(rng.integers(min_docs, min(max_docs, len(pool)) + 1))
        if kind == "facts":
            item = distractor_items(pool, [count], 1, seed=int(rng.integers(2**31)), template="train")[0]
            out.append({"kind": kind, "documents": item.documents, "question": item.question})
            continue
        docs = [pool[int(j)] for j in rng.choice(len(pool), size=count, replace=False)]
        k = int(rng.integers(count))
        if kind == "summary":
            question = f'Summarize the document that begins with "{_opening(docs[k])}" in one sentence.'
        else:
            lines = [line.strip() for line in docs[k].splitlines() if len(line.split()) >= 4]
            if len(lines) < 2:
                question = f'Summarize the document that begins with "{_opening(docs[k])}" in one sentence.'
            else:
                at = int(rng.integers(len(lines) - 1))
                question = f'Which sentence follows "{lines[at]}" in the documents? Quote it.'
        out.append({"kind": kind, "documents": docs, "question": question})
    return out
