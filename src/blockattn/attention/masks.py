"""Block-attention masks, dense and FlexAttention, from one predicate.

`block_mask_mod(layout)` is the single source of truth: a FlexAttention `mask_mod(b, h, q_idx, kv_idx)`.
`dense_block_mask` evaluates the very same function on broadcast index tensors, so the dense (SDPA) and the
Flex (`BlockMask`, O(N) memory) masks cannot disagree; tests compare them, including lengths that are not
multiples of the Flex block size.
"""

from __future__ import annotations

from typing import Callable

import torch

from blockattn.attention.layout import CONTEXT, PAD, QUERY, SHARED, BlockLayout

MaskMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def block_mask_mod(layout: BlockLayout) -> MaskMod:
    """The visibility predicate of `layout` (True = q may attend to kv).

    Student (block attention): causal, and kv is in q's own block, or q is in a query block and kv is a
    context or shared-sink token. Teacher (`layout.teacher`): causal, and kv is in q's own block or is any
    context / shared-sink token -- full attention over exactly the text the student can see. Local sink
    copies are seen by their own block only. Padding is seen by no one; every token sees itself, so no row
    of the mask is empty.
    """
    block_ids, kinds, teacher = layout.block_ids, layout.kinds, layout.teacher

    def mask_mod(b, h, q_idx, kv_idx):
        q_kind = kinds[b, q_idx]
        kv_kind = kinds[b, kv_idx]
        same_block = block_ids[b, q_idx] == block_ids[b, kv_idx]
        kv_is_context = (kv_kind == CONTEXT) | (kv_kind == SHARED)
        cross = kv_is_context if teacher else (q_kind == QUERY) & kv_is_context
        visible = (kv_idx <= q_idx) & (kv_kind != PAD) & (same_block | cross)
        return visible | (q_idx == kv_idx)

    return mask_mod


def dense_block_mask(layout: BlockLayout, device: torch.device | str | None = None) -> torch.Tensor:
    """(B, 1, N, N) bool mask for `scaled_dot_product_attention` (True = attend). O(N²) memory."""
    lay = layout if device is None else layout.to(device)
    dev = lay.block_ids.device
    n = lay.seq_len
    b = torch.arange(lay.batch_size, device=dev).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
    h = torch.zeros(1, 1, 1, 1, dtype=torch.long, device=dev)
    q = torch.arange(n, device=dev).view(1, 1, n, 1)  # (1, 1, N, 1)
    kv = torch.arange(n, device=dev).view(1, 1, 1, n)  # (1, 1, 1, N)
    return block_mask_mod(lay)(b, h, q, kv)  # (B, 1, N, N)


def flex_block_mask(layout: BlockLayout, device: torch.device | str, block_size: int = 128):
    """FlexAttention `BlockMask` for `layout`: stores only which (block_size × block_size) tiles are
    full / partial / empty, so memory is O(N²/block_size²) tiles + O(N) layout, and empty tiles are skipped."""
    from torch.nn.attention.flex_attention import create_block_mask

    lay = layout.to(device)
    on_cuda = torch.device(device).type == "cuda"
    return create_block_mask(
        block_mask_mod(lay), B=lay.batch_size, H=None, Q_LEN=lay.seq_len, KV_LEN=lay.seq_len,
        device=device, BLOCK_SIZE=block_size,
        # compiled mask creation never materialises the N×N predicate; on CPU the eager path is fine at ≤ 8k
        _compile=on_cuda,
    )
