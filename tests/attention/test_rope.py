"""RoPE delta re-rotation: R(Δ)·k(p) == k(p + Δ), for every rope flavour the Llama family uses."""

import pytest
import torch
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, rotate_half

from blockattn.attention import RopeSpec, rerotate_keys
from blockattn.models.tiny import tiny_config, tiny_model

ROPE_FLAVOURS = {
    "default": {"rope_type": "default", "rope_theta": 10000.0},
    "linear": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
    "llama3": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 256},
    "yarn": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 256},
}


def _hf_rotated(rotary, k: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """HF's own RoPE applied to k (1, H, T, D) at `positions`, rotating the first rotary_dim channels."""
    cos, sin = rotary(k, positions.view(1, -1))  # (1, T, rot)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    rot = cos.shape[-1]
    k_rot, k_pass = k[..., :rot], k[..., rot:]
    return torch.cat((k_rot * cos + rotate_half(k_rot) * sin, k_pass), dim=-1)


def _exact_rotated(rotary, k: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The same rotation in float64 (HF's fp32 angles p·θ lose ~p·1e-7 rad, so they are no reference at
    large p)."""
    inv = rotary.inv_freq.double()
    angle = positions.double().view(-1, 1) * inv.view(1, -1)
    angle = torch.cat((angle, angle), dim=-1)  # (T, rot)
    cos, sin = angle.cos() * rotary.attention_scaling, angle.sin() * rotary.attention_scaling
    kd = k.double()
    rot = cos.shape[-1]
    return torch.cat((kd[..., :rot] * cos + rotate_half(kd[..., :rot]) * sin, kd[..., rot:]), dim=-1)


def test_hf_rope_matches_the_float64_reference_at_small_positions():
    rotary = LlamaRotaryEmbedding(tiny_config(rope_parameters=ROPE_FLAVOURS["yarn"]))
    k = torch.randn(1, 2, 9, 16)
    positions = torch.arange(9)
    assert (_hf_rotated(rotary, k, positions).double() - _exact_rotated(rotary, k, positions)).abs().max() < 1e-5


@pytest.mark.parametrize("flavour", sorted(ROPE_FLAVOURS))
@pytest.mark.parametrize("delta", [1, 37, 1000, -5])
def test_rerotation_equals_rope_at_shifted_positions(flavour, delta):
    config = tiny_config(rope_parameters=ROPE_FLAVOURS[flavour])
    rotary = LlamaRotaryEmbedding(config)
    torch.manual_seed(0)
    k = torch.randn(1, 2, 9, config.hidden_size // config.num_attention_heads)
    positions = torch.arange(10, 19)
    moved = rerotate_keys(_hf_rotated(rotary, k, positions), delta, RopeSpec(rotary.inv_freq.float(), 16))
    assert (moved.double() - _exact_rotated(rotary, k, positions + delta)).abs().max() < 1e-5


def test_partial_rotary_leaves_the_unrotated_channels_alone():
    # Llama's own "default" init ignores partial rotary; the shared rope utils (here "linear") honour it
    config = tiny_config(rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 1.0,
                                          "partial_rotary_factor": 0.5})
    rotary = LlamaRotaryEmbedding(config)
    spec = RopeSpec(rotary.inv_freq.float(), 2 * rotary.inv_freq.numel())
    assert spec.rotary_dim == 8
    k = torch.randn(1, 2, 5, 16)
    positions = torch.arange(5)
    moved = rerotate_keys(_hf_rotated(rotary, k, positions), 123, spec)
    assert (moved.double() - _exact_rotated(rotary, k, positions + 123)).abs().max() < 1e-5
    assert torch.equal(moved[..., 8:], k[..., 8:])


def test_rotation_is_done_in_fp32_for_bf16_keys():
    rotary = LlamaRotaryEmbedding(tiny_config())
    spec = RopeSpec(rotary.inv_freq.float(), 16)
    k = torch.randn(1, 2, 4, 16)
    exact = rerotate_keys(k, 5000, spec)
    in_bf16 = rerotate_keys(k.bfloat16(), 5000, spec)
    assert in_bf16.dtype == torch.bfloat16
    # error is one bf16 rounding of the result, not an accumulation of bf16 arithmetic
    assert (in_bf16.float() - exact).abs().max() < 0.02


def test_zero_delta_is_identity():
    k = torch.randn(1, 1, 3, 16)
    assert rerotate_keys(k, 0, RopeSpec(torch.ones(8), 16)) is k


def test_spec_from_model_and_dynamic_rope_refused():
    model = tiny_model()
    assert RopeSpec.from_model(model).rotary_dim == 16
    dynamic = tiny_model(rope_parameters={"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0})
    with pytest.raises(ValueError, match="dynamic"):
        RopeSpec.from_model(dynamic)
