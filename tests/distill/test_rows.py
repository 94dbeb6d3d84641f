"""Corpus storage, row filling and the deterministic row stream."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockattn.distill.corpus import BlockCorpus
from blockattn.distill.rows import RowStream, eval_rows, fill_rows


def corpus_of(lengths_per_text):
    texts, next_id = [], 3
    for lengths in lengths_per_text:
        text = []
        for n in lengths:
            text.append(list(range(next_id, next_id + n)))
            next_id += n
        texts.append(text)
    return BlockCorpus.from_texts(texts)


class TestBlockCorpus:
    def test_round_trip_through_arrays(self):
        c = corpus_of([[3, 5], [2]])
        back = BlockCorpus.from_arrays(c.arrays("x"), "x")
        assert np.array_equal(back.tokens, c.tokens) and back.text_spans(0) == [(0, 3), (3, 8)]

    def test_empty_blocks_and_texts_are_dropped(self):
        c = BlockCorpus.from_texts([[[1, 2], []], [], [[3]]])
        assert c.n_texts == 2 and c.text_spans(1) == [(2, 3)]

    def test_inconsistent_offsets_are_refused(self):
        with pytest.raises(ValueError):
            BlockCorpus(np.arange(4), np.array([0, 2, 2, 4]), np.array([0, 3]))


@st.composite
def streams(draw):
    lengths = draw(st.lists(st.integers(1, 40), min_size=1, max_size=30))
    capacity = draw(st.integers(8, 64))
    sink_cost = draw(st.integers(0, 4))
    return lengths, capacity, sink_cost


class TestFillRows:
    @settings(max_examples=200, deadline=None)
    @given(streams())
    def test_rows_respect_capacity_and_keep_stream_order(self, case):
        lengths, capacity, sink_cost = case
        starts = np.concatenate([[0], np.cumsum(lengths)])
        spans = list(zip(starts[:-1].tolist(), starts[1:].tolist()))
        rows = fill_rows(spans, capacity, sink_cost)
        covered = []
        for row in rows:
            cost = sum(e - s for s, e in row.spans) + sink_cost * (len(row.spans) - 1)
            assert cost <= capacity  # the final block carries no sinks
            assert all(e > s for s, e in row.spans)
            covered += [t for s, e in row.spans for t in range(s, e)]
        # rows are consecutive pieces of the stream, nothing repeated, nothing reordered
        assert covered == list(range(len(covered)))

    def test_a_block_that_does_not_fit_is_split_across_rows(self):
        rows = fill_rows([(0, 10), (10, 30)], capacity=16, sink_cost=2)
        assert rows[0].spans == ((0, 10), (10, 14))  # 10 + 2 sinks, then the head of the next block as query
        assert rows[1].spans[0] == (14, 30)


class TestRowStream:
    def test_rows_are_a_function_of_the_index(self):
        c = corpus_of([[7, 9, 4]] * 10)
        a, b = RowStream(c, 24, 2, seed=3), RowStream(c, 24, 2, seed=3)
        forward = [a.row(i) for i in range(40)]
        assert [b.row(i) for i in reversed(range(40))] == forward[::-1]
        assert a.locate(39)[0] >= 1  # the stream runs on into further epochs

    def test_epochs_are_reshuffled(self):
        c = corpus_of([[5, 5]] * 30)
        s = RowStream(c, 40, 0, seed=0)
        n = len(s._epoch(0))
        assert [s.row(i) for i in range(n)] != [s.row(n + i) for i in range(n)]

    def test_corpus_too_small_for_one_row(self):
        with pytest.raises(ValueError, match="does not fill"):
            RowStream(corpus_of([[3]]), 64, 0, seed=0).row(0)


class TestEvalRows:
    def test_query_has_exactly_query_tokens_and_follows_the_context(self):
        c = corpus_of([[10, 10, 10, 30], [4]])
        rows = eval_rows(c, capacity=40, sink_cost=2, query_tokens=8, max_rows=5)
        assert len(rows) == 1  # the second text is too short
        *context, query = rows[0].spans
        assert query[1] - query[0] == 8 and query[0] == context[-1][1]
        assert sum(e - s for s, e in context) + 2 * len(context) + 8 <= 40
