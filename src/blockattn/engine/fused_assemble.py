"""One Triton kernel that places a cached block into a request's KV buffer: its keys re-rotated, its values
copied, read once and written once (issue 10: assembling took 18.5 ms where moving the bytes takes ~2 ms).

    for each (layer, KV head, tile of T_BLOCK positions) of a block moved by Δ:
        k = entry[l, 0, h, t, :] (fp32)         buffer[l, 0, h, offset + t, :rot] = rotate(k[:rot], Δ·θ)
                                                buffer[l, 0, h, offset + t, rot:] = k[rot:]   (partial rotary)
        buffer[l, 1, h, offset + t, :] = entry[l, 1, h, t, :]

with rotate-half: [x₁ | x₂] → [x₁·cos − x₂·sin | x₂·cos + x₁·sin], cos/sin of Δ·θ from
`rope.rotation_tables` (fp64 angles, fp32 tables) -- the same arithmetic as `rope.apply_rotation`, in fp32. No `torch.cat` of the
blocks and no fp32 temporary: the torch path (`assemble`) makes ~4 passes over the keys.

`_SUPPORTS_TRITON` is a module constant tests patch; without Triton (the CPU) the torch path runs.
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl

    _SUPPORTS_TRITON = True
except ImportError:  # the CPU install: no Triton, the torch path places blocks
    triton = tl = None
    _SUPPORTS_TRITON = False

T_BLOCK = 32  # positions per program


if _SUPPORTS_TRITON:

    @triton.jit
    def _place_block_kernel(src, dst, cos, sin, n_heads, n_tokens,
                            s_l, s_kv, s_h, s_t,  # entry strides (layer, k/v, head, token); channel stride 1
                            d_l, d_kv, d_h, d_t,  # buffer strides, same order
                            HALF: tl.constexpr, HALF_P2: tl.constexpr, REST: tl.constexpr, REST_P2: tl.constexpr,
                            DIM_P2: tl.constexpr, T_TILE: tl.constexpr):
        lh = tl.program_id(0).to(tl.int64)  # int64 offsets: an 8B-shaped 32k buffer has 2^31 elements
        layer, head = lh // n_heads, lh % n_heads
        t = tl.program_id(1).to(tl.int64) * T_TILE + tl.arange(0, T_TILE)
        rows = (t < n_tokens)[:, None]
        src_row = src + layer * s_l + head * s_h + t[:, None] * s_t  # keys: k/v index 0
        dst_row = dst + layer * d_l + head * d_h + t[:, None] * d_t
        half = tl.arange(0, HALF_P2)
        hmask = rows & (half < HALF)[None, :]
        x1 = tl.load(src_row + half[None, :], mask=hmask, other=0.0).to(tl.float32)
        x2 = tl.load(src_row + HALF + half[None, :], mask=hmask, other=0.0).to(tl.float32)
        c1 = tl.load(cos + half, mask=half < HALF, other=0.0)[None, :]
        c2 = tl.load(cos + HALF + half, mask=half < HALF, other=0.0)[None, :]
        s1 = tl.load(sin + half, mask=half < HALF, other=0.0)[None, :]
        s2 = tl.load(sin + HALF + half, mask=half < HALF, other=0.0)[None, :]
        out_type = dst.dtype.element_ty
        tl.store(dst_row + half[None, :], (x1 * c1 - x2 * s1).to(out_type), mask=hmask)
        tl.store(dst_row + HALF + half[None, :], (x2 * c2 + x1 * s2).to(out_type), mask=hmask)
        if REST > 0:  # channels past the rotary part move unrotated
            rest = tl.arange(0, REST_P2)
            rmask = rows & (rest < REST)[None, :]
            tail = tl.load(src_row + 2 * HALF + rest[None, :], mask=rmask, other=0.0)
            tl.store(dst_row + 2 * HALF + rest[None, :], tail.to(out_type), mask=rmask)
        dim = tl.arange(0, DIM_P2)
        vmask = rows & (dim < 2 * HALF + REST)[None, :]
        values = tl.load(src_row + s_kv + dim[None, :], mask=vmask, other=0.0)
        tl.store(dst_row + d_kv + dim[None, :], values.to(out_type), mask=vmask)


def fused_available(device: torch.device) -> bool:
    return _SUPPORTS_TRITON and device.type == "cuda"


def place_block(buffer: torch.Tensor, entry: torch.Tensor, offset: int, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """buffer (n_layers, 2, H_kv, capacity, D)[:, :, :, offset:offset + T] ← `entry` (n_layers, 2, H_kv, T, D),
    keys rotated by (cos, sin) (rotary_dim,) fp32; both on one device, channel dimension contiguous."""
    n_layers, _, heads, n_tokens, dim = entry.shape
    if entry.stride(-1) != 1 or buffer.stride(-1) != 1:
        raise ValueError("fused placement needs a contiguous channel dimension")
    rot = cos.shape[-1]
    half, rest = rot // 2, dim - rot
    dst = buffer[:, :, :, offset:offset + n_tokens]
    grid = (n_layers * heads, triton.cdiv(n_tokens, T_BLOCK))
    _place_block_kernel[grid](
        entry, dst, cos.contiguous(), sin.contiguous(), heads, n_tokens,
        entry.stride(0), entry.stride(1), entry.stride(2), entry.stride(3),
        dst.stride(0), dst.stride(1), dst.stride(2), dst.stride(3),
        HALF=half, HALF_P2=triton.next_power_of_2(max(half, 1)), REST=rest,
        REST_P2=triton.next_power_of_2(max(rest, 1)), DIM_P2=triton.next_power_of_2(dim), T_TILE=T_BLOCK)
