"""The engine's anchor: cached block K/V + query == the uncached block-mode forward (fp32, 1e-4), for the
query block's logits and for every decoded token -- cold or cached, any order and offset, with per-block and
shared sinks and a LoRA block adapter; full mode == plain causal attention with the adapter off."""

import pytest
import torch

from blockattn.adapter import load_block_adapter, save_block_adapter
from blockattn.attention import BlockSinks, block_forward, pack_sequence
from blockattn.engine.engine import BlockEngine, EngineConfig
from blockattn.engine.sampling import SamplingParams
from blockattn.models.tiny import ARCHITECTURES, save_random_block_adapter, tiny_model

TOL = 1e-4


def random_blocks(lengths, vocab=500, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]


def reference_logits(model, blocks, query, sinks=None, n_sinks=0, n_shared=0):
    """Uncached block mode: one block-attention forward over [blocks..., query]; logits of the query tokens."""
    ids, layout = pack_sequence([*blocks, query], sinks_per_block=n_sinks, shared_sink=n_shared)
    with torch.no_grad():
        return block_forward(model, ids, layout, sinks=sinks).logits[0, -len(query):]


def assert_close(a, b):
    delta = (a - b).abs().max().item()
    assert delta <= TOL, delta


def make_adapter(tmp_path, arch, n_sinks=3, n_shared=2, device="cpu"):
    """A block adapter with random (non-zero) LoRA weights and sinks, saved and loaded like a shipped one
    (onto a fresh base model on `device`)."""
    save_random_block_adapter(tmp_path / "adapter", arch, n_sinks, n_shared)
    return load_block_adapter(tiny_model(arch).to(device), tmp_path / "adapter")


