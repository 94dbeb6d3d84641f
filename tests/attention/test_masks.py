"""Masks: the visibility rules, and dense == FlexAttention from the same predicate."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from blockattn.attention import (CONTEXT, LOCAL, PAD, QUERY, SHARED, BlockLayout, BlockSpec, dense_block_mask,
                                 flex_block_mask, pack_batch, pack_sequence)
from blockattn.attention.interface import compiled_flex_attention

DOCSTRING_EXAMPLE = """
x . . . . . . .
x x . . . . . .
x x x . . . . .
. . . x . . . .
. . . x x . . .
. . . x x x . .
x x x x x x x .
x x x x x x x x
"""


def _drawn(text: str) -> torch.Tensor:
    return torch.tensor([[c == "x" for c in line.split()] for line in text.strip().splitlines()])


class TestDenseMask:
    def test_matches_the_drawing_in_the_layout_docstring(self):
        lay = BlockLayout.build([BlockSpec(3), BlockSpec(3), BlockSpec(2, is_query=True)])
        assert torch.equal(dense_block_mask(lay)[0, 0], _drawn(DOCSTRING_EXAMPLE))

    def test_single_block_is_plain_causal(self):
        lay = BlockLayout.build([BlockSpec(9, is_query=True)])
        assert torch.equal(dense_block_mask(lay)[0, 0], torch.ones(9, 9, dtype=torch.bool).tril())

    def test_teacher_of_final_query_only_layout_is_plain_causal(self):
        lay = BlockLayout.build([BlockSpec(4), BlockSpec(3), BlockSpec(2, is_query=True)]).as_teacher()
        assert torch.equal(dense_block_mask(lay)[0, 0], torch.ones(9, 9, dtype=torch.bool).tril())


layouts = st.lists(st.tuples(st.integers(1, 6), st.booleans()), min_size=1, max_size=6).map(
    lambda blocks: blocks[:-1] + [(blocks[-1][0], True)])


class TestVisibilityRules:
    """Property tests of the rules in layout.py's docstring, token pair by token pair."""

    @settings(max_examples=60, deadline=None)
    @given(blocks=layouts, sinks=st.integers(0, 2), shared=st.integers(0, 2), teacher=st.booleans())
    def test_rules(self, blocks, sinks, shared, teacher):
        lay = BlockLayout.build([BlockSpec(n, q) for n, q in blocks], sinks_per_block=sinks, shared_sink=shared)
        if teacher:
            lay = lay.as_teacher()
        mask = dense_block_mask(lay)[0, 0]
        bid, kind = lay.block_ids[0].tolist(), lay.kinds[0].tolist()
        n = len(bid)
        for q in range(n):
            for kv in range(n):
                if kv > q:
                    expected = False
                elif bid[q] == bid[kv]:
                    expected = True
                elif kind[kv] in (QUERY, LOCAL):  # query blocks and local sink copies: seen by no other block
                    expected = False
                elif teacher:  # full attention over every earlier context token and the shared sink
                    expected = kind[kv] in (CONTEXT, SHARED)
                else:  # block attention: only query blocks look across blocks
                    expected = kind[q] == QUERY and kind[kv] in (CONTEXT, SHARED)
                assert bool(mask[q, kv]) == expected, (q, kv, kind[q], kind[kv])

    def test_padding_is_seen_by_nobody_and_sees_only_itself(self):
        ids, lay = pack_batch([pack_sequence([[1, 2, 3], [4]]), pack_sequence([[1], [2]])])
        mask = dense_block_mask(lay)
        assert lay.kinds[1, 2] == PAD
        assert not mask[1, 0, :2, 2:].any()  # real tokens never see pads
        assert mask[1, 0, 2].tolist() == [False, False, True, False]


def _tiles(dense: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 1, N, N) → (B, 1, ⌈N/size⌉, ⌈N/size⌉): does a tile hold any visible pair."""
    n = dense.shape[-1]
    pad = (-n) % size
    padded = torch.nn.functional.pad(dense, (0, pad, 0, pad))
    b = padded.shape[0]
    t = padded.shape[-1] // size
    return padded.view(b, 1, t, size, t, size).any(dim=5).any(dim=3)


class TestFlexMatchesDense:
    @pytest.mark.parametrize("lengths", [(100, 60, 40), (130, 7, 200, 33), (1, 1, 1)])
    def test_block_mask_tiles_and_outputs(self, lengths):
        torch.manual_seed(0)
        blocks = [[1] * n for n in lengths]
        _, lay = pack_batch([pack_sequence(blocks, sinks_per_block=2),
                             pack_sequence(blocks[::-1], is_query=[False, True] + [False] * (len(blocks) - 3) + [True]
                                           if len(blocks) > 2 else None)])
        dense = dense_block_mask(lay)
        flex = flex_block_mask(lay, "cpu", block_size=128)
        assert torch.equal(flex.to_dense().bool(), _tiles(dense, 128))
        b, h, n, d = lay.batch_size, 4, lay.seq_len, 16
        q, k, v = (torch.randn(b, h, n, d) for _ in range(3))
        with torch.no_grad():
            ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=dense)
            out = compiled_flex_attention()(q, k, v, block_mask=flex)
        assert (out - ref).abs().max() < 1e-5
