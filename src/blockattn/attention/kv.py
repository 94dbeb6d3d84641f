"""Per-block KV: prefill a block alone at position 0, move it to its offset, assemble a cache.

This is block attention's whole point: a block's K/V does not depend on what comes before it, so it is
computed once (at position 0) and placed anywhere by re-rotating its keys (`rope.rerotate_keys`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache

from blockattn.attention.rope import RopeSpec, rerotate_keys
from blockattn.attention.sinks import BlockSinks


@dataclass
class BlockKV:
    """K/V of one block for every layer, as computed at positions start .. start+length-1."""

    keys: list[torch.Tensor]  # per layer (1, H_kv, T, D), RoPE applied at the native positions
    values: list[torch.Tensor]  # per layer (1, H_kv, T, D)
    start: int  # native position of the first token (0, or the shared-sink length)

    @property
    def length(self) -> int:
        return self.keys[0].shape[2]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)


def _layer_kv(cache: DynamicCache) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    return [layer.keys for layer in cache.layers], [layer.values for layer in cache.layers]


@torch.no_grad()
def prefill_block(model: nn.Module, token_ids: list[int] | torch.Tensor, sinks: BlockSinks | None = None,
                  n_sinks: int = 0, shared_prefix: BlockKV | None = None) -> BlockKV:
    """Prefill one context block alone: [n_sinks sink tokens][tokens] at positions 0.. (or after the
    shared-sink prefix, when given, which the block then attends to). Causal attention inside the block
    only -- exactly what block mode lets a context block see."""
    device = model.get_input_embeddings().weight.device
    ids = torch.as_tensor(token_ids, dtype=torch.long, device=device).view(1, -1)
    embeds = model.get_input_embeddings()(ids)  # (1, T, H)
    if n_sinks:
        if sinks is None or sinks.n_per_block < n_sinks:
            raise ValueError(f"{n_sinks} sink tokens requested but the sinks hold "
                             f"{0 if sinks is None else sinks.n_per_block}")
        embeds = torch.cat([sinks.per_block[:n_sinks].to(embeds.dtype).unsqueeze(0), embeds], dim=1)
    start = 0
    past = None
    if shared_prefix is not None:
        start = shared_prefix.start + shared_prefix.length
        past = assemble_cache(model, [(shared_prefix, shared_prefix.start)], None)
    n = embeds.shape[1]
    out = model(inputs_embeds=embeds, position_ids=torch.arange(start, start + n, device=device).view(1, -1),
                past_key_values=past if past is not None else DynamicCache(config=model.config), use_cache=True)
    keys, values = _layer_kv(out.past_key_values)
    # drop the shared prefix (it is stored once, separately)
    keys = [k[:, :, start:].contiguous() for k in keys] if start else keys
    values = [v[:, :, start:].contiguous() for v in values] if start else values
    return BlockKV(keys=keys, values=values, start=start)


@torch.no_grad()
def prefill_shared_sink(model: nn.Module, sinks: BlockSinks) -> BlockKV:
    """K/V of the shared sink prefix at positions 0..s-1."""
    embeds = sinks.shared.to(model.get_input_embeddings().weight).unsqueeze(0)  # (1, s, H)
    device = embeds.device
    out = model(inputs_embeds=embeds, position_ids=torch.arange(embeds.shape[1], device=device).view(1, -1),
                past_key_values=DynamicCache(config=model.config), use_cache=True)
    keys, values = _layer_kv(out.past_key_values)
    return BlockKV(keys=keys, values=values, start=0)


def assemble_cache(model: nn.Module, parts: list[tuple[BlockKV, int]], rope: RopeSpec | None) -> DynamicCache:
    """Concatenate blocks into one DynamicCache, each moved from its native start to the given offset.
    Offsets must tile the sequence: part i starts where part i-1 ended."""
    expected = 0
    for kv, offset in parts:
        if offset != expected:
            raise ValueError(f"block placed at {offset}, expected {expected}: offsets must be contiguous")
        expected += kv.length
    if rope is None and any(offset != kv.start for kv, offset in parts):
        raise ValueError("moving a block needs the model's RopeSpec")
    cache = DynamicCache(config=model.config)
    n_layers = len(parts[0][0].keys)
    for layer in range(n_layers):
        keys = [rerotate_keys(kv.keys[layer], offset - kv.start, rope) if offset != kv.start else kv.keys[layer]
                for kv, offset in parts]
        values = [kv.values[layer] for kv, _ in parts]
        cache.update(torch.cat(keys, dim=2), torch.cat(values, dim=2), layer)
    return cache
