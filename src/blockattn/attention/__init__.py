"""Block attention core: layout, masks (dense + Flex), the HF attention hook, RoPE re-rotation, block KV."""

from blockattn.attention.forward import block_forward, full_forward, input_embeddings
from blockattn.attention.interface import IMPLEMENTATION, enable_block_attention, is_block_ready
from blockattn.attention.kv import BlockKV, assemble_cache, prefill_block, prefill_shared_sink
from blockattn.attention.layout import (CONTEXT, LOCAL, PAD, QUERY, SHARED, BlockLayout, BlockSpec, pack_batch,
                                        pack_sequence)
from blockattn.attention.masks import block_mask_mod, dense_block_mask, flex_block_mask
from blockattn.attention.rope import RopeSpec, rerotate_keys
from blockattn.attention.sinks import BlockSinks

__all__ = [
    "BlockKV", "BlockLayout", "BlockSinks", "BlockSpec", "CONTEXT", "LOCAL", "IMPLEMENTATION", "PAD", "QUERY", "RopeSpec",
    "SHARED", "assemble_cache", "block_forward", "block_mask_mod", "dense_block_mask", "enable_block_attention",
    "flex_block_mask", "full_forward", "input_embeddings", "is_block_ready", "pack_batch", "pack_sequence",
    "prefill_block", "prefill_shared_sink", "rerotate_keys",
]
