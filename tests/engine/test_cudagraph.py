"""The shared capture helper (`engine.cudagraph`): where CUDA graphs cannot be captured, nothing raises."""

import pytest
import torch

from blockattn.engine.cudagraph import GraphCache


@pytest.mark.skipif(torch.cuda.is_available(), reason="the failure path: a machine without CUDA")
def test_a_failed_capture_is_recorded_and_returns_nothing():
    cache: GraphCache[tuple] = GraphCache(max_graphs=2, what="test")
    calls = []
    entry = cache.capture(("k",), torch.device("cpu"), lambda: calls.append(1), lambda graph, out: (graph, out))
    assert entry is None and cache.error and len(cache) == 0 and cache.captures == 0
    assert cache.get(("k",)) is None


def test_drop_where_forgets_the_matching_entries_only():
    cache: GraphCache[str] = GraphCache(max_graphs=4, what="test")
    for key in [(1, "a"), (2, "a"), (3, "b")]:
        cache._entries[key] = str(key)  # what a capture keeps (captures need CUDA)
    assert cache.drop_where(lambda key: key[1] == "a") == 2
    assert len(cache) == 1 and cache.get((3, "b")) == "(3, 'b')" and cache.get((1, "a")) is None
