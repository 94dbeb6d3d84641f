"""Batched decoding from the arena (`engine.batchgraph`, the step a CUDA graph captures, run eagerly on the CPU)
== each request decoded alone, while requests join, leave and move between slots. The graph replay itself is
tested on CUDA (tests/engine/test_gpu.py)."""

import gc

import pytest
import torch

from blockattn.engine.batchgraph import BatchDecoder, bucket_batch
from blockattn.engine.engine import BlockEngine, EngineConfig
from blockattn.models.tiny import ARCHITECTURES, tiny_model
from tests.engine.test_exactness import make_adapter, random_blocks

TOL = 1e-4
ARENA = dict(batch_graphs=True, decode_arena_tokens=512, decode_arena_slots=8, decode_arena_bytes=1 << 30)


def _alone(engine, blocks, query, mode, steps):
    """Greedy tokens of one request decoded by itself, and the logits after each appended token."""
    state = engine.prefill(blocks, query, mode=mode, max_new_tokens=steps)
    tokens, logits = [int(torch.argmax(state.logits[-1]))], []
    for _ in range(steps - 1):
        logits.append(engine.decode_one_token(state, tokens[-1]))
        tokens.append(int(torch.argmax(logits[-1])))
    return tokens, logits


def _requests(seed: int, n: int):
    lengths = [[9, 14, 5], [40, 3], [7, 7, 7, 2], [25, 11], [3, 60, 4], [12, 6]]
    return [random_blocks(lengths[i % len(lengths)], seed=seed + i) for i in range(n)]


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("mode", ["block", "full"])
@pytest.mark.parametrize("merge", [False, True])
def test_arena_batch_equals_each_request_alone(arch, mode, merge, tmp_path):
    adapter = make_adapter(tmp_path, arch)
    base = adapter.model.get_base_model()
    reference = BlockEngine(base, "tiny", adapter, EngineConfig(merge_adapter=False, batch_graphs=False))
    engine = BlockEngine(base, "tiny", adapter, EngineConfig(merge_adapter=merge, **ARENA))
    requests = _requests(seed=3, n=3)
    steps = 5
    alone = [_alone(reference, blocks, query, mode, steps) for *blocks, query in requests]
    states = [engine.prefill(blocks, query, mode=mode, max_new_tokens=steps) for *blocks, query in requests]
    for step in range(steps - 1):
        logits = engine.decode_batch(states, [alone[i][0][step] for i in range(len(states))])
        for i in range(len(states)):
            assert (logits[i] - alone[i][1][step]).abs().max() <= TOL, (i, step)
    info = engine.batch_decoder.info()
    assert info["eager_steps"] == steps - 1 and info["admitted"] == 3 and info["captures"] == 0


def test_requests_join_leave_and_move_between_slots():
    """A request finishing frees its slot (the last one moves into it); a newcomer is copied in; a request
    decoded alone afterwards continues from its arena state."""
    model = tiny_model()
    reference = BlockEngine(model, "tiny", config=EngineConfig(batch_graphs=False))
    engine = BlockEngine(model, "tiny", config=EngineConfig(**ARENA))
    requests = _requests(seed=11, n=4)
    steps = 7
    alone = [_alone(reference, blocks, query, "block", steps) for *blocks, query in requests]
    states = [engine.prefill(blocks, query, max_new_tokens=steps) for *blocks, query in requests]
    done = [0] * 4  # tokens appended so far per request
    # schedule: which requests run in each step (0 leaves after 2 steps, 3 joins at step 2, 1 goes alone)
    schedule = [[0, 1, 2], [0, 1, 2], [1, 2, 3], [2, 3, 1], [3, 2], [2, 3]]
    for rows in schedule:
        tokens = [alone[i][0][done[i]] for i in rows]
        logits = engine.decode_batch([states[i] for i in rows], tokens)
        for i, row in zip(rows, logits):
            assert (row - alone[i][1][done[i]]).abs().max() <= TOL, (i, done[i])
            done[i] += 1
    # request 1 left the batch after step 4: decoded alone now, from its own (copied-back) buffer
    logits = engine.decode_one_token(states[1], alone[1][0][done[1]])
    assert (logits - alone[1][1][done[1]]).abs().max() <= TOL
    info = engine.batch_decoder.info()
    assert info["moved"] >= 1 and info["admitted"] == 4


