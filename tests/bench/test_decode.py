"""The decode benchmark end to end on the CPU with a tiny model (the GPU run uses the same code)."""

import json
import sys

import pytest

from blockattn.bench.decode import DecodeBenchConfig, goals, run, table, write
from blockattn.cli import main


def test_a_tiny_run_measures_every_variant_and_writes_json_and_plot(tmp_path):
    cfg = DecodeBenchConfig(models=["tiny"], device="cpu", context_tokens=96, block_tokens=32, question_tokens=8,
                            new_tokens=3, baseline_tokens=3, streams=[1, 3], warmup=0, repeat=1, adapter="none",
                            time_budget_s=300)
    result = run(cfg, log=lambda line: None)
    assert result["skipped"] == []
    measured = {(r["variant"], r.get("mode"), r.get("streams")) for r in result["rows"]
                if "tokens_per_s" in r or "total_tokens_per_s" in r}
    assert measured == {("hf_generate", "full", 1), ("engine", "block", 1), ("engine", "full", 1),
                        ("engine", "block", 3), ("engine_eager", "block", 1), ("engine_eager", "full", 1),
                        ("engine_unfused", "block", 1), ("engine_unfused", "full", 1), ("engine_unfused", "block", 3),
                        ("engine_compiled", "block", 1), ("engine_compiled", "block", 3)}
    batched = next(r for r in result["rows"] if r.get("streams") == 3 and "total_tokens_per_s" in r)
    assert batched["total_tokens_per_s"] == pytest.approx(3 * batched["per_stream_tokens_per_s"])
    info = next(r for r in result["rows"] if "engine_info" in r)["engine_info"]
    assert info["decode_graphs"] is None  # CPU default: the plain decode
    out = write(result, tmp_path / "bench_decode.json")
    assert json.loads(out.read_text())["benchmark"] == "decode" and out.with_suffix(".png").is_file()
    assert "engine_eager" in table(result)


def test_goals_read_the_engine_rows_only():
    rows = [{"variant": "engine", "model": "smollm2", "mode": "block", "streams": 1, "tokens_per_s": 5.0},
            {"variant": "hf_generate", "model": "smollm2", "mode": "full", "streams": 1, "tokens_per_s": 9.0},
            {"variant": "engine", "model": "smollm2", "mode": "block", "streams": 64, "total_tokens_per_s": 70.0},
            {"variant": "engine_compiled", "model": "smollm2", "mode": "block", "streams": 1, "tokens_per_s": 8.0}]
    g = goals(rows)
    assert g["smollm2_single_stream_tokens_s"]["measured_compiled"] == {"block": 8.0, "full": None}
    assert g["smollm2_single_stream_tokens_s"]["measured"] == {"block": 5.0, "full": None}
    assert g["smollm2_64_streams_total_tokens_s"]["measured"] == 70.0
    assert g["llama8b_single_stream_tokens_s"]["measured"] == {"block": None, "full": None}


@pytest.mark.parametrize("args, message", [
    (["--models", "gpt9"], "unknown model"),
    (["--streams", "1,x"], "--streams"),
    (["--variants", "turbo"], "--variants"),
    (["--new-tokens", "1"], "--new-tokens"),
])
def test_bad_options_are_one_line_errors(args, message, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["blockattn", "bench", "decode", "--device", "cpu", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
