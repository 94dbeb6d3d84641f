"""Planted-fact items: reproducible, the fact planted whole in exactly one document, sized passages."""

import numpy as np

from blockattn.data.needles import NeedleItem, first_per_count, is_correct, make_items, passages, plant

POOL = [f"Line {i} of passage {j}.\nAnother line here.\n" for j in range(20) for i in range(1)]


class TestItems:
    def test_fact_is_in_the_needle_document_only(self):
        for item in make_items(POOL, (4, 8), 5, seed=3):
            holding = [i for i, d in enumerate(item.documents) if f" is {item.answer}." in d]
            assert holding == [item.needle_doc]
            assert item.question.startswith("What is the access code for the ")
            assert len(item.documents) == item.n_docs == len(set(item.documents))

    def test_items_are_reproducible_and_round_trip(self):
        a, b = make_items(POOL, (4,), 6, seed=1), make_items(POOL, (4,), 6, seed=1)
        assert a == b and [NeedleItem.from_dict(x.to_dict()) for x in a] == a
        assert make_items(POOL, (4,), 6, seed=2) != a

    def test_first_per_count_keeps_order(self):
        items = make_items(POOL, (4, 8), 5, seed=0)
        picked = first_per_count(items, 2)
        assert [it.n_docs for it in picked] == [4, 4, 8, 8] and picked[0] == items[0] and picked[2] == items[5]

    def test_correct_when_the_code_appears(self):
        item = make_items(POOL, (4,), 1, seed=0)[0]
        assert is_correct(item, f"The code is {item.answer}.") and not is_correct(item, "I don't know.")


class TestPlantAndPassages:
    def test_plant_keeps_every_line(self):
        text = "a\nb\nc\n"
        for seed in range(10):
            out = plant(text, "FACT.", np.random.default_rng(seed))
            assert out.replace("FACT.\n", "") == text

    def test_passages_respect_the_token_bounds(self):
        text = "".join(f"word {i} " * (i % 5 + 1) + "\n" for i in range(200))
        count = lambda s: len(s.split())  # noqa: E731
        out = passages([text], count, max_tokens=40, min_tokens=20)
        assert out and all(20 <= count(p) <= 40 for p in out)