@pytest.mark.parametrize("arch", ARCHITECTURES)
class TestCachedEqualsUncached:
    def test_cold_then_cached(self, arch):
        model = tiny_model(arch)
        *blocks, query = random_blocks([13, 40, 7, 22, 9])
        engine = BlockEngine(model, "tiny")
        ref = reference_logits(model, blocks, query)
        cold = engine.prefill(blocks, query, keep_logits=len(query))
        assert (cold.cached_blocks, cold.computed_blocks) == (0, 4)
        assert_close(cold.logits, ref)
        warm = engine.prefill(blocks, query, keep_logits=len(query))
        assert (warm.cached_blocks, warm.computed_blocks) == (4, 0)
        assert_close(warm.logits, ref)

    def test_any_order_and_offset(self, arch):
        model = tiny_model(arch)
        a, b, c, d, query = random_blocks([17, 5, 31, 12, 6], seed=2)
        engine = BlockEngine(model, "tiny")
        engine.prefill([a, b, c], query)
        for order in ([c, a, b], [b, c, a], [a, d, c]):  # cached blocks moved to new offsets, one new block
            out = engine.prefill(order, query, keep_logits=len(query))
            assert_close(out.logits, reference_logits(model, order, query))
        assert engine.store.computed == 4

    def test_duplicate_and_empty_blocks(self, arch):
        model = tiny_model(arch)
        a, b, query = random_blocks([9, 14, 5], seed=3)
        engine = BlockEngine(model, "tiny")
        out = engine.prefill([a, [], b, a], query, keep_logits=len(query))
        assert (out.cached_blocks, out.computed_blocks) == (1, 2)  # `a` twice: computed once, reused once
        assert_close(out.logits, reference_logits(model, [a, b, a], query))

    def test_sinks_shared_sink_and_lora_adapter(self, arch, tmp_path):
        adapter = make_adapter(tmp_path, arch)
        *blocks, query = random_blocks([11, 5, 19, 6], seed=1)
        engine = BlockEngine(adapter.model.get_base_model(), "tiny", adapter)
        ref = reference_logits(adapter.model, blocks, query, adapter.sinks, 3, 2)
        for expected_computed in (3, 0):
            out = engine.prefill(blocks, query, keep_logits=len(query))
            assert out.computed_blocks == expected_computed
            assert_close(out.logits, ref)
        reordered = blocks[::-1]
        out = engine.prefill(reordered, query, keep_logits=len(query))
        assert_close(out.logits, reference_logits(adapter.model, reordered, query, adapter.sinks, 3, 2))

    def test_full_mode_is_causal_attention_with_the_adapter_off(self, arch, tmp_path):
        adapter = make_adapter(tmp_path, arch)
        base = adapter.model.get_base_model()
        *blocks, query = random_blocks([8, 12, 5], seed=4)
        engine = BlockEngine(base, "tiny", adapter)
        ids = torch.tensor([sum(blocks, []) + query])
        with torch.no_grad(), adapter.model.disable_adapter():
            ref = adapter.model(input_ids=ids).logits[0, -len(query):]
        out = engine.prefill(blocks, query, mode="full", keep_logits=len(query))
        assert_close(out.logits, ref)
        assert out.computed_blocks == out.cached_blocks == 0

    def test_a_fully_fine_tuned_student_serves_block_mode_and_the_base_full_mode(self, arch, tmp_path):
        # LoRA rank 0 (full fine-tuning) saves the student's weights in model/: block mode must run them,
        # full mode the untouched base, and the adapter's identity must change with those weights
        from blockattn.adapter import adapter_identity

        base, student = tiny_model(arch), tiny_model(arch)
        with torch.no_grad():
            for p in student.parameters():
                p.add_(0.05 * torch.randn_like(p))
        sinks = BlockSinks(student.config.hidden_size, per_block=2, shared=1)
        out_dir = save_block_adapter(tmp_path / "full", student, sinks, 2, 1)
        student.save_pretrained(str(out_dir / "model"))
        first = adapter_identity(out_dir)
        adapter = load_block_adapter(base, out_dir)
        assert adapter.model is not base
        *blocks, query = random_blocks([9, 15, 6], seed=7)
        engine = BlockEngine(base, "tiny", adapter)
        block = engine.prefill(blocks, query, keep_logits=len(query))
        assert_close(block.logits, reference_logits(student, blocks, query, adapter.sinks, 2, 1))
        full = engine.prefill(blocks, query, mode="full", keep_logits=len(query))
        with torch.no_grad():
            assert_close(full.logits, base(input_ids=torch.tensor([sum(blocks, []) + query])).logits[0, -len(query):])
        with torch.no_grad():
            next(student.parameters()).add_(1.0)
        student.save_pretrained(str(out_dir / "model"))
        assert adapter_identity(out_dir) != first

    def test_decoding_continues_the_block_mode_sequence(self, arch):
        model = tiny_model(arch)
        *blocks, query = random_blocks([10, 21, 4], seed=5)
        engine = BlockEngine(model, "tiny")
        engine.prefill(blocks, query)  # so the generation below runs on cached blocks
        state = engine.prefill(blocks, query, max_new_tokens=6)
        tokens = list(engine.generate(state, SamplingParams(), 6))
        assert state.finish_reason == "length" and len(tokens) == 6
        # reference: the generated tokens are part of the query block; recompute everything uncached
        expected, logits = [], reference_logits(model, blocks, query)[-1]
        for _ in range(6):
            expected.append(int(torch.argmax(logits)))
            logits = reference_logits(model, blocks, query + expected)[-1]
        assert tokens == expected
        state = engine.prefill(blocks, query, max_new_tokens=3)
        for token in expected[:3]:
            step = engine.decode_one_token(state, token)
        assert_close(step, reference_logits(model, blocks, query + expected[:3])[-1])


def test_stop_token_ends_generation():
    model = tiny_model()
    *blocks, query = random_blocks([6, 5])
    engine = BlockEngine(model, "tiny")
    first = int(torch.argmax(engine.prefill(blocks, query).logits[-1]))
    state = engine.prefill(blocks, query, max_new_tokens=5)
    assert list(engine.generate(state, SamplingParams(), 5, stop_ids={first})) == []
    assert state.finish_reason == "stop"


