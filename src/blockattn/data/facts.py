"""Planted facts with distractors: every document carries a fact of the same form, the question names one.
Also two-hop chains (`bridge_item`, `multihop_items`) and comparisons (`compare_item`, training only), below.

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

from blockattn.data.needles import ADJECTIVES, NOUNS, NeedleItem, document_draws, plant


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
    for docs in document_draws(pool, doc_counts, per_count, rng, limit=len(names)):
        n = len(docs)
        picked = [names[int(i)] for i in rng.choice(len(names), size=n, replace=False)]
        codes = [str(int(c)) for c in rng.choice(np.arange(t.low, t.high), size=n, replace=False)]
        docs = [plant(doc, t.fact.format(name=name, code=code), rng)
                for doc, name, code in zip(docs, picked, codes)]
        target = int(rng.integers(n))
        items.append(NeedleItem(documents=docs, question=t.question.format(name=picked[target]),
                                answer=codes[target], needle_doc=target, n_docs=n))
    return items


# ---------------------------------------------------------------------------------------------- multi-hop
SHORT_ANSWER = "Answer with a short phrase only, no explanation."  # the query instruction of eval.hotpotqa


@dataclass(frozen=True)
class ChainTemplate:
    """A two-hop chain: hop 1 "<entity> … <person>" in one document, hop 2 "<person> … <city>" in another."""

    hop1: str  # with {entity} and {person}
    hop2: str  # with {person} and {city}
    question: str  # with {entity}; the answer is the city
    entities: tuple[str, ...]
    persons: tuple[str, ...]
    cities: tuple[str, ...]


def _names(first: Sequence[str], second: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"{a} {b}" for a in first for b in second)


# Fictional entities and people (the model cannot know the answer), real city names; the train and eval pools
# and wordings are disjoint, so what transfers to the eval chains is the two-hop binding, not a template.
CHAINS = {
    "train": ChainTemplate(
        "{entity} was founded by {person}.", "{person} was born in {city}.",
        "In which city was the founder of {entity} born?",
        _names(("Brightwater", "Kestrel", "Northgate", "Silverpine", "Redcliff", "Ashford", "Blue Heron",
                "Stonebridge", "Greenvale", "Ironwood", "Lakeshore", "Oakmont"),
               ("Mills", "Press", "Works", "Brewery", "Foundry", "Studios", "Bank", "Academy", "Rail Company",
                "Shipyard")),
        _names(("Tomas", "Ilse", "Marek", "Odile", "Anselm", "Greta", "Jorin", "Liesel", "Casimir", "Henrike",
                "Bastian", "Mirela"),
               ("Varga", "Holm", "Brandt", "Kessler", "Lindqvist", "Moreau", "Novak", "Sorensen", "Albrecht",
                "Duval")),
        ("Tampere", "Ghent", "Bergen", "Porto", "Graz", "Lyon", "Krakow", "Utrecht", "Malmo", "Bologna",
         "Trieste", "Aarhus", "Leipzig", "Seville", "Brno", "Turku", "Cork", "Basel", "Gdansk", "Nantes")),
    "eval": ChainTemplate(
        "{entity} was established by {person}.", "{person} grew up in {city}.",
        "Where did the person who established {entity} grow up?",
        _names(("Amberley", "Coldharbour", "Fenwick", "Hollowmere", "Marshfield", "Pinecrest", "Ravenscar",
                "Thornbury", "Westholme", "Wrenfield"),
               ("Observatory", "Guild", "Conservatory", "Trading House", "Print Shop", "Orchestra", "Institute",
                "Ferry Service")),
        _names(("Aurelio", "Brigida", "Cosmin", "Delphine", "Evander", "Fenna", "Gideon", "Isolde", "Lucan",
                "Maelis"),
               ("Okafor", "Rautio", "Szabo", "Quintero", "Halvorsen", "Mbeki", "Castellan", "Ferreira", "Ivanova",
                "Lachance")),
        ("Valparaiso", "Zagreb", "Windhoek", "Cusco", "Tbilisi", "Hobart", "Quebec", "Arequipa", "Ljubljana",
         "Mombasa", "Salvador", "Tromso", "Yerevan", "Daejeon", "Izmir", "Perth")),
}

# `compare` (training only): one attribute of two entities in two documents, the question compares them
COMPARE_ATTRIBUTES = (  # (fact with {entity} and {value}, question with {a} and {b}, value range, the smaller wins)
    ("{entity} was founded in {value}.", "Which was founded earlier, {a} or {b}?", (1820, 1990), True),
    ("{entity} has {value} employees.", "Which has more employees, {a} or {b}?", (40, 9000), False),
)


@dataclass(frozen=True)
class PlantedItem:
    """Documents with planted facts, a question, its answer, and which documents carry what."""

    documents: list[str]
    question: str
    answer: str
    answer_docs: tuple[int, ...]  # the documents the answer needs (bridge: hop 1 then hop 2)
    fact_docs: tuple[int, ...]  # every document that holds a planted fact (the answer's and the distractors')

    def needle(self) -> NeedleItem:
        """As a planted-fact evaluation item (`eval.retrieval.needle_accuracy`): the answer's document."""
        return NeedleItem(documents=self.documents, question=self.question, answer=self.answer,
                          needle_doc=self.answer_docs[-1], n_docs=len(self.documents))


