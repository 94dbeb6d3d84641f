"""Batched greedy generation == each request prefilled alone and decoded greedily (the engine's reference)."""

import pytest
import torch

from blockattn.attention import BlockSinks, block_forward, pack_sequence
from blockattn.engine.generate import greedy_decode
from blockattn.eval.generation import greedy_generate
from blockattn.models.tiny import tiny_model

STOP = {2}


def requests(seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [[5, 9, 4], [12, 3], [2, 2, 2, 7], [6]]
    return [[torch.randint(3, 500, (n,), generator=g).tolist() for n in lengths] for lengths in shapes]


def alone(model, blocks, mode, sinks, k, steps):
    ids, layout = pack_sequence(blocks, sinks_per_block=k if mode == "block" else 0)
    if mode == "full":
        layout = layout.as_teacher()
    with torch.no_grad():
        out = block_forward(model, ids, layout, sinks=sinks if mode == "block" and k else None,
                            use_cache=True, logits_to_keep=1)
    start = int(layout.position_ids[0, -1]) + 1
    return greedy_decode(model, out.past_key_values, out.logits[0, -1], start, steps, STOP)


@pytest.mark.parametrize("mode", ["block", "full"])
def test_batched_equals_one_request_at_a_time(mode):
    model = tiny_model(initializer_range=0.2)
    sinks = BlockSinks(model.config.hidden_size, per_block=2)
    reqs = requests()
    batched = greedy_generate(model, reqs, mode, 8, STOP, pad_id=0, sinks=sinks, sinks_per_block=2)
    assert batched == [alone(model, r, mode, sinks, 2, 8) for r in reqs]
    assert any(len(t) > 1 for t in batched)


def test_shared_sink_rows_do_not_depend_on_their_batch():
    """Local sink copies and padding are masked out of decoding: a row decodes the same alone or batched."""
    model = tiny_model(initializer_range=0.2)
    sinks = BlockSinks(model.config.hidden_size, per_block=1, shared=2)
    reqs = requests(1)
    batched = greedy_generate(model, reqs, "block", 8, STOP, 0, sinks, 1, 2)
    assert batched == [greedy_generate(model, [r], "block", 8, STOP, 0, sinks, 1, 2)[0] for r in reqs]


def test_block_and_full_differ_on_multi_block_requests():
    model = tiny_model(initializer_range=0.2)
    reqs = requests(2)
    assert greedy_generate(model, reqs, "block", 6, STOP, 0) != greedy_generate(model, reqs, "full", 6, STOP, 0)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError):
        greedy_generate(tiny_model(), requests(), "sideways", 2, STOP, 0)
