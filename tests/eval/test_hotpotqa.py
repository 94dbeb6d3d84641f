"""HotpotQA scoring and loading (the real file's format; a bad file is a one-line error)."""

import gzip

import pytest

from blockattn.errors import UserError
from blockattn.data.hotpotqa import load_items
from blockattn.eval.hotpotqa import normalize, on_subset, score


def test_normalize_drops_case_punctuation_and_articles():
    assert normalize("The  Chief of Protocol!") == "chief of protocol"
    assert normalize("An apple, a day.") == "apple day"


def test_contains_and_exact_match():
    assert score("She was the Chief of Protocol.", ["Chief of Protocol"]) == (True, False)
    assert score("chief of protocol", ["Chief of Protocol"]) == (True, True)
    assert score("ambassador", ["Chief of Protocol", "Ghana"]) == (False, False)
    assert score("anything", ["", "!"]) == (False, False)  # an answer that normalises to nothing never matches


def test_subset_score():
    result = {"per_item": {"a": [True, True], "b": [False, False], "c": [True, False]}}
    assert on_subset(result, ["a", "b"]) == 0.5 and on_subset(result, []) is None


def test_loads_paragraphs_in_order(tmp_path):
    path = tmp_path / "h.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write('{"question_id": "q", "question_text": "Who?", "answers_objects": [{"spans": ["X"]}], '
                '"contexts": [{"title": "T1", "paragraph_text": "one"}, {"title": "T2", "paragraph_text": "two"}]}\n')
    (item,) = load_items(path)
    assert item.paragraphs == ("T1\none", "T2\ntwo") and item.answers == ("X",)


def test_missing_or_broken_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_items(tmp_path / "none.jsonl.gz")
    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wt") as f:
        f.write("{not json\n")
    with pytest.raises(UserError, match="unreadable"):
        load_items(bad)
