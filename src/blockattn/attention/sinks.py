"""Block sink tokens: trainable embeddings placed in front of every context block (and/or once, shared,
at position 0).

Why (our reading of the paper, GUIDE.md): under full attention the first token of a sequence becomes an
attention sink. A block prefilled alone forces its own first content token into that role; k learned sink
tokens take it instead, and every block's cache starts the same way. The shared variant (APE / Star
Attention) puts one sink prefix at position 0 that every block attends to.
"""

from __future__ import annotations

import torch
from torch import nn

from blockattn.attention.layout import BlockLayout


class BlockSinks(nn.Module):
    """k per-block sink embeddings and s shared-sink embeddings (either may be 0)."""

    def __init__(self, hidden_size: int, per_block: int = 0, shared: int = 0,
                 init: torch.Tensor | None = None):
        super().__init__()
        self.hidden_size = hidden_size
        # init: (hidden,) or (n, hidden) rows to start from (e.g. real token embeddings); small noise otherwise
        self.per_block = nn.Parameter(self._initial(per_block, hidden_size, init))
        self.shared = nn.Parameter(self._initial(shared, hidden_size, init))

    @staticmethod
    def _initial(n: int, hidden: int, init: torch.Tensor | None) -> torch.Tensor:
        if n == 0:
            return torch.zeros(0, hidden)
        if init is None:
            return torch.randn(n, hidden) * 0.02
        rows = init.detach().float().reshape(-1, hidden)
        return rows[torch.arange(n) % rows.shape[0]].clone()

    @property
    def n_per_block(self) -> int:
        return self.per_block.shape[0]

    @property
    def n_shared(self) -> int:
        return self.shared.shape[0]

    def fill(self, embeds: torch.Tensor, layout: BlockLayout) -> torch.Tensor:
        """Return `embeds` (B, N, H) with sink positions of `layout` replaced by the sink embeddings."""
        sink_pos = layout.sink_index >= 0
        shared_pos = layout.shared_sink_index >= 0
        if not bool(sink_pos.any() or shared_pos.any()):
            return embeds
        if int(layout.sink_index.max()) >= self.n_per_block or int(layout.shared_sink_index.max()) >= self.n_shared:
            raise ValueError(
                f"layout asks for more sink tokens than trained (per block {self.n_per_block}, "
                f"shared {self.n_shared})")
        out = embeds.clone()
        out[sink_pos] = self.per_block[layout.sink_index[sink_pos]].to(out.dtype)
        out[shared_pos] = self.shared[layout.shared_sink_index[shared_pos]].to(out.dtype)
        return out

    def state(self) -> dict[str, torch.Tensor]:
        return {"per_block": self.per_block.detach().cpu(), "shared": self.shared.detach().cpu()}

    @staticmethod
    def from_state(state: dict[str, torch.Tensor]) -> "BlockSinks":
        per_block, shared = state["per_block"], state["shared"]
        hidden = per_block.shape[1] if per_block.numel() else shared.shape[1]
        sinks = BlockSinks(hidden, per_block.shape[0], shared.shape[0])
        with torch.no_grad():
            sinks.per_block.copy_(per_block)
            sinks.shared.copy_(shared)
        return sinks