def _distinct(rng: np.random.Generator, pool: Sequence[str], k: int) -> list[str]:
    if k > len(pool):
        raise ValueError(f"{k} distinct names from a pool of {len(pool)}")
    return [pool[int(i)] for i in rng.choice(len(pool), size=k, replace=False)]


def bridge_item(docs: Sequence[str], rng: np.random.Generator, template: str = "train",
                plant_fn=None) -> PlantedItem:
    """A two-hop chain across two of `docs`, and distractor chains of the same form over the other documents
    (len(docs) // 2 chains; with an odd count one document has no fact). The question names the target chain's
    entity only: the answer (its city) needs hop 1 (entity → person) and hop 2 (person → city).
    `plant_fn(doc, sentence, rng) -> doc` places a sentence (default `needles.plant`)."""
    t = CHAINS[template]
    plant_fn = plant_fn or plant
    n = len(docs)
    chains = max(1, n // 2)
    if n < 2:
        raise ValueError("a bridge item needs at least 2 documents")
    entities, persons, cities = (_distinct(rng, t.entities, chains), _distinct(rng, t.persons, chains),
                                 _distinct(rng, t.cities, chains))
    slots = [int(i) for i in rng.permutation(n)]
    out = list(docs)
    hops = []
    for c in range(chains):
        a, b = slots[2 * c], slots[2 * c + 1]
        out[a] = plant_fn(out[a], t.hop1.format(entity=entities[c], person=persons[c]), rng)
        out[b] = plant_fn(out[b], t.hop2.format(person=persons[c], city=cities[c]), rng)
        hops.append((a, b))
    target = int(rng.integers(chains))
    return PlantedItem(out, f"{t.question.format(entity=entities[target])}\n{SHORT_ANSWER}", cities[target],
                       hops[target], tuple(sorted(slots[:2 * chains])))


def compare_item(docs: Sequence[str], rng: np.random.Generator, plant_fn=None) -> PlantedItem:
    """Every document gives one attribute (the same one) of a distinct entity (train pool); the question
    compares two of them; the answer is the winning entity's name. Values are distinct within the item."""
    plant_fn = plant_fn or plant
    fact, question, (low, high), smaller_wins = COMPARE_ATTRIBUTES[int(rng.integers(len(COMPARE_ATTRIBUTES)))]
    n = len(docs)
    if n < 2:
        raise ValueError("a compare item needs at least 2 documents")
    entities = _distinct(rng, CHAINS["train"].entities, n)
    values = [int(v) for v in rng.choice(np.arange(low, high), size=n, replace=False)]
    out = [plant_fn(doc, fact.format(entity=e, value=v), rng) for doc, e, v in zip(docs, entities, values)]
    i, j = (int(k) for k in rng.choice(n, size=2, replace=False))
    win = i if (values[i] < values[j]) == smaller_wins else j
    return PlantedItem(out, f"{question.format(a=entities[i], b=entities[j])}\n{SHORT_ANSWER}", entities[win],
                       (i, j), tuple(range(n)))


def multihop_items(pool: Sequence[str], doc_counts: Sequence[int], per_count: int, seed: int,
                   template: str = "eval") -> list[NeedleItem]:
    """`per_count` bridge items per document count (the held-out multi-hop eval: "eval" template, test texts)."""
    rng = np.random.default_rng([seed, 0xB41D, len(template)])
    return [bridge_item(docs, rng, template).needle() for docs in document_draws(pool, doc_counts, per_count, rng)]
