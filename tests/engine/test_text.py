"""Incremental detokenization with stop strings (on the real SmolLM2 tokenizer)."""

import pytest

from blockattn.engine.text import TextStream


@pytest.fixture(scope="module")
def tokenizer(smollm2_tokenizer):
    return smollm2_tokenizer


def run(tokenizer, text, stop):
    stream = TextStream(lambda ids: tokenizer.decode(ids, skip_special_tokens=True), stop)
    deltas = []
    for token in tokenizer(text, add_special_tokens=False)["input_ids"]:
        deltas.append(stream.push(token))
        if stream.stopped:
            break
    deltas.append(stream.finish())
    return deltas, stream


def test_deltas_concatenate_to_the_decoded_text(tokenizer):
    text = "Héllo wörld — naïve café, 東京 and emoji 🚀 end."
    deltas, stream = run(tokenizer, text, [])
    assert "".join(deltas) == text and not stream.stopped
    assert all("\ufffd" not in d for d in deltas)  # never half a character


def test_stop_string_cuts_the_text_before_it(tokenizer):
    deltas, stream = run(tokenizer, "The answer is 42. Then more text follows.", [". Then"])
    assert "".join(deltas) == "The answer is 42" and stream.stopped


def test_a_stop_prefix_is_held_back_then_released(tokenizer):
    stream = TextStream(lambda ids: tokenizer.decode(ids, skip_special_tokens=True), ["STOPWORD"])
    ids = tokenizer("value STOP", add_special_tokens=False)["input_ids"]
    out = "".join(stream.push(t) for t in ids)
    assert "STOP" not in out  # might still become STOPWORD
    assert out + stream.finish() == "value STOP"


def test_earliest_of_several_stops_wins(tokenizer):
    deltas, _ = run(tokenizer, "alpha beta gamma delta", ["delta", "beta"])
    assert "".join(deltas) == "alpha "
