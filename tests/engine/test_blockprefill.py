"""Batched block prefill == one block at a time (`attention.kv.prefill_block`), sinks and shared sink included."""

import torch

from blockattn.attention import BlockSinks, prefill_block, prefill_shared_sink
from blockattn.engine.blockprefill import batches_by_tokens, prefill_blocks
from blockattn.models.tiny import tiny_model


def test_batches_respect_the_padded_token_budget():
    lengths = [5, 100, 30, 30, 7, 64]
    batches = batches_by_tokens(lengths, 128)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 128


def test_batched_equals_one_at_a_time_with_sinks():
    model = tiny_model()
    sinks = BlockSinks(model.config.hidden_size, per_block=2, shared=3)
    g = torch.Generator().manual_seed(0)
    blocks = [torch.randint(3, 500, (n,), generator=g).tolist() for n in (9, 1, 23, 9, 4)]
    batched = prefill_blocks(model, blocks, sinks, n_sinks=2, n_shared=3, max_batch_tokens=40)
    shared = prefill_shared_sink(model, sinks)
    for block, kv in zip(blocks, batched):
        alone = prefill_block(model, block, sinks, 2, shared_prefix=shared)
        assert kv.shape == (2, 2, 2, 2 + len(block), 16)  # (layers, K/V, kv heads, sinks + tokens, head dim)
        for layer in range(2):
            assert (kv[layer, 0] - alone.keys[layer][0]).abs().max() <= 1e-5
            assert (kv[layer, 1] - alone.values[layer][0]).abs().max() <= 1e-5


class _ReplayedEagerly:
    """Stands in for a CUDA graph on the CPU: a replay runs the captured step again into its static output."""

    def __init__(self, step, output):
        self.step, self.output = step, output

    def replay(self):
        self.output.copy_(self.step())


def test_bucketed_graph_batches_equal_the_eager_ones(monkeypatch):
    """The graph path pads each batch to a bucketed (count, length) and reads the real rows back: the padding
    rows and columns change nothing. Graphs are replaced by eager re-runs (the capture itself runs on CUDA:
    tests/engine/test_gpu.py)."""
    from blockattn.engine import blockprefill
    from blockattn.engine.cudagraph import GraphCache

    def fake_capture(self, key, device, step, wrap):
        output = step()
        self._entries[key] = entry = wrap(_ReplayedEagerly(step, output), output)
        self.captures += 1
        return entry

    monkeypatch.setattr(blockprefill, "SUPPORTS_CUDA_GRAPHS", True)
    monkeypatch.setattr(GraphCache, "capture", fake_capture)
    model = tiny_model()
    sinks = BlockSinks(model.config.hidden_size, per_block=2, shared=3)
    g = torch.Generator().manual_seed(1)
    blocks = [torch.randint(3, 500, (n,), generator=g).tolist() for n in (9, 1, 23, 9, 4)]
    expected = prefill_blocks(model, blocks, sinks, n_sinks=2, n_shared=3, max_batch_tokens=40)
    graphs = blockprefill.PrefillGraphs(use_graphs=True)
    for _ in range(3):  # seen, captured, replayed
        got = prefill_blocks(model, blocks, sinks, n_sinks=2, n_shared=3, max_batch_tokens=40, graphs=graphs)
        for a, b in zip(expected, got):
            assert a.shape == b.shape and (a - b).abs().max() <= 1e-5
    assert graphs.info()["captures"] >= 1 and graphs.info()["replays"] >= 1


def _replay_captures_eagerly(monkeypatch):
    """CUDA graphs on the CPU, for the bookkeeping around them: a "capture" runs the step once and its
    "replay" reruns it into the same output tensors (what a real replay does to them)."""
    from blockattn.engine import blockprefill
    from blockattn.engine.cudagraph import GraphCache

    def fake_capture(self, key, device, step, wrap):
        output = step()
        self._entries[key] = entry = wrap(_ReplayedEagerly(step, output), output)
        self.captures += 1
        return entry

    monkeypatch.setattr(blockprefill, "SUPPORTS_CUDA_GRAPHS", True)
    monkeypatch.setattr(GraphCache, "capture", fake_capture)


def test_graph_results_survive_the_next_replay(monkeypatch):
    """One block filling its bucket exactly (no sinks): the slice of the graph's output is contiguous, and
    must still be a copy -- the next replay overwrites the output."""
    from blockattn.engine import blockprefill

    _replay_captures_eagerly(monkeypatch)
    model = tiny_model()
    graphs = blockprefill.PrefillGraphs(use_graphs=True)
    g = torch.Generator().manual_seed(2)
    blocks = [torch.randint(3, 500, (32,), generator=g).tolist() for _ in range(4)]
    kept = [prefill_blocks(model, [b], graphs=graphs)[0] for b in blocks]  # seen, captured, replayed, replayed
    for block, kv in zip(blocks, kept):
        assert (kv - prefill_blocks(model, [block])[0]).abs().max() <= 1e-5


def test_bucketed_batches_keep_lengths_together():
    from blockattn.engine.blockprefill import batches_by_bucket, bucket_pow2

    lengths = [400, 40, 35, 130, 33, 500, 60, 31]
    batches = batches_by_bucket(lengths, 10_000)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len({bucket_pow2(lengths[i], 32) for i in batch}) == 1
    assert len(batches) == 4  # buckets 32 (31), 64 (40, 35, 33, 60), 256 (130), 512 (400, 500)


def test_a_graph_is_not_shared_by_two_sink_sets(monkeypatch):
    """Same model, same shape, other sinks: a graph replays reads of the sinks it was captured with, so the
    other sinks get their own graph (their K/V equal the eager ones)."""
    from blockattn.engine import blockprefill

    _replay_captures_eagerly(monkeypatch)
    model = tiny_model()
    graphs = blockprefill.PrefillGraphs(use_graphs=True)
    g = torch.Generator().manual_seed(3)
    blocks = [torch.randint(3, 500, (20,), generator=g).tolist()]
    torch.manual_seed(0)
    first, second = (BlockSinks(model.config.hidden_size, per_block=2) for _ in range(2))
    for _ in range(2):  # seen, then captured with `first`
        prefill_blocks(model, blocks, first, n_sinks=2, graphs=graphs)
    for _ in range(2):
        got = prefill_blocks(model, blocks, second, n_sinks=2, graphs=graphs)[0]
        assert (got - prefill_blocks(model, blocks, second, n_sinks=2)[0]).abs().max() <= 1e-5
