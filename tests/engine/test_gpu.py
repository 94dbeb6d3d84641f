"""The engine on CUDA (skipped without one): exactness in fp32 with TF32 off, the fused key rotation, CUDA-graph
replays, and the flash lower-right attention in bf16.

Run on the lent H200 with `python -m pytest tests/engine/test_gpu.py -m gpu`.
"""

import pytest
import torch

from blockattn.attention import BlockSinks, block_forward, pack_sequence
from blockattn.engine.attention import cached_attention
from blockattn.engine.engine import BlockEngine, EngineConfig
from blockattn.models.tiny import tiny_model

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("strict_fp32"),
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
TOL = 1e-4




def _blocks(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, 500, (n,), generator=g).tolist() for n in lengths]


def _reference(model, blocks, query, sinks=None, k=0, s=0):
    ids, layout = pack_sequence([*blocks, query], sinks_per_block=k, shared_sink=s)
    with torch.no_grad():
        return block_forward(model, ids.cuda(), layout, sinks=sinks).logits[0, -len(query):]


@pytest.mark.parametrize("compiled", [False, True])
def test_cached_equals_uncached_on_cuda(compiled):
    model = tiny_model().cuda()
    *blocks, query = _blocks([130, 7, 61, 20, 9])
    engine = BlockEngine(model, "tiny", config=EngineConfig(compile_rotation=compiled))
    ref = _reference(model, blocks, query)
    for _ in range(2):  # cold, then every block from the GPU tier
        assert (engine.prefill(blocks, query, keep_logits=len(query)).logits - ref).abs().max() <= TOL
    assert engine.placer.compiled == compiled
    moved = blocks[::-1]
    out = engine.prefill(moved, query, keep_logits=len(query)).logits
    assert (out - _reference(model, moved, query)).abs().max() <= TOL


def test_sinks_on_cuda():
    from types import SimpleNamespace

    model = tiny_model().cuda()
    sinks = BlockSinks(model.config.hidden_size, per_block=3, shared=2).cuda()
    adapter = SimpleNamespace(model=model, sinks=sinks, sinks_per_block=3, shared_sink=2, identity="sinks")
    *blocks, query = _blocks([11, 5, 19, 6], seed=1)
    engine = BlockEngine(model, "tiny", adapter)
    out = engine.prefill(blocks, query, keep_logits=len(query)).logits
    assert (out - _reference(model, blocks, query, sinks, 3, 2)).abs().max() <= TOL


def test_cuda_graph_replay_equals_eager():
    model = tiny_model().cuda()
    *blocks, query = _blocks([40, 30, 16])
    eager = BlockEngine(model, "tiny")
    graphed = BlockEngine(model, "tiny", config=EngineConfig(cuda_graphs=True))
    expected = eager.prefill(blocks, query, keep_logits=4).logits
    outs = [graphed.prefill(blocks, query, keep_logits=4).logits for _ in range(4)]
    info = graphed.graphs.info()
    # captured on the second sighting of the shape; replays need the allocator to hand back the same buffer
    assert info["error"] is None and info["captures"] == 1 and info["replays"] >= 1, info
    for out in outs:
        assert (out - expected).abs().max() <= 1e-6
    state = graphed.prefill(blocks, query, max_new_tokens=0)  # another shape: eager, still right
    assert (state.logits[-1] - expected[-1]).abs().max() <= 1e-6


def test_flash_lower_right_attention_in_bf16():
    q = torch.randn(1, 32, 64, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, 8, 4096 + 64, 128, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    out, _ = cached_attention(None, q, k, v, None)
    mask = torch.ones(64, k.shape[2], dtype=torch.bool, device="cuda").tril(diagonal=4096)
    ref = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float().repeat_interleave(4, 1),
                                                           v.float().repeat_interleave(4, 1), attn_mask=mask)
    assert (out.float().transpose(1, 2) - ref).abs().max() <= 2e-2
