"""Architecture and decoding settings of the learned segmenter; they travel inside the weights file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from blockattn.segment.request import LEVEL_TOKENS, LEVELS


@dataclass
class TaggerConfig:
    """The transformer over units (see tagger.py)."""

    in_dim: int  # features per unit: 3·embedding dim + N_SCALARS (features.py)
    dim: int = 128  # hidden width
    layers: int = 4  # transformer layers
    heads: int = 4  # attention heads, each with its own ALiBi slope (local to global)
    ffn: int = 512  # feed-forward width
    window: int = 256  # units per attention window; training crops have this length
    margin: int = 32  # at inference, predictions keep at least this many units of context per side
    levels: tuple[str, ...] = LEVELS  # one output logit per level
    # Windows (units) of the lexical cohesion features (features.py: hashed bag-of-words cosine across a
    # candidate); () = none, as in every weights file before 2026-12-07.
    lexical_windows: tuple[int, ...] = ()

    def __post_init__(self):
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        self.levels = tuple(self.levels)
        self.lexical_windows = tuple(int(w) for w in self.lexical_windows)
        self.head_dim = self.dim // self.heads  # derived: width of one head


@dataclass
class DecodeConfig:
    """How probabilities become cuts (tuned on validation by training; see segmenter.py)."""

    # Per level: median block length (tokens) and log-space spread of gold blocks in training data.
    level_tokens: dict[str, float] = field(default_factory=lambda: dict(LEVEL_TOKENS))
    level_sigma: dict[str, float] = field(default_factory=lambda: {lv: 1.0 for lv in LEVELS})
    level_prior_weight: dict[str, float] = field(default_factory=lambda: {lv: 1.0 for lv in LEVELS})  # vs log-odds
    count_prior_weight: float = 0.0  # the same for --num-blocks / --target-tokens
    count_prior_sigma: float = 1.0  # spread of that prior around the mean length the count implies
    level_bias: dict[str, float] = field(default_factory=lambda: {lv: 0.0 for lv in LEVELS})  # logit offsets
    # Per level: the mean block length (tokens) that `--level` aims at, i.e. round(N / it) blocks. Set by
    # `calibrate.level_mean_tokens` on SemanticSeg train + validation (issue 14: thresholding the model's
    # probabilities under-cut unseen text, whose log-odds run lower).
    level_mean_tokens: dict[str, float] = field(default_factory=lambda: dict(LEVEL_TOKENS))


def dump(tagger: TaggerConfig, decode: DecodeConfig) -> dict[str, str]:
    """Both configs as safetensors metadata (string → string)."""
    arch = {k: v for k, v in asdict(tagger).items() if k != "head_dim"}
    return {"tagger": json.dumps(arch), "decode": json.dumps(asdict(decode))}


def load(metadata: dict[str, str]) -> tuple[TaggerConfig, DecodeConfig]:
    return TaggerConfig(**json.loads(metadata["tagger"])), DecodeConfig(**json.loads(metadata["decode"]))
