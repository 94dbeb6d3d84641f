"""The student (base + LoRA + block sinks, in block attention) and the teacher (the same base, frozen, in full
attention over the visible text).

With LoRA the teacher is the student with its adapter disabled: one copy of the weights in memory, and the
teacher is *exactly* the base model (PEFT's `disable_adapter` skips the LoRA branch). With full fine-tuning
(`lora_rank: 0`) the teacher is a frozen copy made before training starts.

Both return final hidden states (after the last norm, before the LM head): the losses form logits in
chunks from them (`losses.linear_divergence`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from blockattn.attention.forward import block_forward
from blockattn.attention.interface import layout_mask, resolve_backend
from blockattn.attention.layout import BlockLayout
from blockattn.attention.sinks import BlockSinks
from blockattn.distill.config import AdapterSection
from blockattn.errors import UserError


def base_of(model: nn.Module) -> nn.Module:
    """The transformers model under a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_of(model: nn.Module) -> nn.Module:
    """The decoder stack (embeddings → layers → final norm), without the LM head."""
    return base_of(model).get_decoder()


def output_weight(model: nn.Module) -> torch.Tensor:
    """(V, H) LM-head weight; Llama-family heads have no bias."""
    head = base_of(model).get_output_embeddings()
    if getattr(head, "bias", None) is not None:
        raise UserError("models whose LM head has a bias are not supported")
    return head.weight


def with_mask(layout: BlockLayout, device: torch.device, backend: str) -> BlockLayout:
    """`layout` on `device` with its attention mask built and cached: built here, outside any compiled
    layer, every layer finds it cached, so compiled layers see one case, not "first layer builds it"."""
    layout = layout.to(device)
    layout_mask(layout, device, resolve_backend(backend, device))
    return layout


def make_sinks(model: nn.Module, cfg: AdapterSection) -> BlockSinks:
    """Sink embeddings, from small noise ("random") or from the BOS token's embedding ("bos", the token a
    pretrained model sees first; see `AdapterSection.sink_init` for why noise is the default)."""
    embed = base_of(model).get_input_embeddings().weight
    init = None
    bos = base_of(model).config.bos_token_id
    if cfg.sink_init == "bos" and bos is not None:
        init = embed[int(bos)].detach().float().cpu()
    sinks = BlockSinks(embed.shape[1], per_block=cfg.sinks_per_block, shared=cfg.shared_sink, init=init)
    for param in (sinks.per_block, sinks.shared):
        param.requires_grad_(param.numel() > 0)  # empty sinks are no parameters (DDP would wait for them)
    return sinks.to(embed.device)


def attach_lora(model: nn.Module, cfg: AdapterSection) -> nn.Module:
    """Wrap `model` in a PEFT LoRA adapter (rank > 0), or make every weight trainable (rank 0)."""
    if cfg.lora_rank == 0:
        if next(model.parameters()).dtype != torch.float32:
            raise UserError("full fine-tuning needs fp32 weights: set model.dtype: float32")
        model.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


class BlockStudent(nn.Module):
    """Student forward: (ids (B, N), layout) → final hidden states (B, N, H) in block attention, sinks filled.

    Holds every trainable parameter (LoRA or the full model, and the sinks), so one DDP wrapper around it
    synchronises them all."""

    def __init__(self, model: nn.Module, sinks: BlockSinks, backend: str = "auto"):
        super().__init__()
        self.model = model
        self.sinks = sinks
        self.backend = backend

    def forward(self, input_ids: torch.Tensor, layout: BlockLayout) -> torch.Tensor:
        layout = with_mask(layout, input_ids.device, self.backend)
        out = block_forward(decoder_of(self.model), input_ids, layout, sinks=self.sinks, backend=self.backend)
        return out.last_hidden_state

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Every trainable tensor by name (what a checkpoint must hold)."""
        return {name: p.detach().cpu().clone() for name, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = {name: p for name, p in self.named_parameters() if p.requires_grad}
        if set(params) != set(state):
            raise ValueError(f"checkpoint holds {len(state)} trainable tensors, the student {len(params)}; "
                             "was it written by another configuration?")
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(state[name])


class FrozenTeacher:
    """Teacher forward: (ids, teacher layout) → final hidden states (B, N, H), no gradient, never trained.

    Given a PEFT model it runs that model with the adapter disabled (the exact base); given a plain model it
    runs it as is."""

    def __init__(self, model: nn.Module, backend: str = "auto"):
        self.model = model
        self.backend = backend

    @staticmethod
    def for_student(model: nn.Module, backend: str = "auto") -> "FrozenTeacher":
        """The student's own base (LoRA), or a frozen copy taken now (full fine-tuning: the student's
        weights will move)."""
        if hasattr(model, "disable_adapter"):
            return FrozenTeacher(model, backend)
        return FrozenTeacher(copy.deepcopy(model).eval().requires_grad_(False), backend)

    def output_weight(self) -> torch.Tensor:
        return output_weight(self.model).detach()

    @torch.no_grad()
    def hidden(self, input_ids: torch.Tensor, layout: BlockLayout) -> torch.Tensor:
        if not layout.teacher or layout.has_sinks:
            raise ValueError("the teacher needs a teacher layout without sink tokens (BlockLayout.as_teacher)")
        layout = with_mask(layout, input_ids.device, self.backend)
        if hasattr(self.model, "disable_adapter"):
            with self.model.disable_adapter():
                return block_forward(decoder_of(self.model), input_ids, layout,
                                     backend=self.backend).last_hidden_state
        return block_forward(decoder_of(self.model), input_ids, layout, backend=self.backend).last_hidden_state
