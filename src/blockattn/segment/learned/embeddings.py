"""Static token embeddings for the learned segmenter: one vector per default-model token, distilled from
MiniLM (the model2vec recipe: encode every vocabulary entry alone, reduce with PCA, weight by rarity).

They are what makes the segmenter cheap: a unit of text is the weighted sum of its tokens' rows, no
encoder runs at inference. Stored as int8 rows with a per-row fp16 scale (the rarity weight folded in);
whitespace-only tokens have a zero row, so separators never count as content.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# SIF weight a / (a + p(token)) (Arora et al., 2017): frequent tokens say little about the topic.
_SIF_A = 1e-4


@dataclass(frozen=True)
class StaticEmbeddings:
    """(V, D) int8 codes and (V,) float scales; row t = codes[t] * scales[t]."""

    codes: np.ndarray  # (V, D) int8
    scales: np.ndarray  # (V,) float32

    @property
    def dim(self) -> int:
        return self.codes.shape[1]

    @property
    def blank(self) -> np.ndarray:
        """(V,) bool: tokens with a zero row (whitespace only)."""
        return ~self.codes.any(axis=1)

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """(len(ids), D) float32 rows."""
        return self.codes[ids].astype(np.float32) * self.scales[ids, None]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"embeddings.codes": self.codes, "embeddings.scales": self.scales.astype(np.float16)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> StaticEmbeddings:
        return cls(arrays["embeddings.codes"], arrays["embeddings.scales"].astype(np.float32))

    @classmethod
    def quantize(cls, table: np.ndarray) -> StaticEmbeddings:
        """Symmetric per-row int8 quantization of a float (V, D) table."""
        peak = np.abs(table).max(axis=1)
        scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        codes = np.clip(np.round(table / scales[:, None]), -127, 127).astype(np.int8)
        return cls(codes, scales)


def distill(tokenizer, token_counts: np.ndarray, dim: int) -> StaticEmbeddings:
    """Distil MiniLM into a (V, dim) static table for `tokenizer`'s vocabulary (slow: minutes, torch).

    token_counts: (V,) occurrences of each token in the training texts, for the rarity weights.
    """
    from blockattn.segment.minilm import embed

    vocab = tokenizer.get_vocab_size()
    strings = [tokenizer.decode([t]).strip() for t in range(vocab)]
    blank = np.array([not s for s in strings])
    vectors = embed([s or "." for s in strings], max_tokens=16)  # (V, 384)
    # PCA over the non-blank rows: keep the `dim` directions of most variance.
    centred = vectors - vectors[~blank].mean(axis=0)
    _, _, vt = np.linalg.svd(centred[~blank], full_matrices=False)
    reduced = centred @ vt[:dim].T  # (V, dim)
    reduced /= np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-9)
    p = (token_counts + 1.0) / (token_counts.sum() + vocab)
    table = reduced * (_SIF_A / (_SIF_A + p))[:, None]
    table[blank] = 0.0
    return StaticEmbeddings.quantize(table.astype(np.float32))
