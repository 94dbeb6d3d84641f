"""`blockattn bench serve-compare`: joins `bench serve` reports of one machine, refuses unlike ones."""

import json
import sys

import pytest

from blockattn.bench.serve_compare import build, label_of
from blockattn.cli import main
from blockattn.errors import UserError


def _cli(monkeypatch, capsys, *args) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["blockattn", "bench", "serve-compare", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out + captured.err


def _summary(rps: float, ttft: float) -> dict:
    return {"requests": 16, "errors": 0, "requests_per_s": rps, "tokens_per_s_total": rps * 30,
            "ttft_ms": {"p50": ttft, "p99": ttft * 3}}


def _report(path, engine_process: bool, block: tuple, full: tuple, machine="GPU x1", **config):
    cfg = {"model": "m", "device": "cuda", "context_tokens": 8192, "new_tokens": 32, "zipf": 1.1, "seed": 0,
           "adapter": "default", "max_batch": 64, "engine_process": engine_process, "admit_per_step": 4, **config}
    phases = [{"clients": 8, "mode": "block", "cut_short": False, "summary": _summary(*block)},
              {"clients": 8, "mode": "full", "cut_short": False, "summary": _summary(*full)}]
    data = {"benchmark": "serve", "config": cfg, "phases": phases, "machine": machine, "seed": 0,
            "ratios": [{"clients": 8, "ttft_p50_block_over_full": block[1] / full[1]}]}
    path.write_text(json.dumps(data))
    return path


def test_rows_are_over_the_first_run(tmp_path):
    a = _report(tmp_path / "a.json", False, block=(20.0, 40.0), full=(10.0, 100.0))
    b = _report(tmp_path / "b.json", True, block=(30.0, 30.0), full=(10.0, 120.0))
    result = build([a, b], "cmd")
    row = next(r for r in result["rows"] if r["run"] == 1 and r["mode"] == "block")
    assert row["setting"] == "engine process, admit 4"
    assert row["requests_per_s_over_baseline"] == 1.5
    assert row["ttft_p50_ms_over_baseline"] == 0.75
    baseline = next(r for r in result["rows"] if r["run"] == 0 and r["mode"] == "full")
    assert baseline["requests_per_s_over_baseline"] == 1.0
    assert [r["ttft_p50_block_over_full"] for r in result["block_over_full"]] == [0.4, 0.25]
    assert result["machine"] == "GPU x1"  # the runs' machine, not the one that joined them


def test_unlike_runs_are_refused(tmp_path):
    a = _report(tmp_path / "a.json", False, block=(1.0, 1.0), full=(1.0, 1.0))
    other_size = _report(tmp_path / "b.json", True, block=(1.0, 1.0), full=(1.0, 1.0), context_tokens=4096)
    with pytest.raises(UserError, match="context_tokens"):
        build([a, other_size], "cmd")
    other_machine = _report(tmp_path / "c.json", True, block=(1.0, 1.0), full=(1.0, 1.0), machine="CPU")
    with pytest.raises(UserError, match="one machine"):
        build([a, other_machine], "cmd")
    with pytest.raises(UserError, match="at least two"):
        build([a], "cmd")


def test_cli_writes_report_and_plot_and_rejects_non_reports(tmp_path, monkeypatch, capsys):
    a = _report(tmp_path / "a.json", False, block=(20.0, 40.0), full=(10.0, 100.0))
    b = _report(tmp_path / "b.json", True, block=(30.0, 30.0), full=(10.0, 120.0), admit_per_step=16)
    out = tmp_path / "cmp.json"
    code, output = _cli(monkeypatch, capsys, str(a), str(b), "--out", str(out))
    assert code == 0, output
    assert out.is_file() and out.with_suffix(".png").is_file()
    assert json.loads(out.read_text())["runs"][1]["setting"] == "engine process, admit 16"
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    code, output = _cli(monkeypatch, capsys, str(a), str(junk), "--out", str(out))
    assert code != 0 and "not a readable JSON report" in output
    assert "Traceback" not in output


def test_label_defaults_to_the_servers_defaults():
    assert label_of({}) == "in-process, admit 4"
    assert label_of({"engine_process": True, "admit_per_step": 4, "group_prefill": True, "client_processes": 0}) \
        == "engine process, admit 4, grouped prefill, auto client processes"
    assert label_of({"group_prefill": False, "client_processes": 2}) == "in-process, admit 4, 2 client processes"
