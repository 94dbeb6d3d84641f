"""The segmenter on random unicode and binary-like strings: blocks that join back to the text exactly (each
block being its own slice of it), or a clear one-line UserError -- never another exception."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blockattn.errors import UserError
from blockattn.segment import segment_text

# unicode of every category (combining marks, RTL, emoji, odd whitespace), latin-1 decoded bytes (control
# characters, NULs), and text-like runs with sentence and line breaks so there are cut points to find
unicode_texts = st.text(max_size=400)
binary_like = st.binary(max_size=400).map(lambda b: b.decode("latin-1"))
structured = st.lists(st.text(max_size=40) | st.sampled_from([". ", "\n", "\n\n", "? ", "\r\n", "\u2029", "\x00"]),
                      max_size=60).map("".join)
texts = unicode_texts | binary_like | structured

BOUNDED = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def check(text: str, method: str, **request) -> None:
    try:
        blocks = segment_text(text, method, **request)
    except UserError as exc:
        message = str(exc)
        assert message and "\n" not in message
        return
    assert "".join(b.text for b in blocks) == text
    assert all(b.text == text[b.start:b.end] for b in blocks)
    assert all(b.text for b in blocks)


@pytest.mark.parametrize("method", ["fixed", "sentence", "paragraph", "recursive"])
@BOUNDED
@given(text=texts, target=st.integers(1, 64))
def test_baselines_join_back_or_refuse_clearly(method, text, target):
    check(text, method, target_tokens=target)


@settings(BOUNDED, max_examples=60)
@given(text=texts, target=st.integers(4, 64), limits=st.booleans())
def test_the_learned_segmenter_joins_back_or_refuses_clearly(text, target, limits):
    check(text, "learned", target_tokens=target, **({"min_tokens": 2, "max_tokens": 80} if limits else {}))
