"""Capturing CUDA graphs, one way for the engine's three static steps (decode, batched decode, query block).

Each step is written so that nothing host-side varies between calls (its inputs are device tensors it reads,
its K/V writes go to a preallocated buffer); `GraphCache.capture` then runs it once on a side stream (lazy
kernel and library initialisation must happen outside the capture), captures it into a graph, and keeps the
graph under a key the caller chooses, LRU-bounded. All of an engine's graphs share one memory pool: they never
run concurrently (the engine's lock serialises model calls). A capture that fails is recorded in `error`, never
raised: the caller keeps running its step eagerly, with the same numbers.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Callable, Generic, Hashable, TypeVar

import torch

from blockattn.engine import fusedops

log = logging.getLogger(__name__)

SUPPORTS_CUDA_GRAPHS = torch.cuda.is_available() and hasattr(torch.cuda, "CUDAGraph")

Entry = TypeVar("Entry")


def upload(static: torch.Tensor, host: torch.Tensor) -> None:
    """Copy a small host tensor into a graph's static device input without stalling the host: a copy from
    pageable memory waits for the GPU to drain everything queued before it (profiled on the H200, 2026-12-04:
    7 such waits per serving-shaped prefill, 5.6 ms of host time blocked), so the host could never queue the
    next step while the GPU ran this one. Pinned memory comes from torch's caching host allocator, which keeps
    a block until the copy reading it has run."""
    if static.is_cuda:
        static.copy_(host.pin_memory(), non_blocking=True)
    else:
        static.copy_(host)


def to_device(host: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small host tensor on `device`, without stalling the host (see `upload`)."""
    if torch.device(device).type == "cuda":
        return host.pin_memory().to(device, non_blocking=True)
    return host.to(device)


class GraphCache(Generic[Entry]):
    """Captured graphs by key (each wrapped by the caller in its own entry: the graph and its static tensors)."""

    def __init__(self, max_graphs: int, what: str):
        self.max_graphs, self.what = max_graphs, what
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self._pool = None
        self.captures = 0
        self.error: str | None = None  # the first failed capture: the caller stays eager from then on

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def drop_where(self, predicate: Callable[[Hashable], bool]) -> int:
        """Forget the entries whose key satisfies `predicate` (their graphs' memory goes back to the shared pool
        for later captures); how many went."""
        gone = [key for key in self._entries if predicate(key)]
        for key in gone:
            del self._entries[key]
        return len(gone)

    def capture(self, key: Hashable, device: torch.device, step: Callable[[], Any],
                wrap: Callable[["torch.cuda.CUDAGraph", Any], Entry]) -> Entry | None:
        """Warm `step()` up, capture it, keep `wrap(graph, what the captured step returned)` under `key`.

        `step` runs twice here (warm-up, capture): it must only write where the replay that follows overwrites."""
        try:
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side), fusedops.capturing():  # fused ops compile here, outside the capture
                step()
            torch.cuda.current_stream(device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: the server's other threads (tokenizing, cache tiers) may touch CUDA meanwhile
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"), fusedops.capturing():
                output = step()
        except Exception as exc:  # noqa: BLE001 - a step that cannot be captured still runs, eagerly
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("%s graph capture failed (%s); it stays eager", self.what, self.error)
            return None
        self._entries[key] = entry = wrap(graph, output)
        self.captures += 1
        while len(self._entries) > self.max_graphs:
            self._entries.popitem(last=False)
        return entry
