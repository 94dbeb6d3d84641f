"""The engine on CUDA (skipped without one): exactness in fp32 with TF32 off, the fused key rotation, CUDA-graph
replays, and the flash lower-right attention in bf16.

Run on the lent H200 with `python -m pytest tests/engine/test_gpu.py -m gpu`.
"""

import pytest
import torch

from blockattn.attention import BlockSinks, block_forward, pack_sequence
from blockattn.engine.attention import cached_attention
from blockattn.engine.engine import BlockEngine, EngineConfig
from blockattn.adapter import load_block_adapter
from blockattn.models.tiny import save_random_block_adapter, tiny_model

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("strict_fp32"),
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
TOL = 1e-4




def _cuda_adapter(tmp_path):
    """A random tiny block adapter loaded onto a tiny base on CUDA (the helper lives in the package: the H200's
    pytest could not import tests.engine.test_exactness from inside a test, 2026-12-03)."""
    save_random_block_adapter(tmp_path / "adapter", "llama")
    return load_block_adapter(tiny_model("llama").to("cuda"), tmp_path / "adapter")


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


@pytest.mark.parametrize("scores", ["matmul", "declined"])
def test_cuda_graph_replay_equals_eager(scores, monkeypatch):
    """fp32: the captured query step attends with two matmuls; past MAX_SCORE_BYTES it declines (eager)."""
    from blockattn.engine import graphs

    if scores == "declined":
        monkeypatch.setattr(graphs, "MAX_SCORE_BYTES", 16)
    model = tiny_model().cuda()
    *blocks, query = _blocks([40, 30, 16])
    eager = BlockEngine(model, "tiny", config=EngineConfig(cuda_graphs=False))
    graphed = BlockEngine(model, "tiny")  # CUDA default: query graphs
    expected = eager.prefill(blocks, query, keep_logits=4).logits
    outs = [graphed.prefill(blocks, query, keep_logits=4).logits for _ in range(4)]
    info = graphed.graphs.info()
    if scores == "matmul":  # captured at the third sighting over the staging scratch, at the fourth over the
        # lendable buffer (no request holds it any more): two graphs, one shape
        assert info["error"] is None and info["captures"] == 2 and info["replays"] == 2 and info["lent"] == 1, info
    else:
        assert info["captures"] == 0 and info["replays"] == 0, info
    for out in outs:
        assert (out - expected).abs().max() <= TOL
    state = graphed.prefill(blocks, query, max_new_tokens=0)  # another capacity bucket: still right
    assert (state.logits[-1] - expected[-1]).abs().max() <= TOL


@pytest.mark.parametrize("heads,kv_heads,dim,t,capacity,end", [(32, 8, 128, 64, 8192, 5000),
                                                           (9, 3, 64, 16, 2048, 999), (32, 8, 128, 64, 40960, 32832),
                                                           (9, 3, 64, 16, 20480, 16)])
