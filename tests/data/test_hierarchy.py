"""Hierarchy (issue 14): levels added inside documents and sections across them, text never changed."""

from __future__ import annotations

import numpy as np

from blockattn.data.documents import COARSE, FINE, MEDIUM, NONE, Document, Piece
from blockattn.data.hierarchy import deepen, section_of
from blockattn.data.instances import Planner
from blockattn.data.tokens import piece_counts


def _doc(source: str, category: str, pieces: list[tuple[str, int]], key: str = "0") -> Document:
    return Document(f"{source}/{key}", source, category, key, f"{source}:{key}",
                    tuple(Piece(t, lv) for t, lv in pieces))


class TestDeepen:
    def test_go_methods_join_their_type_as_medium(self):
        doc = _doc("go-stdlib", "go-code", [("package p\n\n", COARSE), ("type T struct{}\n\n", COARSE),
                                            ("func (t *T) A() {}\n\n", COARSE), ("func (T) B() {}\n\n", COARSE),
                                            ("func F() {}\n\n", COARSE), ("func G() {}\n\n", COARSE)])
        assert [p.level for p in deepen(doc).pieces] == [COARSE, COARSE, MEDIUM, MEDIUM, COARSE, MEDIUM]
        assert deepen(doc).text() == doc.text()

    def test_single_level_prose_gets_paragraphs_as_fine_but_not_cuts_inside_one(self):
        doc = _doc("janeaustenr", "novels", [("Chapter one.\n\n", COARSE), ("A paragraph.\n\n", NONE),
                                             ("half of a long one\n", NONE), ("its other half.\n\n", NONE)])
        assert [p.level for p in deepen(doc).pieces] == [COARSE, FINE, FINE, NONE]

    def test_documents_with_levels_of_their_own_and_unseen_sources_stay_as_parsed(self):
        layered = _doc("python-docs", "reference-manuals", [("a\n\n", COARSE), ("b\n\n", MEDIUM), ("c\n\n", NONE)])
        unseen = _doc("r-vignettes", "vignettes", [("a\n\n", COARSE), ("b\n\n", NONE)])
        assert deepen(layered) == layered and deepen(unseen) == unseen
        assert section_of(unseen) is None


class TestSectionOf:
    def test_a_chitchat_conversation_belongs_to_its_prompt(self):
        chat = Document("chitchat/ab", "chitchat", "conversations", "chat ab: Who is your hero?", "chitchat:ab",
                        (Piece("A: hi\n", COARSE),))
        assert section_of(chat) == "Who is your hero?"
        assert deepen(chat) == chat  # turns get no level of their own

    def test_a_chitchat_conversation_without_a_prompt_has_no_section(self):
        chat = Document("chitchat/cd", "chitchat", "conversations", "chat cd", "chitchat:cd", (Piece("A: hi\n", COARSE),))
        assert section_of(chat) is None


class TestSectionedConcat:
    def test_coarse_marks_a_new_section_and_medium_a_new_unit(self):
        # fortunes: one entry per document, grouped by fortune file (the document's group)
        docs = [Document(f"fortunes/{f}/{i}", "fortunes", "quotes-poems", f"{f} #{i}", f"fortunes:{f}",
                         (Piece(f"entry {i} of file {f}. " * 8 + "\n\n", COARSE),))
                for f in ("art", "law", "food") for i in range(30)]
        planner = Planner(docs, piece_counts(docs))
        rng = np.random.default_rng(0)
        for _ in range(10):
            c = planner.concat_candidate(1500, False, rng)
            b = c.boundaries
            assert set(b["coarse"]) < set(b["medium"]) == set(b["fine"])
            # every coarse boundary, and no other, starts an entry of another file than the one before
            starts = [0, *b["medium"]]
            files = [c.text[s:].split("of file ", 1)[1].split(".", 1)[0] for s in starts]
            changes = [s for s, f, prev in zip(starts[1:], files[1:], files) if f != prev]
            assert changes == b["coarse"]
