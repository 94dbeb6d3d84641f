"""Load a Llama-family causal LM (Llama, Qwen2/3, Mistral) by path or by a known model's name (registry.py)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blockattn.errors import UserError
from blockattn.models import convert, smollm2
from blockattn.models.registry import KNOWN

DEFAULT_MODEL = smollm2.NAME
# every known model by its own name, plus short names
ALIASES = {"default": DEFAULT_MODEL, "smollm2": DEFAULT_MODEL, "qwen2.5-0.5b": "qwen2.5-coder-0.5b-instruct",
           "qwen2.5-1.5b": "qwen2.5-coder-1.5b-instruct", **{name: name for name in KNOWN}}
# Decoder-only RoPE models with HF's rotate-half layout and the functional attention interface.
SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3", "mistral")


@dataclass
class LoadedModel:
    """A model, its tokenizer, and a content identity for cache keys."""

    model: Any  # transformers PreTrainedModel, switched to the "blockattn" attention implementation
    tokenizer: Any
    name: str  # what the user asked for (normalised)
    identity: str  # changes whenever the weights change; part of every block-cache key


def resolve(name_or_path: str) -> Path:
    """A model name or path → a local HF model directory (converting a known model once if needed)."""
    if name_or_path in ALIASES:
        return convert.prepare(ALIASES[name_or_path])
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise UserError(f"model {name_or_path!r}: no such directory (and not a known name: "
                        f"{', '.join(sorted(ALIASES))})")
    if not (path / "config.json").is_file():
        raise UserError(f"model {path}: no config.json; expected a Hugging Face model directory")
    return path


def _identity(name_or_path: str, path: Path) -> str:
    if name_or_path in ALIASES:
        return convert.identity(ALIASES[name_or_path])
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        stat = weights.stat()
        digest.update(f"{weights.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return f"{path.name}@{digest.hexdigest()[:16]}"


def check_supported(path: Path) -> None:
    config = json.loads((path / "config.json").read_text())
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UserError(f"model {path}: type {model_type!r} is not supported; blockattn handles "
                        f"Llama-family models ({', '.join(SUPPORTED_MODEL_TYPES)})")


def quiet_transformers() -> None:
    """No per-load progress bars or advisory warnings from transformers on our users' terminals."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_tokenizer(name_or_path: str = DEFAULT_MODEL):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(resolve(name_or_path)))


def load(name_or_path: str = DEFAULT_MODEL, dtype: str = "float32", device: str = "cpu") -> LoadedModel:
    """Load model + tokenizer, in eval mode, with block attention available (full attention by default)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from blockattn.attention.interface import enable_block_attention

    path = resolve(name_or_path)
    check_supported(path)
    torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    quiet_transformers()
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype).to(device).eval()
    enable_block_attention(model)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    name = ALIASES.get(name_or_path, str(path))
    return LoadedModel(model=model, tokenizer=tokenizer, name=name, identity=_identity(name_or_path, path))
