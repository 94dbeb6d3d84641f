import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from blockattn.segment.candidates import LINE, PARAGRAPH, SENTENCE, WORD, add_word_candidates, find_candidates
from blockattn.segment.document import Document
from blockattn.segment.tokens import tokenize

WRAPPED = (
    "It was the best of times, it was the worst of times, it was the age of\n"
    "wisdom, it was the age of foolishness, it was the epoch of belief, it was\n"
    "the epoch of incredulity. It was the season of Light, it was the season of\n"
    "Darkness, it was the spring of hope, it was the winter of despair.\n"
)
CODE = "def f(x):\n    y = x + 1\n    return y\n\n\nclass A:\n    pass\n"


def _offsets(text):
    return find_candidates(text).offsets.tolist()


class TestPlacement:
    def test_candidates_sit_between_content_and_whitespace(self):
        text = "One. Two!  Three?\nFour\n\n  Five.\n"
        for c in _offsets(text):
            assert 0 < c < len(text)
            assert not text[c - 1].isspace() and text[c].isspace()

    def test_kinds(self):
        cands = find_candidates("Aa bb. Cc dd\nEe ff\n\nGg hh.")
        assert dict(zip(cands.offsets.tolist(), cands.kinds.tolist())) == {6: SENTENCE, 12: LINE, 18: PARAGRAPH}

    def test_no_candidate_in_leading_or_trailing_whitespace(self):
        assert _offsets("\n\n  Hello there.\n\n") == []


class TestSentences:
    def test_abbreviations_and_initials_do_not_end_sentences(self):
        text = "Mr. Smith met Dr. Jones, e.g. Tuesday. J. R. R. Tolkien wrote. Then it ended."
        ends = [text[:c].split()[-1] for c in _offsets(text)]
        assert ends == ["Tuesday.", "wrote."]

    def test_lowercase_continuation_is_no_sentence_end(self):
        assert _offsets("It cost 3.5 dollars vs. the usual. fine") == []

    def test_cjk_terminators(self):
        assert _offsets("今天很好。明天也好。") == [5]


class TestLines:
    def test_hard_wrapped_prose_keeps_its_sentences_whole(self):
        cuts = _offsets(WRAPPED)
        assert [WRAPPED[:c][-12:] for c in cuts] == ["incredulity."]

    def test_every_code_line_end_is_a_candidate(self):
        cands = find_candidates(CODE)
        assert len(cands) == CODE.strip().count("\n") - 2  # the blank lines merge into one paragraph end
        assert PARAGRAPH in cands.kinds.tolist()


class TestWordCandidates:
    def test_long_unit_gets_word_cuts_that_respect_the_maximum(self):
        text = "word " * 300 + "end."
        doc = Document(text)
        cands = add_word_candidates(text, doc.candidates, doc.tokens.starts, max_tokens=50)
        assert set(cands.kinds.tolist()) == {WORD}
        bounds = np.concatenate([[0], doc.tokens.before(cands.offsets), [doc.total_tokens]])
        assert np.diff(bounds).max() <= 50

    def test_unit_without_spaces_is_cut_at_tokens(self):
        text = "x" * 4000
        doc = Document(text)
        cands = add_word_candidates(text, doc.candidates, doc.tokens.starts, max_tokens=100)
        bounds = np.concatenate([[0], doc.tokens.before(cands.offsets), [doc.total_tokens]])
        assert np.diff(bounds).max() <= 100


_PIECES = st.sampled_from(["Hello world.", " ", "\n", "\n\n", "    ", "def f():", "x = 1", "Dr. No",
                           "é😀ü", "It ended!", "(see below)", "3.14", "\t", "CHAPTER I", "“Quote.”"])


class TestTokenExactness:
    @settings(max_examples=80, deadline=None)
    @given(st.lists(_PIECES, min_size=1, max_size=40))
    def test_blocks_cut_at_candidates_tokenize_as_in_the_whole_text(self, pieces):
        text = "".join(pieces)
        doc = Document(text)
        bounds = [0, *doc.candidates.offsets.tolist(), len(text)]
        for a, b in zip(bounds, bounds[1:]):
            assert len(tokenize(text[a:b])) == doc.tokens.count(a, b)
