"""CUDA graphs of the query-block forward: replay instead of relaunching ~40 kernels per layer from Python.

Why: with every block cached, TTFT is one forward of a short query block (e.g. 64 tokens) over a long KV
buffer. On a fast GPU that forward is bound by the host: HF's eager decoder layer launches ~40 small kernels
(RMSNorm, rotary, projections, cache writes, attention, MLP), ~1300 for Llama-8B, each costing microseconds of
Python and driver time while the GPU idles. A captured graph launches them all at once.

A graph bakes in tensor addresses and shapes, so one is keyed by (buffer address, buffer capacity, context
length, query length, logits kept, mode). Requests of the same shape reuse the same buffer address (PyTorch's
caching allocator hands a freed block of the same size back), so the key recurs; a shape is captured the
second time it is seen (one-off shapes never pay for a capture). Anything else -- or any failure to capture,
recorded in `error` -- runs eagerly, with identical results: replay runs exactly the captured kernels.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch

from blockattn.engine.kvbuffer import SequenceKV

log = logging.getLogger(__name__)

Forward = Callable[[SequenceKV, torch.Tensor, torch.Tensor, int], torch.Tensor]


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    ids: torch.Tensor  # (1, T) static input, refilled before each replay
    positions: torch.Tensor  # (1, T) static input; held here because the graph reads its memory on every replay
    logits: torch.Tensor  # (keep, V) static output, overwritten by each replay


class QueryGraphs:
    def __init__(self, max_graphs: int = 8, max_seen: int = 256):
        self.max_graphs, self.max_seen = max_graphs, max_seen
        self._graphs: OrderedDict[tuple, _Graph] = OrderedDict()
        self._seen: OrderedDict[tuple, None] = OrderedDict()  # shapes seen once (LRU, bounded)
        self.captures = self.replays = 0
        self.error: str | None = None  # set when a capture failed: graphs are off from then on

    def run(self, forward: Forward, kv: SequenceKV, ids: torch.Tensor, positions: torch.Tensor, keep: int,
            mode: str) -> torch.Tensor | None:
        """Logits (keep, V) via a graph (a fresh tensor), or None: the caller runs `forward` eagerly."""
        if self.error is not None or ids.device.type != "cuda":
            return None
        start, t = kv.length, ids.shape[1]
        key = (kv.buffer.data_ptr(), kv.capacity, start, t, keep, mode)
        graph = self._graphs.get(key)
        if graph is None:
            if key not in self._seen:
                self._seen[key] = None
                while len(self._seen) > self.max_seen:
                    self._seen.popitem(last=False)
                return None
            graph = self._capture(forward, kv, ids, positions, keep, key)
            if graph is None:
                return None
        self._graphs.move_to_end(key)
        graph.ids.copy_(ids)
        graph.graph.replay()
        kv.set_length(start + t)
        self.replays += 1
        return graph.logits.clone()

    def _capture(self, forward: Forward, kv: SequenceKV, ids, positions, keep: int, key: tuple) -> _Graph | None:
        start = kv.length
        static_ids, static_positions = ids.clone(), positions.clone()
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up off the capture (lazy library initialisation)
                forward(kv, static_ids, static_positions, keep)
            torch.cuda.current_stream().wait_stream(side)
            kv.set_length(start)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                logits = forward(kv, static_ids, static_positions, keep)
        except Exception as exc:  # noqa: BLE001 - a model that cannot be captured still serves, eagerly
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("CUDA graph capture failed (%s); the query forward stays eager", self.error)
            kv.set_length(start)
            return None
        kv.set_length(start)
        self._graphs[key] = captured = _Graph(graph, static_ids, static_positions, logits)
        self.captures += 1
        while len(self._graphs) > self.max_graphs:
            self._graphs.popitem(last=False)
        return captured

    def info(self) -> dict:
        return {"graphs": len(self._graphs), "captures": self.captures, "replays": self.replays, "error": self.error}
