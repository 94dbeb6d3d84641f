"""The TTFT benchmark end to end on the CPU with a tiny model (the GPU run uses the same code), and the
Llama-8B shape it builds on the GPU."""

import json
import os
import subprocess
import sys

import pytest
import torch

from blockattn.bench.models import llama8b_config
from blockattn.bench.ttft import prompt_blocks


def test_prompt_blocks_split_the_context_and_keep_the_question():
    blocks, question = prompt_blocks(1000, 256, 64, vocab=500, seed=0)
    assert [len(b) for b in blocks] == [256, 256, 256, 168] and len(question) == 64


def test_llama8b_shape():
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):  # shapes only: no memory
        model = AutoModelForCausalLM.from_config(llama8b_config(), dtype=torch.bfloat16)
    assert round(sum(p.numel() for p in model.parameters()) / 1e9, 2) == 8.03
    config = model.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.num_key_value_heads,
            config.intermediate_size, config.vocab_size) == (32, 4096, 32, 8, 14336, 128256)


@pytest.mark.slow
def test_module_entry_point_writes_json_plot_and_table(tmp_path):
    out = tmp_path / "bench_ttft.json"
    proc = subprocess.run(
        [sys.executable, "-m", "blockattn", "bench", "ttft", "--device", "cpu", "--models", "tiny", "--sizes", "256,512",
         "--block-tokens", "64", "--question-tokens", "16", "--warmup", "1", "--repeat", "2", "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert [r["tokens"] for r in result["rows"]] == [256, 512] and not result["skipped"]
    for row in result["rows"]:
        assert row["blocks"] == (row["tokens"] - 16 + 63) // 64
        assert 0 < row["cached_ms"] and 0 < row["full_ms"] and 0 < row["cold_ms"] and 0 < row["hf_cached_ms"]
        assert set(row["cached_phases_ms"]) == {"validate", "blocks", "keys", "lookup", "assemble", "query"}
        assert row["cached_equals_cold"]["same_first_token"]
        assert row["cached_equals_cold"]["max_abs_logit_diff"] <= 1e-4
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert "cached ms" in proc.stdout and "goal:" in proc.stdout
    assert result["command"].startswith("blockattn bench ttft --device cpu")


def test_bad_flags_exit_2(monkeypatch, capsys):
    from blockattn.cli import main

    monkeypatch.setattr(sys, "argv", ["blockattn", "bench", "ttft", "--device", "cpu", "--models", "gpt5"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and "unknown model" in capsys.readouterr().err
