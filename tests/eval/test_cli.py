"""`blockattn eval ppl` / `blockattn eval needles` on a tiny model with the real tokenizer."""

import json

import pytest
from typer.testing import CliRunner

import blockattn.models as models
from blockattn.cli import app
from blockattn.distill.pack import DistillPack
from blockattn.distill.sources import synthetic_corpus
from blockattn.data.needles import make_items
from blockattn.models.tiny import tiny_model


@pytest.fixture
def pack(tmp_path):
    pool = [f"Passage {i}: the weather was mild and the market opened at nine.\nNothing else happened.\n"
            for i in range(20)]
    heldout = synthetic_corpus(4, 300, 49152, 40, seed=1)
    built = DistillPack(train=heldout, heldout=heldout, needles=[it.to_dict() for it in make_items(pool, (4,), 3, 0)])
    return built.save(tmp_path / "pack.npz")


@pytest.fixture
def tiny_loaded(monkeypatch, smollm2_tokenizer):
    def load(name, dtype="float32", device="cpu"):
        return models.LoadedModel(tiny_model(vocab_size=49152), smollm2_tokenizer, "tiny", "tiny@0")

    monkeypatch.setattr(models, "load", load)


def test_ppl_reports_block_and_full(pack, tiny_loaded):
    result = CliRunner().invoke(app, ["eval", "ppl", "--pack", str(pack), "--rows", "2", "--width", "160",
                                      "--query-tokens", "32"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["rows"] == 2 and out["tokens"] == 62 and out["name"] == "zero-shot block"


@pytest.mark.parametrize("mode", ["block", "full"])
def test_needles_reports_accuracy_by_document_count(pack, tiny_loaded, mode, tmp_path):
    result = CliRunner().invoke(app, ["eval", "needles", "--pack", str(pack), "--mode", mode, "--per-count", "2",
                                      "--out", str(tmp_path / "n.json")])
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "n.json").read_text())
    assert out["items"] == 2 and set(out["by_docs"]) == {"4"} and out["mode"] == mode


def test_document_count_filter(pack, tiny_loaded):
    runner = CliRunner()
    assert runner.invoke(app, ["eval", "needles", "--pack", str(pack), "--docs", "4"]).exit_code == 0
    assert runner.invoke(app, ["eval", "needles", "--pack", str(pack), "--docs", "8"]).exit_code != 0


def test_full_mode_with_an_adapter_is_refused(pack, tiny_loaded):
    result = CliRunner().invoke(app, ["eval", "needles", "--pack", str(pack), "--mode", "full", "--adapter", "x"])
    assert result.exit_code != 0
