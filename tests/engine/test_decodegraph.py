"""The static decode step (the code a CUDA graph captures) run eagerly on the CPU == the plain decode, the merged
adapter == the toggled one, and buffers drawn from the pool come back clean. The graph replay itself is
tested on CUDA (tests/engine/test_gpu.py)."""

import gc

import pytest
import torch

from blockattn.engine.attention import CUDA_SDPA_BACKENDS, sdpa_backends
from blockattn.engine.engine import BlockEngine, EngineConfig
from blockattn.engine.kvbuffer import BufferPool, SequenceKV, bucket_capacity
from blockattn.engine.sampling import SamplingParams
from blockattn.models.tiny import ARCHITECTURES, tiny_model
from tests.engine.test_exactness import make_adapter, random_blocks, reference_logits

TOL = 1e-4


def _decode(engine, blocks, query, mode, steps=5):
    """Greedy tokens and the logits of every step."""
    state = engine.prefill(blocks, query, mode=mode, max_new_tokens=steps)
    tokens, logits = [], [state.logits[-1]]
    for _ in range(steps):
        tokens.append(int(torch.argmax(logits[-1])))
        logits.append(engine.decode_one_token(state, tokens[-1]))
    return tokens, torch.stack(logits)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("mode", ["block", "full"])
def test_static_step_equals_the_plain_decode(arch, mode, tmp_path):
    adapter = make_adapter(tmp_path, arch)
    *blocks, query = random_blocks([12, 30, 5, 7], seed=3)
    base = adapter.model.get_base_model()
    plain = BlockEngine(base, "tiny", adapter, EngineConfig(decode_graphs=False, merge_adapter=False))
    static = BlockEngine(base, "tiny", adapter, EngineConfig(decode_graphs=True, merge_adapter=False))
    expected_tokens, expected = _decode(plain, blocks, query, mode)
    tokens, logits = _decode(static, blocks, query, mode)
    assert tokens == expected_tokens
    assert (logits - expected).abs().max() <= TOL
    assert static.decode_graphs.info()["eager_steps"] == 5 and static.decode_graphs.info()["captures"] == 0


def test_static_step_matches_the_uncached_reference():
    model = tiny_model()
    *blocks, query = random_blocks([9, 17, 6], seed=4)
    engine = BlockEngine(model, "tiny", config=EngineConfig(decode_graphs=True))
    tokens = list(engine.generate(engine.prefill(blocks, query, max_new_tokens=4), SamplingParams(), 4))
    state = engine.prefill(blocks, query, max_new_tokens=4)
    for token in tokens[:3]:
        logits = engine.decode_one_token(state, token)
    assert (logits - reference_logits(model, blocks, query + tokens[:3])[-1]).abs().max() <= TOL


def test_static_step_with_the_mask_hf_builds_while_capturing(monkeypatch):
    """During CUDA-graph capture HF sees `is_tracing()` and builds a causal mask over the whole buffer; the
    step ignores it, and must still run and agree."""
    import transformers.masking_utils as masking_utils

    model = tiny_model()
    *blocks, query = random_blocks([10, 4], seed=6)
    engine = BlockEngine(model, "tiny", config=EngineConfig(decode_graphs=True))
    _, expected = _decode(engine, blocks, query, "block", steps=3)
    monkeypatch.setattr(masking_utils, "is_tracing", lambda *a, **k: True)
    _, logits = _decode(engine, blocks, query, "block", steps=3)
    assert (logits - expected).abs().max() <= TOL


def test_a_full_buffer_is_refused():
    engine = BlockEngine(tiny_model(), "tiny", config=EngineConfig(decode_graphs=True))
    state = engine.prefill([], list(range(5, 5 + 256)), max_new_tokens=0)  # bucketed capacity 256: full
    assert state.kv.capacity == 256
    with pytest.raises(ValueError, match="KV buffer full"):
        engine.decode_one_token(state, 7)


