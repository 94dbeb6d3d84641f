"""Missing blocks prefilled as one packed sequence: flash's variable-length kernel, no padding between blocks.

Why (issue 10, serving): a request's misses are ~13 HotpotQA paragraphs of 20-650 tokens. Padded into
batches by length bucket (`blockprefill.prefill_blocks`) they took several forwards over ~1.7x their tokens
(H200 profile of the serving shape, 2026-12-04: the "blocks" phase was 7.8 of a 12.7 ms prefill). Packed end
to end they are one forward over their own tokens. Each block is its own sequence of flash's variable-length
kernel (`cu_seqlens`), at its own positions 0, 1, ..., so it sees exactly what it sees alone:

    tokens     [S' k b1 b1 b1 | S' k b2 b2 | ... | pad pad]      S' shared-sink copy, k sink tokens per block
    positions  [0  1 2  3  4  | 0  1 2  3  | ... | 0   1  ]
    sequences  cu = [0, 5, 9, ..., N, N', N', ...]            the padding is a sequence of its own; unused
                                                               entries are empty sequences

The sink rows' embeddings are gathered from the sinks' parameters inside the step (a replay reads them where
they live). Each layer writes its K/V straight into one output tensor (`PackedKV`), from which every block's
entry is a slice. On CUDA the step is replayed from a graph per (padded total, padded count)
(`blockprefill.PrefillGraphs.packed`); where flash's kernel does not run (the CPU, fp32, a torch without it)
`blockprefill` keeps its padded batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers.cache_utils import Cache, CacheLayerMixin

from blockattn.engine import flashbuffer
from blockattn.engine.kvbuffer import bucket_capacity

LEAST_TOKENS = 256  # the smallest padded total: packs of fewer tokens share one shape
LEAST_SEQUENCES = 8  # the smallest padded sequence count


def packing_applies(weight: torch.Tensor) -> bool:
    """Whether blocks on `weight`'s device and dtype are prefilled packed (flash's kernel runs there)."""
    return flashbuffer.flash_applies(weight)


def bucket_pow2(n: int, least: int) -> int:
    """`n` rounded up to a power of two, at least `least` (the padded prefill's buckets too)."""
    return max(least, 1 << max(0, n - 1).bit_length())


@dataclass
class Pack:
    """The host side of one packed forward: what to upload, where each block's K/V lands."""

    values: np.ndarray  # (4, N') int64: token ids (0 at sink and padding slots), sink row (-1: a token),
    #                      positions, and cu_seqlens in the first `sequences + 1` entries of the last row
    starts: list[int]  # where block i's S' + k + tokens begin
    sizes: list[int]  # their lengths
    sequences: int  # cu_seqlens entries - 1 (padded count)

    @property
    def tokens(self) -> int:
        return self.values.shape[1]

    @staticmethod
    def build(blocks: list[list[int]], n_prefix: int, pad: bool) -> "Pack":
        """`blocks` each behind `n_prefix` sink rows. `pad`: round the total and the count up to few shapes
        (a graph's), else exact (an eager forward)."""
        sizes = [n_prefix + len(b) for b in blocks]
        total = sum(sizes)
        padded = bucket_capacity(total, LEAST_TOKENS) if pad else total
        count = len(sizes) + 1  # the blocks, then the padding (an empty sequence when there is none)
        sequences = bucket_pow2(count, LEAST_SEQUENCES) if pad else count
        width = max(padded, sequences + 1)  # the cu_seqlens row needs sequences + 1 entries
        values = np.zeros((4, width), dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist() if sizes else []
        prefix = np.arange(n_prefix)
        for start, size, block in zip(starts, sizes, blocks):
            values[0, start + n_prefix:start + size] = block
            values[1, start:start + size] = -1
            values[1, start:start + n_prefix] = prefix
            values[2, start:start + size] = np.arange(size)
        values[1, total:] = -1
        values[2, total:width] = np.arange(width - total)
        bounds = np.cumsum([0, *sizes]).tolist()
        values[3, :sequences + 1] = bounds + [width] * (sequences + 1 - len(bounds))
        return Pack(values, starts, sizes, sequences)


class _PackedLayer(CacheLayerMixin):
    """Layer i: writes the pack's K/V into the output, hands them back as they are (no past to attend to)."""

    is_sliding = False

    def __init__(self, owner: "PackedKV", index: int):
        super().__init__()
        self.owner, self.index = owner, index
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Nothing to do: the output is allocated at the first write."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        out = self.owner.output(key_states)
        out[self.index, 0].copy_(key_states[0])
        out[self.index, 1].copy_(value_states[0])
        return key_states, value_states

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return query_length, 0

    def get_seq_length(self) -> int:
        return 0

    def get_max_length(self) -> int:
        return -1


class PackedKV(Cache):
    """Where a packed forward's K/V go: one tensor (n_layers, 2, H_kv, N, D)."""

    def __init__(self, n_layers: int):
        self.out: torch.Tensor | None = None
        self.n_layers = n_layers
        super().__init__(layers=[_PackedLayer(self, i) for i in range(n_layers)])

    def output(self, like: torch.Tensor) -> torch.Tensor:
        if self.out is None:
            _, kv_heads, n, d = like.shape
            self.out = torch.empty(self.n_layers, 2, kv_heads, n, d, dtype=like.dtype, device=like.device)
        return self.out


class PackedAttention:
    """Causal attention within each sequence of the pack: flash's variable-length kernel over cu_seqlens."""

    def __init__(self, cu: torch.Tensor, max_len: int):
        self.cu, self.max_len = cu, max_len

    def __call__(self, module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 attention_mask, scaling: float | None = None) -> tuple[torch.Tensor, None]:
        d = query.shape[-1]
        scale = d ** -0.5 if scaling is None else scaling
        q = query[0].transpose(0, 1).contiguous()  # (N, H, D)
        k, v = key[0].transpose(0, 1), value[0].transpose(0, 1)  # (N, H_kv, D), last axis contiguous
        out, _ = flashbuffer.flash_varlen(q, k, v, self.cu, self.cu, self.max_len, self.max_len, scale, True)
        return out.unsqueeze(0), None  # (1, N, H, D)


def packed_forward(model: nn.Module, values: torch.Tensor, sequences: int, prefix: torch.Tensor | None
                   ) -> torch.Tensor:
    """K/V (n_layers, 2, H_kv, N, D) of the pack `values` (4, N) on the model's device (`Pack.values`), the
    `prefix` (P, H) sink embeddings gathered into the sink rows."""
    ids, sink, positions = values[0], values[1], values[2]
    cu = values[3, :sequences + 1].to(torch.int32)
    embeds = model.get_input_embeddings()(ids)  # (N, H)
    if prefix is not None:
        rows = prefix[sink.clamp(min=0)]  # (N, H)
        embeds = torch.where((sink >= 0).unsqueeze(1), rows, embeds)
    cache = PackedKV(model.config.num_hidden_layers)
    model(inputs_embeds=embeds.unsqueeze(0), position_ids=positions.unsqueeze(0), past_key_values=cache,
          use_cache=True, logits_to_keep=1, attention_fn=PackedAttention(cu, values.shape[1]))
    return cache.out


def groups_by_tokens(sizes: list[int], max_tokens: int) -> list[list[int]]:
    """Consecutive indices grouped so that each group's total stays within `max_tokens` (a longer block
    forms a group of its own)."""
    groups: list[list[int]] = []
    total = 0
    for i, size in enumerate(sizes):
        if groups and total + size <= max_tokens:
            groups[-1].append(i)
            total += size
        else:
            groups.append([i])
            total = size
    return groups
