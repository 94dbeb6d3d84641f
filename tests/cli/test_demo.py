"""`blockattn demo` runs end to end on the engine: block mode reuses the documents' KV after the first question."""

import sys

import pytest

from blockattn.cli import main


def test_demo_answers_every_question_and_reuses_blocks(monkeypatch, capsys, tiny_dir):
    from blockattn.cli.demo import QUESTIONS

    monkeypatch.setattr(sys, "argv", ["blockattn", "demo", "--model", str(tiny_dir), "--adapter", "none",
                                      "--max-new-tokens", "3"])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr().out
    assert (exit_info.value.code or 0) == 0
    assert all(q[:20] in out for q in QUESTIONS)
    # The first question prefills the 4 blocks (instruction prefix + 3 documents); the later ones reuse them.
    assert out.count("(0/4 cached)") == 1 and out.count("(4/4 cached)") == len(QUESTIONS) - 1
