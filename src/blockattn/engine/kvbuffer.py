"""A request's KV cache: one preallocated buffer that cached blocks are copied into once, then grows in place.

    buffer (n_layers, 2, H_kv, capacity, D)      [:, 0] keys, [:, 1] values; buffer index == RoPE position

    | shared sink | block 1 | block 2 | ... | query | decoded tokens ... |      free       |
    0                                       ^ length                                     capacity

HF's attention layers call `update(k, v, layer)`: the new K/V are written at [length, length + T) and views of
[0, length + T) are returned -- no `torch.cat` of the whole cache per layer per step (what `DynamicCache`
does), no allocation. It is a transformers `Cache`, so any Llama-family model runs on it unchanged.
"""

from __future__ import annotations

import threading
import weakref

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


class _BufferLayer(CacheLayerMixin):
    """One layer's slice of the buffer; `length` tokens are filled."""

    is_sliding = False

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.keys_buffer, self.values_buffer = keys, values  # (H_kv, capacity, D) views
        self.length = 0
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Nothing to do: the buffer exists before the first update."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        n = key_states.shape[2]
        end = self.length + n
        if key_states.shape[0] != 1:
            raise ValueError("a request KV buffer holds one sequence (batch size 1)")
        if end > self.keys_buffer.shape[1]:
            raise ValueError(f"KV buffer full: {self.length} + {n} tokens > capacity {self.keys_buffer.shape[1]}")
        self.keys_buffer[:, self.length:end] = key_states[0]
        self.values_buffer[:, self.length:end] = value_states[0]
        self.length = end
        # (1, H_kv, end, D) views of the filled part
        return self.keys_buffer[:, :end].unsqueeze(0), self.values_buffer[:, :end].unsqueeze(0)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return self.keys_buffer.shape[1]


class SequenceKV(Cache):
    """The KV of one request, in one buffer. `length` is the next free position (= the next RoPE position)."""

    def __init__(self, n_layers: int, kv_heads: int, head_dim: int, capacity: int, dtype: torch.dtype,
                 device: torch.device | str, pool: "BufferPool | None" = None, buffer: torch.Tensor | None = None):
        """`buffer`: one to use as it is (lent by its owner, who learns of its return by a finalizer of its own)."""
        shape = (n_layers, 2, kv_heads, capacity, head_dim)
        # torch.empty: every slot is written before it is read (blocks are copied in, new tokens appended);
        # a static decode step reads the whole buffer and zeroes the unfilled tail first (`tail_zeroed`)
        if buffer is not None:
            if tuple(buffer.shape) != shape:
                raise ValueError(f"buffer of shape {tuple(buffer.shape)}, expected {shape}")
            self.buffer = buffer
        elif pool is None:
            self.buffer = torch.empty(shape, dtype=dtype, device=device)
        else:
            self.buffer = pool.take(shape, dtype, device)
            weakref.finalize(self, pool.give_back, self.buffer)
        self.tail_zeroed = False  # [length, capacity) holds zeros (set by whoever zeroes it)
        super().__init__(layers=[_BufferLayer(self.buffer[i, 0], self.buffer[i, 1]) for i in range(n_layers)])

    @property
    def capacity(self) -> int:
        return self.buffer.shape[3]

    @property
    def length(self) -> int:
        return self.layers[0].length

    def set_length(self, length: int) -> None:
        """Mark [0, length) as filled (after writing the buffer directly, e.g. placing cached blocks)."""
        if not 0 <= length <= self.capacity:
            raise ValueError(f"length {length} outside the buffer (capacity {self.capacity})")
        for layer in self.layers:
            layer.length = length

    @property
    def nbytes(self) -> int:
        return self.buffer.numel() * self.buffer.element_size()

    def copy_from(self, other: "SequenceKV") -> None:
        """Take `other`'s filled part (a buffer of the same shape): one copy, then this length."""
        n = other.length
        self.buffer[:, :, :, :n].copy_(other.buffer[:, :, :, :n])
        self.set_length(n)
        self.tail_zeroed = False


def bucket_capacity(n: int, floor: int = 256) -> int:
    """`n` rounded up to 1, 1.25, 1.5 or 1.75 × a power of two (at least `floor`): at most 25 % more slots, and
    few distinct sizes, so freed buffers (and the decode graphs keyed by their address) get reused."""
    if n <= floor:
        return floor
    step = max(floor, 1 << (n.bit_length() - 3))  # a quarter of the power of two below n
    return -(-n // step) * step


class BufferPool:
    """Freed KV buffers kept for the next request of the same shape (at most `per_shape` each, `max_bytes` in
    all): a CUDA graph bakes in buffer addresses, so a reused buffer replays an existing graph instead of
    capturing a new one. A buffer returns here when its `SequenceKV` is garbage-collected, never earlier."""

    def __init__(self, max_bytes: int, per_shape: int = 4):
        self.max_bytes, self.per_shape = max_bytes, per_shape
        self._free: dict[tuple, list[torch.Tensor]] = {}
        self._bytes = 0
        self._lock = threading.Lock()  # finalizers run on whichever thread drops the last reference
        self.hits = self.misses = 0

    @staticmethod
    def _key(shape, dtype, device) -> tuple:
        return tuple(shape), dtype, str(torch.device(device))

    def take(self, shape, dtype: torch.dtype, device) -> torch.Tensor:
        with self._lock:
            free = self._free.get(self._key(shape, dtype, device))
            if free:
                buffer = free.pop()
                self._bytes -= buffer.numel() * buffer.element_size()
                self.hits += 1
                return buffer
            self.misses += 1
        return torch.empty(shape, dtype=dtype, device=device)

    def give_back(self, buffer: torch.Tensor) -> None:
        size = buffer.numel() * buffer.element_size()
        with self._lock:
            free = self._free.setdefault(self._key(buffer.shape, buffer.dtype, buffer.device), [])
            if len(free) < self.per_shape and self._bytes + size <= self.max_bytes:
                free.append(buffer)
                self._bytes += size

    def info(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "free_bytes": self._bytes}


class RaggedKV:
    """One layer's keys (or values) of several requests, each a (1, H_kv, L_i, D) view of its own buffer.

    What `BatchKV.update` hands to the attention function instead of one padded tensor: padding the requests
    to one length would copy every cache on every layer of every decode step."""

    def __init__(self, rows: list[torch.Tensor]):
        self.rows = rows


class _BatchLayer(CacheLayerMixin):
    """Layer `index` of several requests' buffers, for a batched decode step (one new token per request)."""

    is_sliding = False

    def __init__(self, index: int, sequences: list[SequenceKV]):
        super().__init__()
        self.index, self.sequences = index, sequences
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Nothing to do: every request's buffer exists."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        keys, values = [], []
        for row, seq in enumerate(self.sequences):
            k, v = seq.layers[self.index].update(key_states[row:row + 1], value_states[row:row + 1])
            keys.append(k)
            values.append(v)
        return RaggedKV(keys), RaggedKV(values)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0

    def get_seq_length(self) -> int:
        return max(seq.layers[self.index].length for seq in self.sequences)

    def get_max_length(self) -> int:
        return max(seq.capacity for seq in self.sequences)


class BatchKV(Cache):
    """Several requests' `SequenceKV`s seen as one batch, for one decode step: the new token of row i is written
    to request i's buffer and attends to that buffer only (`engine.attention` handles `RaggedKV`)."""

    def __init__(self, sequences: list[SequenceKV]):
        if not sequences:
            raise ValueError("a batch needs at least one request")
        n_layers = len(sequences[0].layers)
        super().__init__(layers=[_BatchLayer(i, sequences) for i in range(n_layers)])
