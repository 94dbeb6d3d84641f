"""Segmentation metrics: Pk, WindowDiff, boundary F1 (exact and within a tolerance of candidates).

Boundaries are positions `b` with `0 < b < n` on a grid of `n` units (the evaluation uses characters):
"a new block starts at unit b". Pk and WindowDiff follow NLTK's `nltk.metrics.segmentation` exactly
(tests compare them on random cases): on the 0/1 string with a 1 at every boundary position, slide a window
of k positions and count disagreements. Both are error rates (lower is better); k defaults to half the
mean reference block length (Beeferman et al., 1999).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _marker_counts(bounds: np.ndarray, n: int) -> np.ndarray:
    """(n+1,) cumulative count of boundary markers: counts[i] = boundaries at positions < i."""
    markers = np.zeros(n, dtype=np.int64)
    markers[np.asarray(bounds, dtype=np.int64)] = 1
    return np.concatenate([[0], np.cumsum(markers)])


def default_k(reference: np.ndarray, n: int) -> int:
    """Half the mean reference block length, at least 1."""
    return max(1, int(round(n / (2.0 * (len(reference) + 1)))))


def _window_counts(bounds: np.ndarray, n: int, k: int) -> np.ndarray:
    counts = _marker_counts(bounds, n)
    return counts[k:] - counts[:-k]  # (n - k + 1,) boundaries inside each window [i, i + k)


def pk(reference, hypothesis, n: int, k: int | None = None) -> float:
    """Probability that a window of k positions disagrees on whether it holds a boundary."""
    k = k or default_k(np.asarray(reference), n)
    if k > n:
        raise ValueError(f"window k={k} exceeds the {n} units")
    ref, hyp = _window_counts(reference, n, k), _window_counts(hypothesis, n, k)
    return float(np.mean((ref > 0) != (hyp > 0)))


def windowdiff(reference, hypothesis, n: int, k: int | None = None) -> float:
    """Fraction of windows of k positions whose boundary counts differ."""
    k = k or default_k(np.asarray(reference), n)
    if k > n:
        raise ValueError(f"window k={k} exceeds the {n} units")
    ref, hyp = _window_counts(reference, n, k), _window_counts(hypothesis, n, k)
    return float(np.mean(ref != hyp))


@dataclass(frozen=True)
class BoundaryScore:
    precision: float
    recall: float
    f1: float


def boundary_f1(reference, hypothesis, tolerance: int = 0) -> BoundaryScore:
    """Boundary precision/recall/F1 with a one-to-one matching: a hypothesis boundary matches an unmatched
    reference boundary at most `tolerance` positions away (0: exact). Positions are usually candidate
    indices, so tolerance 1 means "within one candidate". Two empty sets score 1.
    """
    ref = np.unique(np.asarray(reference, dtype=np.int64))
    hyp = np.unique(np.asarray(hypothesis, dtype=np.int64))
    if len(ref) == 0 and len(hyp) == 0:
        return BoundaryScore(1.0, 1.0, 1.0)
    # Both lists are sorted, so a left-to-right greedy matching is a maximum matching on a line.
    matched, r = 0, 0
    for h in hyp.tolist():
        while r < len(ref) and ref[r] < h - tolerance:
            r += 1
        if r < len(ref) and ref[r] <= h + tolerance:
            matched += 1
            r += 1
    precision = matched / len(hyp) if len(hyp) else 0.0
    recall = matched / len(ref) if len(ref) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if matched else 0.0
    return BoundaryScore(precision, recall, f1)
