"""The engine's CUDA-graph counters in /metrics (`GraphCollector`), and the serving benchmark's per-phase
difference of them. On the CPU the static steps run eagerly: the counters still count."""

from prometheus_client import CollectorRegistry, generate_latest

from blockattn.bench.serve import graph_counts
from blockattn.engine.engine import BlockEngine, EngineConfig
from blockattn.engine.server.metrics import GraphCollector
from blockattn.models.tiny import tiny_model
from tests.engine.test_exactness import random_blocks


def _samples(registry) -> dict[str, float]:
    out = {}
    for line in generate_latest(registry).decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_graph_counters_follow_the_engine():
    engine = BlockEngine(tiny_model(), "tiny", config=EngineConfig(cuda_graphs=True, decode_graphs=True))
    registry = CollectorRegistry()
    registry.register(GraphCollector(engine))
    before = _samples(registry)
    *blocks, query = random_blocks([12, 9, 6], seed=1)
    state = engine.prefill(blocks, query, max_new_tokens=4)
    for token in (5, 6, 7):
        engine.decode_one_token(state, token)
    after = _samples(registry)
    assert after['blockattn_graph_eager_steps_total{kind="decode"}'] == 3  # CPU: the static step, eagerly
    assert after['blockattn_graph_failed{kind="query"}'] == 0
    counts = graph_counts(before, after)
    assert counts["decode"] == {"captures": 0.0, "replays": 0.0, "eager_steps": 3.0}
    assert set(counts) == {"query", "prefill", "decode"}  # no arena on the CPU by default
