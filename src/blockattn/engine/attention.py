"""Attention of a request's new tokens (its query block, or one decoded token) over its KV buffer.

Passed to the model as `attention_fn=cached_attention` (the hook in `attention.interface`). Why not HF's SDPA
path: with a mask it expands the grouped K/V heads to every query head (`repeat_kv`: for Llama-8B 4× the whole
cache copied per layer) and builds a [T × L] mask that forces a masked, non-flash kernel. Here, with the T new
tokens being the last T of the L keys:

    T == L   nothing before them (a full-attention prompt): plain causal          -> `is_causal=True`
    T == 1   one decoded token: sees every key                                    -> no mask at all
    else     a query block after cached blocks: token i sees all L - T cached keys
             and the block's own keys up to i (causal, aligned lower-right)       -> `causal_lower_right(T, L)`

    q\\kv   c c c c c q q q
    q      x x x x x x . .
    q      x x x x x x x .
    q      x x x x x x x x

All three reach flash attention on CUDA (the lower-right bias dispatches to the flash kernel, which aligns its
causal mask lower-right; no mask tensor exists); elsewhere the lower-right mask is materialised (T × L, small:
T is a query block). Grouped-query attention goes through `enable_gqa`, never a K/V copy.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.bias import causal_lower_right

from blockattn.engine.kvbuffer import RaggedKV

log = logging.getLogger(__name__)


# The SDPA kernels the engine allows on CUDA, chosen on purpose (issue 10): never cuDNN, which builds a new plan
# for every new KV length -- 2.5 ms of CPU per call, i.e. per decode step per layer. Math stays last so a shape
# the fast kernels refuse still runs. A module constant, so tests and benchmarks can patch it.
CUDA_SDPA_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def sdpa_backends(device: torch.device):
    """The context every engine forward on `device` runs in (CUDA: `CUDA_SDPA_BACKENDS`; CPU: torch's choice)."""
    return sdpa_kernel(CUDA_SDPA_BACKENDS) if device.type == "cuda" else nullcontext()


def cached_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, scaling: float | None = None) -> tuple[torch.Tensor, None]:
    """query (B, H, T, D), key/value (B, H_kv, L, D) whose last T positions are the query's own → (B, T, H, D).

    `attention_mask` (HF's) is ignored: the structure above is all a request's new tokens ever need.
    A batched decode step (`kvbuffer.BatchKV`) passes `RaggedKV` key/value: one token per request, each
    attending to its own buffer."""
    if isinstance(key, RaggedKV):
        return _ragged_decode(query, key, value, scaling)
    t, length = query.shape[2], key.shape[2]
    if t > length:
        raise ValueError(f"{t} query tokens but only {length} keys: the query's own keys must be in the cache")
    gqa = query.shape[1] != key.shape[1]
    if t == 1 or t == length:
        out = nn.functional.scaled_dot_product_attention(query, key, value, is_causal=t > 1, scale=scaling,
                                                         enable_gqa=gqa)
    else:
        out = _lower_right(query, key, value, scaling, gqa)
    return out.transpose(1, 2).contiguous(), None  # (B, T, H, D)


def _ragged_decode(query: torch.Tensor, key: RaggedKV, value: RaggedKV,
                   scaling: float | None) -> tuple[torch.Tensor, None]:
    """query (B, H, 1, D): row i's one new token over request i's keys (all visible: T == 1 needs no mask)."""
    if query.shape[2] != 1:
        raise ValueError("a batched step decodes exactly one token per request")
    b, heads, _, d = query.shape
    kv_heads = key.rows[0].shape[1]
    # one token: a KV head's G query heads are G query rows of it -- GQA with no K/V copy and no `enable_gqa`
    # (which not every fused kernel takes), unmasked, so flash runs on CUDA
    rows = query.reshape(b, kv_heads, heads // kv_heads, d)  # (B, H_kv, G, D)
    out = torch.cat([nn.functional.scaled_dot_product_attention(rows[i:i + 1], k, v, scale=scaling)
                     for i, (k, v) in enumerate(zip(key.rows, value.rows))])  # (B, H_kv, G, D)
    return out.reshape(b, 1, heads, d), None  # (B, 1, H, D)


_bias_dispatch_ok = True  # False once the lower-right bias path has failed on this torch build


def _lower_right(query, key, value, scaling, gqa):
    """SDPA with the lower-right causal bias; should a torch build reject it for these inputs, the same mask
    materialised (slower, same result) -- logged once, never a failed request."""
    global _bias_dispatch_ok
    t, length = query.shape[2], key.shape[2]
    if _bias_dispatch_ok:
        try:
            bias = causal_lower_right(t, length)
            return nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=bias, scale=scaling,
                                                              enable_gqa=gqa)
        except RuntimeError as exc:
            _bias_dispatch_ok = False
            log.warning("lower-right causal SDPA failed (%s); using a materialised mask", exc)
    mask = torch.ones(t, length, dtype=torch.bool, device=query.device).tril(diagonal=length - t)  # (T, L)
    return nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling, enable_gqa=gqa)
