"""The serving benchmark: its request plan, one end-to-end CPU run through the CLI (two real server processes
and plain generate, on a tiny random model), and bad arguments."""

import gzip
import json
import sys

import numpy as np
import pytest

from blockattn.bench.serve import Corpus, ServeBenchConfig, phase_plan, plan, popularity, ratios
from blockattn.cli import main
from blockattn.reports import render_serve

WORDS = "lighthouse rock keeper storm lamp granite tide harbour ship signal".split()


def write_hotpotqa(path, items=6, paragraphs=4):
    """A HotpotQA-shaped file whose paragraphs have varied lengths."""
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for i in range(items):
            contexts = [{"title": f"Title {i}.{j}", "is_supporting": j == 0,
                         "paragraph_text": " ".join(WORDS[(i + j + k) % len(WORDS)] for k in range(8 + 11 * j))}
                        for j in range(paragraphs)]
            f.write(json.dumps({"question_id": f"q{i}", "question_text": f"Who kept lamp {i}?",
                                "answers_objects": [{"spans": ["a keeper"]}], "contexts": contexts}) + "\n")
    return path


def corpus(n=50):
    return Corpus([f"doc {i}" for i in range(n)], np.arange(10, 10 + n), ["q1", "q2"])


class TestPlan:
    def test_requests_are_sized_to_the_context_and_distinct(self):
        c = corpus()
        requests = plan(c, popularity(c, 0), 20, 100, 1.1, np.random.default_rng(1))
        for r in requests:
            assert len(set(r["documents"])) == len(r["documents"]) >= 1
            total = sum(c.tokens[d] for d in r["documents"])
            assert total <= 100 or len(r["documents"]) == 1

    def test_popular_documents_recur_and_the_plan_is_seeded(self):
        c = corpus(200)
        cfg = ServeBenchConfig(context_tokens=60, requests=40, warmup=2)
        warm, measured = phase_plan(c, cfg, 0, 1)
        assert (warm, measured) == phase_plan(c, cfg, 0, 1)
        assert len(warm) == 2 and len(measured) == 40
        counts = np.bincount([d for r in measured for d in r["documents"]], minlength=200)
        top = popularity(c, cfg.seed)[0]
        assert counts[top] == counts.max() and (counts == 0).sum() > 100  # Zipf: a head and a long tail
        assert phase_plan(c, cfg, 1, 1)[1] != measured  # each phase its own draws

    def test_ratios_are_block_over_each_baseline(self):
        def phase(mode, p50):
            return {"clients": 8, "mode": mode, "summary": {"ttft_ms": {"p50": p50, "p99": 2 * p50},
                                                            "tokens_per_s_total": 10.0, "requests_per_s": 1.0}}
        [row] = ratios([phase("block", 10.0), phase("full", 40.0), phase("hf_generate", 50.0)])
        assert row["ttft_p50_block_over_full"] == 0.25 and row["ttft_p99_block_over_hf_generate"] == 0.2
        assert row["ttft_p50_block_over_full_ci95"] is None  # no per-request TTFTs (reports from before them)

    def test_ratio_interval_brackets_the_ratio_and_narrows_with_more_requests(self):
        rng = np.random.default_rng(1)

        def phase(mode, center, n):
            each = list(center + center * 0.3 * rng.standard_normal(n))
            return {"clients": 1, "mode": mode, "summary": {
                "ttft_ms": {"p50": float(np.median(each)), "p99": max(each)}, "ttft_ms_each": each,
                "tokens_per_s_total": 1.0, "requests_per_s": 1.0}}

        widths = []
        for n in (16, 256):
            [row] = ratios([phase("block", 10.0, n), phase("full", 40.0, n)])
            low, high = row["ttft_p50_block_over_full_ci95"]
            assert low < row["ttft_p50_block_over_full"] < high
            widths.append(high - low)
        assert widths[1] < widths[0] / 2  # 16x the requests: about a quarter of the width
        assert 0.2 < low and high < 0.3


