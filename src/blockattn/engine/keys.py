"""Content keys of cached block KV.

A block's K/V is a pure function of (model weights, adapter, dtype, sink configuration, the block's token ids):
block attention makes it independent of everything before and after the block. The key hashes exactly
those, so equal keys mean interchangeable K/V, and anything that changes the K/V changes the key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

# Bump when the stored layout of an entry changes: old disk entries then simply stop matching.
KV_FORMAT = "blockattn-block-kv/1"


@dataclass(frozen=True)
class KeySpace:
    """Everything besides the tokens that a block's K/V depends on."""

    model: str  # model identity (changes whenever the weights change)
    adapter: str  # adapter identity, or "none"
    dtype: str  # e.g. "torch.bfloat16": K/V computed in another dtype are different numbers
    sinks_per_block: int  # k per-block sink tokens in front of every block
    shared_sink: int  # s shared-sink tokens (the block attends to its local copy of them)

    def _digest(self, kind: str, tokens: Sequence[int]) -> str:
        head = (f"{KV_FORMAT}|{kind}|{self.model}|{self.adapter}|{self.dtype}|"
                f"k={self.sinks_per_block}|s={self.shared_sink}|")
        digest = hashlib.sha256(head.encode())
        digest.update(np.asarray(tokens, dtype=np.int64).tobytes())
        return digest.hexdigest()

    def block(self, tokens: Sequence[int]) -> str:
        """Key of a context block's K/V (its k sink tokens included)."""
        return self._digest("block", tokens)

    def shared(self) -> str:
        """Key of the shared-sink prefix's K/V (stored once, placed at position 0)."""
        return self._digest("shared", ())
