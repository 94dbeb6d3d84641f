"""The GPU scripts, run on CPU with a tiny model and the real tokenizer: the same code path the lent H200
runs, so a typo cannot waste a GPU call."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from blockattn.experiments import gpu_run, gpu_scaling
from blockattn.distill.pack import build_pack

pytestmark = pytest.mark.slow
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY_REAL_VOCAB = ["model.tiny_vocab=49152", "model.tokenizer=smollm2-135m-instruct", "data.seq_len=256",
                   "data.batch_size=2", "train.steps=4", "train.log_every=2", "train.checkpoint_every=0"]


@pytest.fixture
def pack(semanticseg, tmp_path, smollm2_tokenizer):
    built = build_pack(semanticseg, smollm2_tokenizer, segmenter="medium", block_tokens=128, min_block_tokens=8,
                       needle_counts=(4, 8), needles_per_count=2, doc_tokens=120)
    return built.save(tmp_path / "pack.npz")


def invoke(app, args):
    return CliRunner().invoke(app, [str(a) for a in args]).exit_code


def test_gpu_run_trains_both_measures_everything_and_fills_out(pack, tmp_path):
    out = tmp_path / "out"
    sets = [a for o in TINY_REAL_VOCAB for a in ("--set", o)]
    code = invoke(gpu_run.app, ["--config", str(CONFIGS / "smoke-cpu.yaml"), "--pack", str(pack), "--out", str(out),
                                 "--work", str(tmp_path / "work"), "--needles-per-count", "2", "--ppl-rows", "2",
                                 "--query-tokens", "32", *sets])
    results = json.loads((out / "results.json").read_text())
    assert code == 0, results["phases"]
    assert {k: v["status"] for k, v in results["phases"].items()} == {"distill": "ok", "block_ft": "ok", "eval": "ok"}
    assert results["block_ft"]["summary"]["steps"] == results["distill"]["summary"]["steps"] == 4
    assert [p["variant"] for p in results["eval"]["ppl"]] == ["zero-shot block", "distilled", "block-FT"]
    assert [n["variant"] for n in results["eval"]["needles"]] == ["full", "zero-shot block", "distilled", "block-FT"]
    assert all(set(n["by_docs"]) == {"4", "8"} for n in results["eval"]["needles"])
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                     "adapter/block_sinks.safetensors", "adapter/blockattn_adapter.json", "results.json", "results.png"]


def test_a_failing_phase_is_recorded_and_the_exit_status_says_so(pack, tmp_path):
    out = tmp_path / "out"
    code = invoke(gpu_run.app, ["--config", str(CONFIGS / "smoke-cpu.yaml"), "--pack", str(pack), "--out", str(out),
                                 "--work", str(tmp_path / "work"), "--phases", "eval", "--set", "model.tokenizer=nope"])
    results = json.loads((out / "results.json").read_text())
    assert code == 1 and results["phases"]["eval"]["status"] == "failed"
    assert "nope" in results["phases"]["eval"]["error"]


def test_scaling_compares_one_and_two_processes(pack, tmp_path):
    sets = [a for o in TINY_REAL_VOCAB for a in ("--set", o)]
    result = CliRunner().invoke(gpu_scaling.app, ["--config", str(CONFIGS / "smoke-cpu.yaml"), "--pack",
                                                         str(pack), "--out", str(tmp_path / "out"), "--work",
                                                         str(tmp_path / "work"), "--steps", "3", *sets])
    assert result.exit_code == 0, result.output
    scaling = json.loads((tmp_path / "out" / "scaling.json").read_text())
    assert scaling["gpus"] == 2 and scaling["tokens"]["2"] == 2 * scaling["tokens"]["1"]
    assert scaling["scaling_efficiency"] > 0 and (tmp_path / "out" / "scaling.png").is_file()



def test_training_falls_back_to_eager_when_compiled_training_fails(pack, tmp_path, monkeypatch):
    from blockattn.distill import recipe

    real_run = recipe.run

    def run(cfg, *args, **kwargs):
        if cfg.train.compile:
            raise RuntimeError("simulated compiler failure")
        return real_run(cfg, *args, **kwargs)

    monkeypatch.setattr(recipe, "run", run)
    sets = [a for o in [*TINY_REAL_VOCAB, "train.compile=true"] for a in ("--set", o)]
    code = invoke(gpu_run.app, ["--config", CONFIGS / "smoke-cpu.yaml", "--pack", pack, "--out", tmp_path / "out",
                                "--work", tmp_path / "work", "--phases", "distill,block_ft", *sets])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert code == 0
    for phase in ("distill", "block_ft"):
        assert results[phase]["fallback_overrides"] == (["train.compile=false"] if phase == "distill" else [])
    assert "simulated compiler failure" in results["distill"]["failed_attempts"][0]["error"]
    assert results["block_ft"]["failed_attempts"] == []  # it ran with distillation's working settings at once