@pytest.mark.timeout(180)
def test_cpu_run_end_to_end_writes_every_field(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BLOCKATTN_HOTPOTQA", str(write_hotpotqa(tmp_path / "hotpot.jsonl.gz")))
    out = tmp_path / "bench_serve.json"
    monkeypatch.setattr(sys, "argv", ["blockattn", "bench", "serve", "--device", "cpu", "--model", "tiny",
                                      "--clients", "1,2", "--context-tokens", "160", "--new-tokens", "3",
                                      "--requests", "3", "--warmup", "2", "--time-budget", "60",
                                      "--client-processes", "2", "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None), capsys.readouterr().err
    result = json.loads(out.read_text())
    assert out.with_suffix(".png").is_file() and result["partial"] is False
    for key in ("command", "commit", "machine", "seed", "wall_seconds", "config", "env", "corpus", "ratios"):
        assert result.get(key) is not None, key
    assert result["env"]["torch"]
    assert [(p["mode"], p["clients"]) for p in result["phases"]] == [
        (m, c) for c in (1, 2) for m in ("block", "full", "hf_generate")]
    for p in result["phases"]:
        s = p["summary"]
        assert s["errors"] == 0 and s["ok"] == 3, s["error_samples"]
        assert 0 < s["ttft_ms"]["p50"] <= s["ttft_ms"]["p99"] and s["requests_per_s"] > 0
        assert s["tokens_per_s_total"] > 0 and s["decode_tokens_per_s_per_stream"]["p50"] > 0
        assert p["cut_short"] is False and p["documents_per_request_mean"] >= 1
        # the servers' 2-client phases ran their clients in two load-generator processes, the rest in this one
        assert p["client_processes"] == (2 if p["clients"] == 2 and p["mode"] != "hf_generate" else 1)
        assert "gpu_max_allocated_gb" in s
        if p["mode"] != "hf_generate":  # a server: its model thread's split, from /metrics
            w = s["worker"]
            assert w["loops"] >= w["decode_steps"] > 0 and w["admitted_per_loop"] > 0
            assert w["seconds"]["admit"] > 0 and w["seconds"]["decode"] > 0
        if p["mode"] == "block":
            assert s["cache"]["hit_rate"] is not None and s["cache"]["hits"] + s["cache"]["computed"] > 0
            # each block computed in the phase is counted once, for one request (grouped prefill included)
            assert s["cache"]["computed"] == s["cache"]["tier_computed"]
            assert {"tokenize", "keys", "lookup", "assemble", "query"} <= set(s["server_timings_ms_p50"])
        else:
            assert s["cache"]["hit_rate"] is None  # no block cache in full mode nor in plain generate
    assert {"ttft_p50_block_over_full", "ttft_p50_block_over_hf_generate"} <= set(result["ratios"][0])
    text = "\n".join(render_serve("bench_serve_cpu.json", result))
    assert text.count("| hf_generate |") == 2 and "Goal (block TTFT p50 ≤ 0.25× full" in text
    assert "| ms per loop |" in text


@pytest.mark.parametrize("args, message", [
    (["--clients", "0"], "--clients"),
    (["--clients", "1,x"], "--clients"),
    (["--modes", "block,vllm"], "--modes"),
    (["--device", "tpu"], "--device"),
    (["--context-tokens", "4"], "--context-tokens"),
    (["--time-budget", "0"], "--time-budget"),
    (["--admit-per-step", "0"], "--admit-per-step"),
    (["--client-processes", "-1"], "--client-processes"),
    (["--hotpotqa", "/nonexistent/hotpot.jsonl.gz"], "not found"),
])
def test_bad_arguments_exit_2_with_one_clear_line(args, message, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["blockattn", "bench", "serve", "--device", "cpu", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error:") and message in err, err


def test_plain_generate_skips_requests_cancelled_while_waiting():
    """A request cut short by the time budget cancels its future while it waits: the generate thread skips it
    and keeps serving the others (it used to die settling the cancelled future, and the bench hung)."""
    import queue
    import threading
    from concurrent.futures import Future
    from types import SimpleNamespace

    from blockattn.bench.serve import HFTarget

    target = object.__new__(HFTarget)
    target.cfg, target.jobs = SimpleNamespace(hf_max_batch=4), queue.Queue()
    target.tokens_of = lambda question, documents: [1, 2]
    target._generate = lambda prompts: [(0.0, 1.0, len(p)) for p in prompts]
    cancelled, live, later = Future(), Future(), Future()
    cancelled.cancel()
    for future in (cancelled, live):
        target.jobs.put((("q", []), future))
    thread = threading.Thread(target=target._run, daemon=True)
    thread.start()
    assert live.result(timeout=10) == (0.0, 1.0, 2)
    target.jobs.put((("q", []), later))
    assert later.result(timeout=10) == (0.0, 1.0, 2) and thread.is_alive()
    target.jobs.put(None)
    thread.join(timeout=10)
