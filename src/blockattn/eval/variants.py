"""The systems an evaluation compares: full attention, zero-shot block attention, and block attention with a
trained block adapter (distilled or block-fine-tuned)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from blockattn.attention.sinks import BlockSinks


@dataclass
class Variant:
    name: str  # how tables label it: "full", "zero-shot block", "distilled", "block-FT", ...
    mode: str  # "full" | "block"
    model: nn.Module  # a causal LM, PEFT-wrapped when the adapter has LoRA weights
    sinks: BlockSinks | None = None
    sinks_per_block: int = 0
    shared_sink: int = 0
    adapter: str | None = None  # adapter directory, if any

    def to_dict(self) -> dict:
        return {"name": self.name, "mode": self.mode, "adapter": self.adapter,
                "sinks_per_block": self.sinks_per_block, "shared_sink": self.shared_sink}


def full_attention(model: nn.Module) -> Variant:
    return Variant("full", "full", model)


def zero_shot_block(model: nn.Module) -> Variant:
    return Variant("zero-shot block", "block", model)


def with_adapter(base_model: nn.Module, path: str | Path, name: str) -> Variant:
    """Block mode through the adapter at `path` (attached to `base_model`, which PEFT modifies in place:
    give each adapter a freshly loaded base)."""
    from blockattn.adapter import load_block_adapter

    a = load_block_adapter(base_model, path)
    return Variant(name, "block", a.model, a.sinks, a.sinks_per_block, a.shared_sink, adapter=str(path))
