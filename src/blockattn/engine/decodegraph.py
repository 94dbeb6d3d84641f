"""One decoded token as a static-shape step, replayed from a CUDA graph (issue 10: decode at hardware speed).

Why: a decode step of a small model is bound by the host. HF's eager layer launches ~40 kernels, each costing
microseconds of Python and driver time while the GPU idles (SmolLM2: 30 layers, ~1200 launches per token).
A captured graph launches them all at once. A graph bakes in shapes and addresses, so the step is written
with none that change from token to token:

    ids (1, 1), position (1,)      static device tensors, refilled before each replay (`fill_`, no sync)
    K/V write                      `index_copy_` at `position` into the request's whole buffer
    attention                      over the whole buffer (1, H_kv, capacity, D), slots > position masked

    key slot     0 1 2 ... p  p+1 ... capacity-1
    visible      x x x ... x   .  ...     .         (the unfilled tail is zeroed once, so masked slots are
                                                     finite: 0 × garbage could be NaN)

Grouped-query attention without a K/V copy or `enable_gqa`: with one query token, the G query heads sharing a
KV head are G query *rows* of that head, `(1, H, 1, D) → (1, H_kv, G, D)`, one masked attention over them
(`staticops.masked_attention`: two matmuls, which spread the key axis over the GPU; a masked SDPA kernel did
not, and took 60 % of the step). On the CPU -- or when capture fails -- the same step runs
eagerly: one code path, which tests compare with the plain eager decode.

Graphs are keyed by (buffer address, capacity, mode): the engine allocates buffers from a `kvbuffer.BufferPool`
in bucketed capacities, so a finished request's buffer -- and its graph -- serves the next one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from blockattn.engine.cudagraph import SUPPORTS_CUDA_GRAPHS, GraphCache
from blockattn.engine.kvbuffer import SequenceKV
from blockattn.engine.staticops import OneTokenAttention, index_copy_into

log = logging.getLogger(__name__)

# Feature check as a module constant, so tests can patch it (CPU: False, the eager fallback runs).

# model(ids, positions, cache, attention_fn) -> logits (1, V) of the one new token
ModelCall = Callable[[torch.Tensor, torch.Tensor, Cache, Callable], torch.Tensor]


class _StaticLayer(CacheLayerMixin):
    """One layer of a request's buffer, written at a position held in a device tensor."""

    is_sliding = False

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, position: torch.Tensor):
        super().__init__()
        self.keys_buffer, self.values_buffer = keys, values  # (H_kv, capacity, D) views
        self.position = position  # (1,) int64 on the buffer's device
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Nothing to do: the buffer exists."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if key_states.shape[0] != 1 or key_states.shape[2] != self.position.shape[0]:
            raise ValueError("a static step writes the tokens of one request, one position each")
        # slots `position` ← (H_kv, T, D): one token when decoding, a padded query block (`graphs`)
        index_copy_into(self.keys_buffer, 1, self.position, key_states[0])
        index_copy_into(self.values_buffer, 1, self.position, value_states[0])
        return self.keys_buffer.unsqueeze(0), self.values_buffer.unsqueeze(0)  # (1, H_kv, capacity, D)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.keys_buffer.shape[1], 0

    def get_seq_length(self) -> int:
        # HF asks only when no position_ids are given (we always give them). A constant, not the filled
        # length: nothing host-side may vary from step to step in what a graph or torch.compile bakes in.
        return 0

    def get_max_length(self) -> int:
        return self.keys_buffer.shape[1]


class StaticStepKV(Cache):
    """A request's buffer (n_layers, 2, H_kv, capacity, D) seen by one static decode step (writes at
    `position`, reads everything)."""

    def __init__(self, buffer: torch.Tensor, position: torch.Tensor):
        super().__init__(layers=[_StaticLayer(buffer[i, 0], buffer[i, 1], position) for i in range(buffer.shape[0])])


def zero_tail(kv: SequenceKV) -> None:
    """Zero [length, capacity) once: masked slots must hold finite numbers (softmax weight 0 × NaN = NaN)."""
    if not kv.tail_zeroed:
        kv.buffer[:, :, :, kv.length:].zero_()
        kv.tail_zeroed = True


