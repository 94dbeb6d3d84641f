"""CUDA graphs of the query-block forward, for query blocks of any length (issue 10: TTFT).

Why: with every block cached, TTFT is one forward of a short query block over a long KV buffer. On a fast GPU
that forward is bound by the host: HF's eager decoder layer launches ~40 small kernels per layer (~1300 for
Llama-8B), each costing microseconds of Python and driver time while the GPU idles. A captured graph launches
them all at once. But a graph bakes in shapes, and real requests never repeat one: every question has its own
length and every set of documents its own context length. So the query forward is written as a static step:

    ids (1, T')        the query's T tokens padded to a bucketed T' (padding after the query: causal rows
                       never see it; its K/V lands past the request's length and is overwritten by decoding)
    positions (T',)    start + 0..T'-1, a device tensor: the context length is data, not shape
    K/V write          `index_copy_` at `positions` into the request's whole buffer
    attention          over the whole buffer (1, H_kv, capacity, D); row i sees slots <= start + i

One graph per shape (capacity, T', logits kept, mode), whatever buffer the request holds: a graph bakes in the
addresses it reads, so each graph runs over a scratch buffer of its capacity (one per capacity, shared by the
graphs of that capacity: the engine's lock serialises them). The engine places a request's blocks straight into
the scratch (`staging`), replays, then copies the filled part into the request's own buffer: one copy at
bandwidth (SmolLM2, 8k tokens: 190 MB; the Llama-8B shape at 32k: 4.3 GB, ~2 ms). So each capacity has a second
buffer too, lent to a request as its own (`lend`) while no other request holds it, with graphs of its own: one
request at a time pays no copy, and the requests in flight beside it are staged. The first version keyed graphs by the request buffer's address: under
concurrency every request in flight holds its own buffer, and the H200 serving run (2026-12-04) captured 7
graphs for 22 replays at 8 clients, 43 for 54 at 64, each capture costing more than the eager forward it
replaces. Capacities are bucketed (`kvbuffer.bucket_capacity`), queries padded to buckets, so shapes recur. A
shape is captured the second time it is seen (one-off shapes never pay for a capture). On the CPU, for long query blocks (a full-attention prompt:
flash's causal kernel is faster than a masked one, and launch cost is nothing next to it), or after a failed
capture (recorded in `error`), the caller runs its eager forward: the same numbers, within float tolerance.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from blockattn.engine.cudagraph import SUPPORTS_CUDA_GRAPHS, GraphCache, upload
from blockattn.engine.decodegraph import StaticStepKV, zero_tail
from blockattn.engine.kvbuffer import SequenceKV
from blockattn.engine import flashbuffer, staticops
from blockattn.engine.querypath import AttentionPlan, Verdicts, timed

MAX_QUERY_TOKENS = 2048  # longer query blocks run eagerly (see the module docstring)
# How the static step attends, from one layer of the Llama-8B shape on the H200 (64 query rows, bf16;
# scripts/gpu/probe_query_attention.py, 2026-12-03), ms at 2k / 8k / 16k / 32k context:
#   two matmuls, fp32 scores over the whole buffer        0.107  0.314  0.583  1.218
#   flash's variable-length kernel, one chunk             0.156  0.273  0.525  0.990
#   SDPA, exact keys (the eager forward's call)           0.057  0.074  0.073  0.126
# Without paged K/V, flash's variable-length path does not split the keys across thread blocks (32 heads x 1
# query tile leave most of the 132 SMs idle), so `flashbuffer` splits the context itself. Where flash starts is
# measured at engine start on the model's head shape, with how to chunk (`querypath.calibrate_attention`);
# FLASH_FROM_SLOTS is the
# length used where nothing can be measured. Past MAX_SCORE_BYTES of matmul scores a step that would use the
# matmuls declines (bench ttft, 32k: 43.1 ms captured with matmul scores against 28.8 eager), and whether a
# graph beats the eager forward at all is timed per shape (`querypath.Verdicts`).
FLASH_FROM_SLOTS = 8192
MAX_SCORE_BYTES = 128 << 20

# model(ids (1, T), positions (1, T), cache, attention_fn, keep_index (K,)) -> logits (K, V)
QueryCall = Callable[[torch.Tensor, torch.Tensor, object, Callable, torch.Tensor], torch.Tensor]


def bucket_query(t: int) -> int:
    """Query lengths rounded up to 16, 32, 64, ... (powers of two): at most 2× the tokens, few shapes."""
    return max(16, 1 << (t - 1).bit_length())


class QueryRowsAttention:
    """T query tokens over a whole static buffer, each row seeing the slots up to its own position.

    `visible` (T, capacity) marks them for the two-matmul path; `end` (1,) = the last row's position + 1 is
    all flash's kernel needs (`flashbuffer.buffer_attention`, where `plan` says). The matmul path
    needs no K/V copy for grouped-query attention: the G query heads sharing a KV head become G × T query rows
    of that head, `(1, H, T, D) → (1, H_kv, G·T, D)`, with the mask repeated per head group."""

    def __init__(self, visible: torch.Tensor, end: torch.Tensor, plan: AttentionPlan | None = None):
        self.visible, self.end = visible, end
        self.plan = AttentionPlan(FLASH_FROM_SLOTS) if plan is None else plan
        self._layouts: dict[tuple[int, int], flashbuffer.ChunkLayout] = {}  # (T, chunks) -> this step's layout

    def __call__(self, module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 attention_mask, scaling: float | None = None) -> tuple[torch.Tensor, None]:
        if self.plan.uses_flash(key.shape[2], key):
            split = self.plan.split_for(key.shape[2])
            split = flashbuffer.DEFAULT_SPLIT if split is None else split
            shape = (query.shape[2], split.chunks(key.shape[2]))
            layout = self._layouts.get(shape)
            if layout is None:  # built in the first layer, reused by the others: one step, one layout
                layout = self._layouts[shape] = flashbuffer.ChunkLayout.build(self.end, *shape)
            return flashbuffer.buffer_attention(query, key, value, self.end, scaling, split, layout), None
        b, heads, t, d = query.shape
        kv_heads = key.shape[1]
        groups = heads // kv_heads
        rows = query.reshape(b, kv_heads, groups * t, d)  # head h = kv * G + g: rows (g, i) of KV head kv
        mask = self.visible.repeat(groups, 1).view(1, 1, groups * t, -1)
        out = staticops.masked_attention(rows, key, value, mask, scaling)  # (B, H_kv, G·T, D)
        # reshape, not view: should a kernel return the rows in another memory layout (seen on the H200 with
        # SDPA: a capture failed with a view error and TTFT stayed eager, 2026-12-02)
        return out.reshape(b, heads, t, d).transpose(1, 2).contiguous(), None  # (B, T, H, D)


def query_step(call: QueryCall, buffer: torch.Tensor, ids: torch.Tensor, positions: torch.Tensor,
               keep_index: torch.Tensor, plan: AttentionPlan | None = None) -> torch.Tensor:
    """The static query forward: ids (1, T'), positions (T',), keep_index (K,) device tensors → logits (K, V)."""
    capacity = buffer.shape[3]
    slots = torch.arange(capacity, device=positions.device)
    visible = slots.view(1, capacity) <= positions.view(-1, 1)  # (T', capacity)
    attention = QueryRowsAttention(visible, positions[-1:] + 1, plan)
    return call(ids, positions.view(1, -1), StaticStepKV(buffer, positions), attention, keep_index)


@dataclass
class _Graph:
    graph: "torch.cuda.CUDAGraph"
    buffer: torch.Tensor  # the buffer it reads and writes: a staging scratch, or the lendable buffer
    inputs: torch.Tensor  # (T' + T' + K,) static input: ids, positions, keep_index (one upload)
    ids: torch.Tensor  # (1, T') view of inputs
    positions: torch.Tensor  # (T',) view
    keep_index: torch.Tensor  # (K,) view
    logits: torch.Tensor  # (K, V) static output


def replayable(buffer: torch.Tensor) -> bool:
    """Whether graphs can run over `buffer` (a CUDA one). A function, so that tests can run the graphs'
    bookkeeping on the CPU with captures faked by eager re-runs."""
    return buffer.is_cuda


def _buffer_key(buffer: torch.Tensor) -> tuple:
    return tuple(buffer.shape), buffer.dtype, str(buffer.device)


def static_inputs(padded: int, keep: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """One device tensor holding a step's three inputs, and its three views (ids (1, T'), positions, keep_index)."""
    inputs = torch.zeros(2 * padded + keep, dtype=torch.long, device=device)
    return inputs, inputs[:padded].view(1, padded), inputs[padded:2 * padded], inputs[2 * padded:]


class QueryGraphs:
    # A graph keeps only its logits (~200 KB) and its scratch buffer (shared per capacity); its intermediates
    # live in the pool all captures share.
    def __init__(self, use_graphs: bool = True, max_graphs: int = 64, max_seen: int = 1024, query_heads: int = 1,
                 plan: AttentionPlan | None = None, time_graphs: bool = True):
        # use_graphs False (tests on the CPU): every eligible query block runs the static step eagerly
        self.use_graphs = use_graphs and SUPPORTS_CUDA_GRAPHS
        self.max_seen = max_seen
        self.query_heads = query_heads  # the model's attention heads: matmul scores are heads × T' × capacity
        self.plan = AttentionPlan(FLASH_FROM_SLOTS) if plan is None else plan  # how the step attends
        self.calibration: list[dict] = []  # `querypath.calibrate_attention`'s timings, when the engine took them
        # time_graphs: keep a shape's graph only if its first replay beats a timed eager run (`querypath`)
        self.verdicts = Verdicts() if time_graphs else None
        self._graphs: GraphCache[_Graph] = GraphCache(max_graphs, "query block")
        self._seen: OrderedDict[tuple, None] = OrderedDict()  # keys seen once (LRU, bounded)
        self._scratch: dict[tuple, SequenceKV] = {}  # (buffer shape, dtype, device) -> the staging buffer
        self._lendable: dict[tuple, torch.Tensor] = {}  # (buffer shape, dtype, device) -> the lendable buffer
        self._lent: set[tuple] = set()  # lendable buffers a live request holds
        self.replays = 0
        self.staged = 0  # requests placed straight into a graph's scratch buffer
        self.lent = 0  # requests that got a graph's lendable buffer as their own

    @property
    def error(self) -> str | None:  # set when a capture failed: graphs are off from then on
        return self._graphs.error

    def run(self, call: QueryCall, kv: SequenceKV, tokens: np.ndarray, keep: int, mode: str,
            eager: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Append `tokens` to `kv`; logits (keep, V) of its last `keep` positions: via a graph (a fresh tensor),
        the static step run eagerly (no graphs: the CPU), or `eager()` (the caller's plain forward) where a
        graph cannot run or does not pay."""
        t, start = len(tokens), kv.length
        device = kv.buffer.device
        padded = self._padded(kv, start, t, keep)
        if padded is None:
            return eager()
        if not (self.use_graphs and replayable(kv.buffer)):
            return self._eager(call, kv, tokens, padded, keep)
        shape = (kv.capacity, padded, keep, mode)
        verdicts = self.verdicts
        if verdicts is not None and not verdicts.graph_wins.get(shape, True):
            return eager()  # timed: the eager forward is faster at this shape
        lendable = self._lendable.get(_buffer_key(kv.buffer))
        if lendable is not None and lendable.data_ptr() == kv.buffer.data_ptr():  # a lent buffer: its own graphs
            graph = self._graphs.get((shape, "lend")) or self._capture(call, kv, shape, device, lend=True)
            if graph is None:
                return eager()
        else:
            graph = self._staging_graph(call, kv, shape, device, eager)
            if not isinstance(graph, _Graph):
                return graph  # the eager forward's logits
        own = graph.buffer.data_ptr() != kv.buffer.data_ptr()  # kv is neither staged nor lent: copy in, then out
        if own:
            graph.buffer[:, :, :, :start].copy_(kv.buffer[:, :, :, :start])
        ids = np.zeros(padded, dtype=np.int64)  # padding: token 0, after the query (never seen by it)
        ids[:t] = tokens
        host = np.concatenate([ids, np.arange(start, start + padded), np.arange(t - keep, t)])
        upload(graph.inputs, torch.from_numpy(host))
        kept = True
        if verdicts is not None and shape not in verdicts.graph_wins:
            _, replay_ms = timed(graph.graph.replay, device)
            kept = verdicts.judge(shape, replay_ms)
        else:
            graph.graph.replay()
        if own:
            kv.buffer[:, :, :, start:start + t].copy_(graph.buffer[:, :, :, start:start + t])
        kv.set_length(start + t)
        self.replays += 1
        logits = graph.logits.clone()
        if not kept:  # it lost to the eager forward, which serves this shape from now on: free its graphs
            self._graphs.drop_where(lambda k: k[0] == shape)
        return logits

    def _staging_graph(self, call: QueryCall, kv: SequenceKV, shape: tuple, device: torch.device,
                       eager: Callable[[], torch.Tensor]) -> "_Graph | torch.Tensor":
        """The shape's graph over the staging scratch -- captured the second time the shape is seen, after a
        timed eager run -- or the logits of `eager()` when there is none (yet)."""
        verdicts = self.verdicts
        graph = self._graphs.get((shape, "stage"))
        if graph is None:
            if shape not in self._seen:  # one-off shapes never pay for a capture
                self._seen[shape] = None
                while len(self._seen) > self.max_seen:
                    self._seen.popitem(last=False)
                return eager()
            if verdicts is not None and shape not in verdicts.eager_ms:  # the graph's yardstick, warm by now
                logits, verdicts.eager_ms[shape] = timed(eager, device)
                return logits
            graph = self._capture(call, kv, shape, device, lend=False)
            if graph is None:
                return eager()
        return graph

    def lend(self, kv: SequenceKV, start: int, t: int, keep: int, mode: str) -> SequenceKV | None:
        """A request's own buffer, to use instead of `kv` (a pool buffer of the same shape, still empty): the
        lendable buffer of its capacity, if the shape's graph exists (it has recurred) and no live request holds
        that buffer. Its query then replays a graph over it with nothing copied. Back when the returned
        `SequenceKV` is garbage-collected."""
        key = _buffer_key(kv.buffer)
        if key in self._lent or self._served_shape(kv, start, t, keep, mode) is None:
            return None
        buffer = self._lendable.get(key)
        if buffer is None:
            buffer = self._lendable[key] = torch.zeros_like(kv.buffer)  # finite forever: only real K/V go in
        n_layers, _, kv_heads, capacity, head_dim = buffer.shape
        lent = SequenceKV(n_layers, kv_heads, head_dim, capacity, buffer.dtype, buffer.device, buffer=buffer)
        lent.tail_zeroed = True
        self._lent.add(key)
        weakref.finalize(lent, self._lent.discard, key)
        self.lent += 1
        return lent

    def staging(self, kv: SequenceKV, start: int, t: int, keep: int, mode: str) -> SequenceKV | None:
        """The scratch buffer (empty, length 0) of the graph that will serve a query of `t` tokens after `start`
        context slots in a buffer like `kv` (the request's own, still empty), if there is one: the engine places
        the blocks there, runs the query (`run`, on the scratch), then copies the result into `kv`. None: place
        into `kv` itself (no graph for this shape yet, or it runs eagerly)."""
        if self._served_shape(kv, start, t, keep, mode) is None:
            return None
        scratch = self._scratch_like(kv)
        scratch.set_length(0)
        self.staged += 1
        return scratch

    def _served_shape(self, kv: SequenceKV, start: int, t: int, keep: int, mode: str) -> tuple | None:
        """The shape of the query `run` would serve from a graph (one exists, and it beat the eager forward),
        or None."""
        if not (self.use_graphs and replayable(kv.buffer)):
            return None
        padded = self._padded(kv, start, t, keep)
        shape = (kv.capacity, padded, keep, mode)
        if padded is None or self.verdicts is not None and not self.verdicts.graph_wins.get(shape, True):
            return None
        return shape if self._graphs.get((shape, "stage")) is not None else None

    def _padded(self, kv: SequenceKV, start: int, t: int, keep: int) -> int | None:
        """The padded query length a static step over `kv` would run, or None: this query runs eagerly."""
        if self.error is not None or not 1 < t <= MAX_QUERY_TOKENS or not 1 <= keep <= t:
            return None
        padded = bucket_query(t)
        if start + padded > kv.capacity:
            padded = t  # no room for padding: an exact shape (still recurs when requests do)
        if start + padded > kv.capacity or self._scores_too_large(kv, padded):
            return None
        return padded

    def _scratch_like(self, kv: SequenceKV) -> SequenceKV:
        """The graphs' buffer of `kv`'s shape (zeroed once: it only ever holds real K/V, so masked slots stay
        finite)."""
        key = _buffer_key(kv.buffer)
        scratch = self._scratch.get(key)
        if scratch is None:
            n_layers, _, kv_heads, capacity, head_dim = kv.buffer.shape
            scratch = SequenceKV(n_layers, kv_heads, head_dim, capacity, kv.buffer.dtype, kv.buffer.device)
            scratch.buffer.zero_()
            scratch.tail_zeroed = True
            self._scratch[key] = scratch
        return scratch

    def _scores_too_large(self, kv: SequenceKV, padded: int) -> bool:
        """Whether the step would attend with matmul scores past MAX_SCORE_BYTES: it declines then (see
        MAX_SCORE_BYTES). Flash's path holds no scores."""
        if self.plan.uses_flash(kv.capacity, kv.buffer):
            return False
        return self.query_heads * padded * kv.capacity * 4 > MAX_SCORE_BYTES

    def _eager(self, call: QueryCall, kv: SequenceKV, tokens: np.ndarray, padded: int, keep: int) -> torch.Tensor:
        """The static step without a graph (what a replay computes; tests compare it with the eager forward)."""
        t, start, device = len(tokens), kv.length, kv.buffer.device
        zero_tail(kv)
        ids = torch.zeros(1, padded, dtype=torch.long)
        ids[0, :t] = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
        logits = query_step(call, kv.buffer, ids.to(device), torch.arange(start, start + padded, device=device),
                            torch.arange(t - keep, t, device=device), self.plan)
        kv.set_length(start + t)
        return logits

    def _capture(self, call: QueryCall, kv: SequenceKV, shape: tuple, device: torch.device,
                 lend: bool) -> _Graph | None:
        """The shape's graph over the staging scratch, or (`lend`) over the lent buffer `kv` holds."""
        _, padded, keep, _ = shape
        start = kv.length
        buffer = kv.buffer if lend else self._scratch_like(kv).buffer
        # the warm-up and the capture write K/V at [start, start + T') of the buffer: the replay that follows
        # overwrites them with the real query's
        inputs, ids, positions, keep_index = static_inputs(padded, keep, device)
        positions.copy_(torch.arange(start, start + padded, device=device))
        keep_index.copy_(torch.arange(padded - keep, padded, device=device))
        step = lambda: query_step(call, buffer, ids, positions, keep_index, self.plan)  # noqa: E731
        return self._graphs.capture((shape, "lend" if lend else "stage"), device, step, lambda graph, logits: _Graph(
            graph, buffer, inputs, ids, positions, keep_index, logits))

    def info(self) -> dict:
        return {"graphs": len(self._graphs), "captures": self._graphs.captures, "replays": self.replays,
                "staged": self.staged, "lent": self.lent,
                "scratch_bytes": sum(kv.nbytes for kv in self._scratch.values())
                + sum(b.numel() * b.element_size() for b in self._lendable.values()),
                "error": self.error, "flash_varlen": flashbuffer.FLASH_VARLEN,
                "flash_varlen_error": flashbuffer.FLASH_VARLEN_ERROR, **self.plan.info(),
                "calibration": self.calibration,
                "verdicts": self.verdicts.info() if self.verdicts is not None else None}
