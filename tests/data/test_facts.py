"""Two-hop chains and comparisons: answerable from exactly the intended documents, distractors distinct, the
held-out eval pools and wordings disjoint from the training ones."""

import re

import numpy as np
import pytest

from blockattn.data.facts import CHAINS, COMPARE_ATTRIBUTES, bridge_item, compare_item, multihop_items

POOL = [f"Passage {j} opens here.\nIts second line is about topic {j}.\nA third line ends passage {j}.\n"
        for j in range(40)]


def holding(item, text: str) -> list[int]:
    return [i for i, d in enumerate(item.documents) if text in d]


class TestBridge:
    @pytest.mark.parametrize("n", [2, 4, 7, 10, 16])
    def test_the_answer_needs_both_hops_and_only_the_intended_documents(self, n):
        t = CHAINS["train"]
        for seed in range(20):
            item = bridge_item(POOL[:n], np.random.default_rng(seed), "train")
            a, b = item.answer_docs
            entity = re.match(r"In which city was the founder of (.+) born\?", item.question).group(1)
            hop1 = next(line for line in item.documents[a].splitlines() if line.startswith(f"{entity} was founded by "))
            person = hop1[len(f"{entity} was founded by "):-1]
            assert holding(item, f"{entity} was founded by ") == [a]  # hop 1: the entity, in document A only
            assert holding(item, f"{person} was born in ") == [b]  # hop 2: its founder, in document B only
            assert holding(item, f"was born in {item.answer}.") == [b]  # the answer, in document B only
            assert item.question.count(item.answer) == 0 and person not in item.question  # neither is given away
            assert a != b and item.answer in t.cities

    def test_distractor_chains_fill_the_other_documents_with_distinct_names(self):
        for n in (4, 8, 16):
            item = bridge_item(POOL[:n], np.random.default_rng(n), "train")
            hops1 = [line for d in item.documents for line in d.splitlines() if " was founded by " in line]
            hops2 = [line for d in item.documents for line in d.splitlines() if " was born in " in line]
            assert len(hops1) == len(hops2) == n // 2 and len(item.fact_docs) == n
            entities = [h.split(" was founded by ")[0] for h in hops1]
            persons = [h.split(" was founded by ")[1][:-1] for h in hops1]
            cities = [h.split(" was born in ")[1][:-1] for h in hops2]
            assert len(set(entities)) == len(set(persons)) == len(set(cities)) == n // 2
            assert sorted(h.split(" was born in ")[0] for h in hops2) == sorted(persons)  # every chain complete
            assert all(sum(" was founded by " in d or " was born in " in d for d in [doc]) == 1
                       for doc in item.documents)  # one hop per document

    def test_an_odd_count_leaves_one_document_without_a_fact(self):
        item = bridge_item(POOL[:5], np.random.default_rng(0), "train")
        assert len(item.fact_docs) == 4 and sum(d in POOL for d in item.documents) == 1


class TestCompare:
    def test_the_answer_follows_from_the_two_compared_documents(self):
        for seed in range(30):
            item = compare_item(POOL[:10], np.random.default_rng(seed))
            i, j = item.answer_docs
            facts = [next(line for line in d.splitlines() if re.search(r"(was founded in|has) \d+", line))
                     for d in item.documents]
            names = [re.match(r"(.+?) (was founded in|has) \d+", f).group(1) for f in facts]
            values = [int(re.search(r"\d+", f.split(names[k])[1]).group()) for k, f in enumerate(facts)]
            assert len(set(names)) == len(set(values)) == 10  # distractors differ
            assert names[i] in item.question and names[j] in item.question
            assert holding(item, item.answer) == [i if item.answer == names[i] else j]  # in its document only
            earlier = "earlier" in item.question
            pick = min((i, j), key=lambda k: values[k]) if earlier else max((i, j), key=lambda k: values[k])
            assert item.answer == names[pick]

    def test_both_attributes_are_drawn(self):
        questions = {compare_item(POOL[:4], np.random.default_rng(s)).question.split(",")[0] for s in range(40)}
        assert len(questions) == len(COMPARE_ATTRIBUTES)


class TestHeldOut:
    def test_eval_and_train_pools_and_wordings_are_disjoint(self):
        train, held = CHAINS["train"], CHAINS["eval"]
        for field in ("entities", "persons", "cities"):
            assert not set(getattr(train, field)) & set(getattr(held, field))
        train_words = {w for name in train.entities + train.persons for w in name.split()}
        assert not {w for name in held.entities + held.persons for w in name.split()} & train_words
        for fixed in ("was established by", "grew up in", "the person who established"):
            assert fixed not in train.hop1 + train.hop2 + train.question
            assert all(fixed not in f + q for f, q, _, _ in COMPARE_ATTRIBUTES)

    def test_multihop_eval_items_use_the_eval_chains(self):
        items = multihop_items(POOL, (4, 8, 16), 3, seed=0)
        assert [it.n_docs for it in items] == [4] * 3 + [8] * 3 + [16] * 3
        for it in items:
            assert it.question.startswith("Where did the person who established ")
            assert [i for i, d in enumerate(it.documents) if f"grew up in {it.answer}." in d] == [it.needle_doc]
            assert not any(" was founded by " in d or " was born in " in d for d in it.documents)
        assert multihop_items(POOL, (4,), 3, seed=0) == items[:3]
