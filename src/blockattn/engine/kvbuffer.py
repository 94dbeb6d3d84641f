"""A request's KV cache: one preallocated buffer that cached blocks are copied into once, then grows in place.

    buffer (n_layers, 2, H_kv, capacity, D)      [:, 0] keys, [:, 1] values; buffer index == RoPE position

    | shared sink | block 1 | block 2 | ... | query | decoded tokens ... |      free       |
    0                                       ^ length                                     capacity

HF's attention layers call `update(k, v, layer)`: the new K/V are written at [length, length + T) and views of
[0, length + T) are returned -- no `torch.cat` of the whole cache per layer per step (what `DynamicCache`
does), no allocation. It is a transformers `Cache`, so any Llama-family model runs on it unchanged.
"""

from __future__ import annotations

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
                 device: torch.device | str):
        # torch.empty: every slot is written before it is read (blocks are copied in, new tokens appended)
        self.buffer = torch.empty(n_layers, 2, kv_heads, capacity, head_dim, dtype=dtype, device=device)
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
