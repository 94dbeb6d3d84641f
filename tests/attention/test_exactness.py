"""The exactness tests that anchor everything (GUIDE.md, issue 2), in fp32:

1. block mode with one block == full attention;
2. [B1..Bn, Q] in block mode == each block prefilled alone at position 0, keys re-rotated to their
   offsets, concatenated, then Q forwarded on that cache;
3. full mode (blockattn's attention implementation without a layout) == stock HF SDPA.
"""

import pytest
import torch
from transformers import AutoModelForCausalLM

from blockattn.attention import (BlockSinks, RopeSpec, assemble_cache, block_forward, pack_batch, pack_sequence,
                                 prefill_block, prefill_shared_sink)
from blockattn.models.tiny import ARCHITECTURES, tiny_model

TOL = 1e-4


def random_blocks(lengths, vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]


def cached_query_logits(model, blocks, sinks=None, n_sinks=0):
    """Reference for test 2: every context block alone at position 0, moved, concatenated; then Q."""
    rope = RopeSpec.from_model(model)
    parts, offset = [], 0
    shared = None
    if sinks is not None and sinks.n_shared:
        shared = prefill_shared_sink(model, sinks)
        parts.append((shared, 0))
        offset = shared.length
    for block in blocks[:-1]:
        kv = prefill_block(model, block, sinks, n_sinks, shared_prefix=shared)
        parts.append((kv, offset))
        offset += kv.length
    cache = assemble_cache(model, parts, rope)
    query = torch.tensor([blocks[-1]])
    with torch.no_grad():
        out = model(input_ids=query, position_ids=torch.arange(offset, offset + query.shape[1]).view(1, -1),
                    past_key_values=cache, use_cache=True)
    return out.logits[0], offset


def check_block_mode_equals_cached(model, blocks, sinks=None, n_sinks=0, shared=0):
    ids, layout = pack_sequence(blocks, sinks_per_block=n_sinks, shared_sink=shared)
    with torch.no_grad():
        block_logits = block_forward(model, ids, layout, sinks=sinks).logits[0]
    cached, offset = cached_query_logits(model, blocks, sinks, n_sinks)
    n_query = len(blocks[-1])
    assert offset == int(layout.position_ids[0, -n_query])  # the query sits where the cache ends
    delta = (block_logits[-n_query:] - cached).abs().max().item()
    assert delta <= TOL, delta
    return block_logits


@pytest.mark.parametrize("arch", ARCHITECTURES)
class TestTinyModels:
    def test_one_block_equals_full_attention(self, arch):
        model = tiny_model(arch)
        tokens = random_blocks([57], 500)[0]
        ids, layout = pack_sequence([tokens])
        with torch.no_grad():
            full = model(input_ids=ids).logits
            block = block_forward(model, ids, layout).logits
        assert (full - block).abs().max().item() <= TOL

    def test_block_mode_equals_per_block_prefill_and_rerotated_cache(self, arch):
        model = tiny_model(arch)
        blocks = random_blocks([13, 40, 7, 22, 9], 500)
        block_logits = check_block_mode_equals_cached(model, blocks)
        # and the blocks really are isolated: full attention gives different query logits
        ids = torch.tensor([sum(blocks, [])])
        with torch.no_grad():
            full = model(input_ids=ids).logits[0]
        assert (full[-9:] - block_logits[-9:]).abs().max() > 1e-3

    def test_with_block_sinks_and_shared_sink(self, arch):
        model = tiny_model(arch)
        sinks = BlockSinks(model.config.hidden_size, per_block=3, shared=2)
        blocks = random_blocks([11, 5, 19, 6], 500, seed=1)
        check_block_mode_equals_cached(model, blocks, sinks=sinks, n_sinks=3, shared=2)

    def test_full_mode_is_stock_hf_sdpa(self, arch):
        model = tiny_model(arch)
        stock = AutoModelForCausalLM.from_config(model.config, attn_implementation="sdpa").eval()
        stock.load_state_dict(model.state_dict())
        assert stock.config._attn_implementation == "sdpa"
        ids = torch.tensor(random_blocks([31], 500)[0]).view(1, -1)
        mask = torch.ones_like(ids)
        with torch.no_grad():
            assert torch.equal(model(input_ids=ids).logits, stock(input_ids=ids).logits)
            assert torch.equal(model(input_ids=ids, attention_mask=mask).logits,
                               stock(input_ids=ids, attention_mask=mask).logits)

    def test_padded_batch_equals_each_sequence_alone(self, arch):
        model = tiny_model(arch)
        seqs = [pack_sequence(random_blocks(lengths, 500, seed=s)) for s, lengths in
                enumerate([[5, 9, 4], [12, 3], [2, 2, 2, 7]])]
        ids, layout = pack_batch(seqs)
        with torch.no_grad():
            batched = block_forward(model, ids, layout).logits
            for row, (one_ids, one_layout) in enumerate(seqs):
                alone = block_forward(model, one_ids, one_layout).logits[0]
                n = one_ids.shape[1]
                assert (batched[row, :n] - alone).abs().max().item() <= TOL

    def test_flex_backend_equals_dense_backend(self, arch):
        model = tiny_model(arch)
        ids, layout = pack_sequence(random_blocks([130, 7, 61, 20], 500))
        with torch.no_grad():
            dense = block_forward(model, ids, layout, backend="dense").logits
            flex = block_forward(model, ids, layout, backend="flex").logits
        assert (dense - flex).abs().max().item() <= TOL


@pytest.mark.slow
class TestRealSmolLM2:
    """The same three properties once on the real SmolLM2-135M-Instruct (fp32), on real text."""

    def _blocks(self, tokenizer):
        texts = ["The Bell Rock Lighthouse stands on a reef in the North Sea.",
                 "Marie Curie was born in Warsaw in 1867 and moved to Paris in 1891.",
                 "Honey bees tell each other where food is by dancing.",
                 "Question: Who was born in Warsaw?\nAnswer:"]
        return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

    def test_one_block_equals_full(self, smollm2):
        tokens = sum(self._blocks(smollm2.tokenizer), [])
        ids, layout = pack_sequence([tokens])
        with torch.no_grad():
            full = smollm2.model(input_ids=ids).logits
            block = block_forward(smollm2.model, ids, layout).logits
        assert (full - block).abs().max().item() <= TOL

    def test_block_mode_equals_cached_blocks(self, smollm2):
        check_block_mode_equals_cached(smollm2.model, self._blocks(smollm2.tokenizer))

    def test_full_mode_is_stock_hf(self, smollm2):
        stock = AutoModelForCausalLM.from_pretrained(smollm2.model.name_or_path, attn_implementation="sdpa").eval()
        ids = torch.tensor([sum(self._blocks(smollm2.tokenizer), [])])
        with torch.no_grad():
            assert torch.equal(smollm2.model(input_ids=ids).logits, stock(input_ids=ids).logits)
