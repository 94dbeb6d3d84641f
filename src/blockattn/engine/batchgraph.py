"""Batched decoding as one static step over a preallocated arena, replayed from CUDA graphs (issue 10).

Why: the server decodes every running generation together (`service.decode_step` → `engine.decode_batch`).
Run eagerly over each request's own buffer, a step costs one attention call per request per layer (64 streams:
~2000 small SDPA calls) plus ~40 launches per layer: 190 ms a step for SmolLM2 at 64 streams on the H200.
Here the running requests of one mode live in slots of one arena, so a step is the same ~40 launches per layer
whatever the batch, and it is captured once per (batch bucket, length bucket) and replayed:

    arena (n_layers, 2, slots, H_kv, capacity, D)       slot s = one running request, buffer index = position
    step over slots [0, b)  keys of layer i: arena[i, 0, :b, :, :L]   (b, H_kv, L, D) views, no copy
                            new K/V written at each row's position (`scatter_` along the key axis)
                            row r sees keys 0..position[r] (a (b, 1, 1, L) mask; the rest of the slot is
                            finite: the arena starts zeroed and only ever holds real K/V)

    b = the batch rounded up to a power of two (padding rows decode token 0 at position 0 of a free slot),
    L = the longest request's length, bucketed (`kvbuffer.bucket_capacity`): attention reads what is filled.

A request enters the arena at its first batched step (its buffer's filled part is copied into a free slot
once) and stays while it is decoded with the others; its own buffer is stale meanwhile. A request missing from
a step has left the batch (finished, or cancelled): its slot is copied back into its buffer (so it stays
valid for whoever holds it) and freed, and the highest slot moves into the hole, so the running requests always
fill slots [0, n). Requests that do not fit (more than the arena's slots, or a buffer larger than a slot) are
decoded by the eager ragged step instead (`engine.decode_batch`).

On the CPU -- or when a capture fails, recorded in `error` -- the same static step runs eagerly: one code path,
which tests compare with each request decoded alone.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from blockattn.engine.cudagraph import SUPPORTS_CUDA_GRAPHS, GraphCache
from blockattn.engine.decodegraph import compiled_step
from blockattn.engine.kvbuffer import SequenceKV, bucket_capacity
from blockattn.engine.staticops import OneTokenAttention, scatter_into


# model(ids (b, 1), positions (b, 1), cache, attention_fn) -> logits (b, V) of each row's next token
BatchCall = Callable[[torch.Tensor, torch.Tensor, Cache, Callable], torch.Tensor]


class _ArenaLayer(CacheLayerMixin):
    """Layer i of slots [0, b): writes each row's new K/V at that row's position, returns the whole views."""

    is_sliding = False

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, positions: torch.Tensor):
        super().__init__()
        self.keys_view, self.values_view = keys, values  # (b, H_kv, L, D) views of the arena
        self.positions = positions  # (b,) int64, on the arena's device
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Nothing to do: the arena exists."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        b, heads, t, d = key_states.shape
        if t != 1 or b != self.keys_view.shape[0]:
            raise ValueError("an arena step writes exactly one token per row")
        index = self.positions.view(b, 1, 1, 1).expand(b, heads, 1, d)
        scatter_into(self.keys_view, 2, index, key_states)
        scatter_into(self.values_view, 2, index, value_states)
        return self.keys_view, self.values_view

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.keys_view.shape[2], 0

    def get_seq_length(self) -> int:
        return 0  # asked only without position_ids (always given); constant, as in `decodegraph._StaticLayer`

    def get_max_length(self) -> int:
        return self.keys_view.shape[2]


class ArenaStepKV(Cache):
    """Slots [0, b) of an arena, keys [0, L), seen by one batched static step."""

    def __init__(self, arena: torch.Tensor, b: int, length: int, positions: torch.Tensor):
        super().__init__(layers=[_ArenaLayer(arena[i, 0, :b, :, :length], arena[i, 1, :b, :, :length], positions)
                                 for i in range(arena.shape[0])])


def arena_step(call: BatchCall, arena: torch.Tensor, ids: torch.Tensor, positions: torch.Tensor,
               length: int) -> torch.Tensor:
    """The step itself: ids (b, 1), positions (b,) device tensors, keys [0, length) → logits (b, V)."""
    b = ids.shape[0]
    slots = torch.arange(length, device=positions.device)
    visible = (slots.view(1, length) <= positions.view(b, 1)).view(b, 1, 1, length)
    cache = ArenaStepKV(arena, b, length, positions)
    return call(ids, positions.view(b, 1), cache, OneTokenAttention(visible))


@dataclass
class _Graph:
    graph: "torch.cuda.CUDAGraph"
    ids: torch.Tensor  # (b, 1) static input
    positions: torch.Tensor  # (b,) static input
    logits: torch.Tensor  # (b, V) static output


class _Arena:
    """The slots of one mode: the tensor, and which request holds each slot (weakly: a finished request that
    nobody holds any more just frees its slot)."""

    def __init__(self, shape: tuple, dtype: torch.dtype, device: torch.device):
        self.kv = torch.zeros(shape, dtype=dtype, device=device)  # zeroed once: every slot finite
        self.holders: list[weakref.ref] = []  # slot s → its request's SequenceKV (slots [0, n) are taken)

    def slot_of(self, kv: SequenceKV) -> int | None:
        for s, ref in enumerate(self.holders):
            if ref() is kv:
                return s
        return None


def bucket_batch(n: int) -> int:
    """`n` rounded up to a power of two: few batch shapes, hence few graphs."""
    return 1 << max(0, n - 1).bit_length()


class BatchDecoder:
    """Batched decode steps through `arena_step`, graph-replayed on CUDA (eager elsewhere, or after a failed
    capture). One arena per mode (block mode and full mode run different weights), allocated at first use."""

    def __init__(self, dims: tuple[int, int, int], dtype: torch.dtype, device: torch.device, capacity: int,
                 slots: int, use_graphs: bool, max_graphs: int = 48, compile_step: bool = False):
        self.dims, self.dtype, self.device = dims, dtype, torch.device(device)
        self.capacity, self.slots = capacity, slots
        self.use_graphs = use_graphs and SUPPORTS_CUDA_GRAPHS and self.device.type == "cuda"
        self._step = compiled_step(arena_step) if compile_step else arena_step  # see decodegraph.compiled_step
        self._arenas: dict[str, _Arena] = {}
        self._graphs: GraphCache[_Graph] = GraphCache(max_graphs, "batched decode")
        self.replays = self.eager_steps = self.admitted = self.moved = 0

    @property
    def error(self) -> str | None:
        return self._graphs.error

    @staticmethod
    def slot_bytes(dims: tuple[int, int, int], capacity: int, dtype: torch.dtype) -> int:
        n_layers, kv_heads, head_dim = dims
        return n_layers * 2 * kv_heads * capacity * head_dim * torch.empty((), dtype=dtype).element_size()

    def fits(self, kvs: Sequence[SequenceKV]) -> bool:
        """Whether these requests can be decoded in an arena (count and every buffer's capacity)."""
        return 0 < len(kvs) <= self.slots and all(kv.capacity <= self.capacity for kv in kvs)

    # ---------------------------------------------------------------- slots
    def _arena(self, mode: str) -> _Arena:
        arena = self._arenas.get(mode)
        if arena is None:
            n_layers, kv_heads, head_dim = self.dims
            shape = (n_layers, 2, self.slots, kv_heads, self.capacity, head_dim)
            arena = self._arenas[mode] = _Arena(shape, self.dtype, self.device)
        return arena

    def _copy_out(self, arena: _Arena, slot: int) -> None:
        """Slot → its request's own buffer (the filled part), so the buffer is current again."""
        kv = arena.holders[slot]()
        if kv is not None:
            kv.buffer[:, :, :, :kv.length] = arena.kv[:, :, slot, :, :kv.length]

    def _free(self, arena: _Arena, slot: int) -> None:
        """Free `slot`; the highest taken slot moves into it (slots [0, n) stay the taken ones)."""
        last = len(arena.holders) - 1
        if slot != last:
            kv = arena.holders[last]()
            if kv is not None:
                arena.kv[:, :, slot, :, :kv.length] = arena.kv[:, :, last, :, :kv.length]
                self.moved += 1
            arena.holders[slot] = arena.holders[last]
        arena.holders.pop()

    def release(self, kv: SequenceKV) -> None:
        """`kv` leaves any arena it is in (its buffer made current first): before it is decoded on its own."""
        for arena in self._arenas.values():
            slot = arena.slot_of(kv)
            if slot is not None:
                self._copy_out(arena, slot)
                self._free(arena, slot)

    def _seat(self, arena: _Arena, kvs: Sequence[SequenceKV]) -> list[int]:
        """Make the arena's taken slots exactly `kvs`: leavers copied out and freed, newcomers copied in.
        Returns each request's slot."""
        wanted = {id(kv) for kv in kvs}
        for slot in range(len(arena.holders) - 1, -1, -1):  # from the top: a move never lands on a leaver
            holder = arena.holders[slot]()
            if holder is None or id(holder) not in wanted:
                self._copy_out(arena, slot)
                self._free(arena, slot)
        for kv in kvs:
            if arena.slot_of(kv) is None:
                slot = len(arena.holders)
                arena.kv[:, :, slot, :, :kv.length] = kv.buffer[:, :, :, :kv.length]
                arena.holders.append(weakref.ref(kv))
                self.admitted += 1
        return [arena.slot_of(kv) for kv in kvs]

    # ---------------------------------------------------------------- the step
    def step(self, call: BatchCall, kvs: Sequence[SequenceKV], tokens: Sequence[int], mode: str) -> torch.Tensor:
        """Append tokens[i] to request kvs[i], all at once; logits (B, V) of each one's next token."""
        if not self.fits(kvs):
            raise ValueError("these requests do not fit the decode arena (see `fits`)")
        for kv in kvs:
            if kv.length >= kv.capacity:
                raise ValueError(f"KV buffer full: {kv.length} + 1 tokens > capacity {kv.capacity}")
        arena = self._arena(mode)
        for other, a in self._arenas.items():  # a request switching modes leaves the other arena
            if other != mode:
                for kv in kvs:
                    slot = a.slot_of(kv)
                    if slot is not None:
                        self._copy_out(a, slot)
                        self._free(a, slot)
        slots = self._seat(arena, kvs)
        n = len(arena.holders)
        b = min(bucket_batch(n), self.slots)
        filled = max(kv.length for kv in kvs)
        length = min(bucket_capacity(filled + 1), self.capacity)
        ids_host = torch.zeros(b, 1, dtype=torch.long)
        pos_host = torch.zeros(b, dtype=torch.long)
        for kv, token, slot in zip(kvs, tokens, slots):
            ids_host[slot, 0] = token
            pos_host[slot] = kv.length
        graph = None
        if self.use_graphs and self.error is None:
            key = (mode, b, length)
            graph = self._graphs.get(key) or self._capture(call, arena, key, ids_host, pos_host)
        if graph is None:
            logits = self._step(call, arena.kv, ids_host.to(self.device), pos_host.to(self.device), length)
            self.eager_steps += 1
        else:
            graph.ids.copy_(ids_host, non_blocking=True)
            graph.positions.copy_(pos_host, non_blocking=True)
            graph.graph.replay()
            logits = graph.logits
            self.replays += 1
        for kv in kvs:
            kv.set_length(kv.length + 1)
        return logits[torch.tensor(slots, device=logits.device)]  # (B, V), a fresh tensor in `kvs` order

    def _capture(self, call: BatchCall, arena: _Arena, key: tuple, ids_host: torch.Tensor,
                 pos_host: torch.Tensor) -> _Graph | None:
        _, b, length = key
        # the warm-up and the capture run the real step (real tokens at real positions): the replay that
        # follows writes the same K/V again
        ids, positions = ids_host.to(self.device), pos_host.to(self.device)
        return self._graphs.capture(key, self.device, lambda: self._step(call, arena.kv, ids, positions, length),
                                    lambda graph, logits: _Graph(graph, ids, positions, logits))

    def info(self) -> dict:
        return {"slots": self.slots, "capacity": self.capacity, "graphs": len(self._graphs),
                "captures": self._graphs.captures, "replays": self.replays, "eager_steps": self.eager_steps,
                "admitted": self.admitted, "moved": self.moved, "error": self.error,
                "arena_bytes": sum(a.kv.numel() * a.kv.element_size() for a in self._arenas.values())}
