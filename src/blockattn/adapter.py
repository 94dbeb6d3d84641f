"""Block adapters: what block distillation (or block fine-tuning) produces, and what the engine loads.

A block adapter directory holds

    adapter_config.json, adapter_model.safetensors   a PEFT LoRA adapter (may be absent: sinks-only)
    block_sinks.safetensors                          the BlockSinks ("per_block" (k, H), "shared" (s, H))
    blockattn_adapter.json                           {"sinks_per_block": k, "shared_sink": s, "base": ...,
                                                      "recipe": {...how it was trained...}}
    model/                                           full fine-tuning (LoRA rank 0) only: the student's
                                                      weights (`save_pretrained`), instead of a LoRA

With the adapter *enabled* the model is the block-attention student; with it disabled (PEFT's
`disable_adapter()`), the untouched base model -- the full-attention teacher. One copy of the weights.
A fully fine-tuned student (model/) is loaded as a second copy of the model: the base stays the teacher.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blockattn.errors import UserError

META_FILE = "blockattn_adapter.json"
SINKS_FILE = "block_sinks.safetensors"
LORA_CONFIG = "adapter_config.json"
FULL_MODEL_DIR = "model"


@dataclass
class BlockAdapter:
    """A loaded adapter: the (PEFT-wrapped) model plus the sink embeddings and their layout settings."""

    model: Any  # a peft PeftModel when the adapter has LoRA weights, else the base model
    sinks: Any  # blockattn.attention.BlockSinks or None
    sinks_per_block: int
    shared_sink: int
    identity: str  # content hash of the adapter files; part of every block-cache key
    path: str
    meta: dict = field(default_factory=dict)


def adapter_identity(path: Path) -> str:
    """A content hash of every file of the adapter, model/ included (two fully fine-tuned students with the
    same sinks must not share block-cache entries)."""
    digest = hashlib.sha256()
    for file in sorted(f for f in path.rglob("*") if f.is_file()):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(file.read_bytes())
    return f"{path.name}@{digest.hexdigest()[:16]}"


def load_full_student(base_model: Any, folder: Path) -> Any:
    """A copy of `base_model` holding the fully fine-tuned weights saved in `folder` (every weight must be
    there, except ones tied to another, e.g. an output layer tied to the embeddings)."""
    import copy

    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise UserError(f"adapter {folder.parent}: {FULL_MODEL_DIR}/ holds no .safetensors weights")
    state: dict = {}
    for file in files:
        state.update(load_file(str(file)))
    student = copy.deepcopy(base_model)
    missing, unexpected = student.load_state_dict(state, strict=False)
    tied = {name for name, _ in student.named_parameters(remove_duplicate=False)} - \
        {name for name, _ in student.named_parameters()}
    missing = [m for m in missing if m not in tied]
    if missing or unexpected:
        raise UserError(f"adapter {folder.parent}: {FULL_MODEL_DIR}/ does not fit the base model "
                        f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return student.eval().requires_grad_(False)


def save_block_adapter(out_dir: str | Path, model: Any, sinks: Any, sinks_per_block: int, shared_sink: int,
                       meta: dict | None = None) -> Path:
    """Write the adapter files (LoRA via PEFT's `save_pretrained`, when `model` is a PeftModel)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "peft_config"):
        model.save_pretrained(str(out))
    state = sinks.state() if sinks is not None else {}
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / SINKS_FILE))
    info = {"sinks_per_block": sinks_per_block, "shared_sink": shared_sink, **(meta or {})}
    (out / META_FILE).write_text(json.dumps(info, indent=2, sort_keys=True))
    return out


def load_block_adapter(base_model: Any, path: str | Path) -> BlockAdapter:
    """Attach the adapter at `path` to `base_model` (LoRA through PEFT; sinks as a BlockSinks module on the
    model's device and dtype)."""
    from safetensors.torch import load_file

    from blockattn.attention.sinks import BlockSinks

    p = Path(path)
    if not (p / META_FILE).is_file():
        raise UserError(f"adapter {p}: not a blockattn adapter directory (no {META_FILE})")
    meta = json.loads((p / META_FILE).read_text())
    model = base_model
    if (p / FULL_MODEL_DIR).is_dir():
        model = load_full_student(base_model, p / FULL_MODEL_DIR)
    elif (p / LORA_CONFIG).is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(base_model, str(p), is_trainable=False)
        model.eval()
    sinks = None
    if (p / SINKS_FILE).is_file():
        state = load_file(str(p / SINKS_FILE))
        if state:
            weight = base_model.get_input_embeddings().weight
            sinks = BlockSinks.from_state(state).to(device=weight.device, dtype=weight.dtype).eval()
            sinks.requires_grad_(False)
    k, s = int(meta.get("sinks_per_block", 0)), int(meta.get("shared_sink", 0))
    if (k or s) and (sinks is None or sinks.n_per_block < k or sinks.n_shared < s):
        raise UserError(f"adapter {p}: {META_FILE} asks for {k} per-block / {s} shared sinks, "
                        f"but {SINKS_FILE} does not hold them")
    return BlockAdapter(model=model, sinks=sinks, sinks_per_block=k, shared_sink=s,
                        identity=adapter_identity(p), path=str(p), meta=meta)
