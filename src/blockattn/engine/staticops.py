"""The two operations every static (graph-captured) step shares: masked attention over a whole buffer, and the
K/V write into it. Used by the single-token decode step (`decodegraph`), the batched arena step (`batchgraph`)
and the query-block step (`graphs`).

Attention as two matmuls, not SDPA. Measured on the H200 (scripts/gpu/profile_decode.py, 2026-12-02): the
masked memory-efficient SDPA kernel took 100 µs per layer for one SmolLM2 decode token over a 2k-slot buffer,
3.1 of the step's 5.3 ms. Its grid is (heads × query tiles): a decode step has 3 KV heads and one tile, so 3
thread blocks walk 2048 keys one after another while the GPU's 132 SMs idle. A matmul spreads the key axis
over the whole GPU instead:

    scores = rows · Kᵀ      (B, H_kv, R, D) × (B, H_kv, D, L) → (B, H_kv, R, L), fp32
    scores[~visible] = -inf;  P = softmax(scores)                           fp32
    out = P · V             P cast to V's dtype (what a fused kernel does with its tile of P)

The scores are fp32: a bf16 score rounds a logit of 20 by up to 0.06, i.e. 6 % on its softmax weight. On CUDA
they come straight out of a bf16 matmul with fp32 output (`torch.bmm(..., out_dtype=torch.float32)`, probed
once by `probe_fp32_scores`); elsewhere, or where that is missing, from fp32 copies of the rows and keys (one
more pass over the keys: for the Llama-8B shape at 64 streams × 2k positions, 0.5 GB per layer).

The K/V write is kept out of torch.compile (`torch.compiler.disable`): functionalization turns an in-place
write into a slice of one big buffer into a copy of the whole buffer (seen on the H200: 190 µs per layer for
the Llama-8B shape, which made the compiled step slower than the eager one). The write runs as one eager
kernel between two compiled regions, all inside the same CUDA graph.
"""

from __future__ import annotations

import torch


# Whether CUDA's bmm takes out_dtype=float32 for half-precision inputs (set by `probe_fp32_scores`, which the
# engine calls once, outside any capture or compilation: a module constant is what torch.compile can bake in).
FP32_SCORES_BMM = False


def probe_fp32_scores(device: torch.device) -> bool:
    """Try a tiny bf16 bmm with fp32 output on `device` (CUDA); remember whether it runs."""
    global FP32_SCORES_BMM
    if torch.device(device).type == "cuda":
        try:
            a = torch.ones(1, 2, 8, dtype=torch.bfloat16, device=device)
            FP32_SCORES_BMM = torch.bmm(a, a.transpose(1, 2), out_dtype=torch.float32).dtype == torch.float32
        except (TypeError, RuntimeError, NotImplementedError):
            FP32_SCORES_BMM = False
    return FP32_SCORES_BMM


def _scores(rows: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """rows · keyᵀ in fp32: (B, H_kv, R, D) × (B, H_kv, L, D) → (B, H_kv, R, L)."""
    b, h, r, d = rows.shape
    length = key.shape[2]
    if FP32_SCORES_BMM and rows.is_cuda and rows.dtype in (torch.bfloat16, torch.float16):
        flat = torch.bmm(rows.reshape(b * h, r, d), key.reshape(b * h, length, d).transpose(1, 2),
                         out_dtype=torch.float32)
        return flat.view(b, h, r, length)
    return torch.matmul(rows.float(), key.float().transpose(-1, -2))


def masked_attention(rows: torch.Tensor, key: torch.Tensor, value: torch.Tensor, visible: torch.Tensor,
                     scale: float | None) -> torch.Tensor:
    """rows (B, H_kv, R, D) over key/value (B, H_kv, L, D); `visible` (bool) broadcasts to (B, H_kv, R, L) and
    marks the keys each row sees (at least one per row) → (B, H_kv, R, D) in value's dtype."""
    scale = rows.shape[-1] ** -0.5 if scale is None else scale
    scores = _scores(rows, key) * scale
    scores = scores.masked_fill(~visible, float("-inf"))
    probs = torch.softmax(scores, dim=-1).to(value.dtype)
    return torch.matmul(probs, value)


class OneTokenAttention:
    """One new token per row over that row's static K/V; `visible` (B or 1, 1, 1, L) marks the keys each row
    sees (its own included). Used by the single-token decode step (one row over a whole buffer) and the
    batched arena step (one row per slot). Same signature as `engine.attention.cached_attention`."""

    def __init__(self, visible: torch.Tensor):
        self.visible = visible

    def __call__(self, module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 attention_mask, scaling: float | None = None) -> tuple[torch.Tensor, None]:
        b, heads, t, d = query.shape
        kv_heads = key.shape[1]
        if t != 1:
            raise ValueError("a static decode step attends with exactly one query token per row")
        # the G query heads of a KV head are G query rows of it: grouped-query attention without a K/V copy
        rows = query.reshape(b, kv_heads, heads // kv_heads, d)  # (B, H_kv, G, D): head h = kv * G + g
        out = masked_attention(rows, key, value, self.visible, scaling)
        return out.reshape(b, 1, heads, d), None  # (B, 1, H, D)


@torch.compiler.disable
def index_copy_into(dest: torch.Tensor, dim: int, index: torch.Tensor, src: torch.Tensor) -> None:
    """dest.index_copy_(dim, index, src), never traced by torch.compile (see the module docstring)."""
    dest.index_copy_(dim, index, src)


@torch.compiler.disable
def scatter_into(dest: torch.Tensor, dim: int, index: torch.Tensor, src: torch.Tensor) -> None:
    """dest.scatter_(dim, index, src), never traced by torch.compile (see the module docstring)."""
    dest.scatter_(dim, index, src)
