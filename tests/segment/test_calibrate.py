"""What --level means: per-level mean block lengths measured on SemanticSeg (issue 14)."""

import numpy as np
import pytest

from blockattn.segment import Document, Request
from blockattn.segment.learned.calibrate import calibrate_weights, level_mean_tokens, weighted_median
from blockattn.segment.request import LEVELS


def row(category, n_tokens, coarse, fine, medium=None):
    return {"category": category, "n_tokens": n_tokens,
            "boundaries": {"coarse": coarse, "medium": fine if medium is None else medium, "fine": fine}}


class TestLevelMeanTokens:
    def test_medians_of_mean_block_length_per_level(self):
        rows = [row("a", 1000, [500], [100, 500, 700]), row("a", 3000, [1000, 2000], [500 * i for i in range(1, 6)])]
        # a: coarse means 500 and 1000, fine 250 and 500: the weighted median takes the lower middle
        assert level_mean_tokens(rows) == {"coarse": 500, "medium": 250, "fine": 250}

    def test_every_category_weighs_the_same(self):
        many = [row("big", 1000, [500], [250, 500, 750])] * 9   # coarse 500
        one = [row("small", 4000, [2000], [1000, 2000, 3000])]  # coarse 2000
        third = [row("third", 6000, [3000], [1500, 3000, 4500])]  # coarse 3000
        # Pooled, the median document is a "big" one (500); per category, it is the middle category's.
        assert level_mean_tokens(many + one + third)["coarse"] == 2000

    def test_every_document_with_gold_at_a_level_counts(self):
        # Documents whose levels coincide are measured too: the evaluation scores the free count on them.
        flat = [row("flat", 1000, [100 * i for i in range(1, 10)], [100 * i for i in range(1, 10)])] * 5
        deep = [row("deep", 1000, [500], [100, 500, 700])]
        third = [row("third", 1000, [250, 500, 750], [250, 500, 750])]
        assert level_mean_tokens(flat + deep + third) == {"coarse": 250, "medium": 250, "fine": 250}

    def test_a_row_without_medium_gold_is_left_out_of_medium_only(self):
        rows = [row("a", 1000, [500], [250, 500, 750], medium=[]), row("b", 2000, [1000], [500, 1000, 1500])]
        assert level_mean_tokens(rows) == {"coarse": 500, "medium": 500, "fine": 250}

    def test_weighted_median(self):
        assert weighted_median(np.array([3.0, 1.0, 2.0]), np.ones(3)) == 2.0
        assert weighted_median(np.array([1.0, 10.0]), np.array([1.0, 3.0])) == 10.0


def tensors(path):
    from safetensors.numpy import load_file

    return load_file(str(path))


class TestCalibratedWeights:
    def test_calibration_changes_only_the_level_lengths(self, tmp_path, random_segmenter, semanticseg):
        from blockattn.segment.learned.segmenter import load_weights, save_weights

        emb, tagger, decoding = random_segmenter.parts
        path = tmp_path / "w.safetensors"
        save_weights(path, emb, tagger.w, tagger.config, decoding)
        measured = calibrate_weights(semanticseg, path, tmp_path / "cal.safetensors")
        _, _, decoding2 = load_weights(tmp_path / "cal.safetensors")
        assert set(measured) == set(LEVELS) and decoding2.level_mean_tokens == measured
        assert decoding2.level_tokens == decoding.level_tokens
        before, after = tensors(path), tensors(tmp_path / "cal.safetensors")
        assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)


class TestLevelDecoding:
    @pytest.mark.parametrize("level", LEVELS)
    def test_a_level_asks_for_the_text_length_over_its_mean(self, level, random_segmenter):
        text = "".join(f"Sentence number {i} is here. Another one follows it.\n\n" for i in range(400))
        doc = Document(text)
        mean = random_segmenter.decoding.level_mean_tokens[level]
        cuts = random_segmenter.cut(doc, Request(level=level))
        assert len(cuts) + 1 == round(doc.total_tokens / mean)
