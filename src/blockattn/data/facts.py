"""Planted facts with distractors: every document carries a fact of the same form, the question names one.

    documents  n passages of real text; document i gets "The access code for <name_i> is <code_i>." planted
               at a line break, every name and code distinct within the item
    question   "What is the access code for <name_t>?"  (t drawn uniformly)
    answer     code_t (correct when the generated text contains it, as in `needles.py`)

Unlike `needles.py` (one fact among n documents: the model only has to find the one number there is), the
model must bind the question's name to the right document's number. Evaluation items use the "eval"
template, from SemanticSeg TEST texts; training requests (experiments.ragdata) use the "train" template, with
another sentence form and other vocabulary, from TRAIN texts, so evaluation never sees the training template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from blockattn.data.needles import ADJECTIVES, NOUNS, NeedleItem, plant


@dataclass(frozen=True)
class Template:
    fact: str  # with {name} and {code}
    question: str  # with {name}
    first: tuple[str, ...]  # name = "<first> <second>"
    second: tuple[str, ...]
    low: int  # codes are drawn from [low, high)
    high: int


TEMPLATES = {
    "eval": Template("The access code for {name} is {code}.", "What is the access code for {name}?",
                     tuple(f"the {a}" for a in ADJECTIVES), NOUNS, 1000, 10000),
    # different wording, names and number range: what the model learns here is binding, not this template
    "train": Template("Shipment {name} was logged with tracking number {code}.",
                      "Which tracking number was shipment {name} logged with?",
                      ("Falcon", "Juniper", "Orbit", "Saffron", "Tundra", "Willow", "Cobalt", "Ember", "Harbor",
                       "Lumen", "Maple", "Nimbus", "Quartz", "Raven", "Sable", "Topaz"),
                      ("Alpha", "Bravo", "Delta", "Echo", "Kilo", "Lima", "Oscar", "Sierra", "Tango", "Zulu",
                       "Nine", "Seven"), 20000, 99999),
}


def distractor_items(pool: Sequence[str], doc_counts: Sequence[int], per_count: int, seed: int,
                     template: str = "eval") -> list[NeedleItem]:
    """`per_count` items per document count; each document holds one fact, the question asks for one."""
    t = TEMPLATES[template]
    rng = np.random.default_rng([seed, 0xD157, len(template)])
    names = [f"{a} {b}" for a in t.first for b in t.second]
    items = []
    for n in doc_counts:
        if n > len(pool) or n > len(names):
            raise ValueError(f"{n} documents per item but only {len(pool)} passages / {len(names)} names")
        for _ in range(per_count):
            docs = [pool[int(i)] for i in rng.choice(len(pool), size=n, replace=False)]
            picked = [names[int(i)] for i in rng.choice(len(names), size=n, replace=False)]
            codes = [str(int(c)) for c in rng.choice(np.arange(t.low, t.high), size=n, replace=False)]
            docs = [plant(doc, t.fact.format(name=name, code=code), rng)
                    for doc, name, code in zip(docs, picked, codes)]
            target = int(rng.integers(n))
            items.append(NeedleItem(documents=docs, question=t.question.format(name=picked[target]),
                                    answer=codes[target], needle_doc=target, n_docs=n))
    return items
