import numpy as np
import pytest
from nltk.metrics import segmentation as nltk_seg

from blockattn.segment.metrics import boundary_f1, default_k, pk, windowdiff


def _markers(bounds, n):
    chosen = set(bounds.tolist())
    return "".join("1" if i in chosen else "0" for i in range(n))


class TestAgainstNLTK:
    @pytest.mark.parametrize("seed", range(3))
    def test_pk_and_windowdiff_equal_nltk_on_random_cases(self, seed):
        rng = np.random.default_rng(seed)
        for _ in range(200):
            n = int(rng.integers(2, 120))
            ref = np.sort(rng.choice(np.arange(1, n), int(rng.integers(0, n - 1)), replace=False))
            hyp = np.sort(rng.choice(np.arange(1, n), int(rng.integers(0, n - 1)), replace=False))
            k = int(rng.integers(1, n + 1))
            r, h = _markers(ref, n), _markers(hyp, n)
            assert pk(ref, hyp, n, k) == pytest.approx(nltk_seg.pk(r, h, k=k))
            assert windowdiff(ref, hyp, n, k) == pytest.approx(nltk_seg.windowdiff(r, h, k))


class TestProperties:
    def test_perfect_segmentation_scores_zero(self):
        ref = np.array([10, 30, 55])
        assert pk(ref, ref, 80) == 0.0 and windowdiff(ref, ref, 80) == 0.0

    def test_default_k_is_half_the_mean_block_length(self):
        assert default_k(np.array([25, 50, 75]), 100) == 12

    def test_boundary_f1_exact_and_tolerant(self):
        assert boundary_f1([3, 7, 12], [3, 8, 20]).f1 == pytest.approx(1 / 3)
        tol = boundary_f1([3, 7, 12], [3, 8, 20], tolerance=1)
        assert (tol.precision, tol.recall) == pytest.approx((2 / 3, 2 / 3))

    def test_boundary_f1_matches_one_to_one(self):
        assert boundary_f1([5], [4, 5, 6], tolerance=1).precision == pytest.approx(1 / 3)
