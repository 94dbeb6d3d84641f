"""The shipped learned weights (`blockattn/assets/segmenter/learned.safetensors`): within the issue's size
budget, and good enough to find the topic shifts of a held-out text that a fixed window misses."""

from pathlib import Path

import numpy as np
import pytest

from blockattn.segment import Document, Request, methods, segment_text
from blockattn.segment.evaluate import score_cuts
from blockattn.segment.methods import get_segmenter
from blockattn.segment.request import LEVELS

FIXTURE = Path(__file__).parent / "fixtures" / "topic_shifts.txt"
# Five topics written for this test (never in SemanticSeg), of uneven length, separated by the same blank
# line as the paragraphs inside them: only the content says where a topic ends.
TOPIC_STARTS = ("The planet Mars", "The offside rule", "A mortgage is", "The violin has")


@pytest.fixture(scope="module")
def shipped():
    from blockattn.segment.learned.segmenter import LearnedSegmenter, load_weights

    return LearnedSegmenter(*load_weights())


@pytest.fixture(scope="module")
def fixture_text() -> tuple[str, list[int]]:
    text = FIXTURE.read_text(encoding="utf-8")
    return text, [text.index(s) for s in TOPIC_STARTS]


class TestBudget:
    def test_file_is_at_most_15_mb(self):
        from blockattn.segment.assets import asset
        from blockattn.segment.learned.segmenter import WEIGHTS_ASSET

        assert asset(WEIGHTS_ASSET).is_file(), "run `blockattn segment train` to produce the weights"
        assert Path(str(asset(WEIGHTS_ASSET))).stat().st_size <= 15e6

    def test_at_most_30m_parameters_encoder_included(self, shipped):
        emb, tagger, _ = shipped.parts
        params = emb.codes.size + emb.scales.size + tagger.parameters  # every member of an ensemble
        assert params <= 30e6


class TestQuality:
    def test_beats_fixed_windows_on_held_out_topic_shifts(self, shipped, fixture_text):
        text, gold = fixture_text
        request = Request(num_blocks=len(gold) + 1)
        learned = score_cuts(Document(text), gold, shipped.cut(Document(text), request))
        fixed = score_cuts(Document(text), gold, get_segmenter("fixed").cut(Document(text), request))
        assert learned["windowdiff"] < fixed["windowdiff"], (learned, fixed)
        assert learned["f1_tol1"] >= 0.5, learned

    def test_levels_rise_and_nest(self, shipped, fixture_text):
        doc = Document(fixture_text[0] * 3)
        cuts = [set(shipped.cut(doc, Request(level=lv)).tolist()) for lv in LEVELS]
        assert len(cuts[0]) < len(cuts[1]) < len(cuts[2])
        assert cuts[0] <= cuts[1] <= cuts[2]


class TestBlocks:
    def test_blocks_cover_the_text_contiguously(self, fixture_text, monkeypatch, shipped):
        text = fixture_text[0]
        monkeypatch.setitem(methods._INSTANCES, "learned", shipped)  # never a weights file from $ENV
        for kwargs in ({}, {"level": "fine"}, {"target_tokens": 100, "max_tokens": 150}, {"num_blocks": 7}):
            blocks = segment_text(text, "learned", **kwargs)
            assert blocks[0].start == 0 and blocks[-1].end == len(text)
            assert all(a.end == b.start for a, b in zip(blocks, blocks[1:]))
            assert "".join(b.text for b in blocks) == text
        assert len(segment_text(text, "learned", num_blocks=7)) == 7
        assert all(b.n_tokens <= 150 for b in segment_text(text, "learned", target_tokens=100, max_tokens=150))

    def test_text_shorter_than_a_block_is_one_block(self, shipped):
        doc = Document("A single short paragraph.\n\nAnd a second line of it.")
        assert len(shipped.cut(doc, Request(level="fine"))) == 0

    def test_logits_are_finite(self, shipped, fixture_text):
        assert np.isfinite(shipped.logits(Document(fixture_text[0]))).all()
