"""Packed block prefill (`engine.packedprefill`) == one block at a time, on the CPU with flash's kernel replaced by
its written-out reference (the kernel itself runs in tests/engine/test_gpu.py)."""

import numpy as np
import pytest
import torch

from blockattn.attention import BlockSinks, prefill_block, prefill_shared_sink
from blockattn.engine import blockprefill, flashbuffer
from blockattn.engine.packedprefill import Pack, groups_by_tokens
from blockattn.models.tiny import tiny_model

from tests.engine.test_blockprefill import _replay_captures_eagerly
from tests.engine.test_querygraph import reference_flash_varlen


@pytest.fixture
def packed_on_cpu(monkeypatch):
    calls = []
    monkeypatch.setattr(flashbuffer, "flash_applies", lambda weight: True)
    monkeypatch.setattr(flashbuffer, "flash_varlen", lambda *a: calls.append(a) or reference_flash_varlen(*a))
    return calls


def test_a_pack_lays_blocks_end_to_end():
    pack = Pack.build([[7, 8, 9], [5]], n_prefix=2, pad=False)
    ids, sink, positions, cu = pack.values
    assert pack.starts == [0, 5] and pack.sizes == [5, 3] and pack.sequences == 3
    assert ids.tolist() == [0, 0, 7, 8, 9, 0, 0, 5]
    assert sink.tolist() == [0, 1, -1, -1, -1, 0, 1, -1]
    assert positions.tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert cu[:4].tolist() == [0, 5, 8, 8]  # block 1, block 2, the padding (none: an empty sequence)
    tiny = Pack.build([[4]], n_prefix=0, pad=False)  # one token: the cu_seqlens row needs a column more
    assert tiny.tokens == 3 and tiny.values[3].tolist() == [0, 1, 3] and tiny.values[2].tolist() == [0, 0, 1]
    padded = Pack.build([[7, 8, 9], [5]], n_prefix=2, pad=True)
    assert padded.tokens == 256 and padded.sequences == 8
    assert padded.values[3, :9].tolist() == [0, 5, 8, 256, 256, 256, 256, 256, 256]
    assert (padded.values[2, 8:256] == np.arange(248)).all()  # the padding counts its own positions


def test_groups_keep_the_token_budget():
    assert groups_by_tokens([5, 100, 30, 30, 7], 64) == [[0], [1], [2, 3], [4]]


@pytest.mark.parametrize("graphs", [False, True])
def test_packed_equals_one_at_a_time_with_sinks(packed_on_cpu, monkeypatch, graphs):
    """Each block sees only itself (and its sinks) at positions 0, 1, ...: its K/V equal the block prefilled
    alone, eager and through the (CPU-faked) graph of its padded shape, groups split by the token budget."""
    model = tiny_model()
    sinks = BlockSinks(model.config.hidden_size, per_block=2, shared=3)
    with torch.no_grad():
        sinks.per_block.normal_()
        sinks.shared.normal_()
    cache = None
    if graphs:
        _replay_captures_eagerly(monkeypatch)
        cache = blockprefill.PrefillGraphs(use_graphs=True)
    g = torch.Generator().manual_seed(0)
    shared = prefill_shared_sink(model, sinks)
    for round_ in range(3):  # seen, captured, replayed
        blocks = [torch.randint(3, 500, (n,), generator=g).tolist() for n in (9, 1, 23, 9, 4)]
        got = blockprefill.prefill_blocks(model, blocks, sinks, n_sinks=2, n_shared=3, max_batch_tokens=40,
                                          graphs=cache)
        for block, kv in zip(blocks, got):
            alone = prefill_block(model, block, sinks, 2, shared_prefix=shared)
            assert kv.shape == (2, 2, 2, 2 + len(block), 16)
            for layer in range(2):
                assert (kv[layer, 0] - alone.keys[layer][0]).abs().max() <= 1e-5, round_
                assert (kv[layer, 1] - alone.values[layer][0]).abs().max() <= 1e-5, round_
    assert packed_on_cpu  # the packed path ran
    if graphs:
        assert cache.info()["replays"] >= 1
