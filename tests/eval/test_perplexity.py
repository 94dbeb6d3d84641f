"""ΔPPL(block − full) on query blocks: zero where block attention changes nothing, the full reference always
the base model."""

import pytest

from blockattn.distill.rows import eval_rows, row_budget
from blockattn.distill.sources import synthetic_corpus
from blockattn.eval.perplexity import delta_perplexity
from blockattn.eval.variants import full_attention, zero_shot_block
from blockattn.models.tiny import tiny_model


def corpus():
    return synthetic_corpus(n_texts=6, tokens_per_text=200, vocab_size=512, block_tokens=30, seed=0)


def test_one_context_block_costs_nothing():
    """With a single context block the query sees exactly what full attention shows it."""
    model, c = tiny_model(initializer_range=0.2), corpus()
    rows = eval_rows(c, *row_budget(50, 0, 0), query_tokens=16, max_rows=6)
    assert rows and all(len(r.spans) == 2 for r in rows)
    result = delta_perplexity(zero_shot_block(model), c, rows, width=50, pad_id=0)
    assert result.delta_ppl == pytest.approx(0.0, abs=1e-4) and result.tokens == 15 * len(rows)


def test_several_blocks_cost_perplexity_in_zero_shot_block_mode():
    model, c = tiny_model(initializer_range=0.2), corpus()
    rows = eval_rows(c, *row_budget(160, 0, 0), query_tokens=32, max_rows=6)
    result = delta_perplexity(zero_shot_block(model), c, rows, width=160, pad_id=0, batch_size=4)
    assert result.rows == len(rows) and abs(result.delta_ppl) > 1e-3
    assert result.ppl_block == pytest.approx(result.ppl_full + result.delta_ppl)


def test_full_attention_is_no_block_variant():
    with pytest.raises(ValueError):
        delta_perplexity(full_attention(tiny_model()), corpus(), [], width=64, pad_id=0)
