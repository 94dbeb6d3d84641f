import itertools

import numpy as np
import pytest

from blockattn.segment.decode import Infeasible, LogNormalPrior, decode, no_prior


def _score(gain, positions, total, prior, cuts):
    lengths = np.diff([0, *[positions[i] for i in cuts], total])
    return sum(gain[i] for i in cuts) + prior(np.asarray(lengths)).sum(), lengths


def _brute_force(gain, positions, total, prior, min_tokens, max_tokens, num_blocks, forced=()):
    best = None
    for r in range(len(gain) + 1):
        for cuts in itertools.combinations(range(len(gain)), r):
            if num_blocks is not None and r != num_blocks - 1 or not set(forced) <= set(cuts):
                continue
            score, lengths = _score(gain, positions, total, prior, cuts)
            if lengths.min() < min_tokens or (max_tokens and lengths.max() > max_tokens):
                continue
            if best is None or score > best + 1e-12:
                best = score
    return best


def _random_case(rng):
    n = int(rng.integers(0, 8))
    total = int(rng.integers(n + 1, 60))
    positions = np.sort(rng.choice(np.arange(1, total), n, replace=False)) if n else np.zeros(0, np.int64)
    return rng.normal(size=n), positions, total


class TestOptimality:
    @pytest.mark.parametrize("seed", range(4))
    def test_matches_brute_force(self, seed):
        rng = np.random.default_rng(seed)
        for _ in range(60):
            gain, positions, total = _random_case(rng)
            prior = LogNormalPrior(rng.uniform(2, 20), rng.uniform(0.3, 2)) if rng.random() < 0.7 else no_prior
            min_tokens = int(rng.integers(0, 6))
            max_tokens = int(rng.integers(8, 40)) if rng.random() < 0.5 else None
            k = int(rng.integers(1, len(gain) + 2)) if rng.random() < 0.5 else None
            forced = tuple(rng.choice(len(gain), size=min(len(gain), 1), replace=False)) if rng.random() < 0.3 else ()
            best = _brute_force(gain, positions, total, prior, min_tokens, max_tokens, k, forced)
            kwargs = dict(min_tokens=min_tokens, max_tokens=max_tokens, num_blocks=k,
                          forced=np.asarray(forced, dtype=np.int64) if forced else None)
            if best is None:
                with pytest.raises(Infeasible):
                    decode(gain, positions, total, prior, **kwargs)
                continue
            cuts = decode(gain, positions, total, prior, **kwargs)
            assert _score(gain, positions, total, prior, cuts)[0] == pytest.approx(best)
            assert set(forced) <= set(cuts.tolist())
            if k is not None:
                assert len(cuts) == k - 1


class TestCounts:
    def test_top_k_shortcut_equals_the_dp(self):
        rng = np.random.default_rng(5)
        gain = rng.normal(size=40)
        positions = np.arange(1, 41) * 3
        fast = decode(gain, positions, 130, num_blocks=9)
        slow = decode(gain, positions, 130, LogNormalPrior(10, 1, weight=1e-12), num_blocks=9)
        assert fast.tolist() == slow.tolist()

    def test_exact_count_whenever_candidates_suffice(self):
        positions = np.array([5, 10, 15])
        for k in range(1, 5):
            assert len(decode(np.zeros(3), positions, 20, num_blocks=k)) == k - 1
        with pytest.raises(Infeasible):
            decode(np.zeros(3), positions, 20, num_blocks=5)

    def test_limits_hold_in_free_mode(self):
        rng = np.random.default_rng(1)
        positions = np.sort(rng.choice(np.arange(1, 1000), 200, replace=False))
        cuts = decode(rng.normal(size=200), positions, 1000, LogNormalPrior(50, 1), min_tokens=20, max_tokens=90)
        lengths = np.diff([0, *positions[cuts], 1000])
        assert lengths.min() >= 20 and lengths.max() <= 90


class TestSearchBound:
    def test_a_span_bound_never_makes_a_text_infeasible(self):
        positions = np.array([10, 500, 510])  # a 490-token stretch without candidates
        cuts = decode(np.ones(3), positions, 520, LogNormalPrior(10, 1), span_tokens=50)
        assert len(cuts) >= 1

    def test_a_span_bound_that_fits_changes_nothing(self):
        rng = np.random.default_rng(2)
        positions = np.sort(rng.choice(np.arange(1, 400), 80, replace=False))
        gain = rng.normal(size=80)
        prior = LogNormalPrior(20, 0.5)
        assert decode(gain, positions, 400, prior, span_tokens=400).tolist() == decode(gain, positions, 400, prior).tolist()
