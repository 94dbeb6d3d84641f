"""Per-token KL(full ‖ block) on a tiny random model."""

import torch

from blockattn.attention.sinks import BlockSinks
from blockattn.eval.blockkl import token_kl
from blockattn.eval.variants import Variant, zero_shot_block
from blockattn.models.tiny import tiny_model


def blocks_of(*lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, 500, (n,), generator=g).tolist() for n in lengths]


class TestTokenKL:
    def test_one_block_is_full_attention(self):
        result = token_kl(zero_shot_block(tiny_model(seed=1)), blocks_of(40))
        assert len(result.kl) == 40 and max(result.kl) < 1e-4

    def test_first_block_matches_full_and_later_blocks_differ(self):
        result = token_kl(zero_shot_block(tiny_model(seed=1)), blocks_of(20, 20, 10))
        assert result.block_of == [0] * 20 + [1] * 20 + [2] * 10
        # the first block sees exactly what full attention sees; the second misses the first
        assert result.mean({0}) < 1e-4 < result.mean({1})

    def test_sinks_are_not_counted_as_tokens(self):
        model = tiny_model(seed=1)
        sinks = BlockSinks(model.config.hidden_size, per_block=2)
        variant = Variant("sinks", "block", model, sinks, sinks_per_block=2)
        assert len(token_kl(variant, blocks_of(12, 8)).kl) == 20