class TestMergedAdapter:
    @pytest.mark.parametrize("arch", ARCHITECTURES)
    def test_merged_equals_toggled_in_both_modes(self, arch, tmp_path):
        adapter = make_adapter(tmp_path, arch)
        *blocks, query = random_blocks([8, 20, 6], seed=7)
        toggled = BlockEngine(adapter.model.get_base_model(), "tiny", adapter, EngineConfig(merge_adapter=False))
        merged = BlockEngine(adapter.model.get_base_model(), "tiny", adapter, EngineConfig(merge_adapter=True))
        assert merged.merged and not toggled.merged
        for mode in ("block", "full"):
            expected_tokens, expected = _decode(toggled, blocks, query, mode)
            tokens, logits = _decode(merged, blocks, query, mode)
            assert tokens == expected_tokens
            assert (logits - expected).abs().max() <= TOL

    def test_block_mode_without_lora_is_not_copied(self):
        model = tiny_model()
        engine = BlockEngine(model, "tiny", config=EngineConfig(merge_adapter=True))
        assert engine.block_model is model and not engine.merged


class TestBufferPool:
    def test_bucketed_capacities(self):
        assert bucket_capacity(1) == bucket_capacity(256) == 256
        for n in (257, 1000, 1500, 3000, 5000, 33000):
            c = bucket_capacity(n)
            assert n <= c <= 1.25 * n + 256
        assert len({bucket_capacity(n) for n in range(2000, 4000)}) <= 5

    def test_a_freed_buffer_serves_the_next_request_with_a_clean_tail(self):
        engine = BlockEngine(tiny_model(), "tiny", config=EngineConfig(decode_graphs=True))
        *blocks, query = random_blocks([10, 5], seed=8)
        _, expected = _decode(engine, blocks, query, "block", steps=3)
        state = engine.prefill(blocks, query, max_new_tokens=3)
        address = state.kv.buffer.data_ptr()
        state.kv.buffer.fill_(float("nan"))  # what a reused buffer might hold
        del state
        gc.collect()
        _, logits = _decode(engine, blocks, query, "block", steps=3)
        assert engine.pool.hits >= 1
        assert (logits - expected).abs().max() <= TOL  # NaNs in the masked tail would poison every row
        state = engine.prefill(blocks, query, max_new_tokens=3)
        assert state.kv.buffer.data_ptr() == address

    def test_the_pool_is_bounded(self):
        pool = BufferPool(max_bytes=1000, per_shape=1)
        kvs = [SequenceKV(1, 1, 4, 8, torch.float32, "cpu", pool=pool) for _ in range(3)]  # 256 bytes each
        del kvs
        gc.collect()
        assert pool.info()["free_bytes"] == 256


def test_the_engine_never_allows_cudnn_attention():
    assert torch.nn.attention.SDPBackend.CUDNN_ATTENTION not in CUDA_SDPA_BACKENDS
    assert torch.nn.attention.SDPBackend.MATH in CUDA_SDPA_BACKENDS  # any shape still runs
    with sdpa_backends(torch.device("cpu")):  # the CPU keeps torch's own choice
        pass


def test_pool_budget_defaults_to_what_a_long_request_needs_on_cuda(monkeypatch):
    """The pool's budget: as configured; else 4 GiB on the CPU, and on CUDA a tenth of the device (a 32k
    request of the Llama-8B shape is 5.4 GB: under a 4 GiB budget its buffer, and so its query graph, never
    recurred)."""
    from types import SimpleNamespace

    from blockattn.engine import engine

    assert engine.pool_bytes(123, torch.device("cpu")) == 123
    assert engine.pool_bytes(None, torch.device("cpu")) == 4 * engine.GiB
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: SimpleNamespace(total_memory=140 * engine.GiB))
    assert engine.pool_bytes(None, torch.device("cuda")) == 14 * engine.GiB
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: SimpleNamespace(total_memory=16 * engine.GiB))
    assert engine.pool_bytes(None, torch.device("cuda")) == 4 * engine.GiB
