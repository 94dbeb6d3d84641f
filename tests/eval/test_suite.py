"""`blockattn eval all` on a tiny random model with the real tokenizer, a miniature SemanticSeg and two
HotpotQA-shaped questions: every table's JSON names its provenance, and its numbers have the right shape."""

import gzip
import json
import sys

import pytest
from typer.testing import CliRunner

import blockattn.models as models
from blockattn.cli import app
from blockattn.eval.segmentation_kl import cut_texts, sample_documents, segmentation_kl
from blockattn.eval.sensitivity import read_questions, sensitivity
from blockattn.eval.variants import zero_shot_block
from blockattn.models.tiny import tiny_model

from ..distill.conftest import semanticseg  # noqa: F401


@pytest.fixture
def hotpotqa(tmp_path):
    path = tmp_path / "hq.jsonl.gz"
    rows = [{"question_id": f"q{i}", "question_text": f"Which town is number {i}?",
             "answers_objects": [{"spans": [f"Town {i}"]}],
             "contexts": [{"id": str(j), "title": f"Place {j}", "paragraph_text": f"Place {j} lies near town {j}.",
                           "is_supporting": j == i} for j in range(3)]} for i in range(2)]
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return path


@pytest.fixture
def tiny_loaded(monkeypatch, smollm2_tokenizer):
    def load(name, dtype="float32", device="cpu"):
        return models.LoadedModel(tiny_model(vocab_size=49152), smollm2_tokenizer, "tiny", "tiny@0")

    monkeypatch.setattr(models, "load", load)


class TestSegmentationKL:
    def test_every_method_cuts_the_same_text_into_the_gold_count(self, semanticseg):  # noqa: F811
        docs = sample_documents(semanticseg, "test", 3, 1200, seed=0)
        assert len(docs) == 3
        for doc in docs:
            for method in ("gold", "fixed", "paragraph", "sentence"):
                pieces = cut_texts(doc, method)
                assert "".join(pieces) == doc["text"] and len(pieces) == len(doc["cuts"]) + 1

    def test_table_has_every_method_and_variant(self, semanticseg, smollm2_tokenizer):  # noqa: F811
        docs = sample_documents(semanticseg, "test", 2, 1500, seed=0)
        a, b = zero_shot_block(tiny_model(vocab_size=49152, initializer_range=0.5)), zero_shot_block(
            tiny_model(vocab_size=49152, seed=3, initializer_range=0.5))
        b.name = "other"
        table = segmentation_kl([a, b], smollm2_tokenizer, docs, ("gold", "fixed"))
        assert set(table["methods"]) == {"gold", "fixed"} and table["documents"] == 2
        for per in table["methods"].values():
            assert set(per) == {"zero-shot block", "other"}
            assert all(v["kl"] > 0 and v["tokens"] > 0 for v in per.values())


class TestSensitivity:
    def test_one_kl_per_token_and_answer_predictions_counted(self, hotpotqa, smollm2_tokenizer):
        items = read_questions(hotpotqa, 1)
        model = tiny_model(vocab_size=49152, initializer_range=0.5)
        [ex] = sensitivity([zero_shot_block(model)], smollm2_tokenizer, items)
        v = ex["variants"]["zero-shot block"]
        assert len(v["kl_per_token"]) == sum(ex["block_tokens"]) and len(ex["block_tokens"]) == 5
        assert ex["supporting_blocks"] == [1] and ex["answer_tokens"] > 0
        # the first block (the instruction prefix) sees exactly what full attention sees
        assert v["kl_per_block"][0] < 1e-3 < v["kl_answer"]


class TestEvalAll:
    def test_writes_each_table_with_provenance(self, semanticseg, hotpotqa, tiny_loaded, tmp_path):  # noqa: F811
        out = tmp_path / "reports"
        result = CliRunner().invoke(app, ["eval", "all", "--out", str(out), "--model", "tiny", "--adapter", "none",
                                          "--data", str(semanticseg), "--documents", "2", "--max-tokens", "1500",
                                          "--methods", "gold,fixed", "--hotpotqa", str(hotpotqa),
                                          "--examples", "1", "--device", "cpu"])
        assert result.exit_code == 0, result.output
        for name in ("segkl_tiny", "sensitivity_tiny"):
            data = json.loads((out / f"{name}.json").read_text())
            assert {"command", "commit", "machine", "wall_seconds", "seed"} <= set(data)
            assert (out / f"{name}.png").stat().st_size > 5_000

    def test_a_saved_sample_scores_the_same_texts(self, semanticseg, tiny_loaded, tmp_path):  # noqa: F811
        sample = tmp_path / "sample.jsonl.gz"
        common = ["--model", "tiny", "--adapter", "none", "--tables", "t3", "--documents", "2", "--methods", "gold",
                  "--device", "cpu"]
        first = CliRunner().invoke(app, ["eval", "all", "--out", str(tmp_path / "a"), "--data", str(semanticseg),
                                         "--max-tokens", "1500", "--save-sample", str(sample), *common])
        second = CliRunner().invoke(app, ["eval", "all", "--out", str(tmp_path / "b"), "--data", str(sample), *common])
        assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
        a, b = (json.loads((tmp_path / d / "segkl_tiny.json").read_text()) for d in "ab")
        assert a["methods"] == b["methods"] and b["max_tokens"] == 1500

    @pytest.mark.parametrize("args, message", [
        (["--data", "/nonexistent"], "no test split"),
        (["--tables", "t9"], "unknown table"),
        (["--examples", "0"], "must be ≥ 1"),
        (["--data", __file__, "--tables", "t3"], "document sample"),
    ])
    def test_bad_input_is_one_line(self, args, message, tiny_loaded, tmp_path, monkeypatch, capsys):
        from blockattn.cli import main

        monkeypatch.setattr(sys, "argv", ["blockattn", "eval", "all", "--out", str(tmp_path), "--model", "tiny", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
