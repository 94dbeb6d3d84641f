"""Prefilling missing blocks, many at once: each block alone, at its native positions, in padded batches.

Every block is the sequence

    [S' (shared-sink copy, s tokens)] [k sink tokens] [block tokens]     at positions 0, 1, ...

under plain causal attention -- exactly what a context block sees in block mode (`attention.layout`), and the
same K/V as `attention.kv.prefill_block` computes one block at a time (the tests hold the two equal). Blocks
are right-padded into a batch: padding comes after a block's tokens, so causal attention keeps it invisible to
them. S' is dropped from the result (the shared sink is stored once, separately).
"""

from __future__ import annotations

import torch
from torch import nn

from blockattn.attention.sinks import BlockSinks


def batches_by_tokens(lengths: list[int], max_batch_tokens: int) -> list[list[int]]:
    """Indices grouped longest first so that each batch's padded size (count × longest) stays within
    `max_batch_tokens` (a single longer block forms a batch of its own)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * max(lengths[batches[-1][0]], 1) <= max_batch_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def stack_layers(cache) -> torch.Tensor:
    """A transformers cache → one tensor (n_layers, 2, B, H_kv, N, D)."""
    return torch.stack([torch.stack((layer.keys, layer.values)) for layer in cache.layers])


@torch.no_grad()
def prefill_blocks(model: nn.Module, blocks: list[list[int]], sinks: BlockSinks | None = None, n_sinks: int = 0,
                   n_shared: int = 0, max_batch_tokens: int = 16384) -> list[torch.Tensor]:
    """K/V of each block: a list of (n_layers, 2, H_kv, n_sinks + len(block), D) tensors, in `blocks` order,
    at native positions n_shared, n_shared + 1, ..."""
    if (n_sinks or n_shared) and (sinks is None or sinks.n_per_block < n_sinks or sinks.n_shared < n_shared):
        raise ValueError(f"{n_sinks} per-block / {n_shared} shared sink tokens requested but the sinks hold fewer")
    embedding = model.get_input_embeddings()
    device = embedding.weight.device
    prefix = None  # (s + k, H) sink embeddings in front of every block
    if n_sinks or n_shared:
        prefix = torch.cat((sinks.shared[:n_shared], sinks.per_block[:n_sinks])).to(embedding.weight.dtype)
    out: list[torch.Tensor | None] = [None] * len(blocks)
    for batch in batches_by_tokens([len(b) for b in blocks], max_batch_tokens):
        longest = max(len(blocks[i]) for i in batch)
        ids = torch.zeros(len(batch), longest, dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, :len(blocks[i])] = torch.as_tensor(blocks[i], dtype=torch.long)
        embeds = embedding(ids.to(device))  # (B, longest, H)
        if prefix is not None:
            embeds = torch.cat((prefix.unsqueeze(0).expand(len(batch), -1, -1), embeds), dim=1)  # (B, N, H)
        n = embeds.shape[1]
        positions = torch.arange(n, device=device).unsqueeze(0).expand(len(batch), -1)  # (B, N)
        result = model(inputs_embeds=embeds, position_ids=positions, use_cache=True, logits_to_keep=1)
        kv = stack_layers(result.past_key_values)  # (n_layers, 2, B, H_kv, N, D)
        for row, i in enumerate(batch):
            out[i] = kv[:, :, row, :, n_shared:n_shared + n_sinks + len(blocks[i])].contiguous()
    return out
