"""Batched greedy generation after a block-mode (or full-mode) prefill, with block sinks.

Equivalent, row by row, to prefilling one request alone and decoding greedily (tests check it against the
engine's reference `greedy_decode`): rows are right-padded, and each decode step masks the padding and the
local sink copies out of the cache, so a decoded token sees exactly what the request's query block saw --
every context token, the per-block sinks and the shared sink, never padding or local copies.
"""

from __future__ import annotations

from typing import Sequence

import torch

from blockattn.attention.forward import block_forward
from blockattn.attention.layout import LOCAL, PAD, pack_batch, pack_sequence
from blockattn.attention.sinks import BlockSinks

MODES = ("block", "full")


@torch.no_grad()
def greedy_generate(model, requests: Sequence[Sequence[Sequence[int]]], mode: str, max_new_tokens: int,
                    stop_ids: set[int], pad_id: int, sinks: BlockSinks | None = None, sinks_per_block: int = 0,
                    shared_sink: int = 0, backend: str = "auto") -> list[list[int]]:
    """Greedy continuations of `requests` (each a list of token blocks, the last one the query block).

    mode "block": block attention with `sinks_per_block` / `shared_sink` sink tokens from `sinks`;
    mode "full": plain causal attention over the same tokens (no sinks). Returns the new tokens of each
    request, without the stop token."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    k, s = (sinks_per_block, shared_sink) if mode == "block" else (0, 0)
    device = model.get_input_embeddings().weight.device
    ids, layout = pack_batch([pack_sequence(blocks, sinks_per_block=k, shared_sink=s, placeholder_id=pad_id)
                              for blocks in requests], pad_id=pad_id)
    if mode == "full":
        layout = layout.as_teacher()  # only the final block is a query: full attention is plain causal
    ids, layout = ids.to(device), layout.to(device)
    rows = torch.arange(ids.shape[0], device=device)
    last = torch.tensor(layout.lengths, device=device) - 1  # (B,) each row's last real position
    keep = torch.unique(last)  # logits only where some row ends (never [B, N, V])
    out = block_forward(model, ids, layout, sinks=sinks if (k or s) else None, backend=backend,
                        use_cache=True, logits_to_keep=keep)
    logits = out.logits[rows, torch.searchsorted(keep, last)]  # (B, V)
    past = out.past_key_values
    visible = (layout.kinds != PAD) & (layout.kinds != LOCAL)  # (B, N): what decoded tokens may see
    position = layout.position_ids[rows, last] + 1  # (B,)
    done = torch.zeros_like(last, dtype=torch.bool)
    stops = torch.tensor(sorted(stop_ids), device=device, dtype=torch.long)
    generated: list[torch.Tensor] = []
    for step in range(max_new_tokens):
        token = logits.argmax(-1)  # (B,)
        done |= torch.isin(token, stops)
        generated.append(torch.where(done, torch.full_like(token, -1), token))
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        visible = torch.cat([visible, torch.ones_like(visible[:, :1])], dim=1)  # (B, N + step + 1)
        out = model(input_ids=token.unsqueeze(1), position_ids=(position + step).unsqueeze(1),
                    attention_mask=visible.long(), past_key_values=past, use_cache=True)
        logits, past = out.logits[:, -1], out.past_key_values
    tokens = torch.stack(generated, dim=1).tolist()  # (B, steps)
    return [row[:row.index(-1)] if -1 in row else row for row in tokens]  # -1 from a row's stop on
