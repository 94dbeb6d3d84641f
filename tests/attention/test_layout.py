"""BlockLayout: token kinds, sink placement, positions, batching."""

import pytest
import torch

from blockattn.attention import CONTEXT, LOCAL, PAD, QUERY, SHARED, BlockLayout, BlockSpec, pack_batch, pack_sequence
from blockattn.attention.layout import PAD_BLOCK, SHARED_BLOCK


class TestBuild:
    def test_blocks_kinds_and_positions(self):
        lay = BlockLayout.build([BlockSpec(3), BlockSpec(2), BlockSpec(2, is_query=True)])
        assert lay.block_ids.tolist() == [[0, 0, 0, 1, 1, 2, 2]]
        assert lay.kinds.tolist() == [[CONTEXT] * 5 + [QUERY] * 2]
        assert lay.position_ids.tolist() == [list(range(7))]
        assert lay.lengths == [7]

    def test_sinks_go_in_front_of_context_blocks_only(self):
        lay = BlockLayout.build([BlockSpec(2), BlockSpec(1), BlockSpec(2, is_query=True)], sinks_per_block=2,
                                shared_sink=1)
        # S | S' k k t t | S' k k t | q q
        assert lay.block_ids.tolist() == [[SHARED_BLOCK, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2]]
        assert lay.kinds.tolist() == [[SHARED, LOCAL] + [CONTEXT] * 4 + [LOCAL] + [CONTEXT] * 3 + [QUERY] * 2]
        assert lay.sink_index.tolist() == [[-1, -1, 0, 1, -1, -1, -1, 0, 1, -1, -1, -1]]
        assert lay.shared_sink_index.tolist() == [[0, 0, -1, -1, -1, -1, 0, -1, -1, -1, -1, -1]]
        assert lay.content_mask().sum() == 5
        # positions are cache positions: S'(local copy) reuses the position just before its block
        assert lay.position_ids.tolist() == [[0, 0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 9]]

    def test_final_block_must_be_query(self):
        with pytest.raises(ValueError, match="final block"):
            BlockLayout.build([BlockSpec(3), BlockSpec(2)])

    def test_empty_layout_refused(self):
        with pytest.raises(ValueError):
            BlockLayout.build([])


class TestBatch:
    def test_right_padding(self):
        a = pack_sequence([[5, 6, 7], [8]])
        b = pack_sequence([[5], [9]])
        ids, lay = pack_batch([a, b], pad_id=0)
        assert ids.tolist() == [[5, 6, 7, 8], [5, 9, 0, 0]]
        assert lay.kinds[1].tolist() == [CONTEXT, QUERY, PAD, PAD]
        assert lay.block_ids[1, 2:].tolist() == [PAD_BLOCK, PAD_BLOCK]
        assert lay.lengths == [4, 2]

    def test_pack_sequence_marks_only_last_block_as_query_by_default(self):
        ids, lay = pack_sequence([[1, 2], [3], [4, 5]], sinks_per_block=1, placeholder_id=0)
        assert ids.tolist() == [[0, 1, 2, 0, 3, 4, 5]]
        ids, _ = pack_sequence([[1, 2], [3], [4, 5]], sinks_per_block=1, shared_sink=1, placeholder_id=0)
        assert ids.tolist() == [[0, 0, 0, 1, 2, 0, 0, 3, 4, 5]]
        assert (lay.kinds == QUERY).sum() == 2

    def test_is_query_length_must_match(self):
        with pytest.raises(ValueError):
            pack_sequence([[1], [2]], is_query=[True])

    def test_to_device_keeps_everything(self):
        _, lay = pack_sequence([[1, 2], [3]])
        moved = lay.as_teacher().to("cpu")
        assert moved.teacher and torch.equal(moved.block_ids, lay.block_ids)
