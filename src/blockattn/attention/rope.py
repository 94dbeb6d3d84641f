"""RoPE delta re-rotation of cached keys.

HF caches keys *after* RoPE: k(p) = R(p)·k. RoPE is a rotation by angle p·θᵢ per frequency, so
R(p + Δ) = R(Δ)·R(p): a block prefilled at position 0 is moved to offset Δ by rotating its cached keys by
Δ·θᵢ -- values are position-free and stay as they are. The rotation is done in fp32 whatever the cache
dtype (bf16 rotation error would grow with Δ).

Layout: HF's rotate-half (Llama, Qwen2/3, Mistral): the rotated part of a head is [x₁ | x₂] with pairs
(x₁[i], x₂[i]) sharing frequency θᵢ. Partial rotary (`partial_rotary_factor`) rotates only the first
`rotary_dim` channels. Rope scaling (linear, llama3, yarn, longrope...) is already folded into the model's
`inv_freq`; yarn/longrope also scale cos/sin by `attention_scaling`, which the cached keys already carry,
so the delta is a pure rotation. "dynamic" NTK scaling changes θ with the sequence length, so a cached key
cannot be moved exactly: refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class RopeSpec:
    """What re-rotation needs to know about a model's RoPE."""

    inv_freq: torch.Tensor  # (rotary_dim / 2,) fp32 frequencies θᵢ, rope scaling included
    rotary_dim: int  # channels of each head that RoPE rotates (head_dim unless partial rotary)

    @staticmethod
    def from_model(model: nn.Module) -> "RopeSpec":
        rotary = find_rotary_embedding(model)
        rope_type = getattr(rotary, "rope_type", "default")
        if "dynamic" in str(rope_type):
            raise ValueError(
                f"rope type {rope_type!r} rescales frequencies with sequence length; cached keys cannot be "
                "re-rotated exactly, so block KV reuse is not supported for this model")
        inv_freq = rotary.inv_freq.detach().to(torch.float32).cpu().clone()
        return RopeSpec(inv_freq=inv_freq, rotary_dim=2 * inv_freq.numel())


def find_rotary_embedding(model: nn.Module) -> nn.Module:
    """The model's (single, shared) rotary embedding module."""
    for module in model.modules():
        if type(module).__name__.endswith("RotaryEmbedding") and hasattr(module, "inv_freq"):
            return module
    raise ValueError(f"{type(model).__name__} has no rotary embedding: not a RoPE (Llama-family) model")


def rotation_tables(delta: int | float | torch.Tensor, rope: RopeSpec,
                    device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 cos/sin of Δ·θ: (rotary_dim,) for a scalar Δ, (T, rotary_dim) for per-position deltas Δ of shape (T,)
    (the engine moves many blocks, each by its own Δ, in one pass)."""
    # Δ·θ and its cos/sin in fp64: an fp32 angle of ~1e3 rad is already off by ~6e-5 rad
    inv_freq = rope.inv_freq.to(device=device, dtype=torch.float64)
    if isinstance(delta, torch.Tensor):
        angle = delta.to(device=device, dtype=torch.float64).unsqueeze(-1) * inv_freq  # (T, rotary_dim / 2)
    else:
        angle = float(delta) * inv_freq  # (rotary_dim / 2,)
    angle = torch.cat((angle, angle), dim=-1)  # (..., rotary_dim)
    return angle.cos().to(torch.float32), angle.sin().to(torch.float32)


def apply_rotation(keys: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                   out: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate the first cos.shape[-1] channels of `keys` (..., T, head_dim) by the angles of `rotation_tables`.

    Computed in fp32; returned in the keys' dtype, or written into `out` (same shape, any dtype, not overlapping
    `keys`) and returned. In place on one fp32 working tensor -- x·cos + rotate_half(x)·sin with
    rotate_half([x₁ | x₂]) = [-x₂ | x₁] -- so an fp32 `out` costs ~3 passes over the keys and no temporaries."""
    rot = cos.shape[-1]
    half = rot // 2
    if out is not None and out.dtype == torch.float32:
        work = out.copy_(keys)
    else:
        work = keys.to(torch.float32, copy=True)
    part = work[..., :rot]
    part.mul_(cos)
    part[..., :half].addcmul_(keys[..., half:rot], sin[..., :half], value=-1)
    part[..., half:].addcmul_(keys[..., :half], sin[..., half:])
    if out is None:
        return work.to(keys.dtype)
    return out if work is out else out.copy_(work)


def rerotate_keys(keys: torch.Tensor, delta: int | float | torch.Tensor, rope: RopeSpec) -> torch.Tensor:
    """Keys cached at positions p (any layout (..., T, head_dim)) → the same keys at positions p + delta.

    Computed in fp32 and returned in the keys' dtype. delta may be negative (moving a block earlier), or a
    (T,) tensor giving each position its own delta."""
    if not isinstance(delta, torch.Tensor) and delta == 0:
        return keys
    return apply_rotation(keys, *rotation_tables(delta, rope, keys.device))
