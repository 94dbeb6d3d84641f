"""Choosing the next token: greedy (temperature 0), or temperature + nucleus (top-p) sampling, seeded."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import torch

from blockattn.errors import UserError


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0  # 0: greedy (argmax); > 0: sample from softmax(logits / temperature)
    top_p: float = 1.0  # keep the smallest set of most likely tokens whose probability reaches top_p
    seed: int | None = None  # same seed, same model, same device → same tokens; None: a fresh random seed

    def __post_init__(self):
        if not 0.0 <= self.temperature <= 2.0:
            raise UserError(f"temperature must be in [0, 2], got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise UserError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class Sampler:
    """Stateful per request (its random generator advances token by token)."""

    def __init__(self, params: SamplingParams):
        self.params = params
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        # a CPU generator: the same seed gives the same draws whatever device the logits are on
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, logits: torch.Tensor) -> int:
        """logits (V,) → the next token id."""
        if self.params.greedy:
            return int(torch.argmax(logits))
        # A tiny temperature (1e-300 is valid input) must not give nan (found by the server fuzzer, issue 13):
        # shift by the max first (the same softmax) and keep the divisor a nonzero fp32 number.
        logits = logits.float()
        temperature = max(self.params.temperature, torch.finfo(torch.float32).tiny)
        probs = torch.softmax((logits - logits.max()) / temperature, dim=-1).cpu()  # (V,)
        if self.params.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            # drop a token when the tokens more likely than it already reach top_p (the first is always kept)
            drop = (torch.cumsum(sorted_probs, dim=-1) - sorted_probs) >= self.params.top_p
            sorted_probs[drop] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=self.generator))
