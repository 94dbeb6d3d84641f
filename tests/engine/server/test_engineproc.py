"""`serve --engine-process`: the model in a process of its own serves what the model in the server's process
serves, checks requests the same way before anything is sent on, reports its metrics, stops cancelled streams,
and fails cleanly when it cannot start or dies."""

from __future__ import annotations

import time

import httpx
import pytest

from blockattn.engine.server import background
from blockattn.engine.server.engineproc import EngineProcess
from blockattn.errors import UserError

pytestmark = pytest.mark.slow  # each engine process loads torch and a model (~5 s here)

DOCS = [{"text": "The lighthouse stands on a reef."}, {"text": "Bees dance to share where food is."}]


@pytest.fixture(scope="module")
def engine(tiny_dir):
    engine = EngineProcess(dict(model=str(tiny_dir), adapter="none", device="cpu"), max_queue=8, max_batch=4)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def local_url(tiny_service):
    with background(tiny_service) as url:
        yield url


@pytest.fixture(scope="module")
def split_url(engine):
    with background(engine.front_service(), engine=engine) as url:
        yield url


def _chat(url: str, **extra) -> httpx.Response:
    body = {"model": "default", "messages": [{"role": "user", "content": "Where is the lighthouse?"}],
            "documents": DOCS, "max_tokens": 8, "temperature": 0, **extra}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)


def _streamed_text(url: str, **extra) -> str:
    body = {"model": "default", "prompt": "Counting: one two", "documents": DOCS, "max_tokens": 12,
            "temperature": 0, "stream": True, **extra}
    pieces = []
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                import json

                choices = json.loads(line[6:])["choices"]
                if choices:
                    pieces.append(choices[0]["text"])
    return "".join(pieces)


def test_the_engine_process_answers_what_the_in_process_model_answers(split_url, local_url):
    here, there = _chat(local_url).json(), _chat(split_url).json()
    assert there["choices"][0]["message"] == here["choices"][0]["message"]
    assert there["choices"][0]["finish_reason"] == here["choices"][0]["finish_reason"]
    for key in ("prompt_tokens", "completion_tokens"):
        assert there["usage"][key] == here["usage"][key]
    blockattn = there["usage"]["blockattn"]
    assert blockattn["cached_blocks"] + blockattn["computed_blocks"] == 3  # prefix + two documents
    assert {"tokenize", "query", "accept"} <= set(blockattn["timings_ms"])
    assert _streamed_text(split_url) == _streamed_text(local_url) != ""


def test_bad_requests_are_refused_in_the_front_end_before_the_stream(split_url):
    too_long = httpx.post(f"{split_url}/v1/completions", timeout=60, json={
        "model": "default", "prompt": "x " * 5000, "max_tokens": 3, "stream": True})
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "context_length_exceeded"
    bad_id = httpx.post(f"{split_url}/v1/completions", timeout=60, json={
        "model": "default", "prompt": [10 ** 7], "max_tokens": 3})
    assert bad_id.status_code == 400 and "outside the vocabulary" in bad_id.json()["error"]["message"]


def test_metrics_and_health_come_from_both_processes(split_url):
    assert _chat(split_url).status_code == 200
    health = httpx.get(f"{split_url}/health", timeout=30).json()
    assert health["status"] == "ok" and health["queue_depth"] == 0 and "running" in health
    text = httpx.get(f"{split_url}/metrics", timeout=30).text
    assert 'blockattn_requests_total{endpoint="/v1/chat/completions",status="200"}' in text  # the front end's
    for engine_side in ("blockattn_cache_hits_total", "blockattn_worker_loops_total", "blockattn_queue_depth"):
        assert engine_side in text, engine_side


def test_a_client_that_leaves_stops_its_generation_in_the_engine(split_url):
    def decode_steps() -> float:
        for line in httpx.get(f"{split_url}/metrics", timeout=30).text.splitlines():
            if line.startswith("blockattn_worker_decode_steps_total"):
                return float(line.split()[-1])
        raise AssertionError("no decode step counter")

    before = decode_steps()
    body = {"model": "default", "prompt": "Go on:", "max_tokens": 1500, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{split_url}/v1/completions", json=body, timeout=60) as response:
        for i, _ in enumerate(response.iter_lines()):
            if i > 6:
                break  # leave after a few tokens
    deadline = time.monotonic() + 30
    while httpx.get(f"{split_url}/health", timeout=30).json()["running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(f"{split_url}/health", timeout=30).json()["running"] == 0
    assert decode_steps() - before < 1000  # cancelled, not run to its 1500 tokens


def test_a_model_that_cannot_load_is_a_clear_error(tmp_path):
    with pytest.raises(UserError):
        EngineProcess(dict(model=str(tmp_path / "no-such-model"), adapter="none", device="cpu"))


def test_a_dead_engine_process_fails_requests_and_health_fast(tiny_dir):
    engine = EngineProcess(dict(model=str(tiny_dir), adapter="none", device="cpu"))
    try:
        with background(engine.front_service(), engine=engine) as url:
            assert _chat(url).status_code == 200
            engine._process.kill()
            engine._process.join(10)
            deadline = time.monotonic() + 10
            while engine._dead is None and time.monotonic() < deadline:  # the reader sees the pipe close
                time.sleep(0.02)
            started = time.monotonic()
            response = _chat(url)
            assert response.status_code == 503 and "engine process" in response.json()["error"]["message"]
            assert response.json()["error"]["code"] == "engine_unavailable"
            assert httpx.get(f"{url}/health", timeout=30).status_code == 503
            assert time.monotonic() - started < 10
    finally:
        engine.close()


def _children(pid: int) -> list[int]:
    """Live child processes of `pid` (Linux /proc)."""
    from pathlib import Path

    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def test_blockattn_serve_with_engine_process_serves_and_stops_its_child(tiny_dir):
    """The real command, `python -m blockattn serve --engine-process`: it answers, and once stopped no engine
    process is left behind."""
    from blockattn.bench.serverproc import ServerProcess

    server = ServerProcess("--model", str(tiny_dir), "--adapter", "none", "--engine-process")
    try:
        children = _children(server.proc.pid)
        assert children, "no engine process"
        response = server.complete([d["text"] for d in DOCS], max_tokens=3)
        assert response.status_code == 200 and response.json()["usage"]["completion_tokens"] >= 1
        assert server.metrics().get("blockattn_cache_misses_total", 0) >= 2  # from the engine process
    finally:
        server.stop()
    assert server.proc.returncode is not None
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in children), "the engine process outlived the server"


def test_an_engine_process_ends_when_its_server_is_killed(tiny_dir):
    """SIGKILL leaves the front end no time to close the engine: the engine sees its pipe close and exits."""
    from blockattn.bench.serverproc import ServerProcess

    server = ServerProcess("--model", str(tiny_dir), "--adapter", "none", "--engine-process")
    children = _children(server.proc.pid)
    assert children
    server.kill()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in children), "the engine process outlived a killed server"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
