"""Bringing a method's cuts in line with a request: hard token limits, and an exact block count.

Baselines have their own notion of where to cut (a window size, a threshold); `fit_cuts` keeps as many of
their cuts as the request allows and adds or drops as few as it must, by one decode over the method's cuts
plus the document's candidates. The outcome satisfies the limits whenever any segmentation does.
"""

from __future__ import annotations

import numpy as np

from blockattn.segment.decode import LogNormalPrior, Prior, decode
from blockattn.segment.document import Document
from blockattn.segment.request import Request

# Cuts the method made are worth 1; other candidates cost a little, so they are only used when needed;
# among those, a faint preference for even lengths breaks ties.
_OTHER_GAIN = -1e-3
_TIE_BREAK_WEIGHT = 1e-4
# Without a hard maximum, an exact-count search first bounds a block to this many times the mean length.
SPAN_FACTOR = 16


def satisfies(lengths: np.ndarray, request: Request, num_blocks: int | None) -> bool:
    """Whether blocks of these token lengths meet the request's limits (and block count, when given)."""
    if num_blocks is not None and len(lengths) != num_blocks:
        return False
    if request.max_tokens is not None and lengths.max() > request.max_tokens:
        return False
    return len(lengths) == 1 or lengths.min() >= request.min_tokens


def fit_cuts(doc: Document, cuts: np.ndarray, request: Request, num_blocks: int | None = None) -> np.ndarray:
    """Char offsets of cuts that satisfy `request`'s limits and, if given, make exactly `num_blocks` blocks,
    changing `cuts` as little as possible. A text shorter than `request.min_tokens` stays one block."""
    total = doc.total_tokens
    cuts = np.unique(np.asarray(cuts, dtype=np.int64))
    lengths = np.diff(np.concatenate([[0], doc.tokens.before(cuts), [total]]))
    if total < request.min_tokens and num_blocks is None:
        return np.zeros(0, dtype=np.int64)
    if satisfies(lengths, request, num_blocks):
        return cuts
    cands = doc.candidates_within(request.max_tokens)
    offsets = np.union1d(cuts, cands.offsets)
    positions, first = np.unique(doc.tokens.before(offsets), return_index=True)  # one point per token position
    offsets = offsets[first]
    inside = (positions > 0) & (positions < total)
    offsets, positions = offsets[inside], positions[inside]
    gain = np.where(np.isin(offsets, cuts), 1.0, _OTHER_GAIN)
    k = num_blocks or max(1, len(cuts) + 1)
    prior = LogNormalPrior(median=total / k, sigma=1.0, weight=_TIE_BREAK_WEIGHT)
    chosen = decode_bounded(gain, positions, total, prior, min_tokens=request.min_tokens,
                            max_tokens=request.max_tokens, num_blocks=num_blocks)
    return offsets[chosen]


def decode_bounded(gain: np.ndarray, positions: np.ndarray, total: int, prior: Prior, *,
                   min_tokens: int = 0, max_tokens: int | None = None,
                   num_blocks: int | None = None) -> np.ndarray:
    """`decode`, with an exact-count search bounded first to blocks of SPAN_FACTOR mean lengths (fast)."""
    span = SPAN_FACTOR * -(-total // num_blocks) if num_blocks is not None else None
    return decode(gain, positions, total, prior, min_tokens=min_tokens, max_tokens=max_tokens,
                  num_blocks=num_blocks, span_tokens=span)


def even_cuts(doc: Document, num_blocks: int, gain: np.ndarray | None = None) -> np.ndarray:
    """Char offsets of the candidates that cut `doc` into exactly `num_blocks` blocks of the most even
    lengths (in log space), plus `gain` per candidate when given."""
    total = doc.total_tokens
    gain = np.zeros(len(doc.candidates)) if gain is None else gain
    even = LogNormalPrior(median=total / num_blocks, sigma=0.5)
    return doc.candidates.offsets[decode_bounded(gain, doc.candidate_tokens, total, even, num_blocks=num_blocks)]