def test_a_dropped_request_frees_its_slot():
    model = tiny_model()
    engine = BlockEngine(model, "tiny", config=EngineConfig(**ARENA))
    a, b = [engine.prefill(blocks, query, max_new_tokens=4) for *blocks, query in _requests(seed=5, n=2)]
    engine.decode_batch([a, b], [1, 2])
    del a
    gc.collect()
    engine.decode_batch([b], [3])  # the dead request's slot is freed, b moves to slot 0
    arena = engine.batch_decoder._arenas["block"]
    assert len(arena.holders) == 1 and arena.holders[0]() is b.kv


def test_requests_that_do_not_fit_use_the_eager_batched_step():
    model = tiny_model()
    reference = BlockEngine(model, "tiny", config=EngineConfig(batch_graphs=False))
    small = dict(ARENA, decode_arena_slots=2)
    engine = BlockEngine(model, "tiny", config=EngineConfig(**small))
    requests = _requests(seed=21, n=3)
    alone = [_alone(reference, blocks, query, "block", 3) for *blocks, query in requests]
    states = [engine.prefill(blocks, query, max_new_tokens=3) for *blocks, query in requests]
    logits = engine.decode_batch(states[:2], [alone[i][0][0] for i in range(2)])  # arena
    logits3 = engine.decode_batch(states, [alone[0][0][1], alone[1][0][1], alone[2][0][0]])  # 3 > 2 slots: eager
    for i in range(2):
        assert (logits[i] - alone[i][1][0]).abs().max() <= TOL
        assert (logits3[i] - alone[i][1][1]).abs().max() <= TOL
    assert (logits3[2] - alone[2][1][0]).abs().max() <= TOL
    assert engine.batch_decoder.info()["eager_steps"] == 1


def test_cpu_default_has_no_arena_and_batches_are_bucketed():
    assert BlockEngine(tiny_model(), "tiny").batch_decoder is None
    assert [bucket_batch(n) for n in (1, 2, 3, 5, 8, 9, 33, 64)] == [1, 2, 4, 8, 8, 16, 64, 64]


@pytest.mark.slow
def test_compiled_steps_equal_the_plain_ones():
    """`compile_decode`: the single and the batched static steps through torch.compile (Inductor on the CPU
    here) give the plain steps' logits, and a step at a new position does not recompile."""
    import torch._dynamo

    counters = torch._dynamo.utils.counters
    model = tiny_model()
    plain = BlockEngine(model, "tiny", config=EngineConfig(decode_graphs=True, **ARENA))
    compiled = BlockEngine(model, "tiny", config=EngineConfig(decode_graphs=True, compile_decode=True, **ARENA))
    requests = _requests(seed=31, n=2)
    outs, states = [], []
    for engine in (plain, compiled):
        states = [engine.prefill(blocks, query, max_new_tokens=8) for *blocks, query in requests]
        single = [engine.decode_one_token(states[0], t) for t in (5, 6, 7)]
        batched = [engine.decode_batch(states, [t, t + 1]) for t in (8, 9)]
        outs.append(torch.cat([torch.stack(single), *batched]))
    assert (outs[0] - outs[1]).abs().max() <= TOL
    # compiled once per step kind and shape (the K/V writes split a step into a few graphs): decoding at new
    # positions compiles nothing more
    before = dict(counters["stats"])
    compiled.decode_one_token(states[0], 10)
    compiled.decode_batch(states, [11, 12])
    assert counters["stats"]["unique_graphs"] == before["unique_graphs"], (before, dict(counters["stats"]))


def test_arena_shape_keeps_concurrency_before_length():
    from blockattn.engine.engine import MIN_ARENA_TOKENS, arena_shape

    dims = (32, 8, 128)  # the Llama-8B shape: 1 GiB per 8192-position bf16 slot
    slot = BatchDecoder.slot_bytes(dims, 8192, torch.bfloat16)
    assert slot == 1 << 30
    assert arena_shape(dims, torch.bfloat16, 8192, 64, 64 * slot) == (8192, 64)  # fits as asked
    assert arena_shape(dims, torch.bfloat16, 8192, 64, 14 * slot) == (2048, 56)  # shorter, then fewer
    assert arena_shape(dims, torch.bfloat16, 8192, 64, 20 * slot) == (2048, 64)
    capacity, slots = arena_shape(dims, torch.bfloat16, 8192, 64, slot // 8)
    assert capacity == MIN_ARENA_TOKENS and slots == 0  # nothing fits: no arena (the engine then has none)
    assert arena_shape(dims, torch.bfloat16, 512, 4, 10 * slot) == (512, 4)  # short slots stay as configured
