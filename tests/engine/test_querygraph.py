"""The static query step (what `engine.graphs` captures), run eagerly on the CPU: query blocks of any length,
padded to a bucket, give the eager forward's logits, and decoding after them continues exactly."""

import pytest
import torch

from blockattn.engine.engine import BlockEngine, EngineConfig
from blockattn.engine.graphs import bucket_query
from blockattn.models.tiny import ARCHITECTURES, tiny_model
from tests.engine.test_exactness import make_adapter, random_blocks, reference_logits

TOL = 1e-4


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("mode", ["block", "full"])
def test_static_query_step_equals_the_eager_forward(arch, mode, tmp_path):
    adapter = make_adapter(tmp_path, arch)
    base = adapter.model.get_base_model()
    eager = BlockEngine(base, "tiny", adapter, EngineConfig(cuda_graphs=False, merge_adapter=False))
    static = BlockEngine(base, "tiny", adapter, EngineConfig(cuda_graphs=True, merge_adapter=False))
    for seed, lengths in enumerate([[12, 30, 5], [7, 7, 19], [40, 33]]):
        *blocks, query = random_blocks(lengths, seed=seed)
        expected = eager.prefill(blocks, query, mode=mode, keep_logits=3, max_new_tokens=4)
        got = static.prefill(blocks, query, mode=mode, keep_logits=3, max_new_tokens=4)
        assert (got.logits - expected.logits).abs().max() <= TOL
        assert got.kv.length == expected.kv.length
        # the padding's K/V past the query is overwritten by decoding: the next tokens agree
        token = int(torch.argmax(expected.logits[-1]))
        for _ in range(3):
            a, b = eager.decode_one_token(expected, token), static.decode_one_token(got, token)
            assert (a - b).abs().max() <= TOL
            token = int(torch.argmax(a))


def test_static_query_step_matches_the_uncached_reference():
    model = tiny_model()
    engine = BlockEngine(model, "tiny", config=EngineConfig(cuda_graphs=True))
    *blocks, query = random_blocks([9, 17, 6, 11], seed=4)
    got = engine.prefill(blocks, query, keep_logits=len(query)).logits
    assert (got - reference_logits(model, blocks, query)).abs().max() <= TOL


def test_query_buckets_and_the_cpu_default():
    assert [bucket_query(t) for t in (2, 16, 17, 33, 100, 1000)] == [16, 16, 32, 64, 128, 1024]
    assert BlockEngine(tiny_model(), "tiny").graphs is None  # CPU default: the plain forward


def reference_flash_varlen(q, k, v, cu_q, cu_k, max_q, max_k, scale, causal):
    """What flash's variable-length kernel computes, written out (CPU stand-in): sequence b's rows
    q[cu_q[b]:cu_q[b+1]] over k/v[cu_k[b]:cu_k[b+1]], grouped-query heads, causal aligned lower-right → out
    (total_q, H, D), lse (H, total_q). An empty sequence writes zeros and lse +inf (what FA2 does), which
    `buffer_attention` must give no weight."""
    assert cu_q.dtype == cu_k.dtype == torch.int32 and q.dim() == k.dim() == 3
    groups = q.shape[1] // k.shape[1]
    outs, lses = [], []
    for b in range(len(cu_q) - 1):
        rows = q[int(cu_q[b]):int(cu_q[b + 1])].float()  # (T, H, D)
        keys = k[int(cu_k[b]):int(cu_k[b + 1])].float().repeat_interleave(groups, 1)  # (L, H, D)
        values = v[int(cu_k[b]):int(cu_k[b + 1])].float().repeat_interleave(groups, 1)
        t, length = rows.shape[0], keys.shape[0]
        assert t <= max_q and length <= max_k
        if length == 0:
            outs.append(torch.zeros_like(rows))
            lses.append(torch.full((q.shape[1], t), float("inf")))
            continue
        scores = torch.einsum("thd,lhd->htl", rows, keys) * scale
        if causal:
            visible = torch.arange(length).view(1, -1) <= torch.arange(length - t, length).view(-1, 1)
            scores = scores.masked_fill(~visible, float("-inf"))
        lses.append(torch.logsumexp(scores, dim=-1))  # (H, T)
        outs.append(torch.einsum("htl,lhd->thd", torch.softmax(scores, dim=-1), values))
    return torch.cat(outs).to(q.dtype), torch.cat(lses, dim=1)


