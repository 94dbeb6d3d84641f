"""Prometheus metrics of the server (`GET /metrics`), in a registry of its own (one per app).

    blockattn_requests_total{endpoint,status}      HTTP requests by route and status code
    blockattn_ttft_seconds                         request arrival → first token (queueing included)
    blockattn_request_seconds                      request arrival → last token
    blockattn_prompt_tokens_total, blockattn_generated_tokens_total
    blockattn_queue_depth                          generations waiting for the model thread
    blockattn_cache_hits_total{tier}               block lookups served by a tier (gpu, cpu, disk)
    blockattn_cache_misses_total                   blocks no tier had (each computed once)
    (hits count lookups, not requests: with grouped prefill a block computed for the group is looked up again, and
    found, by each request of it; a request's own split is `usage.blockattn.cached_blocks/computed_blocks`)
    blockattn_cache_tier_misses_total{tier}        lookups that passed through a tier without finding
    blockattn_cache_bytes{tier}, blockattn_cache_entries{tier}, blockattn_cache_evictions_total{tier}
    blockattn_cache_corrupt_total                  disk entries that failed verification (dropped, recomputed)
    blockattn_cache_remote_corrupt_total           Redis entries that failed verification (dropped, recomputed)
    blockattn_cache_remote_errors_total            Redis commands that failed or timed out (each a miss / skipped write)
    blockattn_cache_remote_skipped_total           Redis calls skipped while the breaker was open
    blockattn_cache_remote_up                      0 while the breaker is open (Redis recently failed), else 1
    blockattn_gpu_max_allocated_bytes              torch.cuda.max_memory_allocated of this process (0 off CUDA)
    blockattn_graph_captures_total{kind}           CUDA graphs captured: query, prefill, decode, batch
    blockattn_graph_replays_total{kind}            steps replayed from a graph
    blockattn_graph_eager_steps_total{kind}        static decode steps run without a graph (decode, batch)
    blockattn_graph_failed{kind}                   1 once a capture failed (that kind stays eager)
    blockattn_worker_seconds_total{phase}          the model thread's wall time: admit (prefills and first tokens),
                                                   decode (batched steps), idle (waiting for work)
    blockattn_worker_loops_total, blockattn_worker_admitted_total, blockattn_worker_decode_steps_total
                                                   its loops, the jobs they started, the decode steps they ran

Cache numbers are read from the engine's store at scrape time, so they cannot drift from its own stats.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from blockattn.engine.store import BlockStore

# TTFT spans ~1 ms (all blocks cached, GPU) to tens of seconds (cold long prompts on a CPU)
_TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class CacheCollector:
    def __init__(self, store: BlockStore):
        self.store = store

    def collect(self):
        stats = self.store.stats()
        tiers = list(stats["tiers"]) + [stats[t] for t in ("disk", "remote") if stats[t]]
        families = {
            "hits": CounterMetricFamily("blockattn_cache_hits", "Block lookups served by a cache tier",
                                        labels=["tier"]),
            "misses": CounterMetricFamily("blockattn_cache_tier_misses", "Lookups that passed through a tier "
                                          "without finding the block", labels=["tier"]),
            "bytes": GaugeMetricFamily("blockattn_cache_bytes", "Bytes held by a cache tier", labels=["tier"]),
            "entries": GaugeMetricFamily("blockattn_cache_entries", "Blocks held by a cache tier", labels=["tier"]),
        }
        evictions = CounterMetricFamily("blockattn_cache_evictions", "Blocks evicted from a cache tier",
                                        labels=["tier"])
        for tier in tiers:
            for name, family in families.items():
                family.add_metric([tier["name"]], tier[name])
            if "evictions" in tier:  # memory tiers; disk and redis: evicted by this process to hold the budget
                evictions.add_metric([tier["name"]], tier["evictions"])
        yield from families.values()
        yield evictions
        yield CounterMetricFamily("blockattn_cache_misses", "Blocks found in no tier (computed once each)",
                                  value=stats["computed"])
        yield CounterMetricFamily("blockattn_cache_corrupt", "Disk entries that failed verification",
                                  value=stats["disk"]["corrupt"] if stats["disk"] else 0)
        remote = stats["remote"]
        if remote:
            for name, doc in (("corrupt", "Redis entries that failed verification"),
                              ("errors", "Redis commands that failed or timed out"),
                              ("skipped", "Redis calls skipped while the breaker was open")):
                yield CounterMetricFamily(f"blockattn_cache_remote_{name}", doc, value=remote[name])
            yield GaugeMetricFamily("blockattn_cache_remote_up", "0 while the Redis breaker is open",
                                    value=0 if remote["breaker_open"] else 1)


class GraphCollector:
    """The engine's CUDA-graph counters (`BlockEngine.info()`), read at scrape time: whether requests are served
    from graphs or eagerly, which the serving benchmark cannot tell from latencies alone."""

    KINDS = {"query": "cuda_graphs", "prefill": "prefill_graphs", "decode": "decode_graphs",
             "batch": "batch_graphs"}

    def __init__(self, engine):
        self.engine = engine

    def collect(self):
        info = self.engine.info()
        captures = CounterMetricFamily("blockattn_graph_captures", "CUDA graphs captured", labels=["kind"])
        replays = CounterMetricFamily("blockattn_graph_replays", "Steps replayed from a CUDA graph", labels=["kind"])
        eager = CounterMetricFamily("blockattn_graph_eager_steps", "Static decode steps run without a graph",
                                    labels=["kind"])
        failed = GaugeMetricFamily("blockattn_graph_failed", "1 once a capture of this kind failed", labels=["kind"])
        for kind, key in self.KINDS.items():
            graphs = info.get(key)
            if not graphs:
                continue
            captures.add_metric([kind], graphs.get("captures", 0))
            replays.add_metric([kind], graphs.get("replays", 0))
            if "eager_steps" in graphs:
                eager.add_metric([kind], graphs["eager_steps"])
            failed.add_metric([kind], 0 if graphs.get("error") is None else 1)
        yield from (captures, replays, eager, failed)


class WorkerCollector:
    """Where the model thread's time goes (`worker.ModelWorker` counters, read at scrape time): under load it
    is the bottleneck, and prefill (admit) against decode is the split its scheduling decides."""

    def __init__(self, worker):
        self.worker = worker

    def collect(self):
        seconds = CounterMetricFamily("blockattn_worker_seconds", "Model thread wall time by phase",
                                      labels=["phase"])
        for phase, value in dict(self.worker.seconds).items():
            seconds.add_metric([phase], value)
        yield seconds
        for name, doc in (("loops", "Model thread loops"), ("admitted", "Jobs started by the model thread"),
                          ("decode_steps", "Batched decode steps")):
            yield CounterMetricFamily(f"blockattn_worker_{name}", doc, value=getattr(self.worker, name))


def gpu_max_allocated() -> int:
    """Peak bytes torch has allocated on the current CUDA device in this process; 0 without CUDA."""
    import torch

    return torch.cuda.max_memory_allocated() if torch.cuda.is_available() and torch.cuda.is_initialized() else 0


class Metrics:
    """The server's metrics. With `store` (the model in this process) the engine's too; without, only the HTTP
    side, and /metrics adds the engine process's own text (`engine_registry`)."""

    def __init__(self, store: BlockStore | None = None, queue_depth=None, engine=None, worker=None):
        self.registry = CollectorRegistry()
        self.requests = Counter("blockattn_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=self.registry)
        self.ttft = Histogram("blockattn_ttft_seconds", "Request arrival to first token (queueing included)",
                              buckets=_TIME_BUCKETS, registry=self.registry)
        self.latency = Histogram("blockattn_request_seconds", "Request arrival to the last token",
                                 buckets=_TIME_BUCKETS, registry=self.registry)
        self.prompt_tokens = Counter("blockattn_prompt_tokens", "Prompt tokens of completed generations",
                                     registry=self.registry)
        self.generated_tokens = Counter("blockattn_generated_tokens", "Tokens generated", registry=self.registry)
        if store is not None:
            register_engine_side(self.registry, store, queue_depth, engine, worker)


def register_engine_side(registry: CollectorRegistry, store: BlockStore, queue_depth, engine=None,
                         worker=None) -> None:
    """The metrics the model's process keeps: queue depth, GPU memory, the block cache, graphs, the model thread."""
    Gauge("blockattn_queue_depth", "Generations waiting for the model thread",
          registry=registry).set_function(queue_depth)
    Gauge("blockattn_gpu_max_allocated_bytes", "torch.cuda.max_memory_allocated of the server process",
          registry=registry).set_function(gpu_max_allocated)
    registry.register(CacheCollector(store))
    if engine is not None:
        registry.register(GraphCollector(engine))
    if worker is not None:
        registry.register(WorkerCollector(worker))


def engine_registry(store: BlockStore, queue_depth, engine=None, worker=None) -> CollectorRegistry:
    registry = CollectorRegistry()
    register_engine_side(registry, store, queue_depth, engine, worker)
    return registry
