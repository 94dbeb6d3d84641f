"""Engine fixtures: tiny random models with the real SmolLM2 tokenizer (fast), saved as HF directories."""

from __future__ import annotations

import pytest


def save_tiny_model(path, arch: str = "llama", **overrides):
    """A tiny random model + the SmolLM2 tokenizer (real chat template, real stop tokens) as an HF directory."""
    from blockattn.models import load_tokenizer
    from blockattn.models.tiny import tiny_model

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model = tiny_model(arch, vocab_size=len(tokenizer), eos_token_id=im_end, pad_token_id=tokenizer.pad_token_id,
                       **{"max_position_embeddings": 2048, **overrides})
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"))
