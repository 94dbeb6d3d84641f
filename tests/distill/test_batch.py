"""Block dropout and collation: the visibility rules of student and teacher (property tests), and the
alignment of their content tokens."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from blockattn.attention.layout import CONTEXT, PAD, QUERY, SHARED
from blockattn.attention.masks import dense_block_mask
from blockattn.distill.batch import IGNORE, collate
from blockattn.distill.corpus import BlockCorpus
from blockattn.distill.dropout import query_flags
from blockattn.distill.rows import Row


@st.composite
def rows_with_flags(draw):
    """One text of 1..6 blocks, a dropout draw, sink counts."""
    lengths = draw(st.lists(st.integers(1, 9), min_size=1, max_size=6))
    p = draw(st.sampled_from([0.0, 0.3, 0.7, 0.99]))
    k = draw(st.integers(0, 2))
    s = draw(st.integers(0, 2))
    row_index = draw(st.integers(0, 10_000))
    return lengths, query_flags(len(lengths), p, seed=0, row_index=row_index), k, s


def build(lengths, flags, k, s):
    ids = torch.arange(10, 10 + sum(lengths))
    blocks, at = [], 0
    for n in lengths:
        blocks.append(ids[at:at + n].tolist())
        at += n
    corpus = BlockCorpus.from_texts([blocks])
    width = sum(lengths) + (k + s) * len(lengths) + s + 3  # room for sinks, plus padding
    return collate(corpus, [Row(tuple(corpus.text_spans(0)))], [flags], k, s, width, pad_id=0)


def visible_text(layout, ids, q):
    """Content token ids position q may attend to (q itself included)."""
    mask = dense_block_mask(layout)[0, 0]
    content = layout.content_mask()[0]
    return sorted(ids[0, (mask[q] & content)].tolist())


class TestQueryFlags:
    def test_final_block_is_always_a_query_block(self):
        assert all(query_flags(n, 0.9, 1, r)[-1] for n in range(1, 8) for r in range(20))

    def test_zero_dropout_leaves_only_the_final_block(self):
        assert query_flags(6, 0.0, 0, 5) == [False] * 5 + [True]

    def test_draws_depend_on_the_row_not_on_call_order(self):
        assert [query_flags(9, 0.5, 7, r) for r in (3, 1, 2)] == [query_flags(9, 0.5, 7, r) for r in (3, 1, 2)]
        assert query_flags(40, 0.5, 7, 1) != query_flags(40, 0.5, 7, 2)

    def test_rate_matches_the_probability(self):
        flags = [f for r in range(400) for f in query_flags(11, 0.3, 0, r)[:-1]]
        assert abs(sum(flags) / len(flags) - 0.3) < 0.03


class TestVisibility:
    @settings(max_examples=60, deadline=None)
    @given(rows_with_flags())
    def test_student_blocks_see_only_what_block_attention_allows(self, case):
        lengths, flags, k, s = case
        b = build(lengths, flags, k, s)
        lay, mask = b.student_layout, dense_block_mask(b.student_layout)[0, 0]
        kinds, blocks = lay.kinds[0], lay.block_ids[0]
        n = lay.lengths[0]
        for q in range(n):
            for kv in range(n):
                if not mask[q, kv] or q == kv:
                    continue
                assert kv < q and kinds[kv] != PAD
                if kinds[q] == QUERY:
                    # a query block: its own block, or earlier context / shared-sink tokens, never another query block
                    assert blocks[kv] == blocks[q] or kinds[kv] in (CONTEXT, SHARED)
                else:
                    assert blocks[kv] == blocks[q]  # a context block (with its sinks) sees itself only

    @settings(max_examples=60, deadline=None)
    @given(rows_with_flags())
    def test_teacher_sees_exactly_the_students_visible_text_in_query_blocks(self, case):
        lengths, flags, k, s = case
        b = build(lengths, flags, k, s)
        s_rows, s_cols = b.student_layout.content_mask().nonzero(as_tuple=True)
        t_rows, t_cols = b.teacher_layout.content_mask().nonzero(as_tuple=True)
        # same content tokens, same order
        assert torch.equal(b.student_ids[s_rows, s_cols], b.teacher_ids[t_rows, t_cols])
        assert not b.teacher_layout.has_sinks and b.teacher_layout.teacher
        for sq, tq in zip(s_cols.tolist(), t_cols.tolist()):
            if b.student_layout.kinds[0, sq] == QUERY:
                assert visible_text(b.student_layout, b.student_ids, sq) == visible_text(b.teacher_layout,
                                                                                         b.teacher_ids, tq)

    @settings(max_examples=60, deadline=None)
    @given(rows_with_flags())
    def test_later_blocks_never_see_a_query_block(self, case):
        lengths, flags, k, s = case
        b = build(lengths, flags, k, s)
        for lay in (b.student_layout, b.teacher_layout):
            mask = dense_block_mask(lay)[0, 0]
            kinds, blocks = lay.kinds[0], lay.block_ids[0]
            seen_by_others = mask & (blocks.view(-1, 1) != blocks.view(1, -1))  # (q, kv) across blocks
            assert not bool(seen_by_others[:, kinds == QUERY].any())


class TestLossPositions:
    @settings(max_examples=60, deadline=None)
    @given(rows_with_flags())
    def test_loss_is_taken_on_every_query_content_token_with_next_token_labels(self, case):
        lengths, flags, k, s = case
        b = build(lengths, flags, k, s)
        s_kinds = b.student_layout.kinds.flatten()[b.student_index]
        t_kinds = b.teacher_layout.kinds.flatten()[b.teacher_index]
        assert bool((s_kinds == QUERY).all()) and bool((t_kinds == QUERY).all())
        n_query = sum(n for n, f in zip(lengths, flags) if f)
        assert b.n_loss == n_query
        # the same token on both sides, and the label is the next content token (text ids are consecutive)
        assert torch.equal(b.student_ids.flatten()[b.student_index], b.teacher_ids.flatten()[b.teacher_index])
        current = b.teacher_ids.flatten()[b.teacher_index]
        has_next = b.labels != IGNORE
        assert torch.equal(b.labels[has_next], current[has_next] + 1)
        assert int((~has_next).sum()) == 1  # only the row's very last token has no label

    def test_fixed_width_and_content_count(self):
        b = build([4, 5, 6], [False, True, True], 2, 1)
        assert b.student_ids.shape == b.teacher_ids.shape
        assert b.n_content == 15
