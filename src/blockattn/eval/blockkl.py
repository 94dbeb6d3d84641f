"""Per-token KL(full ‖ block): how much block attention changes each next-token prediction of one text.

The text arrives cut into blocks (token ids). The variant reads them in block mode: every block but the last
attends to itself only (plus its sinks), the last one is the query block and sees everything before it. The
reference is the base model (adapter off, no sinks) with plain full attention over the same tokens. The value
at token t is KL(p_full(· | ≤t) ‖ p_block(· | ≤t)), the divergence of the prediction made *at* t, so a block's
first token already carries what its block could not see.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from blockattn.attention.forward import block_forward
from blockattn.attention.layout import pack_sequence
from blockattn.distill.losses import linear_divergence
from blockattn.distill.student import FrozenTeacher, decoder_of, output_weight
from blockattn.eval.variants import Variant


@dataclass
class TokenKL:
    kl: list[float]  # one value per text token, in order
    block_of: list[int]  # index of the block each token belongs to

    def mean(self, blocks: set[int] | None = None) -> float:
        picked = [k for k, b in zip(self.kl, self.block_of) if blocks is None or b in blocks]
        return sum(picked) / max(1, len(picked))


@torch.no_grad()
def token_kl(variant: Variant, blocks: list[list[int]], backend: str = "auto", chunk_tokens: int = 1024) -> TokenKL:
    """KL(full ‖ block) at every token of `blocks` (module docstring). Empty blocks are dropped."""
    blocks = [b for b in blocks if b]
    if variant.mode != "block" or not blocks:
        raise ValueError("token_kl compares a block-mode variant over at least one non-empty block")
    model = variant.model
    device = model.get_input_embeddings().weight.device
    ids, layout = pack_sequence(blocks, sinks_per_block=variant.sinks_per_block, shared_sink=variant.shared_sink)
    h_block = block_forward(decoder_of(model), ids.to(device), layout, sinks=variant.sinks,
                            backend=backend).last_hidden_state  # (1, N + sinks, H)
    h_block = h_block[0][layout.content_mask()[0].to(device)]  # (N, H)
    # the teacher: the same tokens, no sinks, every query-layout token sees all earlier ones
    t_ids, t_layout = pack_sequence([sum(blocks, [])])
    h_full = FrozenTeacher(model, backend).hidden(t_ids.to(device), t_layout.as_teacher())[0]  # (N, H)
    weight = output_weight(model)
    kl = linear_divergence(h_block.float(), weight.float(), h_teacher=h_full.float(), chunk=chunk_tokens).kl
    block_of = [i for i, b in enumerate(blocks) for _ in b]
    return TokenKL(kl=[float(x) for x in kl.clamp_min(0).cpu()], block_of=block_of)
