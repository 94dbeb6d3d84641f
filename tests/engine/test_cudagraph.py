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