@pytest.mark.slow
def test_compiled_rotation_equals_eager():
    """The fused (torch.compile) key rotation used on CUDA, run here through Inductor's CPU backend."""
    model = tiny_model()
    *blocks, query = random_blocks([13, 40, 7, 9], seed=6)
    eager = BlockEngine(model, "tiny", config=EngineConfig(compile_rotation=False))
    fused = BlockEngine(model, "tiny", config=EngineConfig(compile_rotation=True))
    a = eager.prefill(blocks, query, keep_logits=len(query)).logits
    b = fused.prefill(blocks, query, keep_logits=len(query)).logits
    assert fused.placer.compiled, "compilation fell back to eager"
    assert_close(a, b)
    assert_close(b, reference_logits(model, blocks, query))


@pytest.mark.slow
def test_real_smollm2_cached_equals_uncached(smollm2):
    from blockattn.engine.prompt import build_prompt

    docs = ["The Bell Rock Lighthouse stands on a reef in the North Sea.",
            "Marie Curie was born in Warsaw in 1867 and moved to Paris in 1891.",
            "Honey bees tell each other where food is by dancing."]
    prompt = build_prompt(smollm2.tokenizer, docs, "Who was born in Warsaw?")
    blocks, query = [prompt.prefix, *prompt.documents], prompt.query
    engine = BlockEngine(smollm2.model, smollm2.identity)
    ref = reference_logits(smollm2.model, blocks, query)
    assert_close(engine.prefill(blocks, query, keep_logits=len(query)).logits, ref)
    cached = engine.prefill(blocks[::-1], query, keep_logits=len(query))  # every block cached, moved
    assert cached.computed_blocks == 0
    assert_close(cached.logits, reference_logits(smollm2.model, blocks[::-1], query))


def test_attention_falls_back_to_a_materialised_mask(monkeypatch):
    from blockattn.engine import attention

    q, k, v = torch.randn(1, 4, 3, 16), torch.randn(1, 2, 10, 16), torch.randn(1, 2, 10, 16)
    expected, _ = attention.cached_attention(None, q, k, v, None)

    def no_kernel(*args):
        raise RuntimeError("no kernel for these inputs")

    monkeypatch.setattr(attention, "causal_lower_right", no_kernel)
    monkeypatch.setattr(attention, "_bias_dispatch_ok", True)
    fallback, _ = attention.cached_attention(None, q, k, v, None)
    assert not attention._bias_dispatch_ok
    assert (fallback - expected).abs().max() <= 1e-6


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_batched_decode_step_equals_each_request_decoded_alone(arch, tmp_path):
    """Requests of different lengths, cached and cold, with an adapter and sinks, decoded together: each row's
    logits == that request's uncached block-mode reference, and its KV grows exactly as if decoded alone."""
    adapter = make_adapter(tmp_path, arch)
    engine = BlockEngine(adapter.model, "tiny", adapter)
    requests = [random_blocks(lengths, seed=seed) for seed, lengths in enumerate([[9, 14, 5], [30, 3], [7, 7, 7, 2]])]
    states = [engine.prefill(blocks, query, max_new_tokens=4) for *blocks, query in requests]
    generated, prompt_lengths = [[] for _ in requests], [s.kv.length for s in states]
    for _ in range(3):
        tokens = [int(torch.argmax(s.logits[-1])) for s in states]
        logits = engine.decode_batch(states, tokens)
        for i, ((*blocks, query), token) in enumerate(zip(requests, tokens)):
            generated[i].append(token)
            states[i].logits = logits[i:i + 1]
            assert_close(logits[i], reference_logits(adapter.model, blocks, query + generated[i], adapter.sinks,
                                                     3, 2)[-1])
    assert [s.kv.length for s in states] == [n + 3 for n in prompt_lengths]


def test_a_batch_is_one_mode():
    engine = BlockEngine(tiny_model(), "tiny")
    *blocks, query = random_blocks([5, 4])
    states = [engine.prefill(blocks, query, max_new_tokens=2), engine.prefill(blocks, query, mode="full",
                                                                              max_new_tokens=2)]
    with pytest.raises(ValueError, match="one mode"):
        engine.decode_batch(states, [1, 2])
