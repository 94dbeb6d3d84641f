"""split_documents: "none" keeps documents whole; "auto" cuts each with the shipped learned segmenter."""

from pathlib import Path

import numpy as np
import pytest

from blockattn.engine.segmenting import AUTO_MAX_TOKENS, split_documents
from blockattn.errors import UserError
from blockattn.segment.tokens import tokenize

TOPICS = (Path(__file__).parents[1] / "segment" / "fixtures" / "topic_shifts.txt").read_text(encoding="utf-8")
SHORT = "Honey bees tell each other where food is by dancing."


class TestAuto:
    def test_each_document_becomes_its_blocks_in_order(self):
        blocks = split_documents([SHORT, TOPICS, SHORT], "auto")
        assert blocks[0] == SHORT and blocks[-1] == SHORT  # shorter than a block: one block
        middle = blocks[1:-1]
        assert len(middle) > 1 and "".join(middle) == TOPICS

    def test_no_block_exceeds_the_cap(self):
        text = " ".join(["A run-on sentence with no place to stop"] * 600)  # ~5k tokens, no candidate
        blocks = split_documents([text], "auto")
        assert "".join(blocks) == text and len(blocks) > 1
        ends = np.cumsum([len(b) for b in blocks])  # block bounds as offsets into the text
        counts = np.diff(tokenize(text).before(np.concatenate([[0], ends])))
        assert counts.max() <= AUTO_MAX_TOKENS


class TestModes:
    def test_none_keeps_documents_whole(self):
        assert split_documents([SHORT, TOPICS], "none") == [SHORT, TOPICS]

    def test_unknown_mode_is_a_user_error(self):
        with pytest.raises(UserError, match="unknown segment mode"):
            split_documents([SHORT], "sentences")
