"""segment_text and the baselines: coverage, counts, limits, bad input."""

import pytest

from blockattn.errors import UserError
from blockattn.segment import segment_text
from blockattn.segment.tokens import tokenize

FAST_METHODS = ["learned", "fixed", "sentence", "paragraph", "recursive", "texttiling"]


@pytest.fixture(scope="module")
def text(sample_text):
    return sample_text


def _check_cover(text, blocks):
    assert "".join(b.text for b in blocks) == text
    assert blocks[0].start == 0 and blocks[-1].end == len(text)
    for a, b in zip(blocks, blocks[1:]):
        assert a.end == b.start
    for b in blocks:
        assert b.text == text[b.start:b.end] and b.end > b.start


@pytest.mark.usefixtures("learned_is_random")
class TestEveryMethod:
    @pytest.mark.parametrize("method", FAST_METHODS)
    def test_blocks_cover_the_text_exactly(self, text, method):
        for kwargs in ({}, {"level": "fine"}, {"target_tokens": 60}, {"num_blocks": 5}):
            _check_cover(text, segment_text(text, method, **kwargs))

    @pytest.mark.parametrize("method", FAST_METHODS)
    def test_exact_block_count(self, text, method):
        for k in (1, 2, 7, 15):
            assert len(segment_text(text, method, num_blocks=k)) == k

    @pytest.mark.parametrize("method", FAST_METHODS)
    def test_hard_limits_hold(self, text, method):
        blocks = segment_text(text, method, target_tokens=50, min_tokens=30, max_tokens=80)
        assert all(30 <= b.n_tokens <= 80 for b in blocks)

    @pytest.mark.parametrize("method", FAST_METHODS)
    def test_short_text_is_one_block(self, method):
        assert len(segment_text("Just one short sentence.", method)) == 1
        assert len(segment_text("Tiny. Text. Here.", method, min_tokens=100)) == 1

    def test_candidate_methods_never_split_a_sentence(self, text):
        sentence_ends = {i + 1 for i, ch in enumerate(text) if ch == "."}
        for method in ("learned", "sentence", "paragraph", "texttiling"):
            for b in segment_text(text, method, num_blocks=9)[:-1]:
                assert b.end in sentence_ends


class TestTokens:
    def test_n_tokens_is_the_blocks_own_token_count(self, text, learned_is_random):
        for b in segment_text(text, "learned", level="fine"):
            assert b.n_tokens == len(tokenize(b.text))


class TestBadInput:
    def test_empty_text_is_a_user_error(self):
        with pytest.raises(UserError):
            segment_text("  \n ", "fixed")

    def test_unknown_method_and_level(self):
        with pytest.raises(UserError):
            segment_text("Hi.", "magic")
        with pytest.raises(UserError):
            segment_text("Hi.", "fixed", level="huge")

    def test_contradictory_limits(self):
        with pytest.raises(UserError):
            segment_text("Hi.", "fixed", min_tokens=10, max_tokens=5)

    def test_infeasible_limits_are_a_user_error(self, text):
        with pytest.raises(UserError):
            segment_text(text, "sentence", num_blocks=3, max_tokens=20)


@pytest.mark.slow
class TestSemantic:
    def test_semantic_chunker_hits_the_count_and_covers(self, text):
        blocks = segment_text(text, "semantic", num_blocks=6)
        assert len(blocks) == 6
        _check_cover(text, blocks)
