"""`blockattn segment`: default-command routing, output formats, bad input (exit code 2)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from blockattn.cli import app

runner = CliRunner()


@pytest.fixture
def text_file(tmp_path, sample_text):
    path = tmp_path / "doc.txt"
    path.write_text(sample_text, encoding="utf-8")
    return path


def _run(*args, input=None):
    return runner.invoke(app, ["segment", *map(str, args)], input=input)


class TestFormats:
    def test_json_blocks_cover_the_input_contiguously(self, text_file, sample_text):
        result = _run(text_file, "--method", "sentence", "--num-blocks", "4", "--format", "json")
        assert result.exit_code == 0, result.output
        out = json.loads(result.output)
        assert set(out) == {"blocks", "method", "ms"} and out["method"] == "sentence"
        blocks = out["blocks"]
        assert len(blocks) == 4 and all(set(b) == {"start", "end", "n_tokens", "text"} for b in blocks)
        assert blocks[0]["start"] == 0 and blocks[-1]["end"] == len(sample_text)
        assert all(a["end"] == b["start"] for a, b in zip(blocks, blocks[1:]))
        assert "".join(b["text"] for b in blocks) == sample_text

    def test_jsonl_is_one_block_per_line(self, text_file):
        result = _run(text_file, "--method", "paragraph", "--format", "jsonl")
        lines = result.output.strip().splitlines()
        assert result.exit_code == 0 and len(lines) > 1
        assert all(set(json.loads(line)) == {"start", "end", "n_tokens", "text"} for line in lines)

    def test_text_format_and_stdin(self, sample_text):
        result = _run("-", "--method", "fixed", "--target-tokens", "200", input=sample_text)
        assert result.exit_code == 0 and "block 1/" in result.output

    def test_options_before_the_file_still_reach_cut(self, text_file):
        assert _run("--method", "fixed", text_file).exit_code == 0

    def test_default_method_is_learned(self, text_file, learned_is_random):
        out = json.loads(_run(text_file, "--format", "json").output)
        assert out["method"] == "learned"


class TestBadInput:
    """Through the real entry point: a user error is one line on stderr and exit code 2."""

    def _main(self, monkeypatch, capsys, *args) -> tuple[int, str]:
        from blockattn.cli import main

        monkeypatch.setattr(sys, "argv", ["blockattn", "segment", *map(str, args)])
        with pytest.raises(SystemExit) as exit_info:
            main()
        return exit_info.value.code, capsys.readouterr().err

    @pytest.mark.parametrize("content", [b"", b"   \n\t", b"\x00\x01binary", b"caf\xe9 latin-1"])
    def test_unusable_input_exits_2(self, monkeypatch, capsys, tmp_path, content):
        path = tmp_path / "bad.txt"
        path.write_bytes(content)
        code, err = self._main(monkeypatch, capsys, path, "--method", "fixed")
        assert code == 2 and err.startswith("error:") and err.count("\n") == 1

    @pytest.mark.parametrize("args", [["nope.txt"], ["DOC", "--format", "xml"], ["DOC", "--level", "huge"],
                                      ["DOC", "--method", "magic"], ["DOC", "--min-tokens", "9", "--max-tokens", "3"]])
    def test_bad_arguments_exit_2(self, monkeypatch, capsys, text_file, args):
        args = [text_file if a == "DOC" else a for a in args]
        code, err = self._main(monkeypatch, capsys, *args)
        assert code == 2 and err.startswith("error:")

    @pytest.mark.parametrize("size", [["--dim", "130"], ["--layers", "0"], ["--ffn", "0"]])
    def test_a_tagger_size_that_cannot_be_built_exits_2_before_training(self, monkeypatch, capsys, tmp_path, size):
        code, err = self._main(monkeypatch, capsys, "train", "--data", tmp_path, "--work", tmp_path / "w", *size)
        assert code == 2 and err.startswith("error:") and "--dim" in err
        assert not (tmp_path / "w").exists()

    @pytest.mark.parametrize("windows", ["4,x", "0,8", "-2"])
    def test_bad_lexical_windows_exit_2_before_training(self, monkeypatch, capsys, tmp_path, windows):
        code, err = self._main(monkeypatch, capsys, "train", "--data", tmp_path, "--work", tmp_path / "w",
                               "--lexical-windows", windows)
        assert code == 2 and err.startswith("error:") and "--lexical-windows" in err
        assert not (tmp_path / "w").exists()

    def test_ensemble_of_one_file_or_a_missing_one_exits_2(self, monkeypatch, capsys, tmp_path):
        from blockattn.segment.assets import asset
        from blockattn.segment.learned.segmenter import WEIGHTS_ASSET

        shipped = asset(WEIGHTS_ASSET)
        for members in ([shipped], [shipped, tmp_path / "missing.safetensors"]):
            code, err = self._main(monkeypatch, capsys, "ensemble", "--out", tmp_path / "e.safetensors", *members)
            assert code == 2 and err.startswith("error:")
        assert not (tmp_path / "e.safetensors").exists()

    def test_empty_stdin_in_a_real_process(self):
        result = subprocess.run([sys.executable, "-m", "blockattn", "segment", "-", "--method", "fixed"],
                                input=b"", capture_output=True, timeout=60)
        assert result.returncode == 2 and b"empty" in result.stderr


class TestEnsembleCommand:
    def test_an_ensemble_of_the_shipped_file_with_itself_cuts_as_the_shipped_file(self, tmp_path, sample_text):
        from blockattn.segment.assets import asset
        from blockattn.segment.document import Document
        from blockattn.segment.learned.segmenter import WEIGHTS_ASSET, LearnedSegmenter, load_weights

        shipped = asset(WEIGHTS_ASSET)
        out = tmp_path / "twice.safetensors"
        result = _run("ensemble", "--out", out, shipped, shipped)
        assert result.exit_code == 0, result.output
        single, twice = load_weights(shipped), load_weights(out)
        assert len(twice[1].members) == 2 * len(getattr(single[1], "members", [single[1]]))
        np.testing.assert_allclose(LearnedSegmenter(*twice).logits(Document(sample_text)),
                                   LearnedSegmenter(*single).logits(Document(sample_text)), atol=1e-5)
