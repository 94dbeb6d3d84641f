"""The load generator of `bench serve`: closed-loop clients in this process or in several, one request list."""

import asyncio
import json
import socket
import threading
import time

import pytest

from blockattn.bench.loadgen import ClientProcesses, closed_loop, local_take
from blockattn.bench.serve import ServeBenchConfig, client_processes


@pytest.fixture(scope="module")
def stub_url():
    """An OpenAI-style server that streams two content chunks and the usage, echoing the request's question."""
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        question = body["messages"][0]["content"]

        async def events():
            for piece in (question, f" {len(body['documents'])} docs"):
                yield "data: " + json.dumps({"choices": [{"delta": {"content": piece}}]}) + "\n\n"
            yield "data: " + json.dumps({"choices": [], "usage": {"completion_tokens": 2,
                                                                   "blockattn": {"echo": question}}}) + "\n\n"
            yield "data: [DONE]\n\n"
        return StreamingResponse(events(), media_type="text/event-stream")

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "stub server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)


def test_processes_answer_every_request_exactly_once(stub_url):
    documents = ["alpha", "beta", "gamma"]
    requests = [{"question": f"q{i}", "documents": [i % 3, (i + 1) % 3]} for i in range(23)]
    pool = ClientProcesses(stub_url, documents, processes=3, timeout_s=30)
    try:
        for _ in range(2):  # the shared counter starts over for each phase
            records, elapsed, cut = pool.drive(requests, clients=5, new_tokens=2, deadline=None)
            assert not cut and elapsed > 0 and all(r["ok"] for r in records), [r.get("error") for r in records]
            assert sorted(r["server"]["echo"] for r in records) == sorted(r["question"] for r in requests)
            assert all(r["start"] < r["first"] <= r["end"] for r in records)
        records, _, cut = pool.drive(requests, clients=4, new_tokens=2, deadline=time.monotonic() - 1)
        assert cut and records == []  # past its deadline a phase starts nothing
    finally:
        pool.close()
    assert all(not process.is_alive() for process, _ in pool.workers)


def test_closed_loop_never_runs_more_than_its_clients_at_once():
    running, peak = 0, 0

    async def ask(req):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        return {"ok": True, "req": req}

    records, cut = asyncio.run(closed_loop(ask, list(range(20)), 3, None, local_take(20)))
    assert sorted(r["req"] for r in records) == list(range(20)) and not cut and peak == 3


def test_auto_processes_follow_clients_and_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    auto = ServeBenchConfig()
    assert [client_processes(auto, n) for n in (1, 8, 16, 17, 64, 256)] == [1, 1, 1, 2, 4, 4]
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert client_processes(auto, 64) == 1  # a 2-core machine keeps one process
    assert client_processes(ServeBenchConfig(client_processes=8), 3) == 3  # never more than clients
