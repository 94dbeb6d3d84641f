"""The boundary tagger in numpy: a small pre-LN transformer over units with ALiBi attention.

    features (U, in_dim) ─► Linear ─► [LN ─► MHA(ALiBi) ─► + ─► LN ─► GELU MLP ─► +] × layers
                         ─► LN ─► Linear ─► logits (U, levels)

logits[u, level] is the log-odds that a block of that level starts at unit u (u ≥ 1). Long sequences run
in overlapping windows of `window` units; each unit takes its prediction from the window whose centre is
nearest, so it always sees at least `margin` units on each side (where the text has them). torch_tagger.py
is the training twin; tests check that both compute the same thing.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from blockattn.segment.learned.config import TaggerConfig

_LN_EPS = 1e-5


def alibi_slopes(heads: int) -> np.ndarray:
    """Geometric slopes 2^-2 ... 2^-8 (over `heads`): from a few units of reach to the whole window."""
    return 2.0 ** -np.linspace(2, 8, heads)


def alibi_bias(heads: int, length: int) -> np.ndarray:
    """(heads, length, length) additive attention bias −slope·|i − j| (symmetric: the tagger sees both
    sides of a candidate)."""
    dist = np.abs(np.arange(length)[:, None] - np.arange(length)[None, :])
    return (-alibi_slopes(heads)[:, None, None] * dist[None]).astype(np.float32)


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (the torch twin uses approximate="tanh"), in x's dtype with few temporaries."""
    inner = x * x
    inner *= 0.044715
    inner += 1.0
    inner *= x
    inner *= 0.7978845608028654
    np.tanh(inner, out=inner)
    inner += 1.0
    inner *= x
    inner *= 0.5
    return inner


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + _LN_EPS) * weight + bias


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    np.exp(x, out=x)
    return x / x.sum(-1, keepdims=True)


class Tagger:
    """Numpy inference with float32 weights named as in torch_tagger.BoundaryTagger's state dict."""

    def __init__(self, config: TaggerConfig, weights: dict[str, np.ndarray]):
        self.config = config
        # Linear weights stored transposed and contiguous: x @ W runs as one BLAS call.
        self.w = {k: np.ascontiguousarray(v.T if k.endswith(".weight") and v.ndim == 2 else v, dtype=np.float32)
                  for k, v in weights.items()}

    @property
    def parameters(self) -> int:
        return sum(w.size for w in self.w.values())

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The weights in torch_tagger's state-dict layout (Linear weights (out, in)), as a file stores them."""
        return {k: v.T if k.endswith(".weight") and v.ndim == 2 else v for k, v in self.w.items()}

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[name + ".weight"] + self.w[name + ".bias"]

    def _forward(self, x: np.ndarray) -> np.ndarray:
        """(B, T, in_dim) → (B, T, levels) for windows of equal length T."""
        c, w = self.config, self.w
        batch, length, _ = x.shape
        h = self._linear(x.reshape(batch * length, -1), "inp")  # (B·T, dim): 2-D matmuls are fastest
        bias = alibi_bias(c.heads, length)  # (H, T, T)
        for i in range(c.layers):
            p = f"layers.{i}."
            a = layer_norm(h, w[p + "norm1.weight"], w[p + "norm1.bias"])
            qkv = self._linear(a, p + "qkv").reshape(batch, length, 3, c.heads, c.head_dim)
            q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each (B, H, T, hd)
            # the scale as float32: a numpy float64 scalar would turn the rest of the forward into float64
            att = _softmax(q @ k.transpose(0, 1, 3, 2) * np.float32(c.head_dim ** -0.5) + bias)  # (B, H, T, T)
            out = (att @ v).transpose(0, 2, 1, 3).reshape(batch * length, c.dim)  # (B·T, dim)
            h = h + self._linear(out, p + "proj")
            a = layer_norm(h, w[p + "norm2.weight"], w[p + "norm2.bias"])
            h = h + self._linear(gelu(self._linear(a, p + "fc1")), p + "fc2")
        h = layer_norm(h, w["norm.weight"], w["norm.bias"])
        return self._linear(h, "out").reshape(batch, length, -1)

    def logits(self, features: np.ndarray) -> np.ndarray:
        """(U, in_dim) features → (U, levels) boundary log-odds, windowed for long sequences."""
        n = len(features)
        size = min(self.config.window, n)
        if n == 0:
            return np.zeros((0, len(self.config.levels)), dtype=np.float32)
        stride = max(1, size - 2 * self.config.margin)
        starts = list(range(0, n - size + 1, stride))
        if starts[-1] != n - size:
            starts.append(n - size)
        windows = np.stack([features[s:s + size] for s in starts])  # (W, size, in_dim)
        out = self._forward(windows.astype(np.float32))  # (W, size, levels)
        centres = np.asarray(starts) + size / 2.0
        owner = np.argmin(np.abs(np.arange(n)[:, None] - centres[None, :]), axis=1)  # (U,)
        return out[owner, np.arange(n) - np.asarray(starts)[owner]]


class TaggerEnsemble:
    """Taggers over the same features; the log-odds are their mean.

    Two trainings of one recipe that differ only in the seed scored 0.326 and 0.350 mean WindowDiff on the
    unseen R vignettes (runs/seg8 and runs/seg9, docs/results.md): which text one training gets right is
    partly chance, and averaging keeps what the members agree on. Members may differ in their lexical
    cohesion features (`lexical_windows`) and nothing else: the features are computed once, with every
    member's windows, and each member reads its own columns. Each member adds one tagger pass."""

    def __init__(self, members: list[Tagger | TaggerEnsemble]):
        """members: taggers, or ensembles whose members join this one (an ensemble of ensembles is flat)."""
        members = [t for m in members for t in (m.members if isinstance(m, TaggerEnsemble) else [m])]
        if not members:
            raise ValueError("an ensemble needs at least one tagger")
        first = members[0].config
        if any(not same_architecture(m.config, first) for m in members):
            raise ValueError("ensemble members must share one tagger architecture (lexical windows aside)")
        self.members = list(members)
        windows = tuple(sorted({w for m in members for w in m.config.lexical_windows}))
        base = first.in_dim - len(first.lexical_windows)  # embedding and scalar features, shared by all
        self.config = replace(first, in_dim=base + len(windows), lexical_windows=windows)
        # the feature columns each member was trained on, in its own order
        columns = [np.r_[np.arange(base), [base + windows.index(w) for w in m.config.lexical_windows]]
                   .astype(np.int64) for m in members]
        self._columns = [None if np.array_equal(c, np.arange(self.config.in_dim)) else c for c in columns]

    @property
    def parameters(self) -> int:
        return sum(m.parameters for m in self.members)

    def logits(self, features: np.ndarray) -> np.ndarray:
        out = None
        for member, columns in zip(self.members, self._columns):
            x = features if columns is None else features[:, columns]
            out = member.logits(x) if out is None else out + member.logits(x)
        return out / len(self.members)


def same_architecture(a: TaggerConfig, b: TaggerConfig) -> bool:
    """Equal but for the lexical cohesion features (and the input width they add)."""
    def core(c: TaggerConfig) -> TaggerConfig:
        return replace(c, in_dim=c.in_dim - len(c.lexical_windows), lexical_windows=())
    return core(a) == core(b)
