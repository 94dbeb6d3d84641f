"""Statistics of measured samples that the benchmarks' verdicts rest on (numpy only: no torch in the client)."""

from __future__ import annotations

import numpy as np


def median_ratio_interval(numerator: list[float], denominator: list[float], resamples: int = 2000,
                          seed: int = 0) -> tuple[float, float] | None:
    """95 % bootstrap interval of median(numerator) / median(denominator), the two samples resampled apart.

    Why: a serving phase at 1 client measures a few dozen requests, so a p50 ratio of two such samples is rough
    (two H200 runs of 2026-12-04, a few commits apart, read ×0.30 and ×0.24 at 1 client with 16 requests a side:
    reports/bench_serve_h200*.json); the interval says how far a goal's verdict can be trusted.
    None when either sample has fewer than 2 values or a resampled median is 0."""
    a, b = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return None
    rng = np.random.default_rng(seed)
    top = np.median(a[rng.integers(len(a), size=(resamples, len(a)))], axis=1)
    bottom = np.median(b[rng.integers(len(b), size=(resamples, len(b)))], axis=1)
    if not np.all(bottom > 0):
        return None
    low, high = np.percentile(top / bottom, [2.5, 97.5])
    return float(low), float(high)