def static_step(call: ModelCall, buffer: torch.Tensor, ids: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """The step itself over a request's whole buffer: ids (1, 1), position (1,) device tensors → logits (1, V).
    Captured as is; eager on CPU. Only tensors and the model vary, so a compiled copy never recompiles per step."""
    capacity = buffer.shape[3]
    slots = torch.arange(capacity, device=position.device)
    visible = (slots <= position).view(1, 1, 1, capacity)  # (1, 1, 1, capacity)
    return call(ids, position.view(1, 1), StaticStepKV(buffer, position), OneTokenAttention(visible))


def compiled_step(step: Callable) -> Callable:
    """`step` through torch.compile (Inductor, no cudagraphs of its own: `DecodeGraphs` captures), one
    compilation per buffer capacity; should compiling fail, the step runs uncompiled from then on (logged)."""
    import torch._dynamo

    # one compilation per shape (capacity bucket; batch × length bucket for the arena step), and per layer: the
    # K/V write breaks the graph inside every attention forward, whose frame is specialised on its layer index.
    # The Llama-8B shape (32 layers) hit a limit of 64 on the H200 and ran its remaining layers uncompiled.
    config = torch._dynamo.config
    config.cache_size_limit = max(config.cache_size_limit, 1024)
    config.accumulated_cache_size_limit = max(config.accumulated_cache_size_limit, 16384)
    compiled = torch.compile(step, dynamic=False)
    state = {"failed": False}

    def run(*args):
        if not state["failed"]:
            try:
                return compiled(*args)
            except Exception as exc:  # noqa: BLE001 - compile trouble must never fail a request
                state["failed"] = True
                log.warning("compiling the decode step failed (%s: %s); it runs uncompiled", type(exc).__name__, exc)
        return step(*args)

    return run


@dataclass
class _Graph:
    graph: "torch.cuda.CUDAGraph"
    ids: torch.Tensor  # (1, 1) static input
    position: torch.Tensor  # (1,) static input
    logits: torch.Tensor  # (1, V) static output


class DecodeGraphs:
    """Decode steps through `static_step`: replayed from a graph per (buffer, capacity, mode) on CUDA, run
    eagerly otherwise (CPU, graphs disabled, or a failed capture -- recorded in `error`, never a failed step)."""

    def __init__(self, use_graphs: bool, max_graphs: int = 32, compile_step: bool = False):
        self.use_graphs = use_graphs and SUPPORTS_CUDA_GRAPHS
        # torch.compile fuses the step's ~40 kernels per layer (norms, rotary, activations) into a few, which a
        # graph replay then launches: a graph alone removes launch cost, not per-kernel cost
        self._step = compiled_step(static_step) if compile_step else static_step
        self._graphs: GraphCache[_Graph] = GraphCache(max_graphs, "decode")
        self.replays = self.eager_steps = 0

    @property
    def error(self) -> str | None:
        return self._graphs.error

    def step(self, call: ModelCall, kv: SequenceKV, token: int, mode: str) -> torch.Tensor:
        """Append `token` at `kv.length`; logits (V,) of the token after it (a fresh tensor)."""
        if kv.length >= kv.capacity:
            raise ValueError(f"KV buffer full: {kv.length} + 1 tokens > capacity {kv.capacity}")
        zero_tail(kv)
        device = kv.buffer.device
        graph = None
        if self.use_graphs and self.error is None and device.type == "cuda":
            key = (kv.buffer.data_ptr(), kv.capacity, mode)
            graph = self._graphs.get(key) or self._capture(call, kv, key)
        if graph is None:
            ids = torch.tensor([[token]], device=device)
            position = torch.tensor([kv.length], device=device)
            logits = self._step(call, kv.buffer, ids, position)[-1]
            self.eager_steps += 1
        else:
            graph.ids.fill_(token)
            graph.position.fill_(kv.length)
            graph.graph.replay()
            logits = graph.logits[-1].clone()
            self.replays += 1
        kv.set_length(kv.length + 1)
        return logits

    def _capture(self, call: ModelCall, kv: SequenceKV, key: tuple) -> _Graph | None:
        device = kv.buffer.device
        # the warm-up and the capture write K/V at slot `length`: harmless, the real step overwrites it
        ids = torch.zeros(1, 1, dtype=torch.long, device=device)
        position = torch.full((1,), kv.length, dtype=torch.long, device=device)
        return self._graphs.capture(key, device, lambda: self._step(call, kv.buffer, ids, position),
                                    lambda graph, logits: _Graph(graph, ids, position, logits))

    def info(self) -> dict:
        return {"graphs": len(self._graphs), "captures": self._graphs.captures, "replays": self.replays,
                "eager_steps": self.eager_steps, "error": self.error}
