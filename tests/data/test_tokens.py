"""Adding up piece token counts equals counting the whole text (the fast path of the builder)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from blockattn.data.documents import Document, Piece
from blockattn.data.instances import render
from blockattn.data.tokens import RunCounter, count_tokens, instance_tokens, piece_counts

_line = st.text(alphabet=st.sampled_from(list("abc XYZ12.,;:()'\"\t-é漢")), min_size=1, max_size=25)
_indent = st.sampled_from(["", "", "    ", "\t", "  ", "        "])


@st.composite
def _piece(draw):
    lines = [draw(_indent) + draw(_line).strip(" \t") or "x" for _ in range(draw(st.integers(1, 4)))]
    text = "\n".join(lines) + draw(st.sampled_from(["\n", "\n\n", "\n\n\n"]))
    heading = draw(st.sampled_from(["", "Title\n\n", "== Sec ==\n\n", "%\n", "  indented heading\n"]))
    return Piece(text, 3, heading)


class TestInstanceTokens:
    @given(st.lists(_piece(), min_size=1, max_size=12), st.booleans())
    @settings(max_examples=150, deadline=None)
    def test_sum_of_pieces_equals_whole_count(self, pieces, markup):
        doc = Document("s/0", "s", "c", "t", "g", tuple(pieces))
        (counts,) = piece_counts([doc])
        text, _, _ = render([(p, 3) for p in pieces], markup)
        n = instance_tokens([(counts, i, markup and bool(p.heading)) for i, p in enumerate(pieces)], RunCounter())
        if n is not None:
            assert n == count_tokens([text])[0]

    def test_unicode_blank_at_an_edge_is_unsafe(self):
        doc = Document("s/0", "s", "c", "t", "g", (Piece("a\n\n", 3), Piece("\u00a0b\n\n", 3)))
        (counts,) = piece_counts([doc])
        assert instance_tokens([(counts, 0, False), (counts, 1, False)], RunCounter()) is None
