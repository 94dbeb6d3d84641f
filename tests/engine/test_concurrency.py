"""Concurrent requests that share blocks compute each block once, and all get the exact answer."""

from concurrent.futures import ThreadPoolExecutor

import torch

from blockattn.engine import engine as engine_module
from blockattn.engine.engine import BlockEngine
from blockattn.models.tiny import tiny_model


def test_threads_sharing_blocks_compute_each_once(monkeypatch):
    model = tiny_model()
    g = torch.Generator().manual_seed(0)
    shared = [torch.randint(3, 500, (n,), generator=g).tolist() for n in (30, 12, 25)]
    engine = BlockEngine(model, "tiny")
    computed_blocks = []
    real = engine_module.prefill_blocks

    def counting(model, blocks, *args, **kwargs):
        computed_blocks.extend(tuple(b) for b in blocks)
        return real(model, blocks, *args, **kwargs)

    monkeypatch.setattr(engine_module, "prefill_blocks", counting)
    requests = [(shared[i % 3:] + shared[:i % 3], [40 + i, 41, 42]) for i in range(12)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda r: engine.prefill(*r, keep_logits=3), requests))
    assert sorted(computed_blocks) == sorted(set(computed_blocks)) and len(computed_blocks) == 3
    assert sum(r.computed_blocks for r in results) == 3
    assert all(r.cached_blocks + r.computed_blocks == 3 for r in results)
    fresh = BlockEngine(model, "tiny")  # the same answers without any concurrency
    for (blocks, query), result in zip(requests, results):
        assert torch.allclose(result.logits, fresh.prefill(blocks, query, keep_logits=3).logits, atol=1e-5)
