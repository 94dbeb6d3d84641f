"""Prefilling the missing blocks of several requests together (`BlockEngine.prefetch`, what a server does for the
requests it admits at once): afterwards each request's prefill finds every block cached and answers exactly as
alone, each computed block is counted once, for the first request that needed it, and a request the engine would
refuse takes no part."""

import numpy as np
import pytest

from blockattn.engine.engine import BlockEngine
from blockattn.models.tiny import tiny_model
from tests.engine.test_exactness import assert_close, make_adapter, random_blocks, reference_logits


def test_requests_prefilled_together_then_answer_from_the_cache_exactly(tmp_path):
    adapter = make_adapter(tmp_path, "llama")
    engine = BlockEngine(adapter.model.get_base_model(), "tiny", adapter)
    a, b, c, d, q1, q2 = random_blocks([13, 40, 7, 22, 5, 6], seed=4)
    engine.prefill([d], q1)  # d is cached before the group arrives
    counts = engine.prefetch([([a, b, d], q1, "block", 4), ([b, c, a], q2, "block", 4)])
    assert counts == [2, 1]  # a, b for the first; c for the second; d was cached
    assert engine.store.computed == 5  # with d and the shared sink
    for blocks, query in (([a, b, d], q1), ([b, c, a], q2)):
        out = engine.prefill(blocks, query, keep_logits=len(query))
        assert (out.cached_blocks, out.computed_blocks) == (3, 0)
        assert_close(out.logits, reference_logits(adapter.model, blocks, query, adapter.sinks, 3, 2))
    assert engine.store.computed == 5  # nothing computed twice


def test_requests_the_engine_would_refuse_take_no_part():
    engine = BlockEngine(tiny_model("llama"), "tiny")
    a, b, c, q = random_blocks([9, 11, 8, 4], seed=5)
    too_long = [np.arange(3, 3 + engine.max_positions)]
    out_of_vocab = [[engine.vocab_size + 7]]
    counts = engine.prefetch([(out_of_vocab + [a], q, "block", 1), ([b], q, "full", 1), (too_long, q, "block", 1),
                              ([c], q, "block", 1)])
    assert counts == [0, 0, 0, 1] and engine.store.computed == 1
    assert engine.prefetch([]) == [] and engine.prefetch([([c], q, "block", 1)]) == [0]


@pytest.mark.parametrize("shared", [True, False])
def test_a_group_counts_each_request_as_it_would_have_counted_alone(tiny_dir, shared):
    """Usage stays honest: what the group computed for a request is its computed blocks, not cached ones."""
    from blockattn.engine.sampling import SamplingParams
    from blockattn.engine.service import Service, prefill_together

    docs = ["The lighthouse stands on a reef.", "Bees dance to share where food is.", "Curie was born in Warsaw."]
    asks = [(docs[:2], "Where?"), (docs[1:], "Who?"), (docs, "What?")]

    def run(together: bool):
        service = Service.load(str(tiny_dir), adapter="none", device="cpu")
        generations = [service.generate(service.rag_prompt(d, q), SamplingParams(), 5) for d, q in asks]
        if together:
            prefill_together(generations, always=True)  # on the CPU, by default, it leaves the work alone
        texts = [g.text() for g in generations]
        return texts, [(g.usage.cached_blocks, g.usage.computed_blocks) for g in generations], generations

    alone_texts, alone_usage, _ = run(False)
    texts, usage, generations = run(True)
    assert texts == alone_texts and usage == alone_usage
    # the instruction prefix block + 3 documents, each computed once, by its first request
    assert [u[1] for u in usage] == [3, 1, 0]
    assert all("group_blocks" in g.usage.timings_ms for g in generations)
