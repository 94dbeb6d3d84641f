"""The boundary tagger in torch, for training: the same computation as tagger.Tagger (numpy), whose
weights are this module's state dict (`export_weights`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from blockattn.segment.learned.config import TaggerConfig
from blockattn.segment.learned.tagger import alibi_bias


class _Layer(nn.Module):
    def __init__(self, c: TaggerConfig, dropout: float):
        super().__init__()
        self.heads, self.head_dim = c.heads, c.head_dim
        self.norm1, self.norm2 = nn.LayerNorm(c.dim), nn.LayerNorm(c.dim)
        self.qkv, self.proj = nn.Linear(c.dim, 3 * c.dim), nn.Linear(c.dim, c.dim)
        self.fc1, self.fc2 = nn.Linear(c.dim, c.ffn), nn.Linear(c.ffn, c.dim)
        self.drop = nn.Dropout(dropout)
        self.p = dropout

    def forward(self, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        batch, length, dim = h.shape
        qkv = self.qkv(self.norm1(h)).view(batch, length, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, hd)
        out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                                         dropout_p=self.p if self.training else 0.0)
        h = h + self.drop(self.proj(out.transpose(1, 2).reshape(batch, length, dim)))
        return h + self.drop(self.fc2(nn.functional.gelu(self.fc1(self.norm2(h)), approximate="tanh")))


class BoundaryTagger(nn.Module):
    """(B, T, in_dim) unit features → (B, T, levels) boundary logits."""

    def __init__(self, config: TaggerConfig, dropout: float = 0.1):
        super().__init__()
        self.config = config
        self.inp = nn.Linear(config.in_dim, config.dim)
        self.layers = nn.ModuleList(_Layer(config, dropout) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.dim)
        self.out = nn.Linear(config.dim, len(config.levels))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = torch.from_numpy(alibi_bias(self.config.heads, x.shape[1])).to(x.device, x.dtype)  # (H, T, T)
        h = self.drop(self.inp(x))
        for layer in self.layers:
            h = layer(h, bias)
        return self.out(self.norm(h))

    def export_weights(self) -> dict[str, np.ndarray]:
        """State dict as float16 numpy arrays (what ships; tagger.Tagger computes in float32)."""
        return {k: v.detach().float().cpu().numpy().astype(np.float16) for k, v in self.state_dict().items()}