@pytest.fixture
def cpu_flash(monkeypatch):
    """Route the static steps through `flashbuffer.buffer_attention` on the CPU (buffers of any size, two
    context chunks per 16 slots), with the reference kernel."""
    from blockattn.engine import flashbuffer, graphs

    calls = []
    monkeypatch.setattr(graphs, "FLASH_FROM_SLOTS", 0)
    monkeypatch.setattr(flashbuffer, "DEFAULT_SPLIT", flashbuffer.Split(8))
    monkeypatch.setattr(flashbuffer, "flash_applies", lambda key: True)
    monkeypatch.setattr(flashbuffer, "flash_varlen", lambda *a: calls.append(1) or reference_flash_varlen(*a))
    return calls


@pytest.mark.parametrize("pack", [False, True])
@pytest.mark.parametrize("capacity,end", [(64, 40), (64, 3), (64, 64), (8, 5), (700, 333)])
def test_buffer_attention_equals_masked_attention(cpu_flash, monkeypatch, capacity, end, pack):
    """Chunked context + causal own rows, merged by log-sum-exp: the same rows as attending over the first
    `end` slots at once, with contexts shorter than the chunk count (empty chunks), none at all (end == T),
    a full buffer and one chunk; with each KV head's query heads folded into rows of the context call or not."""
    from blockattn.engine import flashbuffer, staticops

    monkeypatch.setattr(flashbuffer, "DEFAULT_SPLIT", flashbuffer.Split(8, pack_gqa=pack))

    heads, kv_heads, t, d = 6, 2, 3, 8
    t = min(t, end)
    query = torch.randn(1, heads, t, d)
    key, value = torch.randn(1, kv_heads, capacity, d), torch.randn(1, kv_heads, capacity, d)
    got = flashbuffer.buffer_attention(query, key, value, torch.tensor([end]), None)
    visible = torch.arange(capacity).view(1, -1) <= torch.arange(end - t, end).view(-1, 1)
    rows = query.reshape(1, kv_heads, heads // kv_heads * t, d)
    expected = staticops.masked_attention(rows, key, value, visible.repeat(heads // kv_heads, 1), None)
    expected = expected.reshape(1, heads, t, d).transpose(1, 2)
    assert len(cpu_flash) == 2  # the chunked context, the own rows
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("flash", [False, True])
def test_rows_attention_matches_grouped_sdpa(request, flash):
    """Both ways the static query step attends (two matmuls over the buffer; flash's variable-length kernel
    over its first `end` slots) give each query head its KV head's causal rows."""
    from blockattn.engine import graphs

    calls = request.getfixturevalue("cpu_flash") if flash else None
    b, heads, kv_heads, t, d, capacity = 1, 4, 2, 3, 8, 7
    query = torch.randn(b, heads, t, d)
    key, value = torch.randn(b, kv_heads, capacity, d), torch.randn(b, kv_heads, capacity, d)
    positions = torch.tensor([2, 3, 4])
    visible = torch.arange(capacity).view(1, -1) <= positions.view(-1, 1)  # causal rows; slots 5, 6 unused
    expected = torch.nn.functional.scaled_dot_product_attention(
        query, key.repeat_interleave(heads // kv_heads, 1), value.repeat_interleave(heads // kv_heads, 1),
        attn_mask=visible).transpose(1, 2)  # (B, T, H, D), each query head over its KV head
    got, _ = graphs.QueryRowsAttention(visible, positions[-1:] + 1)(None, query, key, value, None)
    assert calls is None or calls == [1, 1]  # context, own rows
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_query_blocks_whose_scores_would_be_large_decline(monkeypatch):
    """Past MAX_SCORE_BYTES of matmul scores the query step declines and the eager forward runs (faster there,
    see graphs.MAX_SCORE_BYTES): the same logits, and decoding continues the same."""
    from blockattn.engine import graphs

    model = tiny_model()
    engine = BlockEngine(model, "tiny", config=EngineConfig(cuda_graphs=True))
    plain = BlockEngine(model, "tiny", config=EngineConfig(cuda_graphs=False))
    *blocks, query = random_blocks([9, 17, 6], seed=5)
    expected = plain.prefill(blocks, query, keep_logits=2, max_new_tokens=2)
    engine.prefill(blocks, query, keep_logits=2)  # the blocks' K/V cached: below, only the query block runs
    static = []
    real_eager = graphs.QueryGraphs._eager
    monkeypatch.setattr(graphs.QueryGraphs, "_eager", lambda self, *a: static.append(1) or real_eager(self, *a))
    got = engine.prefill(blocks, query, keep_logits=2, max_new_tokens=2)
    assert static == [1]  # the static step, below the limit
    monkeypatch.setattr(graphs, "MAX_SCORE_BYTES", 1024)
    got = engine.prefill(blocks, query, keep_logits=2, max_new_tokens=2)
    assert static == [1]  # declined: the eager forward
    assert (got.logits - expected.logits).abs().max() <= TOL
    token = int(torch.argmax(expected.logits[-1]))
    assert (engine.decode_one_token(got, token) - plain.decode_one_token(expected, token)).abs().max() <= TOL


def test_static_query_step_with_flash_equals_the_eager_forward(cpu_flash, tmp_path):
    """The whole static query step through `causal_buffer_attention` (reference kernel), sinks and adapter on:
    the eager forward's logits and next tokens."""
    adapter = make_adapter(tmp_path, ARCHITECTURES[0])
    base = adapter.model.get_base_model()
    eager = BlockEngine(base, "tiny", adapter, EngineConfig(cuda_graphs=False, merge_adapter=False))
    static = BlockEngine(base, "tiny", adapter, EngineConfig(cuda_graphs=True, merge_adapter=False))
    *blocks, query = random_blocks([12, 30, 5], seed=2)
    expected = eager.prefill(blocks, query, keep_logits=3, max_new_tokens=4)
    got = static.prefill(blocks, query, keep_logits=3, max_new_tokens=4)
    assert cpu_flash and (got.logits - expected.logits).abs().max() <= TOL
    token = int(torch.argmax(expected.logits[-1]))
    assert (eager.decode_one_token(expected, token) - static.decode_one_token(got, token)).abs().max() <= TOL


def test_shape_graphs_lend_one_buffer_and_stage_the_others(monkeypatch):
    """The query graphs' bookkeeping, on the CPU with captures faked by eager re-runs (the real ones run in
    tests/engine/test_gpu.py): requests held at once share their shape's graphs; the first one after the
    capture gets the lendable buffer as its own, the others are staged and copied out; logits and the decoding
    that follows equal an engine without graphs; a dropped request gives the buffer back for the next one."""
    import gc

    from blockattn.engine import graphs
    from tests.engine.test_blockprefill import _replay_captures_eagerly

    _replay_captures_eagerly(monkeypatch)
    monkeypatch.setattr(graphs, "replayable", lambda buffer: True)
    model = tiny_model()
    eager = BlockEngine(model, "tiny", config=EngineConfig(cuda_graphs=False, decode_graphs=False))
    # decode_graphs: the buffer pool, whose bucketed capacities make the shapes recur (the steps run eagerly here)
    graphed = BlockEngine(model, "tiny", config=EngineConfig(cuda_graphs=True, time_query_graphs=False,
                                                             decode_graphs=True))
    graphed.graphs.use_graphs = True
    g = torch.Generator().manual_seed(0)
    held = []
    for ctx, q in [(40, 17), (90, 20), (63, 31), (12, 18), (77, 25), (50, 29)]:  # one shape: 256 slots, 32 rows
        blocks = [torch.randint(3, 500, (n,), generator=g).tolist() for n in (ctx, ctx // 2)]
        query = torch.randint(3, 500, (q,), generator=g).tolist()
        expected = eager.prefill(blocks, query, keep_logits=2, max_new_tokens=8)
        got = graphed.prefill(blocks, query, keep_logits=2, max_new_tokens=8)
        assert (got.logits - expected.logits).abs().max() <= 1e-4
        held.append((got, expected))
    info = graphed.graphs.info()
    # seen (eager), captured over the staging buffer (the context copied in), lent (its own graph), staged × 3
    assert info["captures"] == 2 and info["replays"] == 5 and info["lent"] == 1 and info["staged"] == 3, info
    assert len({state.kv.buffer.data_ptr() for state, _ in held}) == len(held)
    for token in (5, 9):
        for got, expected in held:
            assert (graphed.decode_one_token(got, token) - eager.decode_one_token(expected, token)).abs().max() <= 1e-4
    lent_buffer = next(state.kv.buffer.data_ptr() for state, _ in held
                       if any(b.data_ptr() == state.kv.buffer.data_ptr() for b in graphed.graphs._lendable.values()))
    held.clear()
    gc.collect()
    blocks = [torch.randint(3, 500, (n,), generator=g).tolist() for n in (30, 15)]
    again = graphed.prefill(blocks, torch.randint(3, 500, (20,), generator=g).tolist(), keep_logits=2,
                            max_new_tokens=8)
    assert graphed.graphs.info()["lent"] == 2 and again.kv.buffer.data_ptr() == lent_buffer
