"""RAG-shaped training requests from TRAINING documents only (never from HotpotQA or any evaluation set):
several passages as documents and one question about them. The teacher answers them under full attention
(`teacher.py`); the student learns that answer's distribution under block attention.

Kinds, drawn in the fixed interleaved order SCHEDULE (its shares: MIX), so any prefix of the requests has the mix:
    bridge   HotpotQA-shaped documents; a two-hop chain across two of them ("<entity> was founded by <person>.",
             "<person> was born in <city>."), distractor chains of the same form in the others; "In which city
             was the founder of <entity> born?" (data.facts CHAINS["train"])
    compare  HotpotQA-shaped documents, each giving one attribute of a distinct entity; "Which was founded
             earlier, <a> or <b>?" (data.facts COMPARE_ATTRIBUTES)
    facts    every document carries a planted fact of the "train" template (data.facts), the question names one
    summary  "Summarize the document that begins with "<its first words>" in one sentence."
    continue "Which sentence follows "<a line of document k>" in the documents? Quote it."  (extractive)

HotpotQA-shaped documents (issue 11: the shape users send): ~10 short passages (HOTPOT_WORDS words of whole
lines) each with a title line first ("title\\ntext", as `data.hotpotqa` renders a paragraph), the question after
them, at most `max_context_tokens` of documents. The held-out eval templates (CHAINS["eval"], TEMPLATES["eval"])
are never used here.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import numpy as np

from blockattn.data.facts import bridge_item, compare_item, distractor_items
from blockattn.data.needles import plant

SCHEDULE = ("bridge", "facts", "compare", "bridge", "summary", "compare", "bridge", "continue", "facts")
KINDS = tuple(dict.fromkeys(SCHEDULE))  # bridge, facts, compare, summary, continue
MIX = {k: SCHEDULE.count(k) / len(SCHEDULE) for k in KINDS}
HOTPOT_KINDS = ("bridge", "compare")
HOTPOT_DOCS = (8, 12)  # documents per HotpotQA-shaped request, inclusive
HOTPOT_WORDS = (40, 200)  # words per HotpotQA-shaped passage
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")


def _opening(text: str, words: int = 8) -> str:
    return " ".join(text.split()[:words])


def title_of(passage: str, words: int = 5) -> str:
    """A title line for a passage: the first words of its first line that has any ("Passage" if none)."""
    for line in passage.splitlines():
        found = _WORD.findall(line)
        if found:
            return " ".join(found[:words])
    return "Passage"


def short_passages(texts: Sequence[str], seed: int, min_words: int = HOTPOT_WORDS[0],
                   max_words: int = HOTPOT_WORDS[1]) -> list[str]:
    """Passages of whole lines cut from `texts` in order, each of a drawn target length in [min_words, max_words]
    words (log-uniform: HotpotQA paragraphs are mostly short); lines over `max_words` words are skipped."""
    rng = np.random.default_rng([seed, 0x5407])
    draw = lambda: int(np.exp(rng.uniform(np.log(min_words), np.log(max_words))))  # noqa: E731
    out: list[str] = []
    for text in texts:
        current, size, target = [], 0, draw()
        for line in text.splitlines(keepends=True):
            n = len(line.split())
            if n > max_words:
                current, size = [], 0
                continue
            if size + n > max_words or (size >= min_words and size + n > target):
                if size >= min_words:
                    out.append("".join(current))
                current, size, target = [], 0, draw()
            if n or current:
                current.append(line)
                size += n
        if size >= min_words:
            out.append("".join(current))
    return [p for p in out if p.strip()]


def _plant_after_title(doc: str, sentence: str, rng: np.random.Generator) -> str:
    title, _, body = doc.partition("\n")
    return f"{title}\n{plant(body, sentence, rng)}"


def _hotpot_docs(pool: Sequence[str], sizes: Sequence[int], rng: np.random.Generator,
                 max_context_tokens: int) -> list[str]:
    """8–12 distinct passages of `pool` that fit `max_context_tokens` together, each "title\\ntext"."""
    want = int(rng.integers(HOTPOT_DOCS[0], HOTPOT_DOCS[1] + 1))
    docs, used = [], 0
    for j in rng.permutation(len(pool))[:4 * want]:
        if used + sizes[j] + 24 <= max_context_tokens:  # ~24 tokens: the title line and a planted sentence
            docs.append(f"{title_of(pool[j])}\n{pool[j]}")
            used += sizes[j] + 24
        if len(docs) == want:
            break
    return docs


def rag_requests(pool: Sequence[str], n: int, seed: int, min_docs: int = 3, max_docs: int = 10,
                 hotpot_pool: Sequence[str] | None = None, count_tokens: Callable[[str], int] | None = None,
                 max_context_tokens: int = 1750) -> list[dict]:
    """`n` requests {"kind", "documents", "question"} over passages of `pool` (train texts); the HotpotQA-shaped
    kinds draw from `hotpot_pool` (default `pool`; sizes by `count_tokens`, default words)."""
    rng = np.random.default_rng([seed, 0x4A6])
    hotpot_pool = list(hotpot_pool if hotpot_pool is not None else pool)
    count_tokens = count_tokens or (lambda s: len(s.split()))
    sizes = [count_tokens(p) for p in hotpot_pool] if any(k in SCHEDULE for k in HOTPOT_KINDS) else []
    out: list[dict] = []
    for i in range(n):
        kind = SCHEDULE[i % len(SCHEDULE)]
        if kind in HOTPOT_KINDS:
            docs = _hotpot_docs(hotpot_pool, sizes, rng, max_context_tokens)
            if len(docs) >= 2:
                item = (bridge_item(docs, rng, "train", _plant_after_title) if kind == "bridge"
                        else compare_item(docs, rng, _plant_after_title))
                out.append({"kind": kind, "documents": item.documents, "question": item.question})
                continue
            kind = "facts"  # no two passages fit (tiny pools only)
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
