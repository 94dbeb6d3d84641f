"""Instances: boundary invariants (property-based), markup stripping, both kinds of instance."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from blockattn.data.documents import COARSE, FINE, MEDIUM, NONE, Document, Piece
from blockattn.data.instances import Planner, render
from blockattn.data.tokens import piece_counts

_words = st.text(alphabet="abcdefghij ", min_size=1, max_size=30).map(lambda s: (s.strip() or "x") + "\n\n")
_pieces = st.lists(st.tuples(_words, st.sampled_from([COARSE, MEDIUM, FINE, NONE]), st.sampled_from(["", "# H\n"])),
                   min_size=1, max_size=40)


def assert_valid(text: str, bounds: dict[str, list[int]]):
    coarse, medium, fine = bounds["coarse"], bounds["medium"], bounds["fine"]
    for offsets in (coarse, medium, fine):
        assert offsets == sorted(set(offsets)), "sorted and unique"
        assert all(0 < b < len(text) for b in offsets), "strictly inside, never 0"
    assert set(coarse) <= set(medium) <= set(fine), "nested"
    edges = [0, *fine, len(text)]
    assert all(text[a:b].strip() for a, b in zip(edges, edges[1:])), "no empty block"


class TestRender:
    @given(_pieces, st.booleans())
    @settings(max_examples=200, deadline=None)
    def test_boundaries_are_valid_for_any_pieces(self, raw, markup):
        parts = [(Piece(t, lv, h), lv) for t, lv, h in raw]
        text, bounds, shown = render(parts, markup)
        assert_valid(text, bounds)
        assert shown == (markup and any(h for _, _, h in raw))
        if not markup:
            assert "# H" not in text

    def test_boundary_sits_on_the_heading_when_markup_is_kept(self):
        parts = [(Piece("intro\n\n", COARSE), COARSE), (Piece("body\n\n", COARSE, "Title\n\n"), COARSE)]
        text, bounds, _ = render(parts, markup=True)
        assert text[bounds["coarse"][0]:].startswith("Title\n\nbody")
        text, bounds, _ = render(parts, markup=False)
        assert text == "intro\n\nbody\n" and bounds["coarse"] == [len("intro\n\n")]


def _corpus(n_docs: int = 6, sections: int = 8, paras: int = 3) -> list[Document]:
    docs = []
    for d in range(n_docs):
        pieces = []
        for s in range(sections):
            for p in range(paras):
                level = (COARSE if s % 3 == 0 else MEDIUM) if p == 0 else NONE
                pieces.append(Piece((f"doc {d} section {s} paragraph {p}. " * 10).strip() + "\n\n", level,
                                    f"Section {s}\n\n" if p == 0 else ""))
        docs.append(Document(f"src/{d}", "src", "cat", f"doc {d}", f"g{d}", tuple(pieces)))
    return docs


def _planner(docs: list[Document]) -> Planner:
    return Planner(docs, piece_counts(docs))


class TestPlanner:
    @given(st.floats(200, 3000), st.booleans(), st.integers(0, 2**32 - 1))
    @settings(max_examples=60, deadline=None)
    def test_candidates_are_valid_and_near_target(self, target, markup, seed):
        planner = _planner(_corpus())
        rng = np.random.default_rng(seed)
        for draw in (planner.natural_candidate, planner.concat_candidate):
            c = draw(target, markup, rng)
            if c is None:
                continue
            assert_valid(c.text, c.boundaries)
            assert abs(c.n_tokens - target) <= 120 + 4 * len(c.boundaries["fine"])  # a piece: ≤ ~100 tokens
            assert c.markup == (markup and "Section" in c.text)

    def test_concat_units_come_from_different_documents(self):
        planner = _planner(_corpus())
        c = planner.concat_candidate(2500, False, np.random.default_rng(0))
        assert c.kind == "concat" and len(c.documents) == len(set(c.documents)) >= 2
        assert len(c.boundaries["coarse"]) >= len(c.documents) - 1

    def test_concat_draws_from_one_source(self):
        docs = _corpus() + [Document(f"other/{d.id}", "other", "cat", d.title, f"o{d.group}", d.pieces)
                            for d in _corpus()]
        planner = _planner(docs)
        rng = np.random.default_rng(0)
        for _ in range(20):
            c = planner.concat_candidate(2000, False, rng)
            assert {doc.split("/")[0] for doc in c.documents} == {c.source}

    def test_natural_window_stays_in_one_document(self):
        planner = _planner(_corpus())
        c = planner.natural_candidate(1500, True, np.random.default_rng(1))
        assert c.kind == "natural" and len(c.documents) == 1
        assert c.boundaries["medium"], "a window holds boundaries of its document"

    def test_documents_without_structure_give_no_natural_window(self):
        doc = Document("s/0", "s", "c", "t", "g", tuple(Piece("text. " * 50 + "\n\n", COARSE if i == 0 else NONE)
                                                       for i in range(20)))
        assert _planner([doc]).natural_candidate(500, False, np.random.default_rng(0)) is None