@pytest.mark.parametrize("pack", [False, True])
def test_flash_buffer_attention_in_bf16(heads, kv_heads, dim, t, capacity, end, pack, monkeypatch):
    """Flash's variable-length kernel over a request buffer's first `end` slots, read in place, the context in
    chunks (the Llama-8B and SmolLM2 head shapes; one request with no context at all), each KV head's query
    heads folded into rows of the context call or not, against fp32 SDPA over exactly those keys."""
    from blockattn.engine import flashbuffer

    assert flashbuffer.probe_flash_varlen(torch.device("cuda")), flashbuffer.FLASH_VARLEN_ERROR
    buffer = torch.randn(2, kv_heads, capacity, dim, device="cuda", dtype=torch.bfloat16)
    query = torch.randn(1, heads, t, dim, device="cuda", dtype=torch.bfloat16)
    key, value = buffer[0].unsqueeze(0), buffer[1].unsqueeze(0)
    got = flashbuffer.buffer_attention(query, key, value, torch.tensor([end], device="cuda"), None,
                                       flashbuffer.Split(max(128, capacity // 64), pack_gqa=pack))
    visible = torch.arange(end, device="cuda").view(1, -1) <= torch.arange(end - t, end, device="cuda").view(-1, 1)
    ref = torch.nn.functional.scaled_dot_product_attention(
        query.float(), key[:, :, :end].float(), value[:, :, :end].float(), attn_mask=visible, enable_gqa=True)
    assert (got.float() - ref.transpose(1, 2)).abs().max() <= 2e-2


def test_cuda_graph_replay_in_bf16_attends_with_flash():
    """bf16 on CUDA: the captured query step reads the buffer through flash's kernel (at any buffer size here);
    replays agree with the eager forward to bf16 precision, requests of several lengths through one graph."""
    model = tiny_model().cuda().to(torch.bfloat16)
    eager = BlockEngine(model, "tiny", config=EngineConfig(cuda_graphs=False))
    graphed = BlockEngine(model, "tiny", config=EngineConfig(query_flash_from=0))
    for seed, (ctx, q) in enumerate([(40, 17), (90, 20), (63, 31), (12, 18), (77, 25), (50, 29)]):
        *blocks, query = _blocks([ctx, ctx // 2, q], seed=seed)
        expected = eager.prefill(blocks, query, keep_logits=2).logits.float()
        got = graphed.prefill(blocks, query, keep_logits=2).logits.float()
        assert (got - expected).abs().max() <= 0.05 * expected.abs().max() + 1e-2, seed
    info = graphed.graphs.info()
    assert info["flash_varlen"] and info["error"] is None and info["replays"] >= 1, info


def test_engine_times_where_flash_starts():
    """At start (bf16 on CUDA) the engine times the static step's two attention paths on its head shape, flash
    at every split tried, and takes flash from the first measured length where its fastest split wins and
    keeps winning, each length with that split."""
    model = tiny_model().cuda().to(torch.bfloat16)
    info = BlockEngine(model, "tiny").graphs.info()
    table = info["calibration"]
    assert [t["slots"] for t in table] == [2048, 4096, 8192, 16384, 32768], info
    assert all(t["matmul_ms"] > 0 and t["flash_ms"] > 0 for t in table)
    assert all(t["flash_ms"] == min(o["ms"] for o in t["flash_options"]) for t in table), table
    wins = [t["slots"] for t in table if t["flash_ms"] <= t["matmul_ms"]]
    assert info["flash_from_slots"] in [*wins, 65536], info
    assert [(s["chunk_slots"], s["pack_gqa"]) for s in info["splits"]] == [
        (t["chunk_slots"], t["pack_gqa"]) for t in table]


def test_a_query_graph_that_loses_to_eager_is_dropped(monkeypatch):
    """A shape whose first replay is slower than its timed eager forward runs eagerly from then on (margin 0:
    every graph loses): the same logits throughout, one capture, no further replays."""
    from blockattn.engine import querypath

    monkeypatch.setattr(querypath, "GRAPH_MARGIN", 0.0)
    model = tiny_model().cuda()
    *blocks, query = _blocks([40, 30, 16])
    eager = BlockEngine(model, "tiny", config=EngineConfig(cuda_graphs=False))
    graphed = BlockEngine(model, "tiny")
    expected = eager.prefill(blocks, query, keep_logits=4).logits
    for _ in range(6):
        assert (graphed.prefill(blocks, query, keep_logits=4).logits - expected).abs().max() <= TOL
    info = graphed.graphs.info()
    assert info["captures"] == 1 and info["replays"] == 1, info
    assert [v["graph_kept"] for v in info["verdicts"]] == [False], info
    assert info["graphs"] == 0, info  # the losing graph is not kept around


def test_query_graphs_serve_requests_of_every_length():
    """Different questions over different documents: padded to one bucket, one graph serves them all."""
    model = tiny_model().cuda()
    eager = BlockEngine(model, "tiny", config=EngineConfig(cuda_graphs=False))
    graphed = BlockEngine(model, "tiny")
    for seed, (ctx, q) in enumerate([(40, 17), (90, 20), (63, 31), (12, 18), (77, 25), (50, 29)]):
        *blocks, query = _blocks([ctx, ctx // 2, q], seed=seed)
        expected = eager.prefill(blocks, query, keep_logits=2, max_new_tokens=8).logits
        got = graphed.prefill(blocks, query, keep_logits=2, max_new_tokens=8).logits
        assert (got - expected).abs().max() <= TOL, seed
    info = graphed.graphs.info()
    assert info["error"] is None and info["replays"] >= 3 and info["captures"] <= 2, info


def test_packed_block_prefill_in_bf16_equals_each_block_alone():
    """bf16 on CUDA: missing blocks are prefilled as one packed sequence through flash's variable-length kernel
    (eager, captured, replayed); each block's K/V equal the block prefilled alone, to bf16 precision."""
    from blockattn.attention import prefill_block
    from blockattn.engine import blockprefill, flashbuffer

    assert flashbuffer.probe_flash_varlen(torch.device("cuda")), flashbuffer.FLASH_VARLEN_ERROR
    model = tiny_model().cuda().to(torch.bfloat16)
    sinks = BlockSinks(model.config.hidden_size, per_block=2).cuda()
    with torch.no_grad():
        sinks.per_block.normal_()
    graphs = blockprefill.PrefillGraphs(use_graphs=True)
    for seed in range(3):  # seen, captured, replayed
        blocks = _blocks([9, 1, 23, 150, 40], seed=seed)
        for block, kv in zip(blocks, blockprefill.prefill_blocks(model, blocks, sinks, 2, graphs=graphs)):
            alone = prefill_block(model, block, sinks, 2)
            for layer in range(model.config.num_hidden_layers):
                for got, want in ((kv[layer, 0], alone.keys[layer][0]), (kv[layer, 1], alone.values[layer][0])):
                    assert (got.float() - want.float()).abs().max() <= 0.02 * want.float().abs().max() + 1e-2
    info = graphs.info()
    assert info["error"] is None and info["captures"] == 1 and info["replays"] == 2, info  # the capture replays too


def test_one_query_graph_serves_requests_held_at_once():
    """Requests in flight together (each holding its own buffer, as a server's batch does) share the graphs of
    their shape: one request gets the lendable buffer as its own, the others are placed straight into the
    staging buffer and copied out into their own. Logits equal the eager engine's, and decoding goes on from
    each request's own buffer."""
    model = tiny_model().cuda()
    eager = BlockEngine(model, "tiny", config=EngineConfig(cuda_graphs=False))
    graphed = BlockEngine(model, "tiny")
    held = []
    for seed, (ctx, q) in enumerate([(40, 17), (90, 20), (63, 31), (12, 18), (77, 25), (50, 29)]):
        *blocks, query = _blocks([ctx, ctx // 2, q], seed=seed)
        expected = eager.prefill(blocks, query, keep_logits=2, max_new_tokens=8)
        got = graphed.prefill(blocks, query, keep_logits=2, max_new_tokens=8)
        assert (got.logits - expected.logits).abs().max() <= TOL, seed
        held.append((got, expected))
    info = graphed.graphs.info()
    # the third request captured the staging graph; the fourth got the lendable buffer (and its graph); the
    # others, with it still held, were staged
    assert info["error"] is None and info["captures"] == 2 and info["lent"] == 1 and info["staged"] == 2, info
    assert len({state.kv.buffer.data_ptr() for state, _ in held}) == len(held)
    for token in (5, 9):
        for got, expected in held:
            step = graphed.decode_one_token(got, token) - eager.decode_one_token(expected, token)
            assert step.abs().max() <= TOL


def test_block_prefill_graphs_equal_the_eager_prefill():
    """New documents every request (every block a miss), in one padded shape bucket: captured on the second
    request, replayed after; the logits equal an engine without graphs."""
    from types import SimpleNamespace

    model = tiny_model().cuda()
    sinks = BlockSinks(model.config.hidden_size, per_block=2, shared=1).cuda()
    adapter = SimpleNamespace(model=model, sinks=sinks, sinks_per_block=2, shared_sink=1, identity="sinks")
    eager = BlockEngine(model, "tiny", adapter, EngineConfig(cuda_graphs=False))
    graphed = BlockEngine(model, "tiny", adapter)
    for seed in range(4):
        *blocks, query = _blocks([40 + seed, 33, 50 - seed, 9], seed=10 + seed)
        expected = eager.prefill(blocks, query, keep_logits=3).logits
        got = graphed.prefill(blocks, query, keep_logits=3).logits
        assert (got - expected).abs().max() <= TOL, seed
    info = graphed.prefill_graphs.info()
    assert info["error"] is None and info["captures"] >= 1 and info["replays"] >= 2, info


@pytest.mark.parametrize("rows,length", [(3, 2048), (96, 8192)])
def test_static_masked_attention_in_bf16(rows, length):
    """The static steps' matmul attention (fp32 scores from bf16 inputs) against fp32 SDPA."""
    from blockattn.engine import staticops

    staticops.probe_fp32_scores(torch.device("cuda"))
    q = torch.randn(2, 4, rows, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(2, 4, length, 128, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    visible = torch.arange(length, device="cuda").view(1, 1, 1, -1) < torch.randint(1, length, (2, 1, rows, 1),
                                                                                       device="cuda")
    out = staticops.masked_attention(q, k, v, visible, None)
    ref = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=visible)
    assert (out.float() - ref).abs().max() <= 2e-2


def test_flash_lower_right_attention_in_bf16():
    q = torch.randn(1, 32, 64, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, 8, 4096 + 64, 128, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    out, _ = cached_attention(None, q, k, v, None)
    mask = torch.ones(64, k.shape[2], dtype=torch.bool, device="cuda").tril(diagonal=4096)
    ref = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float().repeat_interleave(4, 1),
                                                           v.float().repeat_interleave(4, 1), attn_mask=mask)
    assert (out.float().transpose(1, 2) - ref).abs().max() <= 2e-2


# ---------------------------------------------------------------- issue 10: decode at hardware speed
def _greedy(engine, blocks, query, mode="block", steps=6):
    """Greedy tokens and the logits of every step (prefill's last, then each decoded token's)."""
    state = engine.prefill(blocks, query, mode=mode, max_new_tokens=steps)
    tokens, logits = [], [state.logits[-1]]
    for _ in range(steps):
        tokens.append(int(torch.argmax(logits[-1])))
        logits.append(engine.decode_one_token(state, tokens[-1]))
    return tokens, torch.stack(logits).float()


def test_decode_graph_replay_equals_the_eager_static_step_and_the_plain_decode():
    import gc

    model = tiny_model().cuda()
    *blocks, query = _blocks([40, 25, 9], seed=2)
    plain = BlockEngine(model, "tiny", config=EngineConfig(decode_graphs=False))
    static = BlockEngine(model, "tiny", config=EngineConfig(decode_graphs=True))
    static.decode_graphs.use_graphs = False  # the same step, run eagerly on CUDA
    graphed = BlockEngine(model, "tiny")  # CUDA default: decode graphs on
    assert graphed.decode_graphs is not None and graphed.decode_graphs.use_graphs
    tokens, expected = _greedy(plain, blocks, query)
    for engine in (static, graphed):
        got_tokens, got = _greedy(engine, blocks, query)
        assert got_tokens == tokens
        assert (got - expected).abs().max() <= TOL
    _, eager_static = _greedy(static, blocks, query)
    gc.collect()  # the previous request's buffer goes back to the pool: its graph is replayed, not recaptured
    _, replayed = _greedy(graphed, blocks, query)
    assert (replayed - eager_static).abs().max() <= 1e-6
    info = graphed.decode_graphs.info()
    assert info["error"] is None and info["captures"] == 1 and info["replays"] == 12, info


def test_decode_graph_in_bf16_is_close_to_the_plain_decode():
    model = tiny_model(dtype="bfloat16").cuda()
    *blocks, query = _blocks([300, 100, 20], seed=3)
    _, expected = _greedy(BlockEngine(model, "tiny", config=EngineConfig(decode_graphs=False)), blocks, query)
    graphed = BlockEngine(model, "tiny")
    state = graphed.prefill(blocks, query, max_new_tokens=6)
    tokens = [int(torch.argmax(expected[i])) for i in range(6)]  # teacher-forced: same inputs both ways
    got = torch.stack([state.logits[-1].float()] + [graphed.decode_one_token(state, t).float() for t in tokens])
    assert graphed.decode_graphs.info()["error"] is None
    scale = expected.abs().max()
    assert (got - expected).abs().max() <= 2e-2 * scale + 1e-2


def test_merged_adapter_and_graphs_equal_the_toggled_adapter_on_cuda(tmp_path):
    adapter = _cuda_adapter(tmp_path)
    base = adapter.model.get_base_model()
    *blocks, query = _blocks([17, 30, 8], seed=4)
    fast = BlockEngine(base, "tiny", adapter)  # CUDA defaults: merged adapter, decode graphs
    slow = BlockEngine(base, "tiny", adapter, EngineConfig(merge_adapter=False, decode_graphs=False))
    assert fast.merged and not slow.merged
    for mode in ("block", "full"):
        expected_tokens, expected = _greedy(slow, blocks, query, mode)
        tokens, got = _greedy(fast, blocks, query, mode)
        assert tokens == expected_tokens
        assert (got - expected).abs().max() <= TOL


def test_batched_decode_on_cuda_equals_each_request_alone(tmp_path):
    adapter = _cuda_adapter(tmp_path)
    engine = BlockEngine(adapter.model.get_base_model(), "tiny", adapter)
    requests = [_blocks(lengths, seed=seed) for seed, lengths in enumerate([[9, 14, 5], [300, 3], [7, 7, 7, 2]])]
    alone = [_greedy(engine, blocks, query, steps=4) for *blocks, query in requests]
    states = [engine.prefill(blocks, query, max_new_tokens=4) for *blocks, query in requests]
    for step in range(4):
        tokens = [alone[i][0][step] for i in range(len(requests))]
        logits = engine.decode_batch(states, tokens)
        for i in range(len(requests)):
            assert (logits[i].float() - alone[i][1][step + 1]).abs().max() <= TOL
    info = engine.batch_decoder.info()  # CUDA default: the arena step, replayed from graphs
    assert info["error"] is None and info["captures"] >= 1 and info["replays"] == 4, info


def test_batched_graphs_while_requests_join_and_leave_on_cuda():
    """Graph replays across batch buckets (3 → 2 → 4 rows) equal the eager arena step (fp32)."""
    model = tiny_model().cuda()
    eager = BlockEngine(model, "tiny", config=EngineConfig(decode_graphs=False))
    eager.batch_decoder.use_graphs = False
    graphed = BlockEngine(model, "tiny")
    requests = [_blocks(lengths, seed=seed) for seed, lengths in
                enumerate([[9, 14, 5], [300, 3], [7, 7, 7, 2], [40, 2], [5, 5]])]
    schedule = [[0, 1, 2], [0, 1, 2], [1, 2], [1, 2, 3, 4], [4, 3, 2, 1]]
    results = []
    for engine in (eager, graphed):
        states = [engine.prefill(blocks, query, max_new_tokens=8) for *blocks, query in requests]
        out = [engine.decode_batch([states[i] for i in rows], [7 + i for i in rows]) for rows in schedule]
        results.append(out)
    for a, b in zip(*results):
        assert (a - b).abs().max() <= TOL
    # batch buckets 4, 2, 4 (3, 2 and 4 rows) at one length bucket (request 1's 300 tokens set it): two graphs,
    # the third shape replays the first (this said >= 3 until its first GPU run, 2026-12-02)
    info = graphed.batch_decoder.info()
    assert info["captures"] == 2 and info["replays"] == 5 and info["error"] is None, info


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_block_placement_equals_the_torch_path(dtype):
    from blockattn.attention.rope import RopeSpec
    from blockattn.engine import fused_assemble
    from blockattn.engine.assemble import BlockPlacer
    from blockattn.engine.kvbuffer import SequenceKV

    assert fused_assemble.fused_available(torch.device("cuda"))
    rope = RopeSpec(inv_freq=1.0 / (500000 ** (torch.arange(0, 128, 2).float() / 128)), rotary_dim=128)
    g = torch.Generator().manual_seed(0)
    lengths = [512, 77, 300, 1]
    parts, offset = [], 0
    for n in lengths:  # Llama-8B's KV shape per layer (8 heads × 128), 4 layers
        parts.append((torch.randn(4, 2, 8, n, 128, generator=g).to(dtype).cuda(), 0, offset))
        offset += n
    buffers = []
    for fused in (True, False):
        placer = BlockPlacer(rope, compiled=False, fused=fused)
        kv = SequenceKV(4, 8, 128, offset + 16, dtype, "cuda")
        placer.place(kv, parts)
        assert placer.fused == fused and placer.fused_error is None
        buffers.append(kv.buffer[:, :, :, :offset].float())
    tol = 1e-5 if dtype == torch.float32 else 2e-2 * float(buffers[1].abs().max())
    assert (buffers[0] - buffers[1]).abs().max() <= tol


def test_the_engine_places_blocks_with_the_triton_kernel():
    model = tiny_model().cuda()
    *blocks, query = _blocks([64, 9, 130, 12], seed=5)
    engine = BlockEngine(model, "tiny")
    engine.prefill(blocks, query)
    out = engine.prefill(blocks[::-1], query, keep_logits=len(query)).logits
    assert engine.placer.fused and engine.placer.fused_error is None, engine.info()
    assert (out - _reference(model, blocks[::-1], query)).abs().max() <= TOL


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_fused_layer_ops_compile_and_agree_with_hf_on_cuda(arch, monkeypatch):
    """The engine's default on CUDA: norms, rotary and SwiGLU compiled by torch.compile. They must really
    compile here (no silent fallback) and give HF's logits, in fp32 (to float tolerance) and in bf16, eager
    and through the engine's graph-replayed prefill and decode."""
    import copy

    from blockattn.engine import flashbuffer, fusedops

    for dtype, tol in (("float32", TOL), ("bfloat16", 3e-2)):
        monkeypatch.setattr(fusedops, "_fused", {})  # what compiles below, not what earlier tests compiled
        model = tiny_model(arch, dtype=dtype).cuda()
        plain = copy.deepcopy(model)  # never fused: HF's forwards
        ids = torch.randint(3, 500, (2, 37), device="cuda", generator=torch.Generator("cuda").manual_seed(0))
        assert fusedops.install(model) > 0
        with torch.no_grad(), fusedops.enabled(), fusedops.capturing():  # fused at any length, as in a capture
            expected, got = plain(ids).logits.float(), model(ids).logits.float()
        assert fusedops.FAILED is None, fusedops.FAILED
        assert {fn.__name__ for fn in fusedops._fused} == {"rms_norm", "rotary", "silu_mul"}
        assert (got - expected).abs().max() <= tol * max(1.0, float(expected.abs().max()))
        *blocks, query = _blocks([300, 100, 20], seed=3)
        fused_engine = BlockEngine(model, "tiny", config=EngineConfig(query_flash_from=0))
        plain_engine = BlockEngine(plain, "tiny", config=EngineConfig(fused_ops=False, cuda_graphs=False,
                                                                      decode_graphs=False))
        assert fused_engine.info()["fused_ops"] == {"devices": ["cuda"], "error": None}
        for _ in range(5):  # seen, timed eagerly, captured, replayed: buffers come back from the pool each time
            a = fused_engine.prefill(blocks, query, keep_logits=4, max_new_tokens=4)
            b = plain_engine.prefill(blocks, query, keep_logits=4, max_new_tokens=4)
            scale = max(1.0, float(b.logits.abs().max()))
            assert (a.logits.float() - b.logits.float()).abs().max() <= tol * scale
            token = int(torch.argmax(b.logits[-1]))
            for _ in range(3):
                x, y = fused_engine.decode_one_token(a, token), plain_engine.decode_one_token(b, token)
                assert (x.float() - y.float()).abs().max() <= tol * scale
                token = int(torch.argmax(y))
            del a, b
        assert fused_engine.graphs.info()["replays"] >= 1
        assert flashbuffer.MERGE_ERROR is None, flashbuffer.MERGE_ERROR


def test_an_engine_process_on_cuda_answers_what_the_in_process_engine_answers(tmp_path):
    """`serve --engine-process` on the GPU: the spawned engine initialises CUDA itself (the front end never does)
    and its greedy answers equal those of the same service in this process."""
    import asyncio

    from blockattn.engine.sampling import SamplingParams
    from blockattn.engine.server.engineproc import EngineProcess
    from blockattn.engine.service import Service
    from blockattn.models.tiny import save_tiny_model

    model_dir = save_tiny_model(tmp_path / "tiny")
    load = dict(model=str(model_dir), adapter="none", device="cuda", dtype="float32")
    here = Service.load(**load)
    docs = ["The lighthouse stands on a reef.", "Bees dance to share where food is."]
    expected = here.generate(here.rag_prompt(docs, "Where?"), SamplingParams(), 6).text()
    engine = EngineProcess(load)
    try:
        front = engine.front_service()

        async def ask() -> str:
            pieces: list[str] = []
            generation = engine.prepare(front, front.rag_prompt(docs, "Where?"), SamplingParams(), 6, [])
            await (await engine.submit(generation, pieces.append))
            return "".join(pieces)

        assert asyncio.run(ask()) == expected
    finally:
        engine.close()


def test_requests_prefilled_together_on_cuda_answer_what_each_answers_alone(tmp_path):
    """The server's grouped prefill on CUDA (bf16, packed through flash, graph-replayed): afterwards every
    request's prefill is all cache hits and gives the logits of a cold prefill of that request alone."""
    adapter = load_block_adapter(tiny_model("llama").to("cuda").to(torch.bfloat16), _saved_adapter(tmp_path))
    together = BlockEngine(adapter.model.get_base_model(), "tiny", adapter)
    alone_adapter = load_block_adapter(tiny_model("llama").to("cuda").to(torch.bfloat16), tmp_path / "adapter")
    alone = BlockEngine(alone_adapter.model.get_base_model(), "tiny", alone_adapter)
    assert together.packs_blocks  # so a server groups by default here
    for seed in range(3):  # seen, captured, replayed shapes
        a, b, c, q1, q2 = _blocks([31, 150, 9, 5, 7], seed=seed)
        requests = [([a, b], q1), ([c, b, a], q2)]
        assert together.prefetch([(blocks, q, "block", 4) for blocks, q in requests]) == [2, 1]
        for blocks, q in requests:
            got = together.prefill(blocks, q, max_new_tokens=4, keep_logits=len(q))
            want = alone.prefill(blocks, q, max_new_tokens=4, keep_logits=len(q))
            assert got.computed_blocks == 0
            scale = want.logits.float().abs().max()
            assert (got.logits.float() - want.logits.float()).abs().max() <= 0.02 * scale + 1e-2


def _saved_adapter(tmp_path):
    save_random_block_adapter(tmp_path / "adapter", "llama")
    return tmp_path / "adapter"
