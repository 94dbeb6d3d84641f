"""Batched block prefill == one block at a time (`attention.kv.prefill_block`), sinks and shared sink included."""

import torch

from blockattn.attention import BlockSinks, prefill_block, prefill_shared_sink
from blockattn.engine.blockprefill import batches_by_tokens, prefill_blocks
from blockattn.models.tiny import tiny_model


def test_batches_respect_the_padded_token_budget():
    lengths = [5, 100, 30, 30, 7, 64]
    batches = batches_by_tokens(lengths, 128)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 128


def test_batched_equals_one_at_a_time_with_sinks():
    model = tiny_model()
    sinks = BlockSinks(model.config.hidden_size, per_block=2, shared=3)
    g = torch.Generator().manual_seed(0)
    blocks = [torch.randint(3, 500, (n,), generator=g).tolist() for n in (9, 1, 23, 9, 4)]
    batched = prefill_blocks(model, blocks, sinks, n_sinks=2, n_shared=3, max_batch_tokens=40)
    shared = prefill_shared_sink(model, sinks)
    for block, kv in zip(blocks, batched):
        alone = prefill_block(model, block, sinks, 2, shared_prefix=shared)
        assert kv.shape == (2, 2, 2, 2 + len(block), 16)  # (layers, K/V, kv heads, sinks + tokens, head dim)
        for layer in range(2):
            assert (kv[layer, 0] - alone.keys[layer][0]).abs().max() <= 1e-5
            assert (kv[layer, 1] - alone.values[layer][0]).abs().max() <= 1e-5
