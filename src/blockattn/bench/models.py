"""Models the speed benchmarks run: the real default model, a Llama-3-8B-shaped random model, a tiny one.

Random weights are enough for speed (the arithmetic is the same); they are drawn directly on the target
device, so the 8B shape is ready in seconds rather than minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

BENCH_MODELS = ("smollm2", "llama8b", "tiny")


@dataclass
class BenchModel:
    name: str  # the benchmark's label
    model: Any
    identity: str  # for block-cache keys
    dtype: str
    max_positions: int

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def weight_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())


def llama8b_config():
    """Llama-3-8B's shape: 32 layers, hidden 4096, 32 heads with 8 KV heads (GQA), MLP 14336, vocab 128256."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072,
                       rope_parameters={"rope_type": "default", "rope_theta": 500000.0}, rms_norm_eps=1e-5,
                       tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128001)


def _random_model(config, dtype: torch.dtype, device: torch.device):
    """from_config with its parameters allocated on `device` and drawn there (N(0, 0.02), norms at 1)."""
    from transformers import AutoModelForCausalLM

    from blockattn.attention.interface import enable_block_attention

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    enable_block_attention(model)
    return model.eval().requires_grad_(False)


def build(name: str, device: str, dtype: str | None = None) -> BenchModel:
    """A benchmark model on `device`; dtype defaults to bfloat16 on CUDA, float32 on the CPU."""
    dev = torch.device(device)
    dtype = dtype or ("bfloat16" if dev.type == "cuda" else "float32")
    torch_dtype = getattr(torch, dtype)
    if name == "smollm2":
        from blockattn.models import load

        loaded = load("smollm2-135m-instruct", dtype=dtype, device=device)
        model, identity = loaded.model.requires_grad_(False), loaded.identity
    elif name == "llama8b":
        model, identity = _random_model(llama8b_config(), torch_dtype, dev), "llama8b-shape-random"
    elif name == "tiny":
        from blockattn.models.tiny import tiny_config

        model, identity = _random_model(tiny_config(max_position_embeddings=8192), torch_dtype, dev), "tiny-random"
    else:
        raise ValueError(f"unknown benchmark model {name!r}; choose from {', '.join(BENCH_MODELS)}")
    label = {"llama8b": "llama-8b-shape"}.get(name, name)
    return BenchModel(label, model, identity, dtype, model.config.max_position_embeddings)
