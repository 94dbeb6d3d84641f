"""Forward passes in block mode and in full mode, on any Llama-family HF model.

`block_forward` is the reference (uncached) block-attention forward used by training, evaluation and the
exactness tests; the engine's cached path must agree with it.
"""

from __future__ import annotations

import torch
from torch import nn

from blockattn.attention.interface import enable_block_attention, is_block_ready
from blockattn.attention.layout import BlockLayout
from blockattn.attention.sinks import BlockSinks


def input_embeddings(model: nn.Module, input_ids: torch.Tensor, layout: BlockLayout | None = None,
                     sinks: BlockSinks | None = None) -> torch.Tensor:
    """(B, N, H) input embeddings, with sink positions filled from `sinks` when the layout has any."""
    embeds = model.get_input_embeddings()(input_ids)
    if layout is not None and layout.has_sinks:
        if sinks is None:
            raise ValueError("the layout has sink tokens but no BlockSinks were given")
        embeds = sinks.fill(embeds, layout.to(embeds.device))
    return embeds


def block_forward(model: nn.Module, input_ids: torch.Tensor, layout: BlockLayout,
                  sinks: BlockSinks | None = None, backend: str = "auto", **kwargs):
    """Block-attention forward over a whole packed sequence (see `layout.pack_sequence`).

    Extra kwargs go to the model (e.g. `use_cache=True` to keep the block-mode KV for decoding,
    `logits_to_keep`)."""
    if not is_block_ready(model):
        enable_block_attention(model)
    if input_ids.shape != layout.block_ids.shape:
        raise ValueError(f"input_ids {tuple(input_ids.shape)} do not match layout {tuple(layout.block_ids.shape)}")
    device = input_ids.device
    layout = layout.to(device)
    kwargs.setdefault("use_cache", False)
    return model(inputs_embeds=input_embeddings(model, input_ids, layout, sinks),
                 position_ids=layout.position_ids, block_layout=layout, block_backend=backend, **kwargs)


def full_forward(model: nn.Module, input_ids: torch.Tensor, **kwargs):
    """Plain causal forward (HF's own SDPA path)."""
    kwargs.setdefault("use_cache", False)
    return model(input_ids=input_ids, **kwargs)
