"""`blockattn generate` on the engine: JSON report, --cache-dir reuse across runs, one-line errors (exit 2)."""

import json
import sys

import pytest

from blockattn.cli import main

KEYS = {"answer", "mode", "n_blocks", "context_tokens", "query_tokens", "new_tokens", "ttft_ms", "total_ms",
        "model", "adapter", "cached_blocks", "computed_blocks", "finish_reason"}


def run(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["blockattn", "generate", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr()
    return exit_info.value.code or 0, out.out, out.err


@pytest.fixture
def docs(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("The Bell Rock Lighthouse was designed by Robert Stevenson.\n")
    b.write_text("Honey bees tell each other where food is by dancing.\n")
    return ["--doc", str(a), "--doc", str(b)]


@pytest.mark.slow
def test_json_report_and_cache_dir_reuse(monkeypatch, capsys, docs, tmp_path):
    args = [*docs, "-q", "Who designed the Bell Rock Lighthouse?", "--json", "--max-new-tokens", "12",
            "--cache-dir", str(tmp_path / "kv"), "--adapter", "none", "--device", "cpu"]
    code, out, _ = run(monkeypatch, capsys, *args)
    first = json.loads(out)
    assert code == 0 and set(first) == KEYS
    assert first["adapter"] is None and first["n_blocks"] == 2 and first["computed_blocks"] == 3
    assert "Stevenson" in first["answer"]
    code, out, _ = run(monkeypatch, capsys, *args)  # a new engine, the same directory: every block from disk
    second = json.loads(out)
    assert (second["cached_blocks"], second["computed_blocks"]) == (3, 0)
    assert second["answer"] == first["answer"]


@pytest.mark.slow
def test_full_mode_plain_output(monkeypatch, capsys, docs):
    code, out, _ = run(monkeypatch, capsys, *docs, "-q", "Who designed the lighthouse?", "--mode", "full",
                       "--max-new-tokens", "8", "--device", "cpu")
    assert code == 0 and out.strip() and not out.lstrip().startswith("{")


def test_segment_auto_cuts_each_document_into_blocks(monkeypatch, capsys, docs, tiny_dir, tmp_path):
    from pathlib import Path

    long_doc = tmp_path / "topics.txt"
    long_doc.write_text((Path(__file__).parents[1] / "segment" / "fixtures" / "topic_shifts.txt").read_text())
    common = [*docs, "--doc", str(long_doc), "-q", "What is rosin for?", "--json", "--max-new-tokens", "2",
              "--model", str(tiny_dir), "--adapter", "none", "--device", "cpu"]
    code, out, err = run(monkeypatch, capsys, *common, "--segment", "auto")
    assert code == 0, err
    auto = json.loads(out)
    _, out, _ = run(monkeypatch, capsys, *common)
    whole = json.loads(out)
    assert whole["n_blocks"] == 3 and auto["n_blocks"] > 3  # the two short docs stay whole, the long one is cut
    assert auto["context_tokens"] >= whole["context_tokens"] - 8  # the same text, just in more pieces


@pytest.mark.parametrize("args, message", [
    (["--doc", "/no/such/file", "-q", "x"], "no such file"),
    (["-q", "x", "--mode", "sideways"], "unknown mode"),
    (["-q", "x", "--segment", "paragraphs"], "unknown --segment"),
    (["-q", "   "], "question is empty"),
    (["-q", "x", "--max-new-tokens", "0"], "at least 1"),
    (["-q", "x", "--temperature", "7"], "temperature"),
    (["-q", "x", "--adapter", "/no/such/adapter"], "adapter"),
])
def test_bad_input_is_one_line_and_exit_2(monkeypatch, capsys, docs, args, message):
    if "--doc" not in args:
        args = [*docs, *args]
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
