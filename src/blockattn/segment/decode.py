"""Granularity decoding: choose cuts among candidates by dynamic programming (after SaT's length prior).

A segmentation picks some candidates as cuts; the blocks are the spans between consecutive cuts. Its score is

    Σ_{chosen c} gain[c]  +  Σ_{blocks b} prior(len(b))            (lengths in tokens)

`decode` returns the exact maximiser subject to hard limits `min_tokens ≤ len(b) ≤ max_tokens`, optionally
exactly `num_blocks` blocks, and optionally some cuts forced. Everything is plain numpy; the caller
supplies gains (a model's boundary log-odds, or any score) and the token position of every candidate.

Cost is O(n · span) without a block count and O(n · span · K) with one, where `span` is the number of
candidates a block may cover: callers bound it with `max_tokens` (or `span_tokens` when no hard maximum is
wanted) so long texts stay linear.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Prior = Callable[[np.ndarray], np.ndarray]  # block lengths (tokens) → log-score per block


class Infeasible(ValueError):
    """No segmentation satisfies the limits (and block count) asked for."""


@dataclass(frozen=True)
class LogNormalPrior:
    """weight · log N(log len; log median, sigma²), up to a constant: favours blocks near `median` tokens."""

    median: float
    sigma: float
    weight: float = 1.0

    def __call__(self, lengths: np.ndarray) -> np.ndarray:
        z = (np.log(np.maximum(lengths, 1)) - np.log(self.median)) / self.sigma
        return -0.5 * self.weight * z * z


def no_prior(lengths: np.ndarray) -> np.ndarray:
    return np.zeros(len(lengths))


def decode(gain: np.ndarray, positions: np.ndarray, total: int, prior: Prior = no_prior, *,
           min_tokens: int = 0, max_tokens: int | None = None, num_blocks: int | None = None,
           forced: np.ndarray | None = None, span_tokens: int | None = None) -> np.ndarray:
    """Indices (into the candidates) of the chosen cuts, increasing.

    gain: (n,) score for cutting at each candidate. positions: (n,) token position of each candidate,
    strictly increasing inside (0, total). forced: indices that must be cuts. span_tokens: a search bound
    (not a limit): blocks longer than it are only considered when no segmentation within it exists.
    Raises Infeasible when the limits (with `num_blocks` and `forced`) admit no segmentation.
    """
    gain = np.asarray(gain, dtype=np.float64)
    n = len(gain)
    if (num_blocks is not None and prior is no_prior and not min_tokens and max_tokens is None
            and forced is None and 1 <= num_blocks <= n + 1):
        # Nothing couples the cuts: the optimum is simply the num_blocks − 1 largest gains.
        return np.sort(np.argsort(-gain, kind="stable")[:num_blocks - 1])
    nodes = np.concatenate([[0], np.asarray(positions, dtype=np.int64), [total]])  # (n+2,) start, cands, end
    if n and (np.any(np.diff(nodes) <= 0)):
        raise ValueError("candidate positions must be strictly increasing inside (0, total)")
    node_gain = np.concatenate([[0.0], gain, [0.0]])
    limit = max_tokens or total
    if span_tokens is not None and span_tokens < limit:
        try:
            return _search(nodes, node_gain, prior, min_tokens, span_tokens, num_blocks, forced)
        except Infeasible:
            pass  # the bound was too tight for this text: search every length the limits allow
    return _search(nodes, node_gain, prior, min_tokens, limit, num_blocks, forced)


def _search(nodes, node_gain, prior, min_tokens: int, hi: int, num_blocks: int | None, forced) -> np.ndarray:
    m = len(nodes)
    # For every node i, the predecessors j with min_tokens ≤ nodes[i] - nodes[j] ≤ hi form a range.
    j_lo = np.searchsorted(nodes, nodes - hi, side="left")
    j_hi = np.minimum(np.searchsorted(nodes, nodes - min_tokens, side="right") - 1, np.arange(m) - 1)
    if forced is not None and len(forced):
        # A block may not run across a forced cut: predecessors start at the last forced node before i.
        is_forced = np.zeros(m, dtype=bool)
        is_forced[np.asarray(forced) + 1] = True
        last = np.maximum.accumulate(np.where(is_forced, np.arange(m), 0))
        j_lo = np.maximum(j_lo, np.concatenate([[0], last[:-1]]))
    if num_blocks is None:
        return _best_free(nodes, node_gain, prior, j_lo, j_hi)
    return _best_exact(nodes, node_gain, prior, j_lo, j_hi, num_blocks)


def _best_free(nodes, node_gain, prior, j_lo, j_hi) -> np.ndarray:
    m = len(nodes)
    score = np.full(m, -np.inf)
    score[0] = 0.0
    back = np.full(m, -1, dtype=np.int64)
    for i in range(1, m):
        a, b = int(j_lo[i]), int(j_hi[i])
        if a > b:
            continue
        cand = score[a:b + 1] + prior(nodes[i] - nodes[a:b + 1])
        k = int(np.argmax(cand))
        if cand[k] > -np.inf:
            score[i] = cand[k] + node_gain[i]
            back[i] = a + k
    if score[-1] == -np.inf:
        raise Infeasible("no segmentation satisfies the token limits")
    cuts, i = [], int(back[m - 1])
    while i > 0:  # node i is candidate i - 1
        cuts.append(i - 1)
        i = int(back[i])
    return np.asarray(cuts[::-1], dtype=np.int64)


def _best_exact(nodes, node_gain, prior, j_lo, j_hi, num_blocks: int) -> np.ndarray:
    m = len(nodes)
    if num_blocks < 1 or num_blocks > m - 1:
        raise Infeasible(f"cannot make {num_blocks} blocks from {m - 2} candidates")
    # score[k, i]: best score of covering nodes[0]..nodes[i] with exactly k blocks, i a cut (or the end).
    score = np.full((num_blocks + 1, m), -np.inf)
    score[0, 0] = 0.0
    back = np.zeros((num_blocks + 1, m), dtype=np.int32)
    for i in range(1, m):
        a, b = int(j_lo[i]), int(j_hi[i])
        # k blocks end at node i only if k ≤ i, and the remaining num_blocks - k fit in the nodes after it.
        k_lo, k_hi = max(1, num_blocks - (m - 1 - i)), min(num_blocks, i)
        if a > b or k_lo > k_hi:
            continue
        cand = score[k_lo - 1:k_hi, a:b + 1] + prior(nodes[i] - nodes[a:b + 1])  # (rows, span)
        arg = np.argmax(cand, axis=1)
        best = cand[np.arange(len(arg)), arg]
        score[k_lo:k_hi + 1, i] = best + node_gain[i]
        back[k_lo:k_hi + 1, i] = a + arg
    if score[num_blocks, -1] == -np.inf:
        raise Infeasible(f"no segmentation into exactly {num_blocks} blocks satisfies the token limits")
    cuts, i = [], m - 1
    for k in range(num_blocks, 1, -1):
        i = int(back[k, i])
        cuts.append(i - 1)
    return np.asarray(cuts[::-1], dtype=np.int64)
