"""GGUF → safetensors model directory, once per model, under $BLOCKATTN_HOME/models/<name>/.

transformers reads a GGUF (with `gguf`), but a GGUF-loaded model refuses `save_pretrained`; so we dequantise
once, copy the weights into a plain model built from the config, and save safetensors. Later loads read that
in about a second.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from blockattn.models.home import blockattn_home
from blockattn.models.registry import find_gguf, known

MARKER = "blockattn-model.json"


def model_dir(name: str) -> Path:
    return blockattn_home() / "models" / name


def is_prepared(name: str) -> bool:
    return (model_dir(name) / MARKER).is_file()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert(gguf: Path, target: Path, name: str, eos: str, pad: str) -> Path:
    """Write the dequantised model + tokenizer of `gguf` to `target` (atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # GGUF metadata may map eos to another token (SmolLM2: <|im_start|>); instruct models end turns with eos
        tokenizer.eos_token, tokenizer.pad_token = eos, pad
        quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.eos_token_id = tokenizer.convert_tokens_to_ids(eos)
        config.pad_token_id = tokenizer.convert_tokens_to_ids(pad)
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(quantized.state_dict(), strict=True)
        plain.generation_config.eos_token_id = config.eos_token_id
        plain.generation_config.pad_token_id = config.pad_token_id
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps({"name": name, "source": gguf.name, "source_sha256": _sha256(gguf)},
                                             indent=2))
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)  # atomic: a killed conversion never leaves a half-written model behind
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def prepare(name: str, gguf: str | Path | None = None, force: bool = False) -> Path:
    """The converted directory of known model `name`, converting it first if needed."""
    model = known(name)
    target = model_dir(name)
    if is_prepared(name) and not force:
        return target
    return convert(find_gguf(name, gguf), target, name, model.eos, model.pad)


def identity(name: str) -> str:
    """Content identity of a converted model (for cache keys): its name and its GGUF's hash."""
    meta = json.loads((model_dir(name) / MARKER).read_text())
    return f"{name}@{meta['source_sha256'][:16]}"
