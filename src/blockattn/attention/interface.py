"""The hook into transformers: one attention implementation, "blockattn", registered with HF's
`AttentionInterface` together with a mask function under the same name (`AttentionMaskInterface`).

No modeling code is copied: every Llama-family model calls `ALL_ATTENTION_FUNCTIONS[impl](module, q, k, v,
mask, **kwargs)` and passes the kwargs given to `model(...)` through to it. So:

- without a `block_layout` kwarg the call is delegated to HF's own SDPA attention, with HF's own SDPA mask:
  full-attention behaviour is untouched (bit-identical to `attn_implementation="sdpa"`);
- with `block_layout=<BlockLayout>` the mask HF built is ignored and the block mask is used, dense (SDPA) or
  FlexAttention (`block_backend="auto"` picks Flex on CUDA);
- with `attention_fn=<callable>` that callable computes this forward's attention (same signature as this
  function, returning (B, T, H, D)): the engine's kernel over its preallocated KV buffer (`engine.attention`).
"""

from __future__ import annotations

import os

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from blockattn.attention.layout import BlockLayout
from blockattn.attention.masks import dense_block_mask, flex_block_mask

IMPLEMENTATION = "blockattn"
BACKENDS = ("auto", "dense", "flex")

try:  # feature check as a module constant, so tests can patch it to exercise the fallback
    from torch.nn.attention.flex_attention import flex_attention as _flex_attention

    _SUPPORTS_FLEX_ATTENTION = True
except ImportError:  # pragma: no cover - torch < 2.5
    _flex_attention = None
    _SUPPORTS_FLEX_ATTENTION = False

_compiled_flex = None


def compiled_flex_attention():
    """FlexAttention compiled once per process (eager Flex is a slow reference implementation)."""
    global _compiled_flex
    if _compiled_flex is None:
        # Static shapes give the fastest kernels; every new sequence length is one more compiled graph.
        # Training and serving see many lengths, so allow more graphs than dynamo's default of 8 before it
        # falls back to the (slow) eager reference.
        import torch._dynamo.config as dynamo_config

        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
        _compiled_flex = torch.compile(_flex_attention, dynamic=False)
    return _compiled_flex


def resolve_backend(backend: str, device: torch.device) -> str:
    """'auto' → Flex on CUDA when available, dense SDPA otherwise. $BLOCKATTN_ATTENTION_BACKEND overrides auto."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose one of {BACKENDS}")
    if backend == "auto":
        backend = os.environ.get("BLOCKATTN_ATTENTION_BACKEND", "auto")
    if backend == "auto":
        return "flex" if (device.type == "cuda" and _SUPPORTS_FLEX_ATTENTION) else "dense"
    if backend == "flex" and not _SUPPORTS_FLEX_ATTENTION:
        raise RuntimeError("FlexAttention is not available in this torch build")
    return backend


def layout_mask(layout: BlockLayout, device: torch.device, backend: str):
    """The layout's mask for `device`/`backend`, built once per forward pass and shared by all layers."""
    key = (str(device), backend)
    mask = layout._mask_cache.get(key)
    if mask is None:
        mask = flex_block_mask(layout, device) if backend == "flex" else dense_block_mask(layout, device)
        layout._mask_cache[key] = mask
    return mask


def block_attention_forward(
    module: nn.Module,
    query: torch.Tensor,  # (B, H, T, D)
    key: torch.Tensor,  # (B, H_kv, T, D)
    value: torch.Tensor,  # (B, H_kv, T, D)
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    block_layout: BlockLayout | None = None,
    block_backend: str = "auto",
    attention_fn=None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    if attention_fn is not None:
        return attention_fn(module, query, key, value, attention_mask, scaling=scaling)
    if block_layout is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    if key.shape[2] != query.shape[2] or query.shape[2] != block_layout.seq_len:
        raise ValueError(
            f"block_layout covers {block_layout.seq_len} tokens but attention got {query.shape[2]} queries and "
            f"{key.shape[2]} keys; a block-mode forward must cover the whole sequence (use_cache prefix not allowed)")
    backend = resolve_backend(block_backend, query.device)
    mask = layout_mask(block_layout, query.device, backend)
    if backend == "flex":
        out = compiled_flex_attention()(query, key, value, block_mask=mask, scale=scaling,
                                        enable_gqa=key.shape[1] != query.shape[1])
    else:
        groups = query.shape[1] // key.shape[1]
        out = torch.nn.functional.scaled_dot_product_attention(
            query, repeat_kv(key, groups), repeat_kv(value, groups), attn_mask=mask,
            dropout_p=dropout, scale=scaling)
    return out.transpose(1, 2).contiguous(), None  # (B, T, H, D)


_registered = False


def register() -> None:
    """Register "blockattn" with transformers (idempotent)."""
    global _registered
    if not _registered:
        AttentionInterface.register(IMPLEMENTATION, block_attention_forward)
        AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)
        _registered = True


def enable_block_attention(model: nn.Module) -> nn.Module:
    """Switch `model` to the "blockattn" implementation. Full-attention calls behave exactly as HF's SDPA;
    block mode is chosen per call by passing `block_layout=`."""
    register()
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if base.config._attn_implementation != IMPLEMENTATION:
        base.set_attn_implementation(IMPLEMENTATION)
    return model


def is_block_ready(model: nn.Module) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base.config, "_attn_implementation", None) == IMPLEMENTATION
