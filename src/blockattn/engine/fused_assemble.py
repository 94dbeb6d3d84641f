"""One Triton kernel that places a request's cached blocks into its KV buffer: their keys re-rotated, their values
copied, read once and written once (issue 10: assembling took 18.5 ms where moving the bytes takes ~2 ms), all
blocks in one launch (a launch per block cost ~55 launches' host time per serving request).

    for each (layer, KV head, tile of T_BLOCK positions of one block) of a block moved by Δ:
        k = entry[l, 0, h, t, :] (fp32)         buffer[l, 0, h, offset + t, :rot] = rotate(k[:rot], Δ·θ)
                                                buffer[l, 0, h, offset + t, rot:] = k[rot:]   (partial rotary)
        buffer[l, 1, h, offset + t, :] = entry[l, 1, h, t, :]

with rotate-half: [x₁ | x₂] → [x₁·cos − x₂·sin | x₂·cos + x₁·sin], cos/sin of Δ·θ from
`rope.rotation_tables` (fp64 angles, fp32 tables) -- the same arithmetic as `rope.apply_rotation`, in fp32. No `torch.cat` of the
blocks and no fp32 temporary: the torch path (`assemble`) makes ~4 passes over the keys.

`_SUPPORTS_TRITON` is a module constant tests patch; without Triton (the CPU) the torch path runs.
"""

from __future__ import annotations

import numpy as np
import torch

from blockattn.engine.cudagraph import to_device

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
    def _place_blocks_kernel(meta, tiles, dst, cos, sin, n_heads, n_blocks, n_tiles,
                             d_l, d_kv, d_h, d_t,  # buffer strides (layer, k/v, head, token); channel stride 1
                             HALF: tl.constexpr, HALF_P2: tl.constexpr, REST: tl.constexpr, REST_P2: tl.constexpr,
                             DIM_P2: tl.constexpr, T_TILE: tl.constexpr):
        # program (layer·head, tile): tile → (block b, first position t0 in it); block b's entry address,
        # buffer offset and length are meta[b], meta[n_blocks + b], meta[2·n_blocks + b]; its entry is a
        # contiguous (n_layers, 2, H_kv, T_b, D), so its strides follow from T_b
        lh = tl.program_id(0).to(tl.int64)  # int64 offsets: an 8B-shaped 32k buffer has 2^31 elements
        layer, head = lh // n_heads, lh % n_heads
        tile = tl.program_id(1)
        b = tl.load(tiles + tile).to(tl.int64)
        t0 = tl.load(tiles + n_tiles + tile).to(tl.int64)
        src = tl.load(meta + b).to(tl.pointer_type(dst.dtype.element_ty))
        offset = tl.load(meta + n_blocks + b)
        n_tokens = tl.load(meta + 2 * n_blocks + b)
        dim_n = 2 * HALF + REST
        s_h = n_tokens * dim_n
        s_kv = n_heads * s_h
        t = t0 + tl.arange(0, T_TILE)
        rows = (t < n_tokens)[:, None]
        src_row = src + layer * 2 * s_kv + head * s_h + t[:, None] * dim_n  # keys: k/v index 0
        dst_row = dst + layer * d_l + head * d_h + (offset + t[:, None]) * d_t
        half = tl.arange(0, HALF_P2)
        hmask = rows & (half < HALF)[None, :]
        x1 = tl.load(src_row + half[None, :], mask=hmask, other=0.0).to(tl.float32)
        x2 = tl.load(src_row + HALF + half[None, :], mask=hmask, other=0.0).to(tl.float32)
        table = b * 2 * HALF
        c1 = tl.load(cos + table + half, mask=half < HALF, other=0.0)[None, :]
        c2 = tl.load(cos + table + HALF + half, mask=half < HALF, other=0.0)[None, :]
        s1 = tl.load(sin + table + half, mask=half < HALF, other=0.0)[None, :]
        s2 = tl.load(sin + table + HALF + half, mask=half < HALF, other=0.0)[None, :]
        out_type = dst.dtype.element_ty
        tl.store(dst_row + half[None, :], (x1 * c1 - x2 * s1).to(out_type), mask=hmask)
        tl.store(dst_row + HALF + half[None, :], (x2 * c2 + x1 * s2).to(out_type), mask=hmask)
        if REST > 0:  # channels past the rotary part move unrotated
            rest = tl.arange(0, REST_P2)
            rmask = rows & (rest < REST)[None, :]
            tail = tl.load(src_row + 2 * HALF + rest[None, :], mask=rmask, other=0.0)
            tl.store(dst_row + 2 * HALF + rest[None, :], tail.to(out_type), mask=rmask)
        dim = tl.arange(0, DIM_P2)
        vmask = rows & (dim < dim_n)[None, :]
        values = tl.load(src_row + s_kv + dim[None, :], mask=vmask, other=0.0)
        tl.store(dst_row + d_kv + dim[None, :], values.to(out_type), mask=vmask)


def fused_available(device: torch.device) -> bool:
    return _SUPPORTS_TRITON and device.type == "cuda"


def place_blocks(buffer: torch.Tensor, entries: list[torch.Tensor], offsets: list[int], cos: torch.Tensor,
                 sin: torch.Tensor) -> None:
    """buffer (n_layers, 2, H_kv, capacity, D)[:, :, :, offset_i:offset_i + T_i] ← entries[i] (n_layers, 2,
    H_kv, T_i, D; contiguous, in the buffer's dtype), keys rotated by (cos[i], sin[i]) of (n_blocks, rotary_dim)
    fp32 tables; all on one device. One launch for every block: the serving benchmark's requests carry ~55 blocks,
    and a launch per block cost more host time than the copy itself."""
    n_layers, _, heads, _, dim = buffer.shape
    if buffer.stride(-1) != 1:
        raise ValueError("fused placement needs a contiguous channel dimension")
    for entry in entries:
        if not entry.is_contiguous() or entry.dtype != buffer.dtype or entry.shape[:3] != buffer.shape[:3] \
                or entry.shape[4] != dim:
            raise ValueError("fused placement needs contiguous entries of the buffer's dtype and layout")
    lengths = np.array([e.shape[3] for e in entries], dtype=np.int64)
    per_block = -(-lengths // T_BLOCK)  # tiles of each block
    tiles = np.stack([np.repeat(np.arange(len(entries)), per_block),
                      np.concatenate([np.arange(k) * T_BLOCK for k in per_block])]).astype(np.int32)
    meta = np.stack([[e.data_ptr() for e in entries], offsets, lengths]).astype(np.int64)
    meta_t, tiles_t = (to_device(torch.from_numpy(table), buffer.device) for table in (meta, tiles))
    rot = cos.shape[-1]
    half, rest = rot // 2, dim - rot
    grid = (n_layers * heads, tiles.shape[1])
    _place_blocks_kernel[grid](
        meta_t, tiles_t, buffer, cos.contiguous(), sin.contiguous(), heads, len(entries), tiles.shape[1],
        buffer.stride(0), buffer.stride(1), buffer.stride(2), buffer.stride(3),
        HALF=half, HALF_P2=triton.next_power_of_2(max(half, 1)), REST=rest,
        REST_P2=triton.next_power_of_2(max(rest, 1)), DIM_P2=triton.next_power_of_2(dim), T_TILE=T_BLOCK)
