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


@pytest.mark.parametrize("fused", [False, True])
def test_rows_attention_accepts_a_non_contiguous_kernel_output(monkeypatch, fused):
    """CUDA's SDPA kernels may hand back their output in another memory layout (the H200 capture failed on a
    `view` of it): the grouped rows must be regrouped by logical order, whatever the strides. Both ways of
    attending (two matmuls; SDPA past MAX_SCORE_BYTES) give the same rows."""
    from blockattn.engine import graphs

    b, heads, kv_heads, t, d, capacity = 1, 4, 2, 3, 8, 5
    query = torch.randn(b, heads, t, d)
    key, value = torch.randn(b, kv_heads, capacity, d), torch.randn(b, kv_heads, capacity, d)
    visible = torch.arange(capacity).view(1, -1) <= torch.tensor([2, 3, 4]).view(-1, 1)  # causal rows
    expected = torch.nn.functional.scaled_dot_product_attention(
        query, key.repeat_interleave(heads // kv_heads, 1), value.repeat_interleave(heads // kv_heads, 1),
        attn_mask=visible).transpose(1, 2)  # (B, T, H, D), each query head over its KV head
    sdpa, called = torch.nn.functional.scaled_dot_product_attention, []

    def strided_sdpa(*args, **kwargs):  # same values, (B, H, L, D) stored as (B, L, H, D)
        called.append(1)
        out = sdpa(*args, **kwargs)
        return out.transpose(1, 2).contiguous().transpose(1, 2)

    monkeypatch.setattr(graphs.nn.functional, "scaled_dot_product_attention", strided_sdpa)
    if fused:
        monkeypatch.setattr(graphs, "MAX_SCORE_BYTES", 16)
    got, _ = graphs.RowsMaskedAttention(visible)(None, query, key, value, None)
    assert called == ([1] if fused else [])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_query_blocks_whose_scores_would_be_large_attend_with_sdpa(monkeypatch):
    """Past MAX_SCORE_BYTES of fp32 scores the static step still runs (it used to decline and leave long
    contexts to the eager forward), attending with SDPA: the same logits, and decoding continues the same."""
    from blockattn.engine import graphs

    model = tiny_model()
    engine = BlockEngine(model, "tiny", config=EngineConfig(cuda_graphs=True))
    plain = BlockEngine(model, "tiny", config=EngineConfig(cuda_graphs=False))
    *blocks, query = random_blocks([9, 17, 6], seed=5)
    expected = plain.prefill(blocks, query, keep_logits=2, max_new_tokens=2)
    engine.prefill(blocks, query, keep_logits=2)  # the blocks' K/V cached: below, only the query block runs
    calls, fused = [], []
    real_eager, real_sdpa = graphs.QueryGraphs._eager, torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(graphs.QueryGraphs, "_eager", lambda self, *a: calls.append(1) or real_eager(self, *a))
    monkeypatch.setattr(graphs.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **k: fused.append(1) or real_sdpa(*a, **k))
    monkeypatch.setattr(graphs, "MAX_SCORE_BYTES", 1024)
    got = engine.prefill(blocks, query, keep_logits=2, max_new_tokens=2)
    assert calls == [1] and len(fused) == model.config.num_hidden_layers  # the static step, SDPA in every layer
    assert (got.logits - expected.logits).abs().max() <= TOL
    token = int(torch.argmax(expected.logits[-1]))
    assert (engine.decode_one_token(got, token) - plain.decode_one_token(expected, token)).abs().max() <= TOL
