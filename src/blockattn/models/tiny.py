"""Tiny random-weight Llama-family models for fast tests (same code paths as the real model)."""

from __future__ import annotations

from typing import Any

ARCHITECTURES = ("llama", "qwen2")


def tiny_config(arch: str = "llama", vocab_size: int = 512, **overrides: Any):
    """A 2-layer, 64-wide config with grouped-query attention (4 query heads, 2 KV heads)."""
    from transformers import LlamaConfig, Qwen2Config

    common = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                  tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    common.update(overrides)
    if arch == "llama":
        return LlamaConfig(**common)
    if arch == "qwen2":
        return Qwen2Config(**{"use_sliding_window": False, **common})
    raise ValueError(f"unknown tiny architecture {arch!r}; choose from {ARCHITECTURES}")


def tiny_model(arch: str = "llama", seed: int = 0, dtype: str = "float32", **overrides: Any):
    """A random-weight model in eval mode, switched to the blockattn attention implementation."""
    import torch
    from transformers import AutoModelForCausalLM

    from blockattn.attention.interface import enable_block_attention

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, **overrides), dtype=getattr(torch, dtype)).eval()
    enable_block_attention(model)
    return model


def save_tiny_model(path, arch: str = "llama", **overrides: Any):
    """A tiny random model + the SmolLM2 tokenizer (real chat template, real stop tokens) as an HF directory,
    so `blockattn serve --model PATH` runs the full server on it (tests, CPU benchmarks)."""
    from blockattn.models import load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model = tiny_model(arch, vocab_size=len(tokenizer), eos_token_id=im_end, pad_token_id=tokenizer.pad_token_id,
                       **{"max_position_embeddings": 2048, **overrides})
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_random_block_adapter(out_dir, arch: str = "llama", n_sinks: int = 3, n_shared: int = 2):
    """A block adapter for `tiny_model(arch)` with random, non-zero LoRA weights and sinks, saved like a shipped
    one (what the engine tests load; kept here so that any test file, on any machine, can import it)."""
    from peft import LoraConfig, get_peft_model

    from blockattn.adapter import save_block_adapter
    from blockattn.attention.sinks import BlockSinks

    student = get_peft_model(tiny_model(arch), LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"],
                                                          init_lora_weights=False))
    sinks = BlockSinks(student.config.hidden_size, per_block=n_sinks, shared=n_shared)
    return save_block_adapter(out_dir, student, sinks, n_sinks, n_shared)
